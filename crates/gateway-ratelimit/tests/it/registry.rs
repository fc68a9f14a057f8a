//! Rules from the configuration and from the real SQLite store, selected and decided on both
//! backends: precedence, per-level isolation, changes applied live, usage summaries.

use chrono::{Duration as Days, Utc};
use gateway_ratelimit::registry::config_issues;
use gateway_ratelimit::{Caller, Checked, RateLimits};
use gateway_store::test_support::TestDb;
use gateway_types::config::{LimitConfig, RateLimitConfig, RateLimitRuleConfig};
use gateway_types::ids::OrgId;
use gateway_types::model::{
    NewOrganization, NewRateLimitRule, Organization, Plan, RateLimitRulePatch, RateLimitScope,
};

use crate::harness::{Harness, T0, both};

both!(
    stored_rules_apply_and_changes_are_live,
    levels_are_isolated_per_principal_and_organization,
    declared_rules_defaults_and_precedence,
    usage_is_summarized_per_rule,
);

async fn org(db: &TestDb, slug: &str, plan: Plan) -> Organization {
    db.stores()
        .organizations
        .create(NewOrganization {
            name: slug.into(),
            slug: slug.into(),
            plan,
        })
        .await
        .unwrap()
}

fn caller(org: OrgId, user: &str) -> Caller {
    Caller {
        org,
        principal: format!("user:{user}"),
        ids: vec![user.to_owned()],
        ip: Some("203.0.113.5".parse().unwrap()),
    }
}

fn declared(name: &str, scope: RateLimitScope, m: Option<&str>, limit: u32) -> RateLimitRuleConfig {
    RateLimitRuleConfig {
        name: name.into(),
        scope,
        match_value: m.map(str::to_owned),
        limit,
        window_seconds: 60,
    }
}

fn stored(name: &str, scope: RateLimitScope, m: Option<&str>, limit: i32) -> NewRateLimitRule {
    NewRateLimitRule {
        name: name.into(),
        scope,
        match_value: m.map(str::to_owned),
        limit_count: limit,
        window_seconds: 60,
        enabled: true,
    }
}

fn no_defaults() -> RateLimitConfig {
    let mut cfg = RateLimitConfig::default();
    cfg.plans.free = None;
    cfg.plans.team = None;
    cfg
}

async fn limits(h: &Harness, cfg: &RateLimitConfig, db: &TestDb) -> RateLimits {
    assert!(config_issues(cfg).is_empty());
    let l = RateLimits::new(cfg, h.limiter()).unwrap();
    let s = db.stores();
    l.reload_all(s.organizations.as_ref(), s.rate_limits.as_ref())
        .await
        .unwrap();
    l
}

async fn mcp(h: &Harness, l: &RateLimits, c: &Caller, tool: &str) -> Option<Checked> {
    let s = l.select_mcp(c, "tools/call", Some(tool))?;
    let checked = l.decide(s).await;
    assert_eq!(checked.verdict.source, h.source());
    Some(checked)
}

/// How many of `n` tool calls are admitted (`None` when no rule applies at all).
async fn calls(h: &Harness, l: &RateLimits, c: &Caller, tool: &str, n: usize) -> Option<usize> {
    let mut ok = 0;
    for _ in 0..n {
        ok += usize::from(mcp(h, l, c, tool).await?.allowed());
    }
    Some(ok)
}

async fn stored_rules_apply_and_changes_are_live(h: &Harness) {
    let db = TestDb::sqlite().await;
    let acme = org(&db, "acme", Plan::Team).await;
    let rules = &db.stores().rate_limits;
    let rule = rules
        .create(acme.id, stored("search", RateLimitScope::Tool, Some("search"), 2))
        .await
        .unwrap();
    let l = limits(h, &no_defaults(), &db).await;
    h.set(T0 + 1_000);
    let c = caller(acme.id, "u1");

    assert_eq!(calls(h, &l, &c, "search", 3).await, Some(2));
    let refused = mcp(h, &l, &c, "search").await.unwrap();
    let (r, d) = refused.refusal().unwrap();
    assert_eq!((r.name.as_str(), d.quota.limit), ("search", 2));
    assert!(refused.retry_after_ms() > 0);
    assert_eq!(calls(h, &l, &c, "fetch", 3).await, None, "no rule, no work");

    let reload = || async {
        let s = db.stores();
        l.reload_org(acme.id, s.organizations.as_ref(), s.rate_limits.as_ref())
            .await
            .unwrap();
    };
    let patch = |p: RateLimitRulePatch| rules.update(acme.id, rule.id, p);
    patch(RateLimitRulePatch {
        limit_count: Some(4),
        ..Default::default()
    })
    .await
    .unwrap();
    reload().await;
    assert_eq!(
        calls(h, &l, &c, "search", 5).await,
        Some(2),
        "raised to 4: two more"
    );
    patch(RateLimitRulePatch {
        enabled: Some(false),
        ..Default::default()
    })
    .await
    .unwrap();
    reload().await;
    assert_eq!(calls(h, &l, &c, "search", 1).await, None, "disabled");
    patch(RateLimitRulePatch {
        enabled: Some(true),
        match_value: Some(None),
        ..Default::default()
    })
    .await
    .unwrap();
    reload().await;
    assert_eq!(
        calls(h, &l, &c, "fetch", 5).await,
        Some(4),
        "now every tool, each its own count"
    );
    rules.delete(acme.id, rule.id).await.unwrap();
    reload().await;
    assert_eq!(calls(h, &l, &c, "fetch", 1).await, None, "deleted");
}

async fn levels_are_isolated_per_principal_and_organization(h: &Harness) {
    let db = TestDb::sqlite().await;
    let acme = org(&db, "acme", Plan::Team).await;
    let other = org(&db, "other", Plan::Team).await;
    db.stores()
        .rate_limits
        .create(
            acme.id,
            stored("tools", RateLimitScope::Method, Some("tools/call"), 2),
        )
        .await
        .unwrap();
    let mut cfg = no_defaults();
    cfg.principal = Some(LimitConfig {
        limit: 3,
        window_seconds: 60,
    });
    let l = limits(h, &cfg, &db).await;
    h.set(T0 + 2_000);

    let (a, b) = (caller(acme.id, "a"), caller(acme.id, "b"));
    assert_eq!(calls(h, &l, &a, "x", 4).await, Some(2));
    assert_eq!(calls(h, &l, &b, "x", 4).await, Some(2), "a's calls never limit b");
    assert_eq!(
        calls(h, &l, &caller(other.id, "a"), "x", 4).await,
        None,
        "acme's rule is acme's alone"
    );

    // The HTTP levels: the principal default applies to both organizations, per principal.
    let http = |c: &Caller| l.select_request(c, Some(("GET", "/gateway/servers")));
    for c in [&a, &b, &caller(other.id, "a")] {
        let mut ok = 0;
        for _ in 0..5 {
            let checked = l.decide(http(c).unwrap()).await;
            assert_eq!(checked.verdict.source, h.source());
            ok += usize::from(checked.allowed());
        }
        assert_eq!(ok, 3, "{}", c.principal);
    }
}

async fn declared_rules_defaults_and_precedence(h: &Harness) {
    let db = TestDb::sqlite().await;
    let free = org(&db, "free-co", Plan::Free).await;
    let big = org(&db, "big-co", Plan::Enterprise).await;
    db.stores()
        .rate_limits
        .create(
            free.id,
            stored("own-total", RateLimitScope::Organization, None, 50),
        )
        .await
        .unwrap();
    let cfg = RateLimitConfig {
        ip: Some(LimitConfig {
            limit: 100,
            window_seconds: 60,
        }),
        rules: vec![
            declared("office", RateLimitScope::Ip, Some("203.0.113.0/24"), 1000),
            declared("big-total", RateLimitScope::Organization, Some("big-co"), 7),
            declared(
                "servers-post",
                RateLimitScope::Endpoint,
                Some("POST /gateway/servers"),
                1,
            ),
            declared("servers", RateLimitScope::Endpoint, Some("/gateway/servers"), 10),
        ],
        ..RateLimitConfig::default()
    };
    let l = limits(h, &cfg, &db).await;
    h.set(T0 + 3_000);

    // Before authentication: the longest matching range, else the default.
    let ip = |s: &str| {
        l.select_ip(Some(s.parse().unwrap())).unwrap().rules()[0]
            .name
            .clone()
    };
    assert_eq!(ip("203.0.113.9"), "office");
    assert_eq!(ip("198.51.100.1"), "ip");
    assert!(l.select_ip(None).is_none());

    let names = |c: &Caller, method: &str| -> Vec<String> {
        l.select_request(c, Some((method, "/gateway/servers")))
            .map(|s| s.rules().iter().map(|r| r.name.clone()).collect())
            .unwrap_or_default()
    };
    // The organization's own total beats its plan's default; method + route beats route.
    assert_eq!(
        names(&caller(free.id, "u"), "POST"),
        ["own-total", "servers-post"]
    );
    assert_eq!(names(&caller(free.id, "u"), "GET"), ["own-total", "servers"]);
    // A declared rule naming the organization beats the plan (enterprise has none).
    assert_eq!(names(&caller(big.id, "u"), "GET"), ["big-total", "servers"]);
    // An organization not loaded yet still gets the declared rules (not its plan's).
    assert_eq!(names(&caller(OrgId::new(), "u"), "GET"), ["servers"]);

    let post = || l.select_request(&caller(free.id, "u"), Some(("POST", "/gateway/servers")));
    assert!(l.decide(post().unwrap()).await.allowed());
    let refused = l.decide(post().unwrap()).await;
    assert!(!refused.allowed());
    assert_eq!(refused.refusal().unwrap().0.name, "servers-post");
    let listed: Vec<_> = l.declared().iter().map(|r| r.name.clone()).collect();
    assert_eq!(
        listed,
        [
            "office",
            "big-total",
            "servers-post",
            "servers",
            "ip",
            "plan-free",
            "plan-team"
        ]
    );
}

async fn usage_is_summarized_per_rule(h: &Harness) {
    let db = TestDb::sqlite().await;
    let acme = org(&db, "acme", Plan::Free).await;
    let rule = db
        .stores()
        .rate_limits
        .create(acme.id, stored("search", RateLimitScope::Tool, Some("search"), 2))
        .await
        .unwrap();
    let mut cfg = no_defaults();
    cfg.rules = vec![declared("calls", RateLimitScope::Method, Some("tools/call"), 100)];
    let l = limits(h, &cfg, &db).await;
    h.set(T0 + 4_000);
    assert_eq!(calls(h, &l, &caller(acme.id, "u"), "search", 5).await, Some(2));

    let store = db.stores().rate_limits.as_ref();
    assert_eq!(l.flush_usage(store).await.unwrap(), 2);
    assert_eq!(l.flush_usage(store).await.unwrap(), 0, "counted once");
    let now = Utc::now();
    let mut rows = store
        .usage(acme.id, now - Days::minutes(2), now + Days::minutes(2))
        .await
        .unwrap();
    rows.sort_by(|a, b| a.rule_key.cmp(&b.rule_key));
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.rule_key.as_str(),
                r.rate_limit_id,
                r.allowed_count,
                r.rejected_count,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("method:calls", None, 2, 0), ("tool:search", Some(rule.id), 2, 3),],
        "refused calls count against the rule that refused them only"
    );
}

/// `rate_limit.enabled: false`: nothing is selected, so nothing is counted or limited.
#[tokio::test]
async fn disabled_selects_nothing() {
    let db = TestDb::sqlite().await;
    let acme = org(&db, "acme", Plan::Free).await;
    db.stores()
        .rate_limits
        .create(acme.id, stored("tools", RateLimitScope::Method, None, 1))
        .await
        .unwrap();
    let cfg = RateLimitConfig {
        enabled: false,
        ip: Some(LimitConfig {
            limit: 1,
            window_seconds: 60,
        }),
        principal: Some(LimitConfig {
            limit: 1,
            window_seconds: 60,
        }),
        ..RateLimitConfig::default()
    };
    let h = Harness::memory();
    let l = limits(&h, &cfg, &db).await;
    let c = caller(acme.id, "u");
    assert!(l.select_ip(c.ip).is_none());
    assert!(l.select_request(&c, Some(("GET", "/x"))).is_none());
    assert!(l.select_mcp(&c, "tools/call", Some("t")).is_none());
    assert!(!l.needs_load(OrgId::new()));
}
