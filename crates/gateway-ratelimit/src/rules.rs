//! Rules: what they match, how they are validated, and which one applies.
//!
//! A rule has a **scope** (the level it limits: `ip`, `principal`, `organization`,
//! `endpoint`, `method`, `tool`), a **match** (the value it is for, or every value, each
//! counted on its own) and a **quota**. Rules come from three places: the organization's own
//! (the `rate_limits` table, managed through the API), the configuration's `rate_limit.rules`
//! (for every organization), and the configuration's defaults (`rate_limit.ip`,
//! `rate_limit.principal`, `rate_limit.plans`).
//!
//! **Precedence.** At each level, the most specific matching rule applies: an exact match beats
//! a range, a range beats every value (for IP ranges, the longest prefix wins; for endpoints,
//! method and route beat route alone); at equal specificity, the organization's rule beats the
//! configuration's, which beats the default; then names decide, so the choice is stable. Every
//! level that has a rule is checked, and a request is admitted only if all of them admit it.
//!
//! **What is counted per.** `ip`: per client address (and organization, for an organization's
//! own rules). `principal`: per principal (a user and their API keys count as the user; an A2A
//! app and an external identity count on their own). `organization`: per organization.
//! `endpoint`, `method`, `tool`: per principal and value, so one user's burst on a tool never
//! limits another user.

use std::cmp::Reverse;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use gateway_types::config::{MAX_RATE_LIMIT, MAX_RATE_WINDOW_SECONDS};
use gateway_types::ids::{OrgId, RateLimitId};
use gateway_types::model::RateLimitScope;
use gateway_types::net::IpNet;

use crate::algorithm::Quota;
use crate::usage::UsageCounter;

/// Longest rule name.
pub const MAX_NAME_LEN: usize = 64;
/// Longest match value.
pub const MAX_MATCH_LEN: usize = 512;
/// HTTP methods an endpoint rule may name.
const HTTP_METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/// What a rule's match value selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    /// Every value of the scope, each counted on its own.
    Any,
    /// One value (a principal id, an organization slug, an MCP method, a tool name).
    Exact(String),
    /// Client addresses in a range.
    Net(IpNet),
    /// An endpoint: a route pattern (`/gateway/servers/{id}`), optionally with a method.
    Route {
        /// `GET`, `POST`…; `None` = every method of the route, counted together.
        method: Option<String>,
        /// The route pattern, as registered.
        pattern: String,
    },
}

impl Matcher {
    /// Higher is more specific.
    fn specificity(&self) -> u16 {
        match self {
            Self::Any => 0,
            Self::Exact(_) => 1,
            Self::Net(n) => 1 + u16::from(n.prefix()),
            Self::Route { method: None, .. } => 1,
            Self::Route { method: Some(_), .. } => 2,
        }
    }

    /// The match value as written.
    #[must_use]
    pub fn as_text(&self) -> Option<String> {
        match self {
            Self::Any => None,
            Self::Exact(v) => Some(v.clone()),
            Self::Net(n) => Some(n.to_string()),
            Self::Route {
                method: Some(m),
                pattern,
            } => Some(format!("{m} {pattern}")),
            Self::Route {
                method: None,
                pattern,
            } => Some(pattern.clone()),
        }
    }
}

/// Where a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The organization's own, stored (`rate_limits`).
    Stored(RateLimitId),
    /// `rate_limit.rules` in the configuration.
    Declared,
    /// A default of the configuration (`rate_limit.ip`, `.principal`, `.plans`).
    Default,
}

impl Origin {
    const fn rank(self) -> u8 {
        match self {
            Self::Stored(_) => 0,
            Self::Declared => 1,
            Self::Default => 2,
        }
    }

    /// `stored`, `config` or `default`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Stored(_) => "stored",
            Self::Declared => "config",
            Self::Default => "default",
        }
    }
}

/// A rule ready to decide with.
pub struct Rule {
    /// Shown in errors, headers and metrics.
    pub name: String,
    /// The level it limits.
    pub scope: RateLimitScope,
    /// What it applies to.
    pub matcher: Matcher,
    /// The quota.
    pub quota: Quota,
    /// Where it comes from.
    pub origin: Origin,
    key_base: String,
    allowed: metrics::Counter,
    limited: metrics::Counter,
    pub(crate) usage: Option<Arc<UsageCounter>>,
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("matcher", &self.matcher)
            .field("quota", &self.quota)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl Rule {
    /// A rule; `key_base` identifies its counters (stable across replicas and reloads).
    #[must_use]
    pub(crate) fn new(
        name: &str,
        scope: RateLimitScope,
        matcher: Matcher,
        quota: Quota,
        origin: Origin,
        key_base: String,
    ) -> Self {
        let labels = |decision: &'static str| {
            [
                ("scope", scope.as_str().to_owned()),
                ("rule", name.to_owned()),
                ("decision", decision.to_owned()),
            ]
        };
        Self {
            allowed: metrics::counter!(crate::metrics::DECISIONS_TOTAL, &labels("allowed")),
            limited: metrics::counter!(crate::metrics::DECISIONS_TOTAL, &labels("limited")),
            name: name.to_owned(),
            scope,
            matcher,
            quota,
            origin,
            key_base,
            usage: None,
        }
    }

    /// The same rule with its own usage counter (one per organization it applies to).
    pub(crate) fn for_org(&self, usage: Option<Arc<UsageCounter>>) -> Self {
        Self {
            name: self.name.clone(),
            scope: self.scope,
            matcher: self.matcher.clone(),
            quota: self.quota,
            origin: self.origin,
            key_base: self.key_base.clone(),
            allowed: self.allowed.clone(),
            limited: self.limited.clone(),
            usage,
        }
    }

    /// The usage row key: `<scope>:<name>`.
    #[must_use]
    pub fn usage_key(&self) -> String {
        format!("{}:{}", self.scope.as_str(), self.name)
    }

    /// The counter key for one partition (`<base>:<window s>:<partition>`); partitions longer
    /// than 200 bytes are replaced by their FNV-1a hash, so keys stay short whatever a client
    /// sends, and equal on every replica.
    pub(crate) fn key(&self, partition: &str) -> String {
        if partition.len() > 200 {
            format!(
                "{}:{}:#{:016x}",
                self.key_base,
                self.quota.window_seconds(),
                fnv1a(partition.as_bytes())
            )
        } else {
            format!("{}:{}:{partition}", self.key_base, self.quota.window_seconds())
        }
    }

    pub(crate) fn record(&self, allowed: bool) {
        if allowed {
            self.allowed.increment(1);
        } else {
            self.limited.increment(1);
        }
        if let Some(u) = &self.usage {
            u.count(allowed);
        }
    }

    fn precedence(&self) -> (Reverse<u16>, u8, String) {
        (
            Reverse(self.matcher.specificity()),
            self.origin.rank(),
            self.name.clone(),
        )
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Orders rules so the first match is the one that applies.
pub(crate) fn sort(rules: &mut [Arc<Rule>]) {
    rules.sort_by_cached_key(|r| r.precedence());
}

/// One problem with a rule: the field and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `name`, `match`, `limit`, `window_seconds`.
    pub field: &'static str,
    /// What is wrong and what would be right.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Where a rule being validated lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleHome {
    /// An organization's own: an `organization` rule is that organization's total and names
    /// no other.
    Organization,
    /// The configuration: an `organization` rule may name an organization by slug.
    Configuration,
}

/// A rule's fields as written, before validation.
#[derive(Clone, Copy, Debug)]
pub struct RuleInput<'a> {
    /// Name.
    pub name: &'a str,
    /// Scope.
    pub scope: RateLimitScope,
    /// Match value.
    pub match_value: Option<&'a str>,
    /// Requests per window.
    pub limit: i64,
    /// Window in seconds.
    pub window_seconds: i64,
}

/// Checks a rule and parses its match value; reports every problem at once.
///
/// # Errors
/// Every problem found, by field.
pub fn validate(input: RuleInput<'_>, home: RuleHome) -> Result<(Matcher, Quota), Vec<Problem>> {
    let mut problems = Vec::new();
    let name_ok = !input.name.is_empty()
        && input.name.len() <= MAX_NAME_LEN
        && input
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if !name_ok {
        problems.push(Problem {
            field: "name",
            message: format!("must be 1-{MAX_NAME_LEN} characters of A-Z a-z 0-9 - _ ."),
        });
    }
    if !(1..=i64::from(MAX_RATE_LIMIT)).contains(&input.limit) {
        problems.push(Problem {
            field: "limit",
            message: format!("must be between 1 and {MAX_RATE_LIMIT}"),
        });
    }
    if !(1..=i64::from(MAX_RATE_WINDOW_SECONDS)).contains(&input.window_seconds) {
        problems.push(Problem {
            field: "window_seconds",
            message: format!("must be between 1 and {MAX_RATE_WINDOW_SECONDS}"),
        });
    }
    let matcher = match parse_match(input.scope, input.match_value, home) {
        Ok(m) => Some(m),
        Err(message) => {
            problems.push(Problem {
                field: "match",
                message,
            });
            None
        }
    };
    match matcher {
        Some(m) if problems.is_empty() => Ok((
            m,
            Quota::per_seconds(
                u32::try_from(input.limit).unwrap_or(1),
                u32::try_from(input.window_seconds).unwrap_or(1),
            ),
        )),
        _ => Err(problems),
    }
}

fn parse_match(scope: RateLimitScope, value: Option<&str>, home: RuleHome) -> Result<Matcher, String> {
    let Some(value) = value else {
        return Ok(Matcher::Any);
    };
    if value.is_empty() || value.len() > MAX_MATCH_LEN {
        return Err(format!(
            "must be 1-{MAX_MATCH_LEN} bytes, or null for every value"
        ));
    }
    if value.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    match scope {
        RateLimitScope::Ip => IpNet::parse(value)
            .map(Matcher::Net)
            .map_err(|e| format!("an IP range is expected: {e}")),
        RateLimitScope::Organization => match home {
            RuleHome::Organization => {
                Err("must be null: an organization's own rule limits that organization as a whole".into())
            }
            RuleHome::Configuration => {
                let slug_ok = value.len() <= 64
                    && value
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if slug_ok {
                    Ok(Matcher::Exact(value.to_owned()))
                } else {
                    Err("an organization slug is expected (a-z 0-9 -)".into())
                }
            }
        },
        RateLimitScope::Endpoint => {
            let (method, pattern) = match value.split_once(' ') {
                Some((m, p)) => (Some(m), p),
                None => (None, value),
            };
            if let Some(m) = method
                && !HTTP_METHODS.contains(&m)
            {
                return Err(format!(
                    "the method must be one of {} (upper case)",
                    HTTP_METHODS.join(", ")
                ));
            }
            if !pattern.starts_with('/') || pattern.chars().any(char::is_whitespace) {
                return Err(
                    "a route is expected: \"/path/{param}\" or \"POST /path/{param}\", as the gateway registers it"
                        .into(),
                );
            }
            Ok(Matcher::Route {
                method: method.map(str::to_owned),
                pattern: pattern.to_owned(),
            })
        }
        RateLimitScope::Method => {
            let ok = value.len() <= 128
                && value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"/_-.$".contains(&b));
            if ok {
                Ok(Matcher::Exact(value.to_owned()))
            } else {
                Err("an MCP method name is expected (e.g. tools/call)".into())
            }
        }
        RateLimitScope::Principal | RateLimitScope::Tool => Ok(Matcher::Exact(value.to_owned())),
    }
}

/// Who is asking, after authentication.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The organization.
    pub org: OrgId,
    /// What principal limits count per: `user:<id>` for a user and their API keys,
    /// `app:<key id>` for an A2A app, `ext:<issuer>#<subject>` for an external identity.
    pub principal: String,
    /// The ids a principal rule may name (user id, API key id, app id, `issuer#subject`).
    pub ids: Vec<String>,
    /// The client's address.
    pub ip: Option<IpAddr>,
}

/// The rules of one organization, ordered for selection.
#[derive(Debug, Default)]
pub(crate) struct OrgRules {
    pub(crate) principal: Vec<Arc<Rule>>,
    pub(crate) organization: Vec<Arc<Rule>>,
    pub(crate) ip: Vec<Arc<Rule>>,
    pub(crate) endpoint: Vec<Arc<Rule>>,
    pub(crate) method: Vec<Arc<Rule>>,
    pub(crate) tool: Vec<Arc<Rule>>,
    /// The organization's slug, for declared `organization` rules naming one.
    pub(crate) slug: Option<String>,
}

impl OrgRules {
    pub(crate) fn push(&mut self, rule: Arc<Rule>) {
        let list = match rule.scope {
            RateLimitScope::Ip => &mut self.ip,
            RateLimitScope::Principal => &mut self.principal,
            RateLimitScope::Organization => &mut self.organization,
            RateLimitScope::Endpoint => &mut self.endpoint,
            RateLimitScope::Method => &mut self.method,
            RateLimitScope::Tool => &mut self.tool,
        };
        list.push(rule);
    }

    pub(crate) fn sort(&mut self) {
        for list in [
            &mut self.principal,
            &mut self.organization,
            &mut self.ip,
            &mut self.endpoint,
            &mut self.method,
            &mut self.tool,
        ] {
            sort(list);
        }
    }

    /// Whether no MCP-level rule exists (the message pipeline's fast path).
    pub(crate) fn no_mcp_rules(&self) -> bool {
        self.method.is_empty() && self.tool.is_empty()
    }

    pub(crate) fn principal_rule(&self, caller: &Caller) -> Option<&Arc<Rule>> {
        self.principal.iter().find(|r| match &r.matcher {
            Matcher::Exact(v) => caller.ids.iter().any(|id| id == v),
            Matcher::Any => true,
            _ => false,
        })
    }

    pub(crate) fn organization_rule(&self) -> Option<&Arc<Rule>> {
        self.organization.iter().find(|r| match &r.matcher {
            Matcher::Exact(slug) => self.slug.as_deref() == Some(slug.as_str()),
            Matcher::Any => true,
            _ => false,
        })
    }

    pub(crate) fn endpoint_rule(&self, method: &str, pattern: &str) -> Option<&Arc<Rule>> {
        self.endpoint.iter().find(|r| match &r.matcher {
            Matcher::Route {
                method: m,
                pattern: p,
            } => p == pattern && m.as_deref().is_none_or(|m| m == method),
            Matcher::Any => true,
            _ => false,
        })
    }

    pub(crate) fn exact_rule<'a>(list: &'a [Arc<Rule>], value: &str) -> Option<&'a Arc<Rule>> {
        list.iter().find(|r| match &r.matcher {
            Matcher::Exact(v) => v == value,
            Matcher::Any => true,
            _ => false,
        })
    }
}

/// The first IP rule of `rules` (ordered) that covers `ip`.
pub(crate) fn ip_rule(rules: &[Arc<Rule>], ip: IpAddr) -> Option<&Arc<Rule>> {
    rules.iter().find(|r| match &r.matcher {
        Matcher::Net(n) => n.contains(ip),
        Matcher::Any => true,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(scope: RateLimitScope, m: Option<&str>) -> RuleInput<'_> {
        RuleInput {
            name: "r",
            scope,
            match_value: m,
            limit: 10,
            window_seconds: 60,
        }
    }

    fn rule(name: &str, scope: RateLimitScope, m: Option<&str>, origin: Origin) -> Arc<Rule> {
        let (matcher, quota) = validate(
            RuleInput {
                name,
                ..input(scope, m)
            },
            RuleHome::Configuration,
        )
        .unwrap();
        Arc::new(Rule::new(
            name,
            scope,
            matcher,
            quota,
            origin,
            format!("t:{name}"),
        ))
    }

    #[test]
    fn match_values_are_checked_per_scope() {
        use RateLimitScope as S;
        let home = RuleHome::Organization;
        let ok = |s, m| validate(input(s, m), home).is_ok();
        assert!(ok(S::Ip, Some("10.0.0.0/8")));
        assert!(ok(S::Ip, Some("2001:db8::1")));
        assert!(!ok(S::Ip, Some("10.0.0.1/8")));
        assert!(ok(S::Endpoint, Some("/gateway/servers/{id}")));
        assert!(ok(S::Endpoint, Some("POST /gateway/servers")));
        assert!(!ok(S::Endpoint, Some("post /gateway/servers")));
        assert!(!ok(S::Endpoint, Some("gateway/servers")));
        assert!(ok(S::Method, Some("tools/call")));
        assert!(!ok(S::Method, Some("tools call")));
        assert!(ok(S::Tool, Some("web_search")));
        assert!(!ok(S::Tool, Some("")));
        assert!(!ok(S::Tool, Some("a\nb")));
        assert!(ok(S::Organization, None));
        assert!(!ok(S::Organization, Some("acme")));
        assert!(validate(input(S::Organization, Some("acme")), RuleHome::Configuration).is_ok());
        for s in S::ALL {
            assert!(ok(*s, None), "{s}: null matches every value");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let problems = validate(
            RuleInput {
                name: "bad name",
                scope: RateLimitScope::Ip,
                match_value: Some("nope"),
                limit: 0,
                window_seconds: 86_401,
            },
            RuleHome::Organization,
        )
        .unwrap_err();
        let fields: Vec<_> = problems.iter().map(|p| p.field).collect();
        assert_eq!(fields, ["name", "limit", "window_seconds", "match"]);
    }

    #[test]
    fn the_most_specific_rule_wins() {
        use RateLimitScope as S;
        let mut rules = OrgRules::default();
        let id = RateLimitId::new();
        rules.push(rule("any-tool", S::Tool, None, Origin::Declared));
        rules.push(rule("search-cfg", S::Tool, Some("search"), Origin::Declared));
        rules.push(rule("search-org", S::Tool, Some("search"), Origin::Stored(id)));
        rules.push(rule("ep-any", S::Endpoint, None, Origin::Stored(id)));
        rules.push(rule("ep-route", S::Endpoint, Some("/x/{id}"), Origin::Declared));
        rules.push(rule(
            "ep-post",
            S::Endpoint,
            Some("POST /x/{id}"),
            Origin::Declared,
        ));
        rules.sort();
        let name = |r: Option<&Arc<Rule>>| r.map(|r| r.name.clone());
        assert_eq!(
            name(OrgRules::exact_rule(&rules.tool, "search")).as_deref(),
            Some("search-org")
        );
        assert_eq!(
            name(OrgRules::exact_rule(&rules.tool, "other")).as_deref(),
            Some("any-tool")
        );
        assert_eq!(
            name(rules.endpoint_rule("POST", "/x/{id}")).as_deref(),
            Some("ep-post")
        );
        assert_eq!(
            name(rules.endpoint_rule("GET", "/x/{id}")).as_deref(),
            Some("ep-route")
        );
        assert_eq!(name(rules.endpoint_rule("GET", "/y")).as_deref(), Some("ep-any"));

        let ips = {
            let mut v = vec![
                rule("wide", S::Ip, Some("10.0.0.0/8"), Origin::Declared),
                rule("narrow", S::Ip, Some("10.1.0.0/16"), Origin::Declared),
                rule("all", S::Ip, None, Origin::Default),
            ];
            sort(&mut v);
            v
        };
        let ip = |s: &str| name(ip_rule(&ips, s.parse().unwrap()));
        assert_eq!(ip("10.1.2.3").as_deref(), Some("narrow"));
        assert_eq!(ip("10.2.2.3").as_deref(), Some("wide"));
        assert_eq!(ip("192.0.2.1").as_deref(), Some("all"));
    }

    #[test]
    fn keys_are_bounded_and_stable() {
        let r = rule("t", RateLimitScope::Tool, None, Origin::Declared);
        assert_eq!(r.key("org:user:x:search"), "t:t:60:org:user:x:search");
        let long = "x".repeat(5000);
        let k = r.key(&long);
        assert!(k.len() < 64, "{k}");
        assert_eq!(k, r.key(&long), "the same on every call (and replica)");
        assert_ne!(k, r.key(&"y".repeat(5000)));
    }
}
