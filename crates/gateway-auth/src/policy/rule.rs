//! Policy rules as written by people (YAML configuration) and stored by the API (JSON), their
//! validation, and their compiled form.

use std::collections::BTreeMap;
use std::fmt;

use gateway_types::error::{ErrorCode, GatewayError};
use gateway_types::ids::{ApiKeyId, UserId};
use gateway_types::model::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::glob::Glob;
use gateway_types::net::IpNet;

/// Longest accepted rule id and name, in characters.
pub const MAX_ID_LEN: usize = 128;

/// What a rule does when it applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Permits the request (unless a deny rule also applies).
    #[default]
    Allow,
    /// Refuses the request; overrides every allow.
    Deny,
}

impl Effect {
    /// `allow` or `deny`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the subject wants to do with a resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// See the item in `tools/list`, `resources/list`, `resources/templates/list` or
    /// `prompts/list`. Using an item always requires `list` as well: a hidden item is never
    /// usable.
    List,
    /// `tools/call`.
    Call,
    /// `resources/read`.
    Read,
    /// `prompts/get`.
    Get,
    /// Management API operations on the namespace or server (configuration, not use).
    Admin,
}

impl Action {
    /// Every action.
    pub const ALL: &'static [Self] = &[Self::List, Self::Call, Self::Read, Self::Get, Self::Admin];

    /// The stable text form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::List => "list",
            Self::Call => "call",
            Self::Read => "read",
            Self::Get => "get",
            Self::Admin => "admin",
        }
    }

    /// Whether requests with this action carry arguments (`call`, `get`).
    #[must_use]
    pub const fn takes_arguments(self) -> bool {
        matches!(self, Self::Call | Self::Get)
    }

    const fn bit(self) -> u8 {
        match self {
            Self::List => 1,
            Self::Call => 2,
            Self::Read => 4,
            Self::Get => 8,
            Self::Admin => 16,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of an MCP item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A tool (named by its tool name).
    Tool,
    /// A resource or resource template (named by its URI or URI template).
    Resource,
    /// A prompt (named by its prompt name).
    Prompt,
}

impl ItemKind {
    /// The action that uses an item of this kind: `call`, `read` or `get`.
    #[must_use]
    pub const fn use_action(self) -> Action {
        match self {
            Self::Tool => Action::Call,
            Self::Resource => Action::Read,
            Self::Prompt => Action::Get,
        }
    }

    /// The stable text form.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Resource => "resource",
            Self::Prompt => "prompt",
        }
    }
}

/// Which item kinds a resource matcher covers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindMatcher {
    /// Every kind, and requests about no item at all (`admin` on a server).
    #[default]
    Any,
    /// Tools only.
    Tool,
    /// Resources only.
    Resource,
    /// Prompts only.
    Prompt,
}

impl KindMatcher {
    fn admits(self, kind: ItemKind) -> bool {
        matches!(
            (self, kind),
            (Self::Any, _)
                | (Self::Tool, ItemKind::Tool)
                | (Self::Resource, ItemKind::Resource)
                | (Self::Prompt, ItemKind::Prompt)
        )
    }

    const fn is_any(self) -> bool {
        matches!(self, Self::Any)
    }
}

/// Who a rule is about. A rule's subjects are alternatives: one matching is enough.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SubjectMatcher {
    /// Everyone (`- any`).
    Any,
    /// Everyone with this role (`- role: viewer`).
    Role(Role),
    /// This user, whether calling with a login token or with one of their API keys
    /// (`- user: <uuid>`).
    User(UserId),
    /// Calls made with this (user) API key (`- api_key: <uuid>`).
    ApiKey(ApiKeyId),
    /// Calls made by this app-to-app key, directly or through an A2A token (`- app: <uuid>`).
    App(ApiKeyId),
    /// Callers whose external identity-provider token has claim `name` with a value matching the
    /// glob `value` (`- claim: {name: groups, value: "eng-*"}`). For multi-valued claims one
    /// matching value is enough.
    Claim {
        /// Claim name, exact.
        name: String,
        /// Glob over the claim's values.
        value: String,
    },
}

/// Which items a rule is about. Every field narrows the match; an omitted field matches
/// everything. A rule's resource matchers are alternatives: one matching is enough.
///
/// A request without a namespace (a server outside every namespace), server or item is matched
/// as if that field were the empty text: `*` matches it, any other pattern does not.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceMatcher {
    /// Glob over the namespace slug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Glob over the server name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// Item kind.
    pub kind: KindMatcher,
    /// Glob over the item name: tool name, resource URI (or URI template), prompt name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ResourceMatcher {
    /// Matches every item of every server.
    #[must_use]
    pub fn any() -> Self {
        Self::default()
    }
}

/// Extra conditions; all present conditions must hold for the rule to apply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Conditions {
    /// The client IP must be inside one of these ranges (CIDR, or single addresses). Empty: any
    /// client. A request whose client IP is unknown is inside no range.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub client_ips: Vec<String>,
    /// Conditions on the arguments of `call` (tool arguments) and `get` (prompt arguments).
    /// All must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<ArgumentCondition>,
}

impl Conditions {
    /// No conditions.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.client_ips.is_empty() && self.arguments.is_empty()
    }
}

/// A test on one value inside the arguments, addressed by a JSON pointer (RFC 6901).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentCondition {
    /// JSON pointer into the arguments object, e.g. `/path` or `/options/recursive`
    /// (`~1` stands for `/` and `~0` for `~` inside a key).
    pub path: String,
    /// The test.
    pub op: ArgumentOp,
    /// The operand: required by `equals`, `not_equals` (any JSON value), `in` (an array),
    /// `matches` (a glob string); absent for `exists` and `absent`.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Value>,
}

/// A present field is `Some`, even when it is `null` (`value: null` is a real operand).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The test of an [`ArgumentCondition`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArgumentOp {
    /// The value exists and equals `value` (numbers compare by value: `1` equals `1.0`).
    Equals,
    /// Not `equals`: true also when the value is absent, so an omitted argument cannot slip
    /// past a deny rule written with `not_equals`.
    NotEquals,
    /// The value exists and equals one element of the array `value`.
    In,
    /// The value exists, is a string and matches the glob `value`.
    Matches,
    /// The pointer resolves (to anything, `null` included).
    Exists,
    /// The pointer does not resolve.
    Absent,
}

impl ArgumentOp {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "equals",
            Self::NotEquals => "not_equals",
            Self::In => "in",
            Self::Matches => "matches",
            Self::Exists => "exists",
            Self::Absent => "absent",
        }
    }
}

fn default_subjects() -> Vec<SubjectMatcher> {
    vec![SubjectMatcher::Any]
}

fn default_resources() -> Vec<ResourceMatcher> {
    vec![ResourceMatcher::any()]
}

const fn default_enabled() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One organization-level policy rule.
///
/// The rule applies to a request when the rule is enabled, one of its subjects matches the
/// caller, one of its resources matches the target, the request's action is one of its
/// actions, and all of its conditions hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRule {
    /// Stable id, unique within the organization (a UUID for rules created through the API, a
    /// chosen slug for rules from configuration).
    pub id: String,
    /// Name shown to clients in decisions (`denied by policy '<name>'`): keep it free of
    /// anything a caller must not learn.
    pub name: String,
    /// Free text for administrators; never shown to clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Allow or deny.
    pub effect: Effect,
    /// Who (omitted: everyone).
    #[serde(default = "default_subjects")]
    pub subjects: Vec<SubjectMatcher>,
    /// What (omitted: every item of every server).
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceMatcher>,
    /// Which actions; must not be empty.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Extra conditions (omitted: none).
    #[serde(default, skip_serializing_if = "Conditions::is_empty")]
    pub conditions: Conditions,
    /// Disabled rules are kept but never applied (omitted: enabled).
    #[serde(default = "default_enabled", skip_serializing_if = "is_true")]
    pub enabled: bool,
}

/// One problem found by validation, with the path of the offending field
/// (`resources[0].server`, `conditions.arguments[1].path`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Field path inside the rule (or rule set).
    pub path: String,
    /// What is wrong, for the administrator who wrote the rule.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A rule or rule set failed validation; `problems` lists every problem found, not just the
/// first. The text is the administrator's own input described back, so it may be shown to them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy: {}", join_problems(.problems))]
pub struct InvalidPolicy {
    /// Every problem, in field order.
    pub problems: Vec<Problem>,
}

fn join_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl From<InvalidPolicy> for GatewayError {
    fn from(err: InvalidPolicy) -> Self {
        Self::new(ErrorCode::Validation, err.to_string())
    }
}

/// Collects problems under a path prefix.
struct Problems {
    prefix: String,
    list: Vec<Problem>,
}

impl Problems {
    fn push(&mut self, path: impl fmt::Display, message: impl Into<String>) {
        let path = if self.prefix.is_empty() {
            path.to_string()
        } else {
            format!("{}.{path}", self.prefix)
        };
        self.list.push(Problem {
            path,
            message: message.into(),
        });
    }

    fn glob(&mut self, path: impl fmt::Display, pattern: &str) -> Option<Glob> {
        match Glob::new(pattern) {
            Ok(g) => Some(g),
            Err(message) => {
                self.push(path, message);
                None
            }
        }
    }
}

impl PolicyRule {
    /// Checks the rule and reports every problem with its field path.
    ///
    /// # Errors
    /// [`InvalidPolicy`] listing the problems.
    pub fn validate(&self) -> Result<(), InvalidPolicy> {
        self.compile().map(drop)
    }

    /// Validates and compiles (globs, ranges and pointers parsed once, here, not per request).
    pub(super) fn compile(&self) -> Result<CompiledRule, InvalidPolicy> {
        self.compile_at(String::new())
    }

    pub(super) fn compile_at(&self, prefix: String) -> Result<CompiledRule, InvalidPolicy> {
        let mut p = Problems {
            prefix,
            list: Vec::new(),
        };
        check_label(&mut p, "id", &self.id);
        check_label(&mut p, "name", &self.name);

        if self.subjects.is_empty() {
            p.push("subjects", "must not be empty; use [any] for everyone");
        }
        let subjects: Vec<_> = self
            .subjects
            .iter()
            .enumerate()
            .filter_map(|(i, s)| compile_subject(&mut p, i, s))
            .collect();

        if self.resources.is_empty() {
            p.push("resources", "must not be empty; use [{}] for every item");
        }
        let resources: Vec<_> = self
            .resources
            .iter()
            .enumerate()
            .filter_map(|(i, r)| compile_resource(&mut p, i, r))
            .collect();

        if self.actions.is_empty() {
            p.push("actions", "must not be empty");
        }
        let mut actions = 0u8;
        for (i, action) in self.actions.iter().enumerate() {
            if actions & action.bit() != 0 {
                p.push(
                    format_args!("actions[{i}]"),
                    format!("duplicate action `{action}`"),
                );
            }
            actions |= action.bit();
            let needed = match action {
                Action::Call => Some(ItemKind::Tool),
                Action::Read => Some(ItemKind::Resource),
                Action::Get => Some(ItemKind::Prompt),
                Action::List | Action::Admin => None,
            };
            if let Some(kind) = needed
                && !self.resources.is_empty()
                && !self.resources.iter().any(|r| r.kind.admits(kind))
            {
                p.push(
                    format_args!("actions[{i}]"),
                    format!(
                        "`{action}` never applies: no resource matcher admits kind `{}`",
                        kind.as_str()
                    ),
                );
            }
        }

        let client_ips: Vec<_> = self
            .conditions
            .client_ips
            .iter()
            .enumerate()
            .filter_map(|(i, text)| match IpNet::parse(text) {
                Ok(net) => Some(net),
                Err(message) => {
                    p.push(format_args!("conditions.client_ips[{i}]"), message);
                    None
                }
            })
            .collect();

        if !self.conditions.arguments.is_empty() && !self.actions.iter().any(|a| a.takes_arguments()) {
            p.push(
                "conditions.arguments",
                "argument conditions apply only to `call` and `get`; add one of them to actions",
            );
        }
        let arguments: Vec<_> = self
            .conditions
            .arguments
            .iter()
            .enumerate()
            .filter_map(|(i, c)| compile_argument(&mut p, i, c))
            .collect();

        if !p.list.is_empty() {
            return Err(InvalidPolicy { problems: p.list });
        }
        Ok(CompiledRule {
            id: self.id.clone(),
            name: self.name.clone(),
            effect: self.effect,
            subjects,
            resources,
            actions,
            client_ips,
            arguments,
        })
    }
}

fn check_label(p: &mut Problems, field: &str, value: &str) {
    if value.trim().is_empty() {
        p.push(field, "must not be empty");
    } else if value.chars().count() > MAX_ID_LEN {
        p.push(field, format!("longer than {MAX_ID_LEN} characters"));
    } else if value.chars().any(char::is_control) {
        p.push(field, "contains a control character");
    }
}

fn compile_subject(p: &mut Problems, i: usize, s: &SubjectMatcher) -> Option<CompiledSubject> {
    Some(match s {
        SubjectMatcher::Any => CompiledSubject::Any,
        SubjectMatcher::Role(r) => CompiledSubject::Role(*r),
        SubjectMatcher::User(u) => CompiledSubject::User(*u),
        SubjectMatcher::ApiKey(k) => CompiledSubject::ApiKey(*k),
        SubjectMatcher::App(k) => CompiledSubject::App(*k),
        SubjectMatcher::Claim { name, value } => {
            if name.is_empty() {
                p.push(format_args!("subjects[{i}].claim.name"), "must not be empty");
            }
            let value = p.glob(format_args!("subjects[{i}].claim.value"), value)?;
            if name.is_empty() {
                return None;
            }
            CompiledSubject::Claim {
                name: name.clone(),
                value,
            }
        }
    })
}

fn compile_resource(p: &mut Problems, i: usize, r: &ResourceMatcher) -> Option<CompiledResource> {
    let mut field = |name: &str, pattern: &Option<String>| -> Result<Option<Glob>, ()> {
        match pattern {
            None => Ok(None),
            Some(text) => p
                .glob(format_args!("resources[{i}].{name}"), text)
                .map(Some)
                .ok_or(()),
        }
    };
    let namespace = field("namespace", &r.namespace);
    let server = field("server", &r.server);
    let name = field("name", &r.name);
    Some(CompiledResource {
        namespace: namespace.ok()?,
        server: server.ok()?,
        kind: r.kind,
        name: name.ok()?,
    })
}

fn compile_argument(p: &mut Problems, i: usize, c: &ArgumentCondition) -> Option<CompiledArgument> {
    let base = format!("conditions.arguments[{i}]");
    let pointer_ok = match check_pointer(&c.path) {
        Ok(()) => true,
        Err(message) => {
            p.push(format_args!("{base}.path"), message);
            false
        }
    };
    let op = c.op.as_str();
    let test = match (c.op, &c.value) {
        (ArgumentOp::Exists, None) => Some(ArgumentTest::Exists),
        (ArgumentOp::Absent, None) => Some(ArgumentTest::Absent),
        (ArgumentOp::Exists | ArgumentOp::Absent, Some(_)) => {
            p.push(format_args!("{base}.value"), format!("`{op}` takes no value"));
            None
        }
        (_, None) => {
            p.push(format_args!("{base}.value"), format!("`{op}` needs a value"));
            None
        }
        (ArgumentOp::Equals, Some(v)) => Some(ArgumentTest::Equals(v.clone())),
        (ArgumentOp::NotEquals, Some(v)) => Some(ArgumentTest::NotEquals(v.clone())),
        (ArgumentOp::In, Some(Value::Array(values))) => {
            if values.is_empty() {
                p.push(format_args!("{base}.value"), "`in` needs a non-empty array");
                None
            } else {
                Some(ArgumentTest::In(values.clone()))
            }
        }
        (ArgumentOp::In, Some(_)) => {
            p.push(format_args!("{base}.value"), "`in` needs an array");
            None
        }
        (ArgumentOp::Matches, Some(Value::String(pattern))) => p
            .glob(format_args!("{base}.value"), pattern)
            .map(ArgumentTest::Matches),
        (ArgumentOp::Matches, Some(_)) => {
            p.push(format_args!("{base}.value"), "`matches` needs a glob string");
            None
        }
    };
    if !pointer_ok {
        return None;
    }
    Some(CompiledArgument {
        pointer: c.path.clone(),
        test: test?,
    })
}

/// RFC 6901 syntax, restricted to pointers below the root: `/` followed by reference tokens in
/// which `~` is always followed by `0` or `1`.
fn check_pointer(path: &str) -> Result<(), String> {
    if !path.starts_with('/') {
        return Err(format!(
            "JSON pointer {path:?} must start with '/', e.g. \"/{path}\""
        ));
    }
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "JSON pointer {path:?}: '~' must be followed by 0 or 1 (~0 is '~', ~1 is '/')"
            ));
        }
    }
    Ok(())
}

/// A rule ready for evaluation.
#[derive(Clone, Debug)]
pub(super) struct CompiledRule {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) effect: Effect,
    pub(super) subjects: Vec<CompiledSubject>,
    pub(super) resources: Vec<CompiledResource>,
    /// Bit set of [`Action::bit`].
    pub(super) actions: u8,
    pub(super) client_ips: Vec<IpNet>,
    pub(super) arguments: Vec<CompiledArgument>,
}

#[derive(Clone, Debug)]
pub(super) enum CompiledSubject {
    Any,
    Role(Role),
    User(UserId),
    ApiKey(ApiKeyId),
    App(ApiKeyId),
    Claim { name: String, value: Glob },
}

#[derive(Clone, Debug)]
pub(super) struct CompiledResource {
    pub(super) namespace: Option<Glob>,
    pub(super) server: Option<Glob>,
    pub(super) kind: KindMatcher,
    pub(super) name: Option<Glob>,
}

#[derive(Clone, Debug)]
pub(super) struct CompiledArgument {
    pub(super) pointer: String,
    pub(super) test: ArgumentTest,
}

#[derive(Clone, Debug)]
pub(super) enum ArgumentTest {
    Equals(Value),
    NotEquals(Value),
    In(Vec<Value>),
    Matches(Glob),
    Exists,
    Absent,
}

impl CompiledRule {
    pub(super) const fn has_action(&self, action: Action) -> bool {
        self.actions & action.bit() != 0
    }

    pub(super) fn matches_subject(&self, facts: &super::SubjectFacts) -> bool {
        self.subjects.iter().any(|s| match s {
            CompiledSubject::Any => true,
            CompiledSubject::Role(r) => facts.role == *r,
            CompiledSubject::User(u) => facts.user_id == Some(*u),
            CompiledSubject::ApiKey(k) => facts.api_key_id == Some(*k),
            CompiledSubject::App(k) => facts.app_id == Some(*k),
            CompiledSubject::Claim { name, value } => claim_matches(&facts.claims, name, value),
        })
    }

    pub(super) fn matches_target(&self, target: &super::Target) -> bool {
        let field = |glob: &Option<Glob>, text: Option<&str>| {
            glob.as_ref().is_none_or(|g| g.matches(text.unwrap_or("")))
        };
        self.resources.iter().any(|r| {
            let kind_ok = match &target.item {
                Some(item) => r.kind.admits(item.kind),
                None => r.kind.is_any(),
            };
            kind_ok
                && field(&r.namespace, target.namespace.as_deref())
                && field(&r.server, target.server.as_deref())
                && field(&r.name, target.item.as_ref().map(|i| i.name.as_str()))
        })
    }

    pub(super) fn matches_ip(&self, ip: Option<std::net::IpAddr>) -> bool {
        self.client_ips.is_empty() || ip.is_some_and(|ip| self.client_ips.iter().any(|n| n.contains(ip)))
    }

    pub(super) fn has_argument_conditions(&self) -> bool {
        !self.arguments.is_empty()
    }

    /// All argument conditions hold on `arguments`.
    pub(super) fn matches_arguments(&self, arguments: &Value) -> bool {
        self.arguments.iter().all(|c| {
            let found = arguments.pointer(&c.pointer);
            match &c.test {
                ArgumentTest::Equals(v) => found.is_some_and(|f| json_eq(f, v)),
                ArgumentTest::NotEquals(v) => !found.is_some_and(|f| json_eq(f, v)),
                ArgumentTest::In(vs) => found.is_some_and(|f| vs.iter().any(|v| json_eq(f, v))),
                ArgumentTest::Matches(g) => found.and_then(Value::as_str).is_some_and(|s| g.matches(s)),
                ArgumentTest::Exists => found.is_some(),
                ArgumentTest::Absent => found.is_none(),
            }
        })
    }
}

fn claim_matches(claims: &BTreeMap<String, Vec<String>>, name: &str, value: &Glob) -> bool {
    claims
        .get(name)
        .is_some_and(|values| values.iter().any(|v| value.matches(v)))
}

/// JSON equality in which numbers compare by value (`1 == 1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64(), x.as_u64(), y.as_u64()) {
            (Some(x), Some(y), _, _) => x == y,
            (_, _, Some(x), Some(y)) => x == y,
            _ => x.as_f64().zip(y.as_f64()).is_some_and(|(x, y)| x == y),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}
