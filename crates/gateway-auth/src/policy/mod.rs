//! Organization-level access policies: allow/deny rules over subject × resource × action, with
//! optional conditions, evaluated from an in-memory snapshot.
//!
//! Policies come from configuration (YAML) and from the `policies` table (managed by admins
//! through the API, stored as JSON); both are [`PolicyRule`]s. The caller merges them per
//! organization into a [`PolicySnapshot`], shares it as `Arc<PolicySnapshot>` and rebuilds it
//! when a rule changes. Evaluation is pure: no storage, no I/O, no clock.
//!
//! Policies only ever narrow what RBAC ([`crate::rbac`]) allows: they are consulted after the
//! principal has been authenticated and holds the permission the route needs (`mcp:use` for MCP
//! traffic). A policy `allow` never grants a permission the role lacks.
//!
//! # The model
//!
//! A rule *applies* to a request when all of these hold:
//!
//! - **subject** — one of its [`SubjectMatcher`]s matches the caller: `any`, a `role`, a `user`
//!   (also when the user calls with one of their API keys), an `api_key`, an `app` (a2a key) or
//!   an external identity-provider `claim` (name exact, value a glob; one matching value of a
//!   multi-valued claim is enough);
//! - **resource** — one of its [`ResourceMatcher`]s matches the target: glob patterns over the
//!   namespace slug, the server name and the item name (tool name, resource URI, prompt name),
//!   and an item `kind` (`tool`, `resource`, `prompt`, or `any`). Omitted fields match
//!   everything; a missing namespace, server or item is matched as the empty text (so `*`
//!   matches it and nothing else does). Globs know `*` (any run, also empty) and `?` (one
//!   character), are case-sensitive and anchored at both ends;
//! - **action** — the request's [`Action`] is listed:
//!   - `list`: see the item in `tools/list`, `resources/list`, `resources/templates/list`,
//!     `prompts/list`;
//!   - `call`: `tools/call`; `read`: `resources/read`; `get`: `prompts/get`;
//!   - `admin`: management API operations on the namespace or server;
//! - **conditions** — all present [`Conditions`] hold: the client IP is inside one of the
//!   `client_ips` ranges (CIDR, IPv4 or IPv6; an unknown client IP is inside none), and every
//!   `arguments` condition holds: a JSON pointer into the tool or prompt arguments with an
//!   operator `equals`, `not_equals` (true when absent), `in`, `matches` (glob on a string),
//!   `exists` or `absent`. Argument conditions only apply to `call` and `get`: for `read` and
//!   `admin` a rule with argument conditions never applies.
//!
//! # Combining
//!
//! For one action, **deny overrides allow**: if any applicable rule denies, the request is
//! denied; otherwise, if any applicable rule allows, it is allowed; otherwise the snapshot's
//! `default_effect` decides. The default is `allow` (RBAC already decides who may use MCP at
//! all; an organization without rules behaves as if it had no policy engine); an organization
//! that wants allow-listing sets `default_effect: deny`. A deny has no exceptions: to let one
//! group do what others may not, narrow the deny rule's subjects or use a `deny` default with
//! allow rules. Rule order never changes an outcome; it only picks which rule a decision names
//! (the first applicable deny, else the first applicable allow).
//!
//! # Listing and using never disagree
//!
//! One function decides both ([`PolicySnapshot::evaluate`]; [`PolicySnapshot::visible`] is its
//! `list` case). With `use` standing for the item's use action — `call` for tools, `read` for
//! resources, `get` for prompts:
//!
//! - **visible(item)** = `list` allowed **and** `use` allowed *for some arguments*;
//! - **use allowed(item, args)** = `list` allowed **and** `use` allowed *for these arguments*.
//!
//! The `list` pass is always evaluated without arguments, identically in both. "For some
//! arguments" means arguments are unknown: a **deny** rule with argument conditions does
//! **not** apply (some arguments escape it), an **allow** rule with argument conditions
//! **does** apply (some arguments may satisfy it); conditions on the client IP are evaluated as
//! usual, since the IP is known. Hence:
//!
//! - every allowed use is of a visible item, and a hidden item can never be used
//!   (`use` ⊆ `list`): denying `list` hides the item *and* blocks its use, and a deny on `call`
//!   without argument conditions also hides the tool;
//! - an item is hidden only when no use of it can be allowed — except that deny rules with
//!   argument conditions are not analysed against each other (`/x exists` in one and
//!   `/x absent` in another together deny every call, yet the tool stays listed);
//! - under `default_effect: deny`, grant both `list` and the use action, as in
//!   `actions: [list, call]`.
//!
//! For resources, `read` has no arguments, so visibility and `read` agree exactly.
//!
//! # Decisions
//!
//! A [`Decision`] says whether the request may proceed, the deciding effect, the deciding rule
//! (id and name; `None` when the default decided) and a reason the client may read —
//! `denied by policy 'no-env-dump'`, `denied: no policy allows this` — which never reveals
//! other rules, their conditions or descriptions. Callers audit denials with the rule id. The
//! dry-run endpoint ("may S do A on R, and which rule decided?") is [`PolicySnapshot::evaluate`]
//! on a [`PolicyRequest`] built from the question, with `arguments: None` for "some arguments".
//!
//! # Example rule set (YAML)
//!
//! ```yaml
//! default_effect: deny
//! rules:
//!   - id: staff-from-office
//!     name: staff-from-office
//!     description: Staff may use everything, but only from the office networks.
//!     effect: allow
//!     subjects:
//!       - role: admin
//!       - role: user
//!       - claim: { name: groups, value: "eng-*" }
//!     actions: [list, call, read, get]          # resources omitted: every item
//!     conditions:
//!       client_ips: ["10.0.0.0/8", "2001:db8::/32"]
//!
//!   - id: ci-bot
//!     name: ci-bot
//!     effect: allow
//!     subjects:
//!       - app: 0190f5a4-7c3e-7d2a-9b1e-3f4a5b6c7d8e
//!     resources:
//!       - { server: github, kind: tool, name: "get_*" }
//!       - { server: github, kind: tool, name: create_pull_request }
//!     actions: [list, call]
//!
//!   - id: shared-files
//!     name: shared-files
//!     effect: allow                               # subjects omitted: everyone
//!     resources:
//!       - { server: fs, kind: tool, name: read_file }
//!     actions: [list, call]
//!     conditions:
//!       arguments:
//!         - { path: /path, op: matches, value: "/srv/shared/*" }
//!
//!   - id: no-env-dump
//!     name: no-env-dump
//!     effect: deny
//!     resources:
//!       - { server: "shell-*", kind: tool }
//!     actions: [call]
//!     conditions:
//!       arguments:
//!         - { path: /command, op: in, value: [env, printenv, set] }
//!
//!   - id: hide-deletes-in-prod
//!     name: hide-deletes-in-prod
//!     effect: deny
//!     resources:
//!       - { namespace: prod, kind: tool, name: "delete_*" }
//!     actions: [list]
//!     enabled: true                               # the default
//! ```
//!
//! The same rules are stored as JSON by the API, one [`PolicyRule`] per row. Unknown fields are
//! rejected, and [`PolicyRule::validate`] reports every problem with its field path
//! (`resources[0].server: empty pattern…`, `conditions.client_ips[1]: host bits are set…`).
//!
//! ```
//! use gateway_auth::policy::{Action, ItemKind, PolicyRequest, PolicySet, PolicySnapshot, SubjectFacts, Target};
//! use gateway_types::model::Role;
//! use serde_json::json;
//!
//! let set: PolicySet = serde_json::from_value(json!({
//!     "rules": [{
//!         "id": "no-env-dump", "name": "no-env-dump", "effect": "deny",
//!         "resources": [{"server": "shell-*", "kind": "tool"}], "actions": ["call"],
//!         "conditions": {"arguments": [{"path": "/command", "op": "equals", "value": "env"}]}
//!     }]
//! }))?;
//! let snapshot = PolicySnapshot::from_set(set)?;
//!
//! let target = Target::item(None, "shell-1", ItemKind::Tool, "run");
//! let listing = PolicyRequest::new(SubjectFacts::role(Role::User), Action::List, target.clone());
//! assert!(snapshot.evaluate(&listing).allowed); // `run` is still listed: other commands are fine
//!
//! let call = PolicyRequest::new(SubjectFacts::role(Role::User), Action::Call, target)
//!     .with_arguments(json!({"command": "env"}));
//! let decision = snapshot.evaluate(&call);
//! assert!(!decision.allowed);
//! assert_eq!(decision.reason, "denied by policy 'no-env-dump'");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod glob;
mod registry;
mod request;
mod rule;
mod snapshot;

#[cfg(test)]
mod agreement;
#[cfg(test)]
mod tests;

pub use gateway_types::net::IpNet;
pub use glob::{Glob, MAX_PATTERN_LEN};
pub use registry::{PolicyRegistry, stored_rule};
pub use request::{Claims, Item, PolicyRequest, SubjectFacts, Target};
pub use rule::{
    Action, ArgumentCondition, ArgumentOp, Conditions, Effect, InvalidPolicy, ItemKind, KindMatcher,
    MAX_ID_LEN, PolicyRule, Problem, ResourceMatcher, SubjectMatcher,
};
pub use snapshot::{Decision, PolicySet, PolicySnapshot, RuleRef};
