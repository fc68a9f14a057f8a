//! Engine tests: matching, combining, the list/use agreement, reasons and validation.

use std::net::IpAddr;

use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::ids::{ApiKeyId, UserId};
use gateway_types::model::Role;
use serde_json::{Value, json};

use super::*;

/// The YAML example of the module documentation, as JSON (converted with a YAML parser).
const DOC_EXAMPLE: &str = r#"{"default_effect": "deny", "rules": [{"id": "staff-from-office", "name": "staff-from-office", "description": "Staff may use everything, but only from the office networks.", "effect": "allow", "subjects": [{"role": "admin"}, {"role": "user"}, {"claim": {"name": "groups", "value": "eng-*"}}], "actions": ["list", "call", "read", "get"], "conditions": {"client_ips": ["10.0.0.0/8", "2001:db8::/32"]}}, {"id": "ci-bot", "name": "ci-bot", "effect": "allow", "subjects": [{"app": "0190f5a4-7c3e-7d2a-9b1e-3f4a5b6c7d8e"}], "resources": [{"server": "github", "kind": "tool", "name": "get_*"}, {"server": "github", "kind": "tool", "name": "create_pull_request"}], "actions": ["list", "call"]}, {"id": "shared-files", "name": "shared-files", "effect": "allow", "resources": [{"server": "fs", "kind": "tool", "name": "read_file"}], "actions": ["list", "call"], "conditions": {"arguments": [{"path": "/path", "op": "matches", "value": "/srv/shared/*"}]}}, {"id": "no-env-dump", "name": "no-env-dump", "effect": "deny", "resources": [{"server": "shell-*", "kind": "tool"}], "actions": ["call"], "conditions": {"arguments": [{"path": "/command", "op": "in", "value": ["env", "printenv", "set"]}]}}, {"id": "hide-deletes-in-prod", "name": "hide-deletes-in-prod", "effect": "deny", "resources": [{"namespace": "prod", "kind": "tool", "name": "delete_*"}], "actions": ["list"], "enabled": true}]}"#;

fn rule(value: Value) -> PolicyRule {
    serde_json::from_value(value).unwrap()
}

fn snapshot(rules: Vec<Value>, default_effect: Effect) -> PolicySnapshot {
    PolicySnapshot::new(rules.into_iter().map(rule).collect(), default_effect).unwrap()
}

fn tool(namespace: Option<&str>, server: &str, name: &str) -> Target {
    Target::item(namespace, server, ItemKind::Tool, name)
}

fn req(subject: &SubjectFacts, action: Action, target: &Target) -> PolicyRequest {
    PolicyRequest::new(subject.clone(), action, target.clone())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn user() -> SubjectFacts {
    SubjectFacts::role(Role::User)
}

fn deny_tool(id: &str, name: &str, extra: Value) -> Value {
    let mut r = json!({"id": id, "name": name, "effect": "deny", "resources": [{"kind": "tool", "name": name}], "actions": ["call"]});
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        r.extend(extra.clone());
    }
    r
}

#[test]
fn the_documented_example_parses_validates_and_decides_as_described() {
    let set: PolicySet = serde_json::from_str(DOC_EXAMPLE).unwrap();
    let s = PolicySnapshot::from_set(set).unwrap();
    assert_eq!(s.default_effect(), Effect::Deny);
    let office = ip("10.1.2.3");
    let home = ip("203.0.113.7");
    let staff = user();

    // Staff from the office: everything, except what a deny rule takes away.
    let get_issue = tool(None, "github", "get_issue");
    let d = s.evaluate(
        &req(&staff, Action::Call, &get_issue)
            .with_arguments(json!({}))
            .with_client_ip(office),
    );
    assert!(d.allowed);
    assert_eq!(d.reason, "allowed by policy 'staff-from-office'");
    // From home nothing applies, and the default denies.
    let d = s.evaluate(
        &req(&staff, Action::Call, &get_issue)
            .with_arguments(json!({}))
            .with_client_ip(home),
    );
    assert!(!d.allowed);
    assert_eq!(d.rule, None);
    assert_eq!(d.reason, "denied: no policy allows this");
    assert!(
        !s.visible(&req(&staff, Action::List, &get_issue).with_client_ip(home))
            .allowed
    );

    // Deny overrides allow: no-env-dump beats staff-from-office.
    let run = tool(Some("dev"), "shell-2", "run");
    let call_env = req(&staff, Action::Call, &run)
        .with_client_ip(office)
        .with_arguments(json!({"command": "printenv"}));
    let d = s.evaluate(&call_env);
    assert_eq!((d.allowed, d.effect), (false, Effect::Deny));
    assert_eq!(d.reason, "denied by policy 'no-env-dump'");
    assert_eq!(d.rule.as_ref().map(|r| r.id.as_str()), Some("no-env-dump"));
    let call_ls = req(&staff, Action::Call, &run)
        .with_client_ip(office)
        .with_arguments(json!({"command": "ls"}));
    assert!(s.evaluate(&call_ls).allowed);
    assert!(
        s.visible(&req(&staff, Action::List, &run).with_client_ip(office))
            .allowed
    );

    // Hidden in prod: not listed, and not callable, even for staff in the office.
    let delete = tool(Some("prod"), "github", "delete_repo");
    let listing = req(&staff, Action::List, &delete).with_client_ip(office);
    let d = s.visible(&listing);
    assert_eq!(d.reason, "denied by policy 'hide-deletes-in-prod'");
    let d = s.evaluate(
        &req(&staff, Action::Call, &delete)
            .with_client_ip(office)
            .with_arguments(json!({})),
    );
    assert_eq!(d.reason, "denied by policy 'hide-deletes-in-prod'");
    assert!(
        s.visible(
            &req(&staff, Action::List, &tool(Some("dev"), "github", "delete_repo")).with_client_ip(office)
        )
        .allowed
    );

    // The CI app: two github tools, from anywhere.
    let ci = SubjectFacts {
        app_id: Some("0190f5a4-7c3e-7d2a-9b1e-3f4a5b6c7d8e".parse().unwrap()),
        ..SubjectFacts::role(Role::ApiUser)
    };
    assert!(
        s.evaluate(&req(&ci, Action::Call, &get_issue).with_arguments(json!({})))
            .allowed
    );
    assert!(
        s.visible(&req(
            &ci,
            Action::List,
            &tool(None, "github", "create_pull_request")
        ))
        .allowed
    );
    assert!(
        !s.visible(&req(
            &ci,
            Action::List,
            &tool(None, "github", "merge_pull_request")
        ))
        .allowed
    );

    // Shared files: listed for everyone (some paths are allowed), callable only below the share.
    let read_file = tool(None, "fs", "read_file");
    let viewer = SubjectFacts::role(Role::Viewer);
    assert!(s.visible(&req(&viewer, Action::List, &read_file)).allowed);
    let ok = req(&viewer, Action::Call, &read_file).with_arguments(json!({"path": "/srv/shared/a.txt"}));
    assert!(s.evaluate(&ok).allowed);
    let bad = req(&viewer, Action::Call, &read_file).with_arguments(json!({"path": "/etc/passwd"}));
    assert_eq!(s.evaluate(&bad).reason, "denied: no policy allows this");
    // Dry run with unknown arguments: "allowed for some arguments".
    assert!(s.evaluate(&req(&viewer, Action::Call, &read_file)).allowed);

    // Claims: an external-IdP user in an eng group counts as staff.
    let eng = SubjectFacts {
        claims: Claims::from([(
            "groups".to_owned(),
            vec!["sales".to_owned(), "eng-platform".to_owned()],
        )]),
        ..viewer.clone()
    };
    assert!(
        s.visible(&req(&eng, Action::List, &get_issue).with_client_ip(ip("2001:db8::5")))
            .allowed
    );
    assert!(
        !s.visible(&req(&viewer, Action::List, &get_issue).with_client_ip(ip("2001:db8::5")))
            .allowed
    );
}

#[test]
fn defaults_of_the_serde_shape() {
    let r = rule(json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"]}));
    assert_eq!(r.subjects, vec![SubjectMatcher::Any]);
    assert_eq!(r.resources, vec![ResourceMatcher::any()]);
    assert!(r.enabled);
    assert!(r.conditions.is_empty());
    assert_eq!(r.description, None);
    // Serialising leaves the defaults that are noise out and round-trips.
    let text = serde_json::to_value(&r).unwrap();
    assert_eq!(
        text,
        json!({"id": "r", "name": "r", "effect": "deny", "subjects": ["any"], "resources": [{"kind": "any"}], "actions": ["call"]})
    );
    assert_eq!(serde_json::from_value::<PolicyRule>(text).unwrap(), r);

    let disabled =
        rule(json!({"id": "r", "name": "r", "effect": "allow", "actions": ["list"], "enabled": false}));
    assert_eq!(serde_json::to_value(&disabled).unwrap()["enabled"], json!(false));
}

#[test]
fn unknown_fields_and_values_are_refused() {
    for bad in [
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"], "resource": []}),
        json!({"id": "r", "name": "r", "effect": "block", "actions": ["call"]}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["execute"]}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"], "resources": [{"tool": "x"}]}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"], "subjects": [{"group": "x"}]}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"], "subjects": [{"role": "root"}]}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"], "subjects": [{"user": "bob"}]}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"], "conditions": {"ips": []}}),
        json!({"id": "r", "name": "r", "effect": "deny", "actions": ["call"],
               "conditions": {"arguments": [{"path": "/a", "op": "like", "value": "x"}]}}),
        json!({"name": "r", "effect": "deny", "actions": ["call"]}),
    ] {
        assert!(
            serde_json::from_value::<PolicyRule>(bad.clone()).is_err(),
            "{bad} must be refused"
        );
    }
    assert!(serde_json::from_value::<PolicySet>(json!({"default": "deny"})).is_err());
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let r = rule(json!({
        "id": " ", "name": "bad\nname", "effect": "deny",
        "subjects": [{"claim": {"name": "", "value": ""}}],
        "resources": [{"server": "", "name": "ok*", "kind": "resource"}, {"kind": "prompt", "namespace": "x\u{7}"}],
        "actions": ["call", "read", "read"],
        "conditions": {
            "client_ips": ["10.0.0.0/8", "10.0.0.1/8", "10.0.0.0/33", "example.com"],
            "arguments": [
                {"path": "command", "op": "equals", "value": "env"},
                {"path": "/a~2b", "op": "exists"},
                {"path": "/a", "op": "exists", "value": true},
                {"path": "/a", "op": "equals"},
                {"path": "/a", "op": "in", "value": "x"},
                {"path": "/a", "op": "in", "value": []},
                {"path": "/a", "op": "matches", "value": 3},
                {"path": "/a", "op": "matches", "value": ""},
                {"path": "/a~0b~1c/0", "op": "not_equals", "value": null},
                {"path": "/a", "op": "absent", "value": null}
            ]
        }
    }));
    let problems = rule_problems(&r);
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "id",
            "name",
            "subjects[0].claim.name",
            "subjects[0].claim.value",
            "resources[0].server",
            "resources[1].namespace",
            "actions[0]",
            "actions[2]",
            "conditions.client_ips[1]",
            "conditions.client_ips[2]",
            "conditions.client_ips[3]",
            "conditions.arguments[0].path",
            "conditions.arguments[1].path",
            "conditions.arguments[2].value",
            "conditions.arguments[3].value",
            "conditions.arguments[4].value",
            "conditions.arguments[5].value",
            "conditions.arguments[6].value",
            "conditions.arguments[7].value",
            "conditions.arguments[9].value",
        ],
        "{problems:#?}"
    );
    let text = |path: &str| {
        problems
            .iter()
            .find(|p| p.path == path)
            .map(|p| p.message.clone())
            .unwrap()
    };
    assert_eq!(
        text("actions[0]"),
        "`call` never applies: no resource matcher admits kind `tool`"
    );
    assert_eq!(text("actions[2]"), "duplicate action `read`");
    assert_eq!(
        text("conditions.client_ips[1]"),
        "host bits are set; did you mean 10.0.0.0/8?"
    );
    assert_eq!(
        text("conditions.arguments[0].path"),
        "JSON pointer \"command\" must start with '/', e.g. \"/command\""
    );

    let empty = rule(json!({"id": "r", "name": "r", "effect": "deny", "subjects": [], "resources": []}));
    let paths: Vec<String> = rule_problems(&empty).into_iter().map(|p| p.path).collect();
    assert_eq!(paths, ["subjects", "resources", "actions"]);

    let list_only_args = rule(json!({
        "id": "r", "name": "r", "effect": "deny", "actions": ["list", "read"],
        "conditions": {"arguments": [{"path": "/a", "op": "exists"}]}
    }));
    let problems = rule_problems(&list_only_args);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, "conditions.arguments");

    let good = rule(json!({"id": "r", "name": "r", "effect": "deny", "actions": Action::ALL}));
    assert_eq!(good.validate(), Ok(()));
}

fn rule_problems(r: &PolicyRule) -> Vec<Problem> {
    r.validate().unwrap_err().problems
}

#[test]
fn snapshot_validation_prefixes_paths_and_finds_duplicate_ids() {
    let rules = vec![
        rule(json!({"id": "a", "name": "a", "effect": "deny", "actions": ["call"]})),
        rule(json!({"id": "b", "name": "b", "effect": "deny", "actions": [], "enabled": false})),
        rule(
            json!({"id": "a", "name": "c", "effect": "deny", "actions": ["call"], "resources": [{"server": ""}]}),
        ),
    ];
    let err = PolicySnapshot::new(rules, Effect::Allow).unwrap_err();
    let problems: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [
            "rules[1].actions: must not be empty",
            "rules[2].id: duplicate id \"a\" (also rules[0])",
            "rules[2].resources[0].server: empty pattern; use \"*\" to match anything",
        ]
    );
    assert!(
        err.to_string()
            .starts_with("invalid policy: rules[1].actions: must not be empty; ")
    );
    let public = GatewayError::from(err);
    assert_eq!(public.code(), ErrorCode::Validation);
    assert!(public.message().contains("rules[2].id"));
}

#[test]
fn disabled_rules_are_kept_but_never_applied() {
    let s = snapshot(
        vec![deny_tool("r", "run", json!({"enabled": false}))],
        Effect::Allow,
    );
    assert_eq!(s.rules().len(), 1);
    let d = s.evaluate(&req(&user(), Action::Call, &tool(None, "s", "run")).with_arguments(json!({})));
    assert!(d.allowed);
    assert_eq!(d.reason, "allowed: no policy applies");
}

#[test]
fn default_effect_decides_when_nothing_applies() {
    let t = tool(None, "s", "run");
    for (default, allowed, reason) in [
        (Effect::Allow, true, "allowed: no policy applies"),
        (Effect::Deny, false, "denied: no policy allows this"),
    ] {
        let s = PolicySnapshot::new(Vec::new(), default).unwrap();
        for action in Action::ALL {
            let d = s.evaluate(&req(&user(), *action, &t).with_arguments(json!({})));
            assert_eq!(
                (d.allowed, d.effect, d.rule.clone(), d.reason.as_str()),
                (allowed, default, None, reason)
            );
        }
    }
    assert!(
        PolicySnapshot::default()
            .evaluate(&req(&user(), Action::Admin, &Target::default()))
            .allowed
    );
}

#[test]
fn deny_overrides_allow_whatever_the_order() {
    let allow = json!({"id": "allow", "name": "allow-all", "effect": "allow", "actions": ["list", "call"]});
    let deny = deny_tool("deny", "run", json!({}));
    let t = tool(None, "s", "run");
    for rules in [vec![allow.clone(), deny.clone()], vec![deny, allow]] {
        let s = snapshot(rules, Effect::Deny);
        let d = s.evaluate(&req(&user(), Action::Call, &t).with_arguments(json!({})));
        assert_eq!(d.reason, "denied by policy 'run'");
        // A deny on `call` without argument conditions also hides the tool.
        assert_eq!(
            s.visible(&req(&user(), Action::List, &t)).reason,
            "denied by policy 'run'"
        );
        // Other tools are still allowed by the allow rule.
        let other = s.evaluate(&req(&user(), Action::Call, &tool(None, "s", "ls")).with_arguments(json!({})));
        assert_eq!(other.reason, "allowed by policy 'allow-all'");
    }
}

#[test]
fn reasons_name_only_the_deciding_rule() {
    let s = snapshot(
        vec![
            json!({"id": "r1", "name": "secret-project-x", "description": "the zeus cluster", "effect": "allow",
                   "resources": [{"server": "zeus"}], "actions": ["list", "call"]}),
            json!({"id": "r2", "name": "no-env-dump", "description": "internal: see ticket 42", "effect": "deny",
                   "resources": [{"kind": "tool", "name": "run"}], "actions": ["call"],
                   "conditions": {"arguments": [{"path": "/cmd", "op": "equals", "value": "env"}],
                                  "client_ips": ["10.0.0.0/8"]}}),
        ],
        Effect::Allow,
    );
    let d = s.evaluate(
        &req(&user(), Action::Call, &tool(None, "zeus", "run"))
            .with_arguments(json!({"cmd": "env"}))
            .with_client_ip(ip("10.0.0.1")),
    );
    assert_eq!(d.reason, "denied by policy 'no-env-dump'");
    let json = serde_json::to_string(&d).unwrap();
    for leak in [
        "secret-project-x",
        "zeus cluster",
        "ticket",
        "10.0.0.0",
        "/cmd",
        "r1",
    ] {
        assert!(!json.contains(leak), "{leak} leaked into {json}");
    }
    assert_eq!(
        serde_json::to_value(&d).unwrap(),
        json!({"allowed": false, "effect": "deny", "rule": {"id": "r2", "name": "no-env-dump"},
               "reason": "denied by policy 'no-env-dump'"})
    );
}

#[test]
fn subject_matchers() {
    let alice = UserId::new();
    let key = ApiKeyId::new();
    let app = ApiKeyId::new();
    let deny_for = |subject: Value| {
        snapshot(
            vec![deny_tool("r", "run", json!({"subjects": [subject]}))],
            Effect::Allow,
        )
    };
    let t = tool(None, "s", "run");
    let denied = |s: &PolicySnapshot, facts: &SubjectFacts| {
        !s.evaluate(&req(facts, Action::Call, &t).with_arguments(json!({})))
            .allowed
    };
    let alice_login = SubjectFacts {
        user_id: Some(alice),
        ..user()
    };
    let alice_key = SubjectFacts {
        api_key_id: Some(key),
        ..alice_login.clone()
    };
    let the_app = SubjectFacts {
        app_id: Some(app),
        ..SubjectFacts::role(Role::ApiUser)
    };
    let bob = SubjectFacts {
        user_id: Some(UserId::new()),
        ..user()
    };

    let s = deny_for(json!("any"));
    assert!(
        [&alice_login, &alice_key, &the_app, &bob]
            .iter()
            .all(|f| denied(&s, f))
    );

    let s = deny_for(json!({"user": alice}));
    assert!(
        denied(&s, &alice_login) && denied(&s, &alice_key),
        "a user's keys act as the user"
    );
    assert!(!denied(&s, &bob) && !denied(&s, &the_app));

    let s = deny_for(json!({"api_key": key}));
    assert!(denied(&s, &alice_key));
    assert!(
        !denied(&s, &alice_login) && !denied(&s, &the_app),
        "an app key id is not a user key id"
    );

    let s = deny_for(json!({"app": app}));
    assert!(denied(&s, &the_app));
    assert!(!denied(&s, &alice_key));

    let s = deny_for(json!({"role": "api_user"}));
    assert!(denied(&s, &the_app) && !denied(&s, &alice_login));

    let s = deny_for(json!({"claim": {"name": "groups", "value": "contractors-*"}}));
    let contractor = SubjectFacts {
        claims: Claims::from([(
            "groups".to_owned(),
            vec!["eng".to_owned(), "contractors-emea".to_owned()],
        )]),
        ..bob.clone()
    };
    let other_claim = SubjectFacts {
        claims: Claims::from([("team".to_owned(), vec!["contractors-emea".to_owned()])]),
        ..bob.clone()
    };
    assert!(denied(&s, &contractor));
    assert!(!denied(&s, &other_claim) && !denied(&s, &bob));
}

#[test]
fn resource_matchers() {
    let matches = |resource: Value, target: &Target| {
        let s = snapshot(
            vec![
                json!({"id": "r", "name": "r", "effect": "deny", "resources": [resource], "actions": ["admin"]}),
            ],
            Effect::Allow,
        );
        !s.evaluate(&req(&user(), Action::Admin, target)).allowed
    };
    let in_prod = tool(Some("prod"), "github-enterprise", "delete_repo");
    let no_ns = tool(None, "github", "delete_repo");
    assert!(matches(json!({}), &in_prod));
    assert!(matches(json!({"namespace": "prod"}), &in_prod));
    assert!(matches(json!({"namespace": "pr?d"}), &in_prod));
    assert!(!matches(json!({"namespace": "Prod"}), &in_prod), "case-sensitive");
    assert!(!matches(json!({"namespace": "prod"}), &no_ns));
    assert!(
        matches(json!({"namespace": "*"}), &no_ns),
        "`*` matches a missing namespace"
    );
    assert!(matches(json!({"server": "github*"}), &in_prod));
    assert!(!matches(json!({"server": "github"}), &in_prod), "anchored");
    assert!(matches(json!({"name": "delete_*", "kind": "tool"}), &in_prod));
    assert!(!matches(json!({"name": "delete_*", "kind": "prompt"}), &in_prod));
    assert!(
        !matches(json!({"namespace": "prod", "server": "gitlab"}), &in_prod),
        "all fields must match"
    );

    let resource = Target::item(None, "fs", ItemKind::Resource, "file:///etc/passwd");
    assert!(matches(
        json!({"kind": "resource", "name": "file:///etc/*"}),
        &resource
    ));
    assert!(!matches(
        json!({"kind": "resource", "name": "file:///home/*"}),
        &resource
    ));

    // Requests about a server itself (no item): only kind `any` matchers apply.
    let server = Target {
        namespace: Some("prod".into()),
        server: Some("github".into()),
        item: None,
    };
    assert!(matches(json!({"server": "github"}), &server));
    assert!(matches(json!({"server": "github", "name": "*"}), &server));
    assert!(!matches(json!({"server": "github", "name": "x"}), &server));
    assert!(!matches(json!({"server": "github", "kind": "tool"}), &server));
}

#[test]
fn argument_conditions() {
    let t = tool(None, "s", "run");
    let check = |op: &str, path: &str, value: Option<Value>, arguments: Value| {
        let mut cond = json!({"path": path, "op": op});
        if let Some(v) = value {
            cond["value"] = v;
        }
        let s = snapshot(
            vec![deny_tool(
                "r",
                "run",
                json!({"conditions": {"arguments": [cond]}}),
            )],
            Effect::Allow,
        );
        !s.evaluate(&req(&user(), Action::Call, &t).with_arguments(arguments))
            .allowed
    };
    let args = json!({"mode": "rw", "n": 1, "f": 2.5, "opts": {"force": true, "a/b": "slash", "t~x": "tilde"},
                      "list": ["x", "y"], "nothing": null});

    assert!(check("equals", "/mode", Some(json!("rw")), args.clone()));
    assert!(!check("equals", "/mode", Some(json!("ro")), args.clone()));
    assert!(
        check("equals", "/n", Some(json!(1.0)), args.clone()),
        "numbers compare by value"
    );
    assert!(check("equals", "/f", Some(json!(2.5)), args.clone()));
    assert!(
        !check("equals", "/n", Some(json!("1")), args.clone()),
        "no type coercion"
    );
    assert!(check("equals", "/opts/force", Some(json!(true)), args.clone()));
    assert!(check("equals", "/list", Some(json!(["x", "y"])), args.clone()));
    assert!(check("equals", "/list/1", Some(json!("y")), args.clone()));
    assert!(check("equals", "/opts/a~1b", Some(json!("slash")), args.clone()));
    assert!(check("equals", "/opts/t~0x", Some(json!("tilde")), args.clone()));
    assert!(!check("equals", "/missing", Some(json!(null)), args.clone()));
    assert!(check("equals", "/nothing", Some(json!(null)), args.clone()));

    assert!(check("not_equals", "/mode", Some(json!("ro")), args.clone()));
    assert!(!check("not_equals", "/mode", Some(json!("rw")), args.clone()));
    assert!(
        check("not_equals", "/missing", Some(json!("rw")), args.clone()),
        "absent is not equal"
    );

    assert!(check("in", "/mode", Some(json!(["ro", "rw"])), args.clone()));
    assert!(check("in", "/n", Some(json!([0, 1.0])), args.clone()));
    assert!(!check("in", "/mode", Some(json!(["ro"])), args.clone()));
    assert!(!check("in", "/missing", Some(json!(["ro"])), args.clone()));

    assert!(check("matches", "/mode", Some(json!("r?")), args.clone()));
    assert!(!check("matches", "/mode", Some(json!("w*")), args.clone()));
    assert!(
        !check("matches", "/n", Some(json!("*")), args.clone()),
        "only strings match globs"
    );
    assert!(!check("matches", "/missing", Some(json!("*")), args.clone()));

    assert!(check("exists", "/nothing", None, args.clone()), "null exists");
    assert!(check("exists", "/list/0", None, args.clone()));
    assert!(!check("exists", "/list/2", None, args.clone()));
    assert!(!check("exists", "/missing", None, args.clone()));
    assert!(check("absent", "/missing", None, args.clone()));
    assert!(!check("absent", "/mode", None, args.clone()));
    // Arguments that are not an object: pointers do not resolve.
    assert!(check("absent", "/mode", None, json!("rw")));

    // All conditions of a rule must hold.
    let s = snapshot(
        vec![deny_tool(
            "r",
            "run",
            json!({"conditions": {"arguments": [
                {"path": "/mode", "op": "equals", "value": "rw"},
                {"path": "/n", "op": "exists"}
            ]}}),
        )],
        Effect::Allow,
    );
    let call = |a: Value| {
        s.evaluate(&req(&user(), Action::Call, &t).with_arguments(a))
            .allowed
    };
    assert!(!call(json!({"mode": "rw", "n": 0})));
    assert!(call(json!({"mode": "rw"})));
    assert!(call(json!({"n": 0})));
}

#[test]
fn prompt_arguments_are_conditions_too_and_reads_have_none() {
    let rules = vec![json!({
        "id": "r", "name": "no-secrets", "effect": "deny", "actions": ["get", "read"],
        "conditions": {"arguments": [{"path": "/topic", "op": "equals", "value": "secrets"}]}
    })];
    let s = snapshot(rules, Effect::Allow);
    let prompt = Target::item(None, "s", ItemKind::Prompt, "explain");
    let get = |a: Value| {
        s.evaluate(&req(&user(), Action::Get, &prompt).with_arguments(a))
            .allowed
    };
    assert!(!get(json!({"topic": "secrets"})));
    assert!(get(json!({"topic": "cats"})));
    // `read` has no arguments: the rule never applies to it, whatever the request carries.
    let res = Target::item(None, "s", ItemKind::Resource, "file:///x");
    let read = req(&user(), Action::Read, &res).with_arguments(json!({"topic": "secrets"}));
    assert!(s.evaluate(&read).allowed);
    assert!(s.visible(&req(&user(), Action::List, &res)).allowed);
}

#[test]
fn unknown_arguments_mean_some_arguments() {
    let t = tool(None, "s", "run");
    let deny_env = deny_tool(
        "d",
        "run",
        json!({"conditions": {"arguments": [{"path": "/cmd", "op": "equals", "value": "env"}]}}),
    );
    let allow_ls = json!({"id": "a", "name": "only-ls", "effect": "allow", "actions": ["list", "call"],
        "conditions": {"arguments": [{"path": "/cmd", "op": "equals", "value": "ls"}]}});

    // A conditional deny does not hide the tool nor deny a dry run.
    let s = snapshot(vec![deny_env.clone()], Effect::Allow);
    assert!(s.visible(&req(&user(), Action::List, &t)).allowed);
    assert!(s.evaluate(&req(&user(), Action::Call, &t)).allowed);

    // A conditional allow under a deny default makes the tool visible; only matching calls pass.
    let s = snapshot(vec![allow_ls, deny_env], Effect::Deny);
    let v = s.visible(&req(&user(), Action::List, &t));
    assert_eq!(v.reason, "allowed by policy 'only-ls'");
    let call = |a: Value| s.evaluate(&req(&user(), Action::Call, &t).with_arguments(a));
    assert!(call(json!({"cmd": "ls"})).allowed);
    assert_eq!(call(json!({"cmd": "rm"})).reason, "denied: no policy allows this");
    assert_eq!(call(json!({})).reason, "denied: no policy allows this");
}

#[test]
fn list_gates_every_use_and_admin_is_separate() {
    let t = tool(None, "s", "run");
    let hide = json!({"id": "h", "name": "hide", "effect": "deny", "resources": [{"name": "run"}], "actions": ["list"]});
    let s = snapshot(vec![hide], Effect::Allow);
    assert!(!s.visible(&req(&user(), Action::List, &t)).allowed);
    assert!(!s.evaluate(&req(&user(), Action::List, &t)).allowed);
    assert!(
        !s.evaluate(&req(&user(), Action::Call, &t).with_arguments(json!({})))
            .allowed
    );
    assert!(
        s.evaluate(&req(&user(), Action::Admin, &t)).allowed,
        "management is not MCP use"
    );

    // Under a deny default, `call` alone is not enough: the tool must be listable too.
    let call_only = json!({"id": "c", "name": "call-only", "effect": "allow", "actions": ["call"]});
    let s = snapshot(vec![call_only], Effect::Deny);
    assert!(
        !s.evaluate(&req(&user(), Action::Call, &t).with_arguments(json!({})))
            .allowed
    );
    assert!(!s.visible(&req(&user(), Action::List, &t)).allowed);
    let list_and_call =
        json!({"id": "c", "name": "list-and-call", "effect": "allow", "actions": ["list", "call"]});
    let s = snapshot(vec![list_and_call], Effect::Deny);
    assert!(
        s.evaluate(&req(&user(), Action::Call, &t).with_arguments(json!({})))
            .allowed
    );
    assert!(s.visible(&req(&user(), Action::List, &t)).allowed);
    assert!(!s.evaluate(&req(&user(), Action::Admin, &t)).allowed);
}

#[test]
fn client_ip_conditions() {
    let s = snapshot(
        vec![deny_tool(
            "r",
            "run",
            json!({"conditions": {"client_ips": ["192.168.0.0/16", "2001:db8::/32"]}}),
        )],
        Effect::Allow,
    );
    let t = tool(None, "s", "run");
    let call = |ip: Option<&str>| {
        let mut r = req(&user(), Action::Call, &t).with_arguments(json!({}));
        r.client_ip = ip.map(|s| s.parse().unwrap());
        s.evaluate(&r).allowed
    };
    assert!(!call(Some("192.168.3.4")));
    assert!(!call(Some("::ffff:192.168.3.4")));
    assert!(!call(Some("2001:db8::42")));
    assert!(call(Some("10.0.0.1")));
    assert!(call(None), "an unknown client IP is inside no range");
    // The IP is known at listing time too, so a deny by range hides the tool from that range.
    let listed = |ip: &str| {
        s.visible(&req(&user(), Action::List, &t).with_client_ip(ip.parse().unwrap()))
            .allowed
    };
    assert!(!listed("192.168.3.4"));
    assert!(listed("10.0.0.1"));
}

#[test]
fn requests_round_trip_for_the_dry_run_endpoint() {
    let r = req(&user(), Action::Call, &tool(Some("prod"), "github", "get_issue"))
        .with_arguments(json!({"n": 1}))
        .with_client_ip(ip("10.0.0.1"));
    let text = serde_json::to_value(&r).unwrap();
    assert_eq!(
        text,
        json!({"subject": {"role": "user"}, "action": "call",
               "target": {"namespace": "prod", "server": "github", "item": {"kind": "tool", "name": "get_issue"}},
               "arguments": {"n": 1}, "client_ip": "10.0.0.1"})
    );
    assert_eq!(serde_json::from_value::<PolicyRequest>(text).unwrap(), r);
}
