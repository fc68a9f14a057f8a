//! `/gateway/servers`: the MCP servers of the caller's organization (`servers:read` for GET,
//! `servers:write` for POST, PUT and DELETE).
//!
//! - `POST /gateway/servers` takes the `mcp_servers` fields by column name, plus `credentials`
//!   (`headers` and/or `bearer_token`) and `session_mode` (`per_client` or `shared`, kept as
//!   `metadata.session_mode`), and answers 201 with the record.
//! - `GET /gateway/servers` lists a page (`offset`, `limit`), filtered by `namespace_id`,
//!   `protocol`, `status`, `tag`, `source` and `search` (a case-insensitive substring of the
//!   name), ordered by name.
//! - `GET|PUT|DELETE /gateway/servers/{id}` take the id or the name. `PUT` changes the fields
//!   it names (`null` clears an optional one); `environment` and `credentials` are replaced
//!   whole, never merged.
//!
//! Malformed bodies (wrong JSON types, unknown fields) are 400; unacceptable values are 422 with
//! every problem named by its field; a taken name and the organization's server limit are 409
//! (the limit is checked by the store in the transaction that inserts, so concurrent creates
//! never exceed it).
//!
//! `environment` and `credentials` are sealed ([`gateway_auth::sealing`]) before they reach the
//! store and are never answered or logged: responses show `environment_keys` and
//! `has_credentials` instead. Every write invalidates this replica's server cache at once.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use gateway_auth::principal::Principal;
use gateway_auth::rbac::Permission;
use gateway_types::error::ErrorCode;
use gateway_types::ids::{NamespaceId, ServerId};
use gateway_types::model::{
    McpServer, McpServerPatch, NewMcpServer, Page, RecordSource, Sealed, ServerFilter, ServerProtocol,
    ServerStatus,
};
use gateway_types::store::StoreError;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::audit::{self, ClientContext};
use crate::authn::Authenticated;
use crate::error::ApiError;
use crate::servers_cache::session_mode_of;
use crate::state::AppState;
use gateway_logging::audit::{AuditEvent, actions};

/// Longest server name.
const MAX_NAME_CHARS: usize = 64;
/// Longest description.
const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Longest URL.
const MAX_URL_BYTES: usize = 2048;
/// Longest command, argument or working directory.
const MAX_PATH_BYTES: usize = 4096;
/// Most arguments.
const MAX_ARGS: usize = 64;
/// Most environment variables.
const MAX_ENV: usize = 100;
/// Longest environment variable name.
const MAX_ENV_NAME_BYTES: usize = 128;
/// Longest environment value.
const MAX_ENV_VALUE_BYTES: usize = 16 * 1024;
/// Most credential headers.
const MAX_HEADERS: usize = 32;
/// Longest header name.
const MAX_HEADER_NAME_BYTES: usize = 128;
/// Longest header value (and bearer token).
const MAX_HEADER_VALUE_BYTES: usize = 8 * 1024;
/// Most tags.
const MAX_TAGS: usize = 32;
/// Longest tag.
const MAX_TAG_CHARS: usize = 64;
/// Largest `metadata`, as compact JSON.
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Allowed `timeout_seconds`.
const TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1..=600;
/// Allowed `max_retries`.
const RETRIES_RANGE: std::ops::RangeInclusive<i64> = 0..=10;
/// `timeout_seconds` when not given.
const DEFAULT_TIMEOUT_SECONDS: i64 = 30;
/// `max_retries` when not given.
const DEFAULT_MAX_RETRIES: i64 = 3;
/// The metadata key that holds the session mode.
const SESSION_MODE_KEY: &str = "session_mode";
/// Headers the gateway sets itself (transport framing, MCP session state): never from
/// credentials.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such server")
}

/// How upstream sessions are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SessionMode {
    /// One upstream session per client session.
    PerClient,
    /// One upstream session shared by every client.
    Shared,
}

impl SessionMode {
    const fn as_str(self) -> &'static str {
        match self {
            Self::PerClient => "per_client",
            Self::Shared => "shared",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "per_client" => Some(Self::PerClient),
            "shared" => Some(Self::Shared),
            _ => None,
        }
    }
}

/// A secret string from a request body. Anything but a string is refused with a fixed message:
/// serde's own would quote the offending value (`invalid type: integer `12345``).
pub(crate) struct SecretText(SecretString);

impl SecretText {
    fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Self(SecretString::from(s))),
            _ => Err(serde::de::Error::custom(
                "environment values, header values and bearer_token must be strings",
            )),
        }
    }
}

/// Upstream credentials as given: header values and the token are secrets from the moment
/// they are parsed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CredentialsInput {
    #[serde(default)]
    headers: BTreeMap<String, SecretText>,
    #[serde(default)]
    bearer_token: Option<SecretText>,
}

impl CredentialsInput {
    fn is_empty(&self) -> bool {
        self.headers.is_empty() && self.bearer_token.is_none()
    }

    /// The document that is sealed (read back by the server cache).
    fn document(&self) -> Value {
        let mut doc = Map::new();
        if !self.headers.is_empty() {
            let headers: Map<String, Value> = self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_owned())))
                .collect();
            doc.insert("headers".into(), Value::Object(headers));
        }
        if let Some(token) = &self.bearer_token {
            doc.insert(
                "bearer_token".into(),
                Value::String(token.expose_secret().to_owned()),
            );
        }
        Value::Object(doc)
    }
}

type Environment = BTreeMap<String, SecretText>;

/// `POST /gateway/servers` body (and, less `namespace_id`, a server declared in configuration).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    protocol: ServerProtocol,
    url: Option<String>,
    command: Option<String>,
    args: Option<Vec<String>>,
    environment: Option<Environment>,
    working_dir: Option<String>,
    timeout_seconds: Option<i64>,
    max_retries: Option<i64>,
    tags: Option<Vec<String>>,
    metadata: Option<Value>,
    description: Option<String>,
    health_check_url: Option<String>,
    pub(crate) namespace_id: Option<NamespaceId>,
    credentials: Option<CredentialsInput>,
    session_mode: Option<SessionMode>,
    status: Option<ServerStatus>,
}

/// Distinguishes a field that is absent (`None`) from one that is `null` (`Some(None)`).
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// `PUT /gateway/servers/{id}` body: absent fields stay, `null` clears optional ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    protocol: Option<Option<ServerProtocol>>,
    #[serde(default, deserialize_with = "present")]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    command: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    args: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    environment: Option<Option<Environment>>,
    #[serde(default, deserialize_with = "present")]
    working_dir: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    timeout_seconds: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    max_retries: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    tags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "present")]
    metadata: Option<Option<Value>>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    health_check_url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    namespace_id: Option<Option<NamespaceId>>,
    #[serde(default, deserialize_with = "present")]
    credentials: Option<Option<CredentialsInput>>,
    #[serde(default, deserialize_with = "present")]
    session_mode: Option<Option<SessionMode>>,
    #[serde(default, deserialize_with = "present")]
    status: Option<Option<ServerStatus>>,
}

/// What happens to a sealed field.
enum SecretChange<T> {
    /// Unchanged; whether the record has one.
    Keep(bool),
    /// Replaced (an empty value clears it).
    Set(T),
    /// Removed.
    Clear,
}

impl<T> SecretChange<T> {
    fn from_update(change: Option<Option<T>>, had: bool) -> Self {
        match change {
            None => Self::Keep(had),
            Some(None) => Self::Clear,
            Some(Some(v)) => Self::Set(v),
        }
    }
}

/// A server as it would be after a create or update: validated as a whole.
pub(crate) struct Draft {
    name: String,
    description: Option<String>,
    protocol: ServerProtocol,
    url: Option<String>,
    command: Option<String>,
    args: Vec<String>,
    working_dir: Option<String>,
    timeout_seconds: i64,
    max_retries: i64,
    status: ServerStatus,
    /// Whether the body set `status` (only then is it validated and written: `degraded` and
    /// `down` belong to the health checks).
    status_given: bool,
    health_check_url: Option<String>,
    tags: Vec<String>,
    /// The object without `session_mode`.
    metadata: Value,
    /// From `session_mode`, else `metadata.session_mode`.
    session_mode: Option<SessionMode>,
    /// Text of `metadata.session_mode`, when it was given and is not a mode.
    bad_session_mode: Option<String>,
    namespace_id: Option<NamespaceId>,
    environment: SecretChange<Environment>,
    credentials: SecretChange<CredentialsInput>,
}

/// Splits `session_mode` out of a metadata object. Returns the rest, the mode found there (if
/// valid) and the offending text (if not).
fn split_metadata(metadata: Value) -> (Value, Option<SessionMode>, Option<String>) {
    match metadata {
        Value::Object(mut map) => {
            let (mode, bad) = match map.remove(SESSION_MODE_KEY) {
                None => (None, None),
                Some(Value::String(s)) => match SessionMode::parse(&s) {
                    Some(m) => (Some(m), None),
                    None => (None, Some(s)),
                },
                Some(other) => (None, Some(other.to_string())),
            };
            (Value::Object(map), mode, bad)
        }
        other => (other, None, None),
    }
}

impl Draft {
    /// A new server from a create body, with the defaults.
    pub(crate) fn create(body: CreateBody) -> Self {
        let (metadata, meta_mode, bad_session_mode) =
            split_metadata(body.metadata.unwrap_or_else(|| Value::Object(Map::new())));
        Self {
            name: body.name,
            description: body.description,
            protocol: body.protocol,
            url: body.url,
            command: body.command,
            args: body.args.unwrap_or_default(),
            working_dir: body.working_dir,
            timeout_seconds: body.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS),
            max_retries: body.max_retries.unwrap_or(DEFAULT_MAX_RETRIES),
            status_given: body.status.is_some(),
            status: body.status.unwrap_or(ServerStatus::Active),
            health_check_url: body.health_check_url,
            tags: body.tags.unwrap_or_default(),
            metadata,
            session_mode: body.session_mode.or(meta_mode).or(Some(SessionMode::PerClient)),
            bad_session_mode: bad_session_mode.filter(|_| body.session_mode.is_none()),
            namespace_id: body.namespace_id,
            environment: body
                .environment
                .map_or(SecretChange::Keep(false), SecretChange::Set),
            credentials: body
                .credentials
                .map_or(SecretChange::Keep(false), SecretChange::Set),
        }
    }

    /// The record with an update applied. `null` for a field that cannot be empty is a problem.
    fn update(current: &McpServer, body: UpdateBody, problems: &mut Vec<String>) -> Self {
        fn required<T>(change: Option<Option<T>>, current: T, field: &str, problems: &mut Vec<String>) -> T {
            match change {
                None => current,
                Some(Some(v)) => v,
                Some(None) => {
                    problems.push(format!("{field}: cannot be null"));
                    current
                }
            }
        }
        fn optional<T>(change: Option<Option<T>>, current: Option<T>) -> Option<T> {
            match change {
                None => current,
                Some(v) => v,
            }
        }
        let current_mode = SessionMode::parse(session_mode_of(current));
        let (metadata, meta_mode, bad_meta_mode) = match body.metadata {
            None => {
                let (rest, _, _) = split_metadata(current.metadata.clone());
                (rest, None, None)
            }
            Some(None) => {
                problems.push("metadata: cannot be null (use {} for none)".to_owned());
                (Value::Object(Map::new()), None, None)
            }
            Some(Some(m)) => split_metadata(m),
        };
        let explicit_mode = required(
            body.session_mode.map(|m| m.map(Some)),
            None,
            "session_mode",
            problems,
        );
        Self {
            name: required(body.name, current.name.clone(), "name", problems),
            description: optional(body.description, current.description.clone()),
            protocol: required(body.protocol, current.protocol, "protocol", problems),
            url: optional(body.url, current.url.clone()),
            command: optional(body.command, current.command.clone()),
            args: optional(body.args, Some(current.args.clone())).unwrap_or_default(),
            working_dir: optional(body.working_dir, current.working_dir.clone()),
            timeout_seconds: required(
                body.timeout_seconds,
                i64::from(current.timeout_seconds),
                "timeout_seconds",
                problems,
            ),
            max_retries: required(
                body.max_retries,
                i64::from(current.max_retries),
                "max_retries",
                problems,
            ),
            status_given: body.status.is_some(),
            status: required(body.status, current.status, "status", problems),
            health_check_url: optional(body.health_check_url, current.health_check_url.clone()),
            tags: optional(body.tags, Some(current.tags.clone())).unwrap_or_default(),
            metadata,
            session_mode: explicit_mode.or(meta_mode).or(current_mode),
            bad_session_mode: bad_meta_mode.filter(|_| explicit_mode.is_none()),
            namespace_id: optional(body.namespace_id, current.namespace_id),
            environment: SecretChange::from_update(body.environment, current.environment.is_some()),
            credentials: SecretChange::from_update(body.credentials, current.credentials.is_some()),
        }
    }

    /// The server's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Places the server in a namespace.
    pub(crate) fn set_namespace(&mut self, namespace: Option<NamespaceId>) {
        self.namespace_id = namespace;
    }

    /// The documents a create seals, in plain text: `(environment, credentials)`, `None`
    /// for none. For comparing a declaration with what is stored.
    pub(crate) fn secret_documents(&self) -> (Option<Value>, Option<Value>) {
        let environment = match &self.environment {
            SecretChange::Set(env) if !env.is_empty() => Some(environment_document(env)),
            _ => None,
        };
        let credentials = match &self.credentials {
            SecretChange::Set(c) if !c.is_empty() => Some(c.document()),
            _ => None,
        };
        (environment, credentials)
    }

    /// Every problem of the draft, each prefixed with its field.
    pub(crate) fn problems(&self, problems: &mut Vec<String>) {
        let mut bad = |field: &str, msg: String| problems.push(format!("{field}: {msg}"));
        if !valid_name(&self.name) {
            bad(
                "name",
                format!(
                    "must be 1-{MAX_NAME_CHARS} characters of a-z, 0-9, '-' and '_', starting with a letter (not a UUID)"
                ),
            );
        }
        if let Some(d) = &self.description
            && (d.chars().count() > MAX_DESCRIPTION_CHARS
                || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
        {
            bad(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters, without control characters"),
            );
        }
        let stdio = self.protocol == ServerProtocol::Stdio;
        let remote_only = "applies to http, sse and ws servers only";
        let stdio_only = "applies to stdio servers only";
        let clear_hint = " (set it to null when changing the protocol)";
        if stdio {
            match self.command.as_deref() {
                None | Some("") => bad("command", "is required for stdio servers".to_owned()),
                Some(c) if !valid_path_text(c) => bad(
                    "command",
                    format!("must be at most {MAX_PATH_BYTES} bytes, without NUL"),
                ),
                Some(_) => {}
            }
            if self.url.is_some() {
                bad(
                    "url",
                    format!("{remote_only}; stdio servers take command{clear_hint}"),
                );
            }
            if matches!(self.credentials, SecretChange::Keep(true))
                || matches!(&self.credentials, SecretChange::Set(c) if !c.is_empty())
            {
                bad(
                    "credentials",
                    format!("{remote_only}; stdio servers take environment{clear_hint}"),
                );
            }
        } else {
            match self.url.as_deref() {
                None => bad(
                    "url",
                    format!("is required for {} servers", self.protocol.as_str()),
                ),
                Some(u) => {
                    let schemes: &[&str] = if self.protocol == ServerProtocol::Ws {
                        &["ws", "wss"]
                    } else {
                        &["http", "https"]
                    };
                    if let Err(why) = check_url(u, schemes) {
                        bad("url", why);
                    }
                }
            }
            if self.command.is_some() {
                bad("command", format!("{stdio_only}{clear_hint}"));
            }
            if !self.args.is_empty() {
                bad("args", format!("{stdio_only}{clear_hint}"));
            }
            if self.working_dir.is_some() {
                bad("working_dir", format!("{stdio_only}{clear_hint}"));
            }
            if matches!(self.environment, SecretChange::Keep(true))
                || matches!(&self.environment, SecretChange::Set(e) if !e.is_empty())
            {
                bad("environment", format!("{stdio_only}{clear_hint}"));
            }
        }
        if self.args.len() > MAX_ARGS {
            bad("args", format!("at most {MAX_ARGS} arguments"));
        }
        if let Some(i) = self.args.iter().position(|a| !valid_path_text(a)) {
            bad(
                &format!("args[{i}]"),
                format!("must be at most {MAX_PATH_BYTES} bytes, without NUL"),
            );
        }
        if let Some(dir) = &self.working_dir
            && (!dir.starts_with('/') || !valid_path_text(dir))
        {
            bad(
                "working_dir",
                format!("must be an absolute path of at most {MAX_PATH_BYTES} bytes"),
            );
        }
        if !TIMEOUT_RANGE.contains(&self.timeout_seconds) {
            bad(
                "timeout_seconds",
                format!(
                    "must be between {} and {}",
                    TIMEOUT_RANGE.start(),
                    TIMEOUT_RANGE.end()
                ),
            );
        }
        if !RETRIES_RANGE.contains(&self.max_retries) {
            bad(
                "max_retries",
                format!(
                    "must be between {} and {}",
                    RETRIES_RANGE.start(),
                    RETRIES_RANGE.end()
                ),
            );
        }
        if self.status_given && !matches!(self.status, ServerStatus::Active | ServerStatus::Inactive) {
            bad(
                "status",
                "must be active or inactive (degraded and down are set by health checks)".to_owned(),
            );
        }
        if let Some(u) = &self.health_check_url
            && let Err(why) = check_url(u, &["http", "https"])
        {
            bad("health_check_url", why);
        }
        if self.tags.len() > MAX_TAGS {
            bad("tags", format!("at most {MAX_TAGS} tags"));
        }
        let mut seen = BTreeSet::new();
        for (i, t) in self.tags.iter().enumerate() {
            if t.is_empty() || t.chars().count() > MAX_TAG_CHARS || t.chars().any(char::is_control) {
                bad(
                    &format!("tags[{i}]"),
                    format!("must be 1-{MAX_TAG_CHARS} printable characters"),
                );
            } else if !seen.insert(t.as_str()) {
                bad(&format!("tags[{i}]"), format!("repeats {t:?}"));
            }
        }
        if !self.metadata.is_object() {
            bad("metadata", "must be a JSON object".to_owned());
        } else if self.metadata.to_string().len() > MAX_METADATA_BYTES {
            bad(
                "metadata",
                format!("must be at most {MAX_METADATA_BYTES} bytes as JSON"),
            );
        }
        if let Some(text) = &self.bad_session_mode {
            bad(
                "metadata.session_mode",
                format!(
                    "must be per_client or shared, not {}",
                    text.chars().take(40).collect::<String>()
                ),
            );
        }
        if let SecretChange::Set(env) = &self.environment {
            environment_problems(env, problems);
        }
        if let SecretChange::Set(creds) = &self.credentials {
            credentials_problems(creds, problems);
        }
    }
}

/// Names: lower-case letters, digits, `-`, `_`, starting with a letter, and never a UUID (so
/// `{id}` in a path is unambiguous).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.parse::<ServerId>().is_err()
}

fn valid_path_text(s: &str) -> bool {
    s.len() <= MAX_PATH_BYTES && !s.contains('\0')
}

/// An absolute URL with one of `schemes`, a host, and no credentials in it.
fn check_url(raw: &str, schemes: &[&str]) -> Result<(), String> {
    let expected = schemes
        .iter()
        .map(|s| format!("{s}://"))
        .collect::<Vec<_>>()
        .join(" or ");
    if raw.len() > MAX_URL_BYTES {
        return Err(format!("must be at most {MAX_URL_BYTES} bytes"));
    }
    let url = url::Url::parse(raw).map_err(|_| format!("must be an absolute {expected} URL"))?;
    if !schemes.contains(&url.scheme()) {
        return Err(format!("must be an absolute {expected} URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".to_owned());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; put them in `credentials`".to_owned());
    }
    Ok(())
}

fn environment_problems(env: &Environment, problems: &mut Vec<String>) {
    if env.len() > MAX_ENV {
        problems.push(format!("environment: at most {MAX_ENV} variables"));
    }
    for (name, value) in env {
        let valid = !name.is_empty()
            && name.len() <= MAX_ENV_NAME_BYTES
            && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            problems.push(format!(
                "environment: {:?} is not a variable name (A-Z, a-z, 0-9, '_', not starting with a digit, at most {MAX_ENV_NAME_BYTES} bytes)",
                name.chars().take(40).collect::<String>()
            ));
            continue;
        }
        let v = value.expose_secret();
        if v.len() > MAX_ENV_VALUE_BYTES || v.contains('\0') {
            // The value is a secret: name the variable only.
            problems.push(format!(
                "environment.{name}: the value must be at most {MAX_ENV_VALUE_BYTES} bytes, without NUL"
            ));
        }
    }
}

/// A valid header value: visible ASCII, spaces and tabs, not blank.
fn valid_header_value(v: &str) -> bool {
    !v.trim().is_empty()
        && v.len() <= MAX_HEADER_VALUE_BYTES
        && v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

fn credentials_problems(creds: &CredentialsInput, problems: &mut Vec<String>) {
    if creds.headers.len() > MAX_HEADERS {
        problems.push(format!("credentials.headers: at most {MAX_HEADERS} headers"));
    }
    let mut lower = BTreeSet::new();
    for (name, value) in &creds.headers {
        let token = !name.is_empty()
            && name.len() <= MAX_HEADER_NAME_BYTES
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            problems.push(format!(
                "credentials.headers: {:?} is not a valid header name",
                name.chars().take(40).collect::<String>()
            ));
            continue;
        }
        let l = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&l.as_str()) {
            problems.push(format!(
                "credentials.headers.{name}: is set by the gateway itself"
            ));
        }
        if !lower.insert(l) {
            problems.push(format!(
                "credentials.headers.{name}: repeats a header (names are case-insensitive)"
            ));
        }
        if !valid_header_value(value.expose_secret()) {
            problems.push(format!(
                "credentials.headers.{name}: the value must be 1-{MAX_HEADER_VALUE_BYTES} bytes of visible ASCII"
            ));
        }
    }
    if let Some(token) = &creds.bearer_token {
        let t = token.expose_secret();
        if !valid_header_value(t) || t.contains([' ', '\t']) {
            problems.push(format!(
                "credentials.bearer_token: must be 1-{MAX_HEADER_VALUE_BYTES} bytes of visible ASCII without spaces"
            ));
        }
        if lower.contains("authorization") {
            problems.push(
                "credentials: give either bearer_token or an Authorization header, not both".to_owned(),
            );
        }
    }
}

fn validation(problems: Vec<String>) -> ApiError {
    ApiError::new(ErrorCode::Validation, problems.join("; "))
}

/// A 422 naming every problem, or `Ok`.
fn check(problems: Vec<String>) -> Result<(), ApiError> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(validation(problems))
    }
}

/// Seals a secret change for the store: `None` = unchanged, `Some(None)` = cleared.
fn seal_change<T>(
    state: &AppState,
    change: &SecretChange<T>,
    is_empty: impl Fn(&T) -> bool,
    document: impl Fn(&T) -> Value,
) -> Result<Option<Option<Sealed>>, ApiError> {
    Ok(match change {
        SecretChange::Keep(_) => None,
        SecretChange::Clear => Some(None),
        SecretChange::Set(v) if is_empty(v) => Some(None),
        SecretChange::Set(v) => Some(Some(
            state.sealer.seal_json(&document(v)).map_err(ApiError::internal)?,
        )),
    })
}

fn environment_document(env: &Environment) -> Value {
    Value::Object(
        env.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_owned())))
            .collect(),
    )
}

/// Metadata as stored: the object with `session_mode`.
fn stored_metadata(draft: &Draft) -> Value {
    let mut metadata = draft.metadata.clone();
    if let Value::Object(map) = &mut metadata {
        let mode = draft.session_mode.unwrap_or(SessionMode::PerClient);
        map.insert(SESSION_MODE_KEY.into(), Value::String(mode.as_str().into()));
    }
    metadata
}

fn to_i32(v: i64) -> Result<i32, ApiError> {
    i32::try_from(v).map_err(ApiError::internal)
}

/// A server as answered: never its environment or credentials.
#[derive(Serialize)]
pub(crate) struct ServerView {
    id: String,
    namespace_id: Option<String>,
    name: String,
    description: Option<String>,
    protocol: &'static str,
    url: Option<String>,
    command: Option<String>,
    args: Vec<String>,
    working_dir: Option<String>,
    timeout_seconds: i32,
    max_retries: i32,
    status: &'static str,
    health_check_url: Option<String>,
    tags: Vec<String>,
    metadata: Value,
    session_mode: String,
    /// Names of the environment variables (`null` when they cannot be opened).
    environment_keys: Option<Vec<String>>,
    has_credentials: bool,
    source: &'static str,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ServerView {
    pub(crate) fn new(state: &AppState, s: McpServer) -> Self {
        let environment_keys = match &s.environment {
            None => Some(Vec::new()),
            Some(sealed) => match state.sealer.open_json(sealed) {
                Ok(Value::Object(map)) => Some(map.keys().cloned().collect()),
                Ok(_) => None,
                Err(err) => {
                    tracing::warn!(
                        org.id = %s.org_id,
                        server.id = %s.id,
                        error.chain = gateway_types::error::error_chain(&err),
                        "cannot open a server's environment with the configured keys"
                    );
                    None
                }
            },
        };
        let session_mode = session_mode_of(&s).to_owned();
        let (metadata, _, _) = split_metadata(s.metadata);
        Self {
            id: s.id.to_string(),
            namespace_id: s.namespace_id.map(|n| n.to_string()),
            name: s.name,
            description: s.description,
            protocol: s.protocol.as_str(),
            url: s.url,
            command: s.command,
            args: s.args,
            working_dir: s.working_dir,
            timeout_seconds: s.timeout_seconds,
            max_retries: s.max_retries,
            status: s.status.as_str(),
            health_check_url: s.health_check_url,
            tags: s.tags,
            metadata,
            session_mode,
            environment_keys,
            has_credentials: s.credentials.is_some(),
            source: s.source.as_str(),
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// The server `raw` (id or name) names, if the caller may see it.
pub(crate) async fn find(state: &AppState, p: &Principal, raw: &str) -> Result<McpServer, ApiError> {
    let server = match raw.parse::<ServerId>() {
        Ok(id) => state.stores.servers.get(p.org_id, id).await?,
        Err(_) => state.stores.servers.get_by_name(p.org_id, raw).await?,
    };
    server
        .filter(|s| p.namespace.is_none_or(|ns| s.namespace_id == Some(ns)))
        .ok_or_else(not_found)
}

/// A namespace the server may be placed in: one of the caller's organization, and the
/// caller's own when its credential is confined to one.
async fn check_namespace(
    state: &AppState,
    p: &Principal,
    namespace: Option<NamespaceId>,
) -> Result<(), ApiError> {
    if let Some(confined) = p.namespace
        && namespace != Some(confined)
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("this credential is confined to namespace {confined}"),
        ));
    }
    if let Some(ns) = namespace
        && state.stores.namespaces.get(p.org_id, ns).await?.is_none()
    {
        return Err(ApiError::new(
            ErrorCode::Validation,
            "namespace_id: no such namespace in this organization",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    offset: Option<u32>,
    limit: Option<u32>,
    namespace_id: Option<NamespaceId>,
    protocol: Option<ServerProtocol>,
    status: Option<ServerStatus>,
    tag: Option<String>,
    source: Option<RecordSource>,
    search: Option<String>,
}

/// `GET /gateway/servers`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    who: Authenticated,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersRead)?;
    let q = q.into_inner();
    let d = Page::default();
    let page = Page {
        offset: q.offset.unwrap_or(d.offset),
        limit: q.limit.unwrap_or(d.limit).clamp(1, Page::MAX_LIMIT),
    };
    if let (Some(confined), Some(asked)) = (p.namespace, q.namespace_id)
        && confined != asked
    {
        return Ok(HttpResponse::Ok().json(serde_json::json!({ "items": [], "total": 0 })));
    }
    let filter = ServerFilter {
        namespace_id: p.namespace.or(q.namespace_id),
        protocol: q.protocol,
        status: q.status,
        tag: q.tag,
        source: q.source,
        search: q.search.filter(|s| !s.is_empty()),
    };
    let found = state.stores.servers.list(p.org_id, filter, page).await?;
    let items: Vec<ServerView> = found
        .items
        .into_iter()
        .map(|s| ServerView::new(&state, s))
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "items": items, "total": found.total })))
}

/// `POST /gateway/servers`.
pub(crate) async fn create(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersWrite)?;
    let mut draft = Draft::create(body.into_inner());
    if draft.namespace_id.is_none() {
        draft.namespace_id = p.namespace;
    }
    let mut problems = Vec::new();
    draft.problems(&mut problems);
    check(problems)?;
    check_namespace(&state, p, draft.namespace_id).await?;

    let new = new_server(&state, &draft, RecordSource::Api)?;
    let server = state
        .stores
        .servers
        .create(p.org_id, new)
        .await
        .map_err(|e| match e {
            StoreError::LimitReached { limit, .. } => ApiError::new(
                ErrorCode::Conflict,
                format!(
                    "the organization has reached its limit of {limit} servers (max_servers); delete one or raise the limit"
                ),
            ),
            other => other.into(),
        })?;
    state.servers.invalidate(p.org_id, server.id);
    tracing::info!(
        org.id = %p.org_id,
        server.id = %server.id,
        server.name = %server.name,
        server.protocol = %server.protocol,
        "server registered"
    );
    let view = ServerView::new(&state, server);
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::SERVER_CREATE, audit::actor(p))
            .target("server", view_id(&view))
            .after(summary(&view))
            .context(&ctx.0),
    );
    Ok(HttpResponse::Created().json(view))
}

/// The record to insert for a validated draft: secrets sealed, metadata with the session mode.
pub(crate) fn new_server(
    state: &AppState,
    draft: &Draft,
    source: RecordSource,
) -> Result<NewMcpServer, ApiError> {
    let environment = seal_change(
        state,
        &draft.environment,
        Environment::is_empty,
        environment_document,
    )?;
    let credentials = seal_change(
        state,
        &draft.credentials,
        CredentialsInput::is_empty,
        CredentialsInput::document,
    )?;
    Ok(NewMcpServer {
        namespace_id: draft.namespace_id,
        name: draft.name.clone(),
        description: draft.description.clone(),
        protocol: draft.protocol,
        url: draft.url.clone(),
        command: draft.command.clone(),
        args: draft.args.clone(),
        environment: environment.flatten(),
        credentials: credentials.flatten(),
        working_dir: draft.working_dir.clone(),
        timeout_seconds: to_i32(draft.timeout_seconds)?,
        max_retries: to_i32(draft.max_retries)?,
        status: draft.status,
        health_check_url: draft.health_check_url.clone(),
        tags: draft.tags.clone(),
        metadata: stored_metadata(draft),
        source,
    })
}

/// `GET /gateway/servers/{id}` (id or name).
pub(crate) async fn get(
    state: web::Data<AppState>,
    who: Authenticated,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersRead)?;
    let server = find(&state, p, &id).await?;
    Ok(HttpResponse::Ok().json(ServerView::new(&state, server)))
}

/// `PUT /gateway/servers/{id}` (id or name): changes the fields the body names.
pub(crate) async fn update(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersWrite)?;
    let current = find(&state, p, &id).await?;
    if current.source == RecordSource::Config {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this server is declared in configuration; change it there",
        ));
    }
    let mut problems = Vec::new();
    let draft = Draft::update(&current, body.into_inner(), &mut problems);
    draft.problems(&mut problems);
    check(problems)?;
    if draft.namespace_id != current.namespace_id {
        check_namespace(&state, p, draft.namespace_id).await?;
    }
    let environment = seal_change(
        &state,
        &draft.environment,
        Environment::is_empty,
        environment_document,
    )?;
    let credentials = seal_change(
        &state,
        &draft.credentials,
        CredentialsInput::is_empty,
        CredentialsInput::document,
    )?;
    let patch = McpServerPatch {
        namespace_id: Some(draft.namespace_id),
        name: Some(draft.name.clone()),
        description: Some(draft.description.clone()),
        protocol: Some(draft.protocol),
        url: Some(draft.url.clone()),
        command: Some(draft.command.clone()),
        args: Some(draft.args.clone()),
        environment,
        credentials,
        working_dir: Some(draft.working_dir.clone()),
        timeout_seconds: Some(to_i32(draft.timeout_seconds)?),
        max_retries: Some(to_i32(draft.max_retries)?),
        status: draft.status_given.then_some(draft.status),
        health_check_url: Some(draft.health_check_url.clone()),
        tags: Some(draft.tags.clone()),
        metadata: Some(stored_metadata(&draft)),
    };
    let server = state.stores.servers.update(p.org_id, current.id, patch).await;
    state.servers.invalidate(p.org_id, current.id);
    let server = server?;
    tracing::info!(
        org.id = %p.org_id,
        server.id = %server.id,
        server.name = %server.name,
        "server updated"
    );
    // Live sessions run on the old definition: end them (stdio processes stop).
    state.hub.drop_server(current.id);
    let before = ServerView::new(&state, current);
    let view = ServerView::new(&state, server);
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::SERVER_UPDATE, audit::actor(p))
            .target("server", view_id(&view))
            .before(summary(&before))
            .after(summary(&view))
            .context(&ctx.0),
    );
    Ok(HttpResponse::Ok().json(view))
}

/// `DELETE /gateway/servers/{id}` (id or name).
pub(crate) async fn delete(
    state: web::Data<AppState>,
    who: Authenticated,
    ctx: ClientContext,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let p = who.require(Permission::ServersWrite)?;
    let current = find(&state, p, &id).await?;
    if current.source == RecordSource::Config {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this server is declared in configuration; remove it there",
        ));
    }
    let result = state.stores.servers.delete(p.org_id, current.id).await;
    state.servers.invalidate(p.org_id, current.id);
    result?;
    tracing::info!(
        org.id = %p.org_id,
        server.id = %current.id,
        server.name = %current.name,
        "server deleted"
    );
    // Unregistered: every session on it ends and its processes are stopped.
    state.hub.drop_server(current.id);
    let before = ServerView::new(&state, current);
    state.auditor.record(
        p.org_id,
        AuditEvent::new(actions::SERVER_DELETE, audit::actor(p))
            .target("server", view_id(&before))
            .before(summary(&before))
            .context(&ctx.0),
    );
    Ok(HttpResponse::NoContent().finish())
}

/// An audit summary of a server: its public view (never its environment or credentials).
pub(crate) fn summary(view: &ServerView) -> serde_json::Value {
    serde_json::to_value(view).unwrap_or(serde_json::Value::Null)
}

fn view_id(view: &ServerView) -> String {
    summary(view)
        .get("id")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["everything", "a", "github-prod", "fs_local2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            "",
            "Everything",
            "1abc",
            "-x",
            "has space",
            "dot.ted",
            "ümlaut",
            "abcdef01-2345-6789-abcd-ef0123456789",
            &"a".repeat(65),
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn urls() {
        assert!(check_url("https://mcp.example.com/mcp", &["http", "https"]).is_ok());
        assert!(check_url("wss://mcp.example.com/ws", &["ws", "wss"]).is_ok());
        for (bad, why) in [
            ("mcp.example.com/mcp", "absolute http:// or https:// URL"),
            ("ftp://x.example", "absolute http:// or https:// URL"),
            ("https://user:pw@x.example/", "must not carry credentials"),
        ] {
            let err = check_url(bad, &["http", "https"]).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(
            check_url("https://x.example/mcp", &["ws", "wss"])
                .unwrap_err()
                .contains("ws:// or wss://")
        );
    }

    fn secret(s: &str) -> SecretText {
        SecretText(SecretString::from(s))
    }

    #[test]
    fn secret_values_that_are_not_strings_are_not_echoed() {
        let err =
            serde_json::from_value::<CredentialsInput>(serde_json::json!({"bearer_token": 987_654_321}))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
        assert!(err.contains("must be strings"), "{err}");
        assert!(!err.contains("987654321"), "{err}");
        let env: Environment = serde_json::from_value(serde_json::json!({"A": "x"})).unwrap();
        assert_eq!(env["A"].expose_secret(), "x");
    }

    #[test]
    fn credential_problems_never_show_values() {
        let creds = CredentialsInput {
            headers: [
                ("X-Key".to_owned(), secret("bad\nvalue-s3cret")),
                ("Host".to_owned(), secret("ok")),
                ("Authorization".to_owned(), secret("Basic abc")),
            ]
            .into(),
            bearer_token: Some(secret("two words-s3cret")),
        };
        let mut problems = Vec::new();
        credentials_problems(&creds, &mut problems);
        let text = problems.join("; ");
        assert!(!text.contains("s3cret"), "{text}");
        for want in [
            "credentials.headers.X-Key: the value",
            "credentials.headers.Host: is set by the gateway",
            "credentials.bearer_token",
            "not both",
        ] {
            assert!(text.contains(want), "missing {want} in {text}");
        }
    }
}
