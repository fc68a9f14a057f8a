//! [`RateLimits`]: the rules in force (one snapshot per organization, swapped whole on
//! reload), the selection of the rules a request is checked against, and the decision.
//!
//! The request path never touches the store: [`RateLimits::select_ip`],
//! [`RateLimits::select_request`] and [`RateLimits::select_mcp`] read the current snapshot (a
//! read lock and an `Arc` clone) and answer `None` when no rule applies, so an unlimited
//! request costs a lookup; [`RateLimits::decide`] then asks the limiter once for all the
//! selected levels. Snapshots are rebuilt from the stores by [`RateLimits::reload_all`]
//! (periodically) and [`RateLimits::reload_org`] (after a write through the API).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::Utc;
use gateway_types::config::{LimitConfig, RateLimitConfig};
use gateway_types::ids::OrgId;
use gateway_types::model::{Organization, Plan, RateLimitRule, RateLimitScope};
use gateway_types::store::{OrganizationStore, RateLimitStore, StoreResult};

use crate::Hit;
use crate::algorithm::{Decision, Quota};
use crate::limiter::{Limiter, Source, Verdict};
use crate::rules::{
    Caller, Matcher, OrgRules, Origin, Problem, Rule, RuleHome, RuleInput, ip_rule, validate,
};
use crate::usage::{UsageBook, UsageKey};

/// Rules selected for one request, with the counter key of each.
#[derive(Debug)]
pub struct Selection {
    hits: Vec<Hit>,
    rules: Vec<Arc<Rule>>,
}

impl Selection {
    fn push(&mut self, rule: &Arc<Rule>, partition: &str) {
        self.hits.push(Hit {
            key: rule.key(partition),
            quota: rule.quota,
        });
        self.rules.push(Arc::clone(rule));
    }

    fn new() -> Self {
        Self {
            hits: Vec::new(),
            rules: Vec::new(),
        }
    }

    fn non_empty(self) -> Option<Self> {
        (!self.hits.is_empty()).then_some(self)
    }

    /// The rules selected, in checking order.
    #[must_use]
    pub fn rules(&self) -> &[Arc<Rule>] {
        &self.rules
    }
}

/// The outcome of one decision: the verdict and, per selected rule, its answer.
#[derive(Debug)]
pub struct Checked {
    /// Admitted or not, with the answer of each rule and who decided.
    pub verdict: Verdict,
    /// The rules, parallel to `verdict.decisions`.
    pub rules: Vec<Arc<Rule>>,
}

impl Checked {
    /// Whether the request is admitted.
    #[must_use]
    pub fn allowed(&self) -> bool {
        self.verdict.allowed
    }

    /// Whether it was refused because Redis did not answer and the failure mode is closed.
    #[must_use]
    pub fn unavailable(&self) -> bool {
        self.verdict.source == Source::Unavailable
    }

    /// Each rule with its answer.
    pub fn entries(&self) -> impl Iterator<Item = (&Rule, &Decision)> {
        self.rules
            .iter()
            .map(AsRef::as_ref)
            .zip(self.verdict.decisions.iter())
    }

    /// The refusing rule that makes the client wait longest, with its answer.
    #[must_use]
    pub fn refusal(&self) -> Option<(&Rule, &Decision)> {
        self.entries()
            .filter(|(_, d)| !d.allowed)
            .max_by_key(|(_, d)| d.retry_after_ms)
    }

    /// When refused: how long until the request would be admitted, in milliseconds.
    #[must_use]
    pub fn retry_after_ms(&self) -> u64 {
        self.refusal().map_or(0, |(_, d)| d.retry_after_ms)
    }
}

/// Defaults of the configuration, as rules.
#[derive(Debug, Default)]
struct Defaults {
    ip: Option<Arc<Rule>>,
    principal: Option<Arc<Rule>>,
    free: Option<Arc<Rule>>,
    team: Option<Arc<Rule>>,
    enterprise: Option<Arc<Rule>>,
}

/// The rules in force and the limiter (see the module docs).
#[derive(Debug)]
pub struct RateLimits {
    enabled: bool,
    limiter: Limiter,
    /// Declared rules other than `ip` (those apply to every organization).
    declared: Vec<Arc<Rule>>,
    defaults: Defaults,
    /// Rules checked before authentication: declared `ip` rules and the `ip` default.
    before_auth: Vec<Arc<Rule>>,
    orgs: RwLock<HashMap<OrgId, Arc<OrgRules>>>,
    /// For an organization not (yet) in a snapshot: declared rules and the principal default.
    unknown: Arc<OrgRules>,
    /// Organizations whose snapshot is being loaded (see [`RateLimits::needs_load`]).
    loading: Mutex<HashSet<OrgId>>,
    usage: UsageBook,
}

/// A rule of the configuration that does not validate.
#[derive(Debug, thiserror::Error)]
#[error("rate_limit.rules[{index}]: {problems:?}")]
pub struct InvalidRule {
    /// Its index in `rate_limit.rules`.
    pub index: usize,
    /// What is wrong.
    pub problems: Vec<Problem>,
}

/// Every problem of the configuration's rules (for the configuration loader), as
/// `(key, message)` with keys like `rate_limit.rules[2].match`.
#[must_use]
pub fn config_issues(cfg: &RateLimitConfig) -> Vec<(String, String)> {
    cfg.rules
        .iter()
        .enumerate()
        .flat_map(|(i, r)| {
            validate(declared_input(r), RuleHome::Configuration)
                .err()
                .unwrap_or_default()
                .into_iter()
                .map(move |p| (format!("rate_limit.rules[{i}].{}", p.field), p.message))
        })
        .collect()
}

fn declared_input(r: &gateway_types::config::RateLimitRuleConfig) -> RuleInput<'_> {
    RuleInput {
        name: &r.name,
        scope: r.scope,
        match_value: r.match_value.as_deref(),
        limit: i64::from(r.limit),
        window_seconds: i64::from(r.window_seconds),
    }
}

fn default_rule(name: &str, scope: RateLimitScope, q: Option<LimitConfig>) -> Option<Arc<Rule>> {
    q.map(|q| {
        Arc::new(Rule::new(
            name,
            scope,
            Matcher::Any,
            Quota::per_seconds(q.limit, q.window_seconds),
            Origin::Default,
            format!("d:{name}"),
        ))
    })
}

impl RateLimits {
    /// The rules of the configuration over `limiter`. Stored rules arrive with
    /// [`Self::reload_all`].
    ///
    /// # Errors
    /// A declared rule does not validate (the configuration loader reports these first).
    pub fn new(cfg: &RateLimitConfig, limiter: Limiter) -> Result<Self, InvalidRule> {
        let mut declared = Vec::new();
        let mut before_auth = Vec::new();
        for (index, r) in cfg.rules.iter().enumerate() {
            let (matcher, quota) = validate(declared_input(r), RuleHome::Configuration)
                .map_err(|problems| InvalidRule { index, problems })?;
            let rule = Arc::new(Rule::new(
                &r.name,
                r.scope,
                matcher,
                quota,
                Origin::Declared,
                format!("c:{}", r.name),
            ));
            if r.scope == RateLimitScope::Ip {
                before_auth.push(rule);
            } else {
                declared.push(rule);
            }
        }
        let defaults = Defaults {
            ip: default_rule("ip", RateLimitScope::Ip, cfg.ip),
            principal: default_rule("principal", RateLimitScope::Principal, cfg.principal),
            free: default_rule("plan-free", RateLimitScope::Organization, cfg.plans.free),
            team: default_rule("plan-team", RateLimitScope::Organization, cfg.plans.team),
            enterprise: default_rule(
                "plan-enterprise",
                RateLimitScope::Organization,
                cfg.plans.enterprise,
            ),
        };
        before_auth.extend(defaults.ip.clone());
        crate::rules::sort(&mut before_auth);
        let mut this = Self {
            enabled: cfg.enabled,
            limiter,
            declared,
            defaults,
            before_auth,
            orgs: RwLock::new(HashMap::new()),
            unknown: Arc::default(),
            loading: Mutex::default(),
            usage: UsageBook::default(),
        };
        this.unknown = Arc::new(this.build(None, &[]));
        Ok(this)
    }

    /// The limiter.
    #[must_use]
    pub fn limiter(&self) -> &Limiter {
        &self.limiter
    }

    /// Whether rate limiting is on at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether the caller should load `org`'s snapshot ([`Self::reload_org`], off the request
    /// path): true once for an organization that has none yet (created after the last
    /// reload), until that load ends. Until then its requests get the declared rules only.
    #[must_use]
    pub fn needs_load(&self, org: OrgId) -> bool {
        if !self.enabled
            || self
                .orgs
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&org)
        {
            return false;
        }
        self.loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org)
    }

    fn snapshot(&self, org: OrgId) -> Arc<OrgRules> {
        let map = self.orgs.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&org)
            .cloned()
            .unwrap_or_else(|| Arc::clone(&self.unknown))
    }

    /// The rules an organization's requests are checked against: its stored rules, the
    /// declared ones and the defaults, each with a usage counter of the organization.
    fn build(&self, org: Option<&Organization>, stored: &[RateLimitRule]) -> OrgRules {
        let mut rules = OrgRules {
            slug: org.map(|o| o.slug.clone()),
            ..OrgRules::default()
        };
        let with_usage = |rule: &Rule| {
            let usage = org.map(|o| {
                self.usage.counter(UsageKey {
                    org: o.id,
                    rule: match rule.origin {
                        Origin::Stored(id) => Some(id),
                        _ => None,
                    },
                    rule_key: rule.usage_key(),
                })
            });
            Arc::new(rule.for_org(usage))
        };
        for s in stored.iter().filter(|s| s.enabled) {
            let input = RuleInput {
                name: &s.name,
                scope: s.scope,
                match_value: s.match_value.as_deref(),
                limit: i64::from(s.limit_count),
                window_seconds: i64::from(s.window_seconds),
            };
            match validate(input, RuleHome::Organization) {
                Ok((matcher, quota)) => {
                    let rule = Rule::new(
                        &s.name,
                        s.scope,
                        matcher,
                        quota,
                        Origin::Stored(s.id),
                        format!("s:{}", s.id),
                    );
                    rules.push(with_usage(&rule));
                }
                Err(problems) => tracing::warn!(
                    org.id = %s.org_id,
                    rate_limit.id = %s.id,
                    problems = ?problems,
                    "stored rate-limit rule skipped: it does not validate"
                ),
            }
        }
        for rule in &self.declared {
            rules.push(with_usage(rule));
        }
        if let Some(p) = &self.defaults.principal {
            rules.push(with_usage(p));
        }
        let plan = org.and_then(|o| match o.plan {
            Plan::Free => self.defaults.free.as_ref(),
            Plan::Team => self.defaults.team.as_ref(),
            Plan::Enterprise => self.defaults.enterprise.as_ref(),
        });
        if let Some(p) = plan {
            rules.push(with_usage(p));
        }
        rules.sort();
        rules
    }

    /// Rebuilds every organization's snapshot from the stores (organizations that are gone
    /// are dropped).
    ///
    /// # Errors
    /// A store failure; the current snapshots stay.
    pub async fn reload_all(
        &self,
        orgs: &dyn OrganizationStore,
        rules: &dyn RateLimitStore,
    ) -> StoreResult<()> {
        let all = rules.list_all_enabled().await?;
        let mut by_org: HashMap<OrgId, Vec<RateLimitRule>> = HashMap::new();
        for r in all {
            by_org.entry(r.org_id).or_default().push(r);
        }
        let mut fresh = HashMap::new();
        for org in orgs.list().await? {
            let stored = by_org.remove(&org.id).unwrap_or_default();
            fresh.insert(org.id, Arc::new(self.build(Some(&org), &stored)));
        }
        *self.orgs.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    /// Rebuilds one organization's snapshot (after a change to its rules or its plan).
    ///
    /// # Errors
    /// A store failure; the current snapshot stays.
    pub async fn reload_org(
        &self,
        org: OrgId,
        orgs: &dyn OrganizationStore,
        rules: &dyn RateLimitStore,
    ) -> StoreResult<()> {
        let result = self.load_org(org, orgs, rules).await;
        self.loading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&org);
        result
    }

    async fn load_org(
        &self,
        org: OrgId,
        orgs: &dyn OrganizationStore,
        rules: &dyn RateLimitStore,
    ) -> StoreResult<()> {
        let Some(o) = orgs.get(org).await? else {
            self.orgs
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&org);
            return Ok(());
        };
        let stored = rules.list(org).await?;
        let snapshot = Arc::new(self.build(Some(&o), &stored));
        self.orgs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(org, snapshot);
        Ok(())
    }

    /// The rules checked before authentication, for a client address.
    #[must_use]
    pub fn select_ip(&self, ip: Option<IpAddr>) -> Option<Selection> {
        if !self.enabled || self.before_auth.is_empty() {
            return None;
        }
        let ip = ip?;
        let rule = ip_rule(&self.before_auth, ip)?;
        let mut s = Selection::new();
        s.push(rule, &ip.to_string());
        Some(s)
    }

    /// The rules of an authenticated HTTP request: principal, organization, the
    /// organization's own IP rules, and the endpoint (`route` = method and route pattern).
    #[must_use]
    pub fn select_request(&self, caller: &Caller, route: Option<(&str, &str)>) -> Option<Selection> {
        if !self.enabled {
            return None;
        }
        let rules = self.snapshot(caller.org);
        let org = caller.org.to_string();
        let mut s = Selection::new();
        if let Some(r) = rules.principal_rule(caller) {
            s.push(r, &format!("{org}:{}", caller.principal));
        }
        if let Some(r) = rules.organization_rule() {
            s.push(r, &org);
        }
        if let Some(ip) = caller.ip
            && let Some(r) = ip_rule(&rules.ip, ip)
        {
            s.push(r, &format!("{org}:{ip}"));
        }
        if let Some((method, pattern)) = route
            && let Some(r) = rules.endpoint_rule(method, pattern)
        {
            let value = match &r.matcher {
                Matcher::Route {
                    method: None,
                    pattern,
                } => pattern.clone(),
                _ => format!("{method} {pattern}"),
            };
            s.push(r, &format!("{org}:{}:{value}", caller.principal));
        }
        s.non_empty()
    }

    /// The rules of one MCP request: its method, and for `tools/call` its tool.
    #[must_use]
    pub fn select_mcp(&self, caller: &Caller, method: &str, tool: Option<&str>) -> Option<Selection> {
        if !self.enabled {
            return None;
        }
        let rules = self.snapshot(caller.org);
        if rules.no_mcp_rules() {
            return None;
        }
        let mut s = Selection::new();
        if let Some(r) = OrgRules::exact_rule(&rules.method, method) {
            s.push(r, &format!("{}:{}:{method}", caller.org, caller.principal));
        }
        if let Some(tool) = tool
            && let Some(r) = OrgRules::exact_rule(&rules.tool, tool)
        {
            s.push(r, &format!("{}:{}:{tool}", caller.org, caller.principal));
        }
        s.non_empty()
    }

    /// Decides a selection: one limiter call for every level; counts usage and metrics.
    pub async fn decide(&self, selection: Selection) -> Checked {
        let verdict = self.limiter.check(&selection.hits).await;
        for (i, rule) in selection.rules.iter().enumerate() {
            let own = verdict.decisions.get(i).is_some_and(|d| d.allowed);
            if verdict.allowed {
                rule.record(true);
            } else if !own {
                rule.record(false);
            }
        }
        Checked {
            verdict,
            rules: selection.rules,
        }
    }

    /// Writes the usage counted since the last flush to the store, one row per rule and
    /// minute. On failure the counts are kept for the next flush.
    ///
    /// # Errors
    /// The store failed.
    pub async fn flush_usage(&self, store: &dyn RateLimitStore) -> StoreResult<usize> {
        let rows = self.usage.drain(Utc::now());
        if rows.is_empty() {
            return Ok(0);
        }
        match store.add_usage(&rows).await {
            Ok(()) => Ok(rows.len()),
            Err(err) => {
                self.usage.restore(&rows);
                Err(err)
            }
        }
    }

    /// The rules of the configuration (for the admin listing): declared rules, then the
    /// defaults (`ip`, `principal`, `plan-<plan>`).
    #[must_use]
    pub fn declared(&self) -> Vec<Arc<Rule>> {
        let d = &self.defaults;
        let mut all: Vec<Arc<Rule>> = self
            .before_auth
            .iter()
            .filter(|r| r.origin == Origin::Declared)
            .chain(&self.declared)
            .cloned()
            .collect();
        all.extend(
            [&d.ip, &d.principal, &d.free, &d.team, &d.enterprise]
                .into_iter()
                .flatten()
                .cloned(),
        );
        all
    }
}
