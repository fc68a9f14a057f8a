//! Generated tests of the list/use agreement: thousands of random rule sets over random items,
//! subjects, client IPs and argument samples, from a fixed-seed xorshift generator.
//!
//! For every item the checker asserts: if any sampled use (`call`, `read`, `get`) is allowed
//! then the item is visible, and if the item is hidden then no sampled use is allowed; a use
//! with unknown arguments decides exactly as listing; `list` ignores arguments; `read` agrees
//! with listing exactly. Each concrete decision is also compared with a small reference model
//! written independently from the engine. The same checker is run against deliberately wrong
//! visibility functions to show that it catches them.

use std::net::IpAddr;

use gateway_types::ids::{ApiKeyId, UserId};
use gateway_types::model::Role;
use serde_json::{Value, json};

use super::*;

/// xorshift64* — deterministic, good enough to spread cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const NAMESPACES: &[Option<&str>] = &[None, Some("prod"), Some("dev")];
const SERVERS: &[&str] = &["github", "gitlab", "shell-1", "fs"];
const TOOLS: &[&str] = &["get_issue", "delete_repo", "run", "read_file", "write_file"];
const RESOURCES: &[&str] = &["file:///etc/passwd", "file:///srv/a.txt", "db://users"];
const PROMPTS: &[&str] = &["explain", "summarize"];

const NAMESPACE_GLOBS: &[&str] = &["prod", "dev", "*", "p*", "d?v"];
const SERVER_GLOBS: &[&str] = &["github", "git*", "shell-?", "*", "fs"];
const NAME_GLOBS: &[&str] = &[
    "get_*",
    "delete_repo",
    "*",
    "r??d_file",
    "*_file",
    "file:///etc/*",
    "file://*",
    "explain",
    "*e*",
    "run",
];

const ARG_PATHS: &[&str] = &["/path", "/mode", "/n", "/opts/force", "/missing"];
const ARG_GLOBS: &[&str] = &["/etc/*", "r?", "*", "/srv/*"];
const IP_RANGES: &[&str] = &["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32", "0.0.0.0/0"];
const CLIENT_IPS: &[Option<&str>] = &[
    None,
    Some("10.1.2.3"),
    Some("192.168.5.5"),
    Some("2001:db8::9"),
    Some("8.8.8.8"),
];

fn arg_values() -> Vec<Value> {
    vec![
        json!("/etc/passwd"),
        json!("/srv/a"),
        json!("ro"),
        json!("rw"),
        json!(0),
        json!(1),
        json!(true),
        json!(null),
    ]
}

/// The fixed cast of callers.
struct Cast {
    u1: UserId,
    u2: UserId,
    k1: ApiKeyId,
    a1: ApiKeyId,
    subjects: Vec<SubjectFacts>,
}

fn cast() -> Cast {
    let (u1, u2, k1, a1) = (UserId::new(), UserId::new(), ApiKeyId::new(), ApiKeyId::new());
    let groups =
        |g: &[&str]| Claims::from([("groups".to_owned(), g.iter().map(|s| (*s).to_owned()).collect())]);
    let subjects = vec![
        SubjectFacts {
            user_id: Some(u1),
            ..SubjectFacts::role(Role::User)
        },
        SubjectFacts {
            user_id: Some(u1),
            api_key_id: Some(k1),
            ..SubjectFacts::role(Role::User)
        },
        SubjectFacts {
            app_id: Some(a1),
            ..SubjectFacts::role(Role::ApiUser)
        },
        SubjectFacts {
            claims: groups(&["eng"]),
            ..SubjectFacts::role(Role::Viewer)
        },
        SubjectFacts {
            user_id: Some(u2),
            claims: groups(&["ops", "eng-x"]),
            ..SubjectFacts::role(Role::Admin)
        },
    ];
    Cast {
        u1,
        u2,
        k1,
        a1,
        subjects,
    }
}

fn random_subject(rng: &mut Rng, cast: &Cast) -> Value {
    match rng.below(7) {
        0 => json!("any"),
        1 => json!({"role": rng.pick(Role::ALL)}),
        2 => json!({"user": if rng.chance(50) { cast.u1 } else { cast.u2 }}),
        3 => json!({"api_key": cast.k1}),
        4 => json!({"app": cast.a1}),
        _ => json!({"claim": {"name": "groups", "value": rng.pick(&["eng*", "ops", "*", "sales"])}}),
    }
}

fn random_resource(rng: &mut Rng) -> Value {
    let mut r = serde_json::Map::new();
    if rng.chance(30) {
        r.insert("namespace".into(), json!(rng.pick(NAMESPACE_GLOBS)));
    }
    if rng.chance(50) {
        r.insert("server".into(), json!(rng.pick(SERVER_GLOBS)));
    }
    if rng.chance(50) {
        r.insert(
            "kind".into(),
            json!(rng.pick(&["any", "tool", "resource", "prompt"])),
        );
    }
    if rng.chance(60) {
        r.insert("name".into(), json!(rng.pick(NAME_GLOBS)));
    }
    Value::Object(r)
}

fn random_argument_condition(rng: &mut Rng) -> Value {
    let path = *rng.pick(ARG_PATHS);
    let values = arg_values();
    match rng.below(6) {
        0 => json!({"path": path, "op": "equals", "value": rng.pick(&values)}),
        1 => json!({"path": path, "op": "not_equals", "value": rng.pick(&values)}),
        2 => json!({"path": path, "op": "in", "value": [rng.pick(&values), rng.pick(&values)]}),
        3 => json!({"path": path, "op": "matches", "value": rng.pick(ARG_GLOBS)}),
        4 => json!({"path": path, "op": "exists"}),
        _ => json!({"path": path, "op": "absent"}),
    }
}

/// A random rule that passes validation (invalid drafts are redrawn).
fn random_rule(rng: &mut Rng, cast: &Cast, id: usize) -> PolicyRule {
    loop {
        let effect = if rng.chance(50) { "allow" } else { "deny" };
        let subjects: Vec<Value> = (0..1 + rng.below(2)).map(|_| random_subject(rng, cast)).collect();
        let resources: Vec<Value> = (0..1 + rng.below(2)).map(|_| random_resource(rng)).collect();
        let mut actions: Vec<&str> = ["list", "call", "read", "get", "admin"]
            .into_iter()
            .filter(|a| rng.chance(if *a == "admin" { 10 } else { 45 }))
            .collect();
        if actions.is_empty() {
            actions.push(*rng.pick(&["list", "call", "read", "get"]));
        }
        let mut conditions = serde_json::Map::new();
        if rng.chance(20) {
            let ips: Vec<&str> = (0..1 + rng.below(2)).map(|_| *rng.pick(IP_RANGES)).collect();
            conditions.insert("client_ips".into(), json!(ips));
        }
        if actions.iter().any(|a| *a == "call" || *a == "get") && rng.chance(55) {
            let args: Vec<Value> = (0..1 + rng.below(2))
                .map(|_| random_argument_condition(rng))
                .collect();
            conditions.insert("arguments".into(), json!(args));
        }
        let draft = json!({
            "id": format!("r{id}"), "name": format!("rule-{id}"), "effect": effect,
            "subjects": subjects, "resources": resources, "actions": actions, "conditions": conditions,
            "enabled": rng.chance(92),
        });
        let rule: PolicyRule = serde_json::from_value(draft).unwrap();
        if rule.validate().is_ok() {
            return rule;
        }
    }
}

fn random_item(rng: &mut Rng) -> Target {
    let namespace = *rng.pick(NAMESPACES);
    let server = *rng.pick(SERVERS);
    let (kind, name) = match rng.below(5) {
        0 => (ItemKind::Resource, *rng.pick(RESOURCES)),
        1 => (ItemKind::Prompt, *rng.pick(PROMPTS)),
        _ => (ItemKind::Tool, *rng.pick(TOOLS)),
    };
    Target::item(namespace, server, kind, name)
}

fn random_arguments(rng: &mut Rng) -> Value {
    let values = arg_values();
    let mut args = serde_json::Map::new();
    for key in ["path", "mode", "n"] {
        if rng.chance(55) {
            args.insert(key.into(), rng.pick(&values).clone());
        }
    }
    if rng.chance(40) {
        args.insert("opts".into(), json!({"force": rng.chance(50)}));
    }
    Value::Object(args)
}

/// One generated case: a snapshot and the questions to ask it.
struct Case {
    rules: Vec<PolicyRule>,
    /// The enabled rules as JSON, for the reference model.
    drafts: Vec<Value>,
    default_effect: Effect,
    items: Vec<Target>,
    samples: Vec<Value>,
    client_ips: Vec<Option<IpAddr>>,
}

fn random_case(rng: &mut Rng, cast: &Cast) -> Case {
    let rules: Vec<PolicyRule> = (0..1 + rng.below(7)).map(|i| random_rule(rng, cast, i)).collect();
    let drafts = rules
        .iter()
        .filter(|r| r.enabled)
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    let default_effect = if rng.chance(50) {
        Effect::Allow
    } else {
        Effect::Deny
    };
    let items = (0..6).map(|_| random_item(rng)).collect();
    let mut samples: Vec<Value> = (0..10).map(|_| random_arguments(rng)).collect();
    samples.push(json!({}));
    let client_ips = (0..2)
        .map(|_| rng.pick(CLIENT_IPS).map(|s| s.parse().unwrap()))
        .collect();
    Case {
        rules,
        drafts,
        default_effect,
        items,
        samples,
        client_ips,
    }
}

/// What the checker saw, to prove the generator covers every branch.
#[derive(Debug, Default)]
struct Coverage {
    checks: usize,
    hidden: usize,
    visible_and_used: usize,
    visible_but_no_sample_allowed: usize,
    denied_by_rule: usize,
    denied_by_default: usize,
    allowed_by_rule: usize,
    mixed_samples: usize,
}

/// The functions under test: the real engine, or a deliberately broken variant.
struct Engine<'a> {
    visible: &'a dyn Fn(&Case, &PolicySnapshot, &PolicyRequest) -> bool,
    decide_use: &'a dyn Fn(&Case, &PolicySnapshot, &PolicyRequest) -> Decision,
}

const REAL: Engine<'static> = Engine {
    visible: &|_, s, listing| s.visible(listing).allowed,
    decide_use: &|_, s, call| s.evaluate(call),
};

/// Runs `cases` generated cases from `seed` and checks the agreement of `engine`; returns the
/// first counterexample.
fn check(seed: u64, cases: usize, engine: &Engine<'_>) -> Result<Coverage, String> {
    let mut rng = Rng(seed);
    let cast = cast();
    let mut cov = Coverage::default();
    for _ in 0..cases {
        let case = random_case(&mut rng, &cast);
        let snapshot = PolicySnapshot::new(case.rules.clone(), case.default_effect).unwrap();
        for target in &case.items {
            let kind = target.item.as_ref().map_or(ItemKind::Tool, |i| i.kind);
            let action = kind.use_action();
            for subject in &cast.subjects {
                for ip in &case.client_ips {
                    let mut listing = PolicyRequest::new(subject.clone(), Action::List, target.clone());
                    listing.client_ip = *ip;
                    let shown = (engine.visible)(&case, &snapshot, &listing);
                    let real = snapshot.visible(&listing);

                    // `list` ignores arguments; unknown arguments decide exactly as listing.
                    let with_args = PolicyRequest {
                        arguments: Some(case.samples[0].clone()),
                        ..listing.clone()
                    };
                    assert_eq!(snapshot.evaluate(&with_args), real);
                    let dry_run = PolicyRequest {
                        action,
                        ..listing.clone()
                    };
                    assert_eq!(snapshot.evaluate(&dry_run), real, "dry run differs from listing");

                    let mut allowed_samples = 0;
                    for args in &case.samples {
                        let call = PolicyRequest {
                            action,
                            arguments: Some(args.clone()),
                            ..listing.clone()
                        };
                        let decision = (engine.decide_use)(&case, &snapshot, &call);
                        cov.checks += 1;
                        if decision.allowed {
                            allowed_samples += 1;
                        }
                        if decision.allowed && !shown {
                            return Err(format!(
                                "allowed call of a hidden item: {call:?}\nvisible: {real:?}\ndefault {:?}, rules {:#?}",
                                case.default_effect, case.rules
                            ));
                        }
                        let expected = reference(&case, &call);
                        if decision.allowed != expected {
                            return Err(format!(
                                "engine and reference disagree on {call:?}: {decision:?}, rules {:#?}",
                                case.rules
                            ));
                        }
                        // `read` has no arguments: it agrees with listing exactly, rule and reason too.
                        if kind == ItemKind::Resource && snapshot.evaluate(&call) != real {
                            return Err(format!("read and listing differ: {call:?} {real:?}"));
                        }
                        match (&decision.rule, decision.allowed) {
                            (Some(_), false) => cov.denied_by_rule += 1,
                            (None, false) => cov.denied_by_default += 1,
                            (Some(_), true) => cov.allowed_by_rule += 1,
                            (None, true) => {}
                        }
                    }
                    match (real.allowed, allowed_samples) {
                        (false, _) => cov.hidden += 1,
                        (true, 0) => cov.visible_but_no_sample_allowed += 1,
                        (true, _) => cov.visible_and_used += 1,
                    }
                    if allowed_samples > 0 && allowed_samples < case.samples.len() {
                        cov.mixed_samples += 1;
                    }
                }
            }
        }
    }
    Ok(cov)
}

/// An independent model of a concrete decision, straight from the module documentation:
/// `list` (no arguments known) and then the use action (with these arguments), each "any
/// applicable deny → deny; any applicable allow → allow; else default".
fn reference(case: &Case, request: &PolicyRequest) -> bool {
    let pass = |action: &str, args: Option<&Value>| -> bool {
        let mut allowed = false;
        for draft in &case.drafts {
            if !draft["actions"].as_array().unwrap().iter().any(|a| a == action) {
                continue;
            }
            let subject_ok = draft["subjects"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| ref_subject(s, &request.subject));
            let target_ok = draft["resources"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| ref_resource(r, &request.target));
            let ips = draft["conditions"]["client_ips"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let ip_ok = ips.is_empty() || ips.iter().any(|r| ref_ip(r.as_str().unwrap(), request.client_ip));
            if !(subject_ok && target_ok && ip_ok) {
                continue;
            }
            let conds = draft["conditions"]["arguments"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let args_ok = if conds.is_empty() {
                true
            } else {
                match (action, args) {
                    ("call" | "get", Some(args)) => conds.iter().all(|c| ref_condition(c, args)),
                    ("list", _) => draft["effect"] == "allow",
                    _ => false,
                }
            };
            if !args_ok {
                continue;
            }
            if draft["effect"] == "deny" {
                return false;
            }
            allowed = true;
        }
        allowed || case.default_effect == Effect::Allow
    };
    let use_action = request.action.as_str();
    pass("list", None) && pass(use_action, request.arguments.as_ref())
}

fn ref_subject(s: &Value, facts: &SubjectFacts) -> bool {
    if s == "any" {
        return true;
    }
    let Some((kind, v)) = s.as_object().and_then(|o| o.iter().next()) else {
        return false;
    };
    match kind.as_str() {
        "role" => v == facts.role.as_str(),
        "user" => facts.user_id.is_some_and(|u| *v == json!(u)),
        "api_key" => facts.api_key_id.is_some_and(|k| *v == json!(k)),
        "app" => facts.app_id.is_some_and(|k| *v == json!(k)),
        "claim" => facts
            .claims
            .get(v["name"].as_str().unwrap())
            .is_some_and(|values| values.iter().any(|x| ref_glob(v["value"].as_str().unwrap(), x))),
        other => panic!("unexpected subject kind {other}"),
    }
}

fn ref_resource(r: &Value, target: &Target) -> bool {
    let field = |key: &str, text: Option<&str>| {
        r.get(key)
            .and_then(Value::as_str)
            .is_none_or(|g| ref_glob(g, text.unwrap_or("")))
    };
    let item = target.item.as_ref().unwrap();
    let kind = r.get("kind").and_then(Value::as_str).unwrap_or("any");
    (kind == "any" || kind == item.kind.as_str())
        && field("namespace", target.namespace.as_deref())
        && field("server", target.server.as_deref())
        && field("name", Some(&item.name))
}

/// Membership of the generator's sample addresses in the generator's ranges, by hand.
fn ref_ip(range: &str, ip: Option<IpAddr>) -> bool {
    let Some(ip) = ip else { return false };
    let ip = ip.to_string();
    match range {
        "10.0.0.0/8" => ip.starts_with("10."),
        "192.168.0.0/16" => ip.starts_with("192.168."),
        "2001:db8::/32" => ip.starts_with("2001:db8:"),
        "0.0.0.0/0" => !ip.contains(':'),
        other => panic!("unexpected range {other}"),
    }
}

fn ref_condition(c: &Value, args: &Value) -> bool {
    let found = args.pointer(c["path"].as_str().unwrap());
    let value = &c["value"];
    // The generator's values are strings, small integers, booleans and null: `==` is enough.
    match c["op"].as_str().unwrap() {
        "equals" => found == Some(value),
        "not_equals" => found != Some(value),
        "in" => found.is_some_and(|f| value.as_array().unwrap().contains(f)),
        "matches" => found
            .and_then(Value::as_str)
            .is_some_and(|s| ref_glob(value.as_str().unwrap(), s)),
        "exists" => found.is_some(),
        "absent" => found.is_none(),
        other => panic!("unexpected op {other}"),
    }
}

fn ref_glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(
        &pattern.chars().collect::<Vec<_>>(),
        &text.chars().collect::<Vec<_>>(),
    )
}

const SEEDS: &[u64] = &[0x5EED_0001, 0xC0FF_EE42, 0x1234_5678_9ABC_DEF1, 7];

#[test]
fn listing_and_use_agree_over_generated_rule_sets() {
    let mut total = Coverage::default();
    for &seed in SEEDS {
        let cov = check(seed, 250, &REAL).unwrap_or_else(|e| panic!("seed {seed:#x}: {e}"));
        total.checks += cov.checks;
        total.hidden += cov.hidden;
        total.visible_and_used += cov.visible_and_used;
        total.visible_but_no_sample_allowed += cov.visible_but_no_sample_allowed;
        total.denied_by_rule += cov.denied_by_rule;
        total.denied_by_default += cov.denied_by_default;
        total.allowed_by_rule += cov.allowed_by_rule;
        total.mixed_samples += cov.mixed_samples;
    }
    // The generator must exercise every branch, or the agreement above proves little.
    assert!(total.checks > 500_000, "{total:?}");
    for (what, n) in [
        ("hidden", total.hidden),
        ("visible and used", total.visible_and_used),
        ("visible, no sample allowed", total.visible_but_no_sample_allowed),
        ("denied by rule", total.denied_by_rule),
        ("denied by default", total.denied_by_default),
        ("allowed by rule", total.allowed_by_rule),
        ("some samples allowed, others not", total.mixed_samples),
    ] {
        assert!(n > 500, "too few cases {what}: {total:?}");
    }
}

/// The checker catches a visibility function that decides listing from a call with empty
/// arguments.
#[test]
fn the_checker_catches_listing_by_an_empty_call() {
    let visible = |_: &Case, s: &PolicySnapshot, listing: &PolicyRequest| {
        let kind = listing.target.item.as_ref().map_or(ItemKind::Tool, |i| i.kind);
        let call = PolicyRequest {
            action: kind.use_action(),
            arguments: Some(json!({})),
            ..listing.clone()
        };
        s.evaluate(&call).allowed
    };
    let err = check(
        SEEDS[0],
        400,
        &Engine {
            visible: &visible,
            ..REAL
        },
    )
    .unwrap_err();
    assert!(err.starts_with("allowed call of a hidden item"), "{err}");
}

/// Rebuilds the case's snapshot with `edit` applied to every rule (rules left without actions
/// are dropped).
fn edited(case: &Case, edit: impl Fn(&mut PolicyRule)) -> PolicySnapshot {
    let rules = case
        .rules
        .iter()
        .cloned()
        .map(|mut r| {
            edit(&mut r);
            r
        })
        .filter(|r| !r.actions.is_empty())
        .collect();
    PolicySnapshot::new(rules, case.default_effect).unwrap()
}

/// The checker catches a visibility function that lets deny rules with argument conditions
/// hide items (as if the conditions held).
#[test]
fn the_checker_catches_conditional_denies_hiding_items() {
    let visible = |case: &Case, _: &PolicySnapshot, listing: &PolicyRequest| {
        let s = edited(case, |r| {
            if r.effect == Effect::Deny {
                r.conditions.arguments.clear();
            }
        });
        s.visible(listing).allowed
    };
    let err = check(
        SEEDS[0],
        400,
        &Engine {
            visible: &visible,
            ..REAL
        },
    )
    .unwrap_err();
    assert!(err.starts_with("allowed call of a hidden item"), "{err}");
}

/// The checker catches a visibility function that ignores allow rules with argument
/// conditions.
#[test]
fn the_checker_catches_conditional_allows_being_ignored() {
    let visible = |case: &Case, _: &PolicySnapshot, listing: &PolicyRequest| {
        let s = edited(case, |r| {
            if r.effect == Effect::Allow && !r.conditions.arguments.is_empty() {
                r.actions.clear();
            }
        });
        s.visible(listing).allowed
    };
    let err = check(
        SEEDS[0],
        400,
        &Engine {
            visible: &visible,
            ..REAL
        },
    )
    .unwrap_err();
    assert!(err.starts_with("allowed call of a hidden item"), "{err}");
}

/// The checker catches a use decision that skips the `list` gate (hidden items callable).
#[test]
fn the_checker_catches_calls_that_skip_the_list_gate() {
    let decide_use = |case: &Case, _: &PolicySnapshot, call: &PolicyRequest| {
        edited(case, |r| r.actions.retain(|a| *a != Action::List)).evaluate(call)
    };
    let err = check(
        SEEDS[0],
        400,
        &Engine {
            decide_use: &decide_use,
            ..REAL
        },
    )
    .unwrap_err();
    assert!(err.starts_with("allowed call of a hidden item"), "{err}");
}
