//! Header values of the IETF draft "RateLimit header fields for HTTP"
//! (draft-ietf-httpapi-ratelimit-headers, revisions 09–11): `RateLimit-Policy` lists each
//! quota policy that applied (`"<name>";q=<quota>;w=<window seconds>`), `RateLimit` its current
//! state (`"<name>";r=<remaining>;t=<seconds until the window ends, or until a refused
//! request would be admitted>`). Both are Structured Field lists, in checking order.

use crate::algorithm::Decision;
use crate::rules::Rule;

/// `(RateLimit-Policy, RateLimit)` for the rules a request was checked against; `None` when
/// there were none.
#[must_use]
pub fn render<'a>(entries: impl IntoIterator<Item = (&'a Rule, &'a Decision)>) -> Option<(String, String)> {
    let mut policy = String::new();
    let mut state = String::new();
    for (rule, d) in entries {
        if !policy.is_empty() {
            policy.push_str(", ");
            state.push_str(", ");
        }
        let name = sf_string(&rule.name);
        policy.push_str(&format!(
            "{name};q={};w={}",
            d.quota.limit,
            d.quota.window_seconds()
        ));
        state.push_str(&format!("{name};r={};t={}", d.remaining, d.reset_seconds()));
    }
    (!policy.is_empty()).then_some((policy, state))
}

/// A Structured Field string (RFC 8941 §3.3.3): quoted, `"` and `\` escaped, and anything
/// outside printable ASCII replaced (names are validated to be plain, so this never loses
/// information in practice).
fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            ' '..='~' => out.push(ch),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Counts, Quota};
    use crate::rules::{Matcher, Origin};
    use gateway_types::model::RateLimitScope;

    #[test]
    fn policies_and_state_in_order() {
        let q = Quota::per_seconds(100, 60);
        let a = Rule::new(
            "principal",
            RateLimitScope::Principal,
            Matcher::Any,
            q,
            Origin::Default,
            "a".into(),
        );
        let b = Rule::new(
            "we\"ird",
            RateLimitScope::Tool,
            Matcher::Any,
            Quota::per_seconds(5, 1),
            Origin::Declared,
            "b".into(),
        );
        let da = Decision::new(q, Counts { prev: 0, curr: 49 }, 30_000, true);
        let db = Decision::new(b.quota, Counts { prev: 0, curr: 5 }, 250, false);
        let (policy, state) = render([(&a, &da), (&b, &db)]).unwrap();
        assert_eq!(policy, r#""principal";q=100;w=60, "we\"ird";q=5;w=1"#);
        assert_eq!(state, r#""principal";r=50;t=30, "we\"ird";r=0;t=1"#);
        assert!(render([]).is_none());
    }
}
