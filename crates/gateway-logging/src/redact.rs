//! Redaction: what is replaced before any request-log body reaches a sink.
//!
//! Three rules, applied by [`Redactor`]:
//! - **headers**: `authorization`, `proxy-authorization`, `cookie`, `set-cookie`, `x-api-key`,
//!   `x-auth-token` and any header whose name looks like a secret (below) keep their name, lose
//!   their value;
//! - **secret-looking keys**: in any JSON object, at any depth, the value of a key whose
//!   normalized name (lower case, `-` and `_` removed) contains `token`, `password`, `passwd`,
//!   `secret`, `apikey`, `authorization`, `cookie`, `credential` or `privatekey` is replaced;
//! - **configured paths** (`logging.redact_paths`): dot-separated paths rooted at `arguments`
//!   (a tool call's or prompt's arguments) or `result` (a response's result); `*` matches any
//!   key or any array element.
//!
//! A redacted value becomes the string [`REDACTED`]. Redaction never fails: a path that does
//! not match anything is simply not applied.

use serde_json::Value;

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Header names whose values are always secret.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "x-auth-token",
    "x-amz-security-token",
];

/// Fragments of normalized key names that mark a value as secret.
const SECRET_KEY_FRAGMENTS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "secret",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "privatekey",
];

/// Whether a header's value must never be written.
#[must_use]
pub fn is_secret_header(name: &str) -> bool {
    SECRET_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) || is_secret_key(name)
}

/// Whether a JSON key (or header name) looks like it names a secret.
#[must_use]
pub fn is_secret_key(key: &str) -> bool {
    let normalized: String = key
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    SECRET_KEY_FRAGMENTS.iter().any(|f| normalized.contains(f))
}

/// Redacts bodies by the rules in the module docs. Cheap to share (`Arc`).
#[derive(Clone, Debug, Default)]
pub struct Redactor {
    /// Configured paths below `arguments`.
    arguments: Vec<Vec<String>>,
    /// Configured paths below `result`.
    result: Vec<Vec<String>>,
}

impl Redactor {
    /// A redactor with the configured paths (`logging.redact_paths`; paths not rooted at
    /// `arguments` or `result` are ignored: configuration validation refuses them).
    #[must_use]
    pub fn new<S: AsRef<str>>(paths: &[S]) -> Self {
        let mut me = Self::default();
        for path in paths {
            let mut segs = path.as_ref().split('.').map(str::to_owned);
            match segs.next().as_deref() {
                Some("arguments") => me.arguments.push(segs.collect()),
                Some("result") => me.result.push(segs.collect()),
                _ => {}
            }
        }
        me
    }

    /// Headers as a JSON object (`name → value`), secret values replaced. Names are lower-cased.
    pub fn headers<'a>(&self, headers: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
        let mut map = serde_json::Map::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let value = if is_secret_header(&name) { REDACTED } else { value };
            map.insert(name, Value::String(value.to_owned()));
        }
        Value::Object(map)
    }

    /// Redacts an MCP request's `params` in place: secret-looking keys anywhere, configured
    /// `arguments.…` paths below `params.arguments`.
    pub fn request_params(&self, params: &mut Value) {
        redact_secret_keys(params);
        if let Some(args) = params.get_mut("arguments") {
            for path in &self.arguments {
                redact_path(args, path);
            }
        }
    }

    /// Redacts a response's `result` in place: secret-looking keys anywhere, configured
    /// `result.…` paths.
    pub fn result(&self, result: &mut Value) {
        redact_secret_keys(result);
        for path in &self.result {
            redact_path(result, path);
        }
    }

    /// Redacts any other JSON document (a REST body, an error's data): secret-looking keys.
    pub fn document(&self, doc: &mut Value) {
        redact_secret_keys(doc);
    }
}

/// Replaces the value of every secret-looking key, at any depth.
fn redact_secret_keys(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) && !v.is_null() {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_secret_keys(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_secret_keys),
        _ => {}
    }
}

/// Replaces what `path` (below `value`) names.
fn redact_path(value: &mut Value, path: &[String]) {
    let Some((head, rest)) = path.split_first() else {
        *value = Value::String(REDACTED.to_owned());
        return;
    };
    match value {
        Value::Object(map) => {
            if head == "*" {
                map.values_mut().for_each(|v| redact_path(v, rest));
            } else if let Some(v) = map.get_mut(head.as_str()) {
                redact_path(v, rest);
            }
        }
        Value::Array(items) => {
            if head == "*" {
                items.iter_mut().for_each(|v| redact_path(v, rest));
            } else if let Some(v) = head.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                redact_path(v, rest);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secret_headers_keep_their_names_only() {
        let r = Redactor::default();
        let h = r.headers([
            ("Authorization", "Bearer abc"),
            ("Cookie", "sid=1"),
            ("X-Api-Key", "k"),
            ("X-Upstream-Token", "t"),
            ("Accept", "application/json"),
        ]);
        assert_eq!(
            h,
            json!({
                "authorization": REDACTED, "cookie": REDACTED, "x-api-key": REDACTED,
                "x-upstream-token": REDACTED, "accept": "application/json"
            })
        );
    }

    #[test]
    fn secret_keys_at_any_depth_and_configured_paths() {
        let r = Redactor::new(&[
            "arguments.config.dsn",
            "arguments.items.*.note",
            "result.structuredContent.*",
        ]);
        let mut params = json!({
            "name": "deploy",
            "arguments": {
                "apiKey": "k1", "nested": [{"access_token": "t1"}],
                "config": {"dsn": "postgres://u:p@h", "other": 1},
                "items": [{"note": "n1"}, {"note": "n2", "keep": true}],
                "Client-Secret": "s1", "password": null
            }
        });
        r.request_params(&mut params);
        assert_eq!(
            params,
            json!({
                "name": "deploy",
                "arguments": {
                    "apiKey": REDACTED, "nested": [{"access_token": REDACTED}],
                    "config": {"dsn": REDACTED, "other": 1},
                    "items": [{"note": REDACTED}, {"note": REDACTED, "keep": true}],
                    "Client-Secret": REDACTED, "password": null
                }
            })
        );
        let mut result =
            json!({"content": [{"type": "text", "text": "ok"}], "structuredContent": {"a": 1, "b": [2]}});
        r.result(&mut result);
        assert_eq!(
            result,
            json!({"content": [{"type": "text", "text": "ok"}], "structuredContent": {"a": REDACTED, "b": REDACTED}})
        );
    }

    #[test]
    fn unmatched_paths_change_nothing() {
        let r = Redactor::new(&["arguments.missing.deeper", "result.0"]);
        let mut params = json!({"arguments": {"x": [1, 2]}});
        r.request_params(&mut params);
        assert_eq!(params, json!({"arguments": {"x": [1, 2]}}));
    }
}
