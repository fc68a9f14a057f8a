//! Loading the configuration.
//!
//! Layers, later wins (STYLE.md §5):
//! 1. `default.yaml`, 2. `<GATEWAY_ENV>.yaml` — both read from the configuration directory
//!    (`GATEWAY_CONFIG_DIR`, default `./config`) when it has them, otherwise the copies compiled
//!    into the binary, so the gateway starts from any working directory;
//! 3. the optional `--config FILE`;
//! 4. `GATEWAY__SECTION__KEY` environment variables (`GATEWAY__SERVER__PORT=9090`; lists are
//!    comma-separated: `GATEWAY__SERVER__CORS__ALLOWED_ORIGINS=https://a.example,https://b.example`).
//!
//! Every problem is reported at once with its key: type errors and unknown keys are found
//! key by key, then [`GatewayConfig::validate`] checks values. The process environment is read
//! only by [`LoadOptions::from_process`]; tests pass their own variables.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use config::{Config, File, FileFormat, Map, Source, Value, ValueKind};
use gateway_types::config::{ConfigErrors, ConfigIssue, Environment, GatewayConfig};

/// The `default.yaml` compiled into the binary.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../../config/default.yaml");
/// The `development.yaml` compiled into the binary.
pub const EMBEDDED_DEVELOPMENT: &str = include_str!("../../../config/development.yaml");
/// The `production.yaml` compiled into the binary.
pub const EMBEDDED_PRODUCTION: &str = include_str!("../../../config/production.yaml");

/// Errors of [`load`]: every problem found, each with its key.
pub type SettingsError = ConfigErrors;

/// Keys whose environment-variable form is a comma-separated list.
const LIST_KEYS: &[&str] = &["server.cors.allowed_origins", "server.trusted_proxies"];

/// Where the configuration comes from.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Value of `GATEWAY_ENV` (`None` = development).
    pub environment: Option<String>,
    /// Directory holding `default.yaml` and the per-environment files.
    pub config_dir: PathBuf,
    /// The `--config FILE` argument.
    pub config_file: Option<PathBuf>,
    /// Environment variables: those starting with `GATEWAY__` override keys; any of them may
    /// be named by `${NAME}` in the secrets of declared servers.
    pub env_vars: HashMap<String, String>,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Variable values may be secrets: names only.
        let mut names: Vec<&String> = self.env_vars.keys().collect();
        names.sort();
        f.debug_struct("LoadOptions")
            .field("environment", &self.environment)
            .field("config_dir", &self.config_dir)
            .field("config_file", &self.config_file)
            .field("env_vars", &names)
            .finish()
    }
}

impl LoadOptions {
    /// Options from this process: `GATEWAY_ENV`, `GATEWAY_CONFIG_DIR` and the environment
    /// (`GATEWAY__*` overrides, and the variables declared secrets may name).
    #[must_use]
    pub fn from_process(config_file: Option<PathBuf>) -> Self {
        let env_vars: HashMap<String, String> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Self {
            environment: std::env::var("GATEWAY_ENV").ok().filter(|v| !v.trim().is_empty()),
            config_dir: std::env::var_os("GATEWAY_CONFIG_DIR")
                .map_or_else(|| PathBuf::from("config"), PathBuf::from),
            config_file,
            env_vars,
        }
    }
}

/// Loads, merges and validates the configuration.
///
/// # Errors
/// Every problem found: unreadable files, unknown keys, wrong types, invalid values.
pub fn load(opts: LoadOptions) -> Result<GatewayConfig, SettingsError> {
    let environment = match opts.environment.as_deref().map(Environment::parse).transpose() {
        Ok(env) => env.unwrap_or_default(),
        Err(issue) => return Err(ConfigErrors(vec![issue])),
    };
    let mut issues = Vec::new();

    let default_yaml = layer_text(&opts.config_dir, "default.yaml", EMBEDDED_DEFAULT, &mut issues);
    let env_yaml = match environment {
        Environment::Development => EMBEDDED_DEVELOPMENT,
        Environment::Production => EMBEDDED_PRODUCTION,
    };
    let env_file = format!("{}.yaml", environment.as_str());
    let env_yaml = layer_text(&opts.config_dir, &env_file, env_yaml, &mut issues);
    let file_yaml = opts
        .config_file
        .as_ref()
        .and_then(|path| match std::fs::read_to_string(path) {
            Ok(text) => Some((path.display().to_string(), text)),
            Err(err) => {
                issues.push(ConfigIssue::new(
                    "--config",
                    format!("cannot read {}: {err}", path.display()),
                ));
                None
            }
        });

    let mut layers: Vec<(String, String)> = vec![("default.yaml".into(), default_yaml), (env_file, env_yaml)];
    layers.extend(file_yaml);

    let mut builder = Config::builder();
    for (name, text) in &layers {
        match Config::builder()
            .add_source(File::from_str(text, FileFormat::Yaml))
            .build()
        {
            Ok(_) => builder = builder.add_source(File::from_str(text, FileFormat::Yaml)),
            Err(err) => issues.push(ConfigIssue::new(name.clone(), format!("not valid YAML: {err}"))),
        }
    }
    let (scalars, lists) = split_env(&opts.env_vars);
    builder = builder.add_source(
        config::Environment::with_prefix("GATEWAY")
            .prefix_separator("__")
            .separator("__")
            .source(Some(scalars)),
    );
    for (key, items) in lists {
        builder = match builder.set_override(key.as_str(), items) {
            Ok(b) => b,
            Err(err) => return Err(ConfigErrors(vec![ConfigIssue::new(key, err.to_string())])),
        };
    }
    if !issues.is_empty() {
        return Err(ConfigErrors(issues));
    }

    let merged = builder
        .build()
        .map_err(|err| ConfigErrors(vec![ConfigIssue::new("environment", err.to_string())]))?;
    // Keys that do not fit the schema are reported, and the values of the others still checked:
    // every problem at once, not one per start.
    let (mut cfg, mut issues): (GatewayConfig, Vec<ConfigIssue>) = match merged.clone().try_deserialize() {
        Ok(cfg) => (cfg, Vec::new()),
        Err(_) => {
            let (issues, usable) = diagnose(&merged);
            match usable {
                Some(cfg) => (cfg, issues),
                None => return Err(ConfigErrors(issues)),
            }
        }
    };
    cfg.environment = environment;

    issues.extend(cfg.validate().err().map(|e| e.0).unwrap_or_default());
    issues.extend(policy_issues(&cfg.policies));
    issues.extend(crate::declarative::config_issues(
        &mut cfg.declarative,
        &opts.env_vars,
    ));
    // The limiter checks the rules' match values; the ranges it shares with `validate` are
    // reported once.
    for (key, message) in gateway_ratelimit::registry::config_issues(&cfg.rate_limit) {
        let issue = ConfigIssue::new(key, message);
        if !issues.iter().any(|i| i.key == issue.key) {
            issues.push(issue);
        }
    }
    // The keys themselves (base64 of 32 bytes) are checked by the sealer that will use them;
    // the shape checks it shares with `validate` are reported once.
    if let Err(errors) = gateway_auth::sealing::Sealer::from_config(&cfg.secrets) {
        for issue in errors.0 {
            if !issues.contains(&issue) {
                issues.push(issue);
            }
        }
    }
    if let Err(err) = crate::telemetry::filter(&cfg.logging.level) {
        issues.push(ConfigIssue::new(
            "logging.level",
            format!("not a valid log filter: {err}"),
        ));
    }
    if issues.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigErrors(issues))
    }
}

/// Every problem of the declared policy rules, keyed `policies.organizations.<slug>[i].<field>`.
fn policy_issues(cfg: &gateway_types::config::PoliciesConfig) -> Vec<ConfigIssue> {
    use gateway_auth::policy::{PolicyRule, PolicySnapshot};
    let mut issues = Vec::new();
    for (slug, docs) in &cfg.organizations {
        let mut rules = Vec::new();
        for (i, doc) in docs.iter().enumerate() {
            let key = format!("policies.organizations.{slug}[{i}]");
            match serde_json::from_value::<PolicyRule>(doc.clone()) {
                Ok(rule) => match rule.validate() {
                    Ok(()) => rules.push(rule),
                    Err(invalid) => issues.extend(
                        invalid
                            .problems
                            .into_iter()
                            .map(|p| ConfigIssue::new(format!("{key}.{}", p.path), p.message)),
                    ),
                },
                Err(err) => issues.push(ConfigIssue::new(key, err.to_string())),
            }
        }
        if issues.is_empty()
            && let Err(invalid) = PolicySnapshot::new(rules, gateway_auth::policy::Effect::Allow)
        {
            issues.extend(
                invalid.problems.into_iter().map(|p| {
                    ConfigIssue::new(format!("policies.organizations.{slug}.{}", p.path), p.message)
                }),
            );
        }
    }
    issues
}

/// The text of one YAML layer: the file in `dir` when present, else the embedded copy.
fn layer_text(dir: &Path, name: &str, embedded: &str, issues: &mut Vec<ConfigIssue>) -> String {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => embedded.to_owned(),
        Err(err) => {
            issues.push(ConfigIssue::new(
                name,
                format!("cannot read {}: {err}", path.display()),
            ));
            String::new()
        }
    }
}

/// `(key, items)` of list-valued environment variables.
type ListOverrides = Vec<(String, Vec<String>)>;

/// Splits `GATEWAY__*` variables into scalar ones (left to the config crate, which coerces
/// strings to the schema's types) and comma-separated lists (for the keys in [`LIST_KEYS`]).
fn split_env(vars: &HashMap<String, String>) -> (config::Map<String, String>, ListOverrides) {
    let mut scalars = config::Map::new();
    let mut lists = Vec::new();
    for (name, value) in vars {
        let Some(rest) = name
            .get("GATEWAY__".len()..)
            .filter(|_| name.to_ascii_uppercase().starts_with("GATEWAY__"))
        else {
            continue;
        };
        let key = rest.to_ascii_lowercase().replace("__", ".");
        if LIST_KEYS.contains(&key.as_str()) {
            let items = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            lists.push((key, items));
        } else {
            scalars.insert(name.clone(), value.clone());
        }
    }
    lists.sort();
    (scalars, lists)
}

/// Finds every key whose value does not fit the schema, by applying each leaf of the merged
/// configuration alone on top of the (valid) built-in defaults.
/// Also returns the configuration made of the built-in defaults and every fitting key, so the
/// values of those can still be validated.
fn diagnose(merged: &Config) -> (Vec<ConfigIssue>, Option<GatewayConfig>) {
    let mut leaves = Vec::new();
    if let Ok(table) = merged.collect() {
        flatten("", table, &mut leaves);
    }
    let mut issues = Vec::new();
    let mut usable = Config::builder().add_source(File::from_str(EMBEDDED_DEFAULT, FileFormat::Yaml));
    for (key, value) in leaves {
        let probe = Config::builder()
            .add_source(File::from_str(EMBEDDED_DEFAULT, FileFormat::Yaml))
            .set_override(key.as_str(), value.clone())
            .and_then(|b| b.build())
            .and_then(Config::try_deserialize::<GatewayConfig>);
        match probe {
            Err(err) => issues.push(ConfigIssue::new(key, clean_message(&err.to_string()))),
            Ok(_) => match usable.clone().set_override(key.as_str(), value) {
                Ok(b) => usable = b,
                Err(err) => issues.push(ConfigIssue::new(key, clean_message(&err.to_string()))),
            },
        }
    }
    if issues.is_empty() {
        issues.push(ConfigIssue::new(
            "(configuration)",
            "could not be read; check its structure",
        ));
    }
    let usable = usable
        .build()
        .ok()
        .and_then(|c| c.try_deserialize::<GatewayConfig>().ok());
    (issues, usable)
}

fn flatten(prefix: &str, table: Map<String, Value>, out: &mut Vec<(String, Value)>) {
    let mut entries: Vec<_> = table.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in entries {
        let key = if prefix.is_empty() {
            k
        } else {
            format!("{prefix}.{k}")
        };
        match v.kind {
            ValueKind::Table(t) if !t.is_empty() => flatten(&key, t, out),
            _ => out.push((key, v)),
        }
    }
}

/// The config crate appends " for key `x`" and sometimes a source; the key is reported separately.
fn clean_message(msg: &str) -> String {
    let msg = msg.split(" for key ").next().unwrap_or(msg);
    let msg = msg.split(" in ").next().unwrap_or(msg);
    msg.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn opts(env: Option<&str>, vars: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            environment: env.map(str::to_owned),
            // A directory without files: the embedded copies are used.
            config_dir: PathBuf::from("/nonexistent-config-dir"),
            config_file: None,
            env_vars: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn issue_keys(err: &SettingsError) -> Vec<&str> {
        err.0.iter().map(|i| i.key.as_str()).collect()
    }

    #[test]
    fn default_yaml_documents_exactly_the_built_in_defaults() {
        let cfg: GatewayConfig = Config::builder()
            .add_source(File::from_str(EMBEDDED_DEFAULT, FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        let def = GatewayConfig::default();
        // Debug covers every field (secrets print redacted, so they are compared explicitly).
        assert_eq!(format!("{cfg:?}"), format!("{def:?}"));
        assert_eq!(cfg.database.url.expose_secret(), def.database.url.expose_secret());
        assert_eq!(
            cfg.auth.jwt_secret.expose_secret(),
            def.auth.jwt_secret.expose_secret()
        );
        assert_eq!(cfg.redis.url.is_none(), def.redis.url.is_none());
        // Every key of the file is a key of the schema (deny_unknown_fields made it parse),
        // and every schema key is in the file:
        let text = EMBEDDED_DEFAULT;
        for key in [
            "host:",
            "port:",
            "workers:",
            "max_body_bytes:",
            "shutdown_timeout_seconds:",
            "keep_alive_seconds:",
            "client_request_timeout_seconds:",
            "allowed_origins:",
            "allow_credentials:",
            "max_age_seconds:",
            "url:",
            "max_connections:",
            "connect_timeout_seconds:",
            "acquire_timeout_seconds:",
            "statement_timeout_seconds:",
            "max_lifetime_seconds:",
            "sqlite_busy_timeout_ms:",
            "migrate_on_start:",
            "pool_size:",
            "timeout_ms:",
            "jwt_secret:",
            "previous_jwt_secrets:",
            "signing_keys:",
            "oidc_issuers:",
            "public_url:",
            "default_effect:",
            "reload_interval_seconds:",
            "organizations:",
            "jwt_issuer:",
            "jwt_audience:",
            "access_token_ttl_seconds:",
            "refresh_token_ttl_seconds:",
            "bcrypt_cost:",
            "max_failed_logins:",
            "max_failed_logins_per_ip:",
            "failure_window_seconds:",
            "lockout_seconds:",
            "level:",
            "format:",
            "enabled:",
            "key_id:",
            "master_key:",
            "previous_keys:",
        ] {
            assert!(text.contains(key), "default.yaml does not document {key}");
        }
    }

    #[test]
    fn loads_development_by_default() {
        let cfg = load(opts(None, &[])).unwrap();
        assert_eq!(cfg.environment, Environment::Development);
        assert_eq!(cfg.server.port, 8080);
        assert_eq!(
            cfg.auth.bcrypt_cost, 10,
            "development.yaml overrides default.yaml"
        );
    }

    #[test]
    fn environment_variables_override_files() {
        let cfg = load(opts(
            None,
            &[
                ("GATEWAY__SERVER__PORT", "9191"),
                ("GATEWAY__DATABASE__URL", "postgres://u:p@db:5432/gw"),
                (
                    "GATEWAY__SERVER__CORS__ALLOWED_ORIGINS",
                    "https://a.example,https://b.example",
                ),
                ("GATEWAY__AUTH__JWT_SECRET", "12345678901234567890123456789012345"),
            ],
        ))
        .unwrap();
        assert_eq!(cfg.server.port, 9191);
        assert_eq!(cfg.database.url.expose_secret(), "postgres://u:p@db:5432/gw");
        assert_eq!(
            cfg.server.cors.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(
            cfg.auth.jwt_secret.expose_secret(),
            "12345678901234567890123456789012345"
        );
    }

    #[test]
    fn rate_limits_and_trusted_proxies_from_the_environment() {
        let cfg = load(opts(
            None,
            &[
                ("GATEWAY__RATE_LIMIT__IP__LIMIT", "5"),
                ("GATEWAY__RATE_LIMIT__FAILURE_MODE", "closed"),
                ("GATEWAY__RATE_LIMIT__PLANS__FREE__WINDOW_SECONDS", "10"),
                ("GATEWAY__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,127.0.0.1"),
            ],
        ))
        .unwrap();
        let rl = &cfg.rate_limit;
        assert_eq!(
            rl.ip,
            Some(gateway_types::config::LimitConfig {
                limit: 5,
                window_seconds: 60
            }),
            "a null section set from the environment"
        );
        assert_eq!(
            rl.failure_mode,
            gateway_types::config::RateLimitFailureMode::Closed
        );
        assert_eq!(
            rl.plans.free.map(|q| (q.limit, q.window_seconds)),
            Some((1200, 10))
        );
        assert_eq!(cfg.server.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
    }

    #[test]
    fn rate_limit_rules_are_checked_by_the_limiter() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.yaml");
        std::fs::write(
            &file,
            "rate_limit:\n  rules:\n    - { name: ok, scope: tool, match: search, limit: 5 }\n    - { name: bad, scope: ip, match: 10.0.0.1/8, limit: 5 }\n    - { name: worse, scope: endpoint, match: servers, limit: 0 }\n",
        )
        .unwrap();
        let mut o = opts(None, &[("GATEWAY__SERVER__TRUSTED_PROXIES", "proxy.example")]);
        o.config_file = Some(file);
        let keys: Vec<String> = load(o).unwrap_err().0.into_iter().map(|i| i.key).collect();
        assert_eq!(
            keys,
            [
                "server.trusted_proxies[0]",
                "rate_limit.rules[2].limit",
                "rate_limit.rules[1].match",
                "rate_limit.rules[2].match",
            ]
        );
    }

    #[test]
    fn a_config_file_overrides_the_environment_profile_and_env_beats_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("extra.yaml");
        std::fs::write(&file, "server:\n  port: 7000\n  host: 0.0.0.0\n").unwrap();
        let mut o = opts(None, &[("GATEWAY__SERVER__PORT", "7001")]);
        o.config_file = Some(file);
        let cfg = load(o).unwrap();
        assert_eq!(cfg.server.host, "0.0.0.0");
        assert_eq!(cfg.server.port, 7001);
    }

    #[test]
    fn reads_files_from_the_config_directory_when_present() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.yaml"), EMBEDDED_DEFAULT).unwrap();
        std::fs::write(dir.path().join("development.yaml"), "server:\n  port: 6060\n").unwrap();
        let mut o = opts(None, &[]);
        o.config_dir = dir.path().to_owned();
        let err = load(o.clone()).unwrap_err();
        assert_eq!(
            issue_keys(&err),
            ["secrets.master_key"],
            "a development.yaml of one's own replaces the shipped one, development key included"
        );
        std::fs::write(
            dir.path().join("development.yaml"),
            format!(
                "server:\n  port: 6060\nsecrets:\n  master_key: {}\n",
                gateway_types::config::DEVELOPMENT_MASTER_KEY
            ),
        )
        .unwrap();
        assert_eq!(load(o).unwrap().server.port, 6060);
    }

    #[test]
    fn production_refuses_the_default_secret() {
        let err = load(opts(Some("production"), &[])).unwrap_err();
        assert!(issue_keys(&err).contains(&"auth.jwt_secret"), "{err}");
        let ok = load(opts(
            Some("production"),
            &[
                ("GATEWAY__AUTH__JWT_SECRET", &"k".repeat(40)),
                ("GATEWAY__SECRETS__MASTER_KEY", PROD_KEY),
            ],
        ))
        .unwrap();
        assert_eq!(ok.environment, Environment::Production);
        assert_eq!(ok.server.host, "0.0.0.0");
    }

    const PROD_KEY: &str = "cHJvZHVjdGlvbi1rZXktb2YtMzItYnl0ZXMtLS0tLS0=";

    #[test]
    fn development_ships_a_master_key_and_production_needs_its_own() {
        let dev = load(opts(None, &[])).unwrap();
        assert_eq!(
            dev.secrets
                .master_key
                .as_ref()
                .map(|k| k.expose_secret().to_owned()),
            Some(gateway_types::config::DEVELOPMENT_MASTER_KEY.to_owned())
        );
        assert_eq!(dev.secrets.key_id, "k1");

        let jwt = "k".repeat(40);
        let prod = |key: Option<&str>| {
            let mut vars = vec![("GATEWAY__AUTH__JWT_SECRET", jwt.as_str())];
            vars.extend(key.map(|k| ("GATEWAY__SECRETS__MASTER_KEY", k)));
            load(opts(Some("production"), &vars))
        };
        for (key, why) in [
            (None, "not set"),
            (
                Some(gateway_types::config::DEVELOPMENT_MASTER_KEY),
                "development key",
            ),
            (Some("c2hvcnQ="), "decodes to 5 bytes"),
            (Some("not base64!"), "not valid base64"),
        ] {
            let err = prod(key).unwrap_err();
            assert_eq!(issue_keys(&err), ["secrets.master_key"], "{err}");
            assert!(err.to_string().contains(why), "{err}");
            assert!(
                !err.to_string()
                    .contains(gateway_types::config::DEVELOPMENT_MASTER_KEY),
                "keys are never printed: {err}"
            );
        }
        prod(Some(PROD_KEY)).unwrap();
    }

    #[test]
    fn previous_keys_come_from_files_and_the_environment() {
        let cfg = load(opts(
            None,
            &[
                ("GATEWAY__SECRETS__KEY_ID", "k2"),
                ("GATEWAY__SECRETS__MASTER_KEY", PROD_KEY),
                (
                    "GATEWAY__SECRETS__PREVIOUS_KEYS__K1",
                    gateway_types::config::DEVELOPMENT_MASTER_KEY,
                ),
            ],
        ))
        .unwrap();
        assert_eq!(cfg.secrets.key_id, "k2");
        assert_eq!(cfg.secrets.previous_keys.keys().collect::<Vec<_>>(), ["k1"]);
        let sealer = gateway_auth::sealing::Sealer::from_config(&cfg.secrets).unwrap();
        assert_eq!(sealer.key_id(), "k2");

        let err = load(opts(
            None,
            &[
                ("GATEWAY__SECRETS__KEY_ID", "k1"),
                ("GATEWAY__SECRETS__PREVIOUS_KEYS__K1", "c2hvcnQ="),
                ("GATEWAY__SECRETS__PREVIOUS_KEYS__K0", PROD_KEY),
            ],
        ))
        .unwrap_err();
        let mut keys = issue_keys(&err);
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["secrets.previous_keys.k1", "secrets.previous_keys.k1"],
            "{err}"
        );
        assert!(err.to_string().contains("repeats secrets.key_id"), "{err}");
        assert!(err.to_string().contains("decodes to 5 bytes"), "{err}");
    }

    #[test]
    fn every_bad_key_is_reported_at_once() {
        let err = load(opts(
            None,
            &[
                ("GATEWAY__SERVER__PORT", "not-a-port"),
                ("GATEWAY__DATABASE__MAX_CONNECTIONS", "many"),
                ("GATEWAY__SERVER__PROT", "1"),
                ("GATEWAY__METRICS__ENABLED", "perhaps"),
            ],
        ))
        .unwrap_err();
        let keys = issue_keys(&err);
        for want in [
            "server.port",
            "database.max_connections",
            "server.prot",
            "metrics.enabled",
        ] {
            assert!(keys.contains(&want), "{want} missing from {err}");
        }
        assert_eq!(keys.len(), 4, "{err}");
    }

    #[test]
    fn type_errors_and_value_errors_are_reported_together() {
        let err = load(opts(
            None,
            &[
                ("GATEWAY__SERVER__PORT", "abc"),
                ("GATEWAY__DATABASE__URL", "mysql://x/y"),
            ],
        ))
        .unwrap_err();
        let mut keys = issue_keys(&err);
        keys.sort_unstable();
        assert_eq!(keys, ["database.url", "server.port"], "{err}");
    }

    #[test]
    fn invalid_values_are_reported_with_keys() {
        let err = load(opts(
            None,
            &[
                ("GATEWAY__DATABASE__URL", "mysql://x/y"),
                ("GATEWAY__LOGGING__LEVEL", "info,[[["),
            ],
        ))
        .unwrap_err();
        let keys = issue_keys(&err);
        assert!(keys.contains(&"database.url"), "{err}");
        assert!(keys.contains(&"logging.level"), "{err}");
    }

    #[test]
    fn declared_policies_are_validated_with_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("policies.yaml");
        std::fs::write(
            &file,
            "policies:\n  default_effect: deny\n  organizations:\n    acme:\n      - id: ok\n        name: ok\n        effect: allow\n        actions: [list, call]\n      - id: bad\n        name: bad\n        effect: deny\n        actions: [call]\n        conditions: { client_ips: [\"10.0.0.1/8\"] }\n",
        )
        .unwrap();
        let mut o = opts(None, &[]);
        o.config_file = Some(file.clone());
        let err = load(o).unwrap_err();
        assert_eq!(
            issue_keys(&err),
            ["policies.organizations.acme[1].conditions.client_ips[0]"],
            "{err}"
        );

        std::fs::write(
            &file,
            "policies:\n  default_effect: deny\n  organizations:\n    acme:\n      - id: ok\n        name: ok\n        effect: allow\n        actions: [list, call]\n",
        )
        .unwrap();
        let mut o = opts(None, &[]);
        o.config_file = Some(file);
        let cfg = load(o).unwrap();
        assert_eq!(
            cfg.policies.default_effect,
            gateway_types::config::PolicyDefault::Deny
        );
        assert_eq!(cfg.policies.organizations["acme"].len(), 1);
    }

    #[test]
    fn declared_servers_load_with_case_kept_and_secrets_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("declared.yaml");
        let yaml = r#"
declarative:
  organizations:
    acme:
      namespaces:
        - { slug: tools, name: Tools }
      servers:
        - name: everything
          namespace: tools
          protocol: stdio
          command: npx
          args: ["-y", "@modelcontextprotocol/server-everything"]
          environment: { API_TOKEN: "${EVERYTHING_TOKEN}", LogLevel: debug }
          timeout_seconds: 20
          tags: [demo]
          metadata: { owner: Platform }
"#;
        std::fs::write(&file, yaml).unwrap();
        let mut o = opts(None, &[("EVERYTHING_TOKEN", "tok-123")]);
        o.config_file = Some(file.clone());
        let cfg = load(o).unwrap();
        let org = &cfg.declarative.organizations["acme"];
        assert_eq!(org.namespaces[0].slug, "tools");
        let doc = &org.servers[0].0;
        assert_eq!(doc["environment"]["API_TOKEN"], "tok-123");
        assert_eq!(doc["environment"]["LogLevel"], "debug", "keys keep their case");
        assert_eq!(doc["timeout_seconds"], 20);
        assert_eq!(doc["metadata"]["owner"], "Platform");

        let mut o = opts(None, &[]);
        o.config_file = Some(file);
        let err = load(o).unwrap_err();
        assert_eq!(
            issue_keys(&err),
            ["declarative.organizations.acme.servers[0].environment.API_TOKEN"],
            "{err}"
        );
    }

    #[test]
    fn health_check_settings_are_validated() {
        let err = load(opts(
            None,
            &[
                ("GATEWAY__HEALTH_CHECKS__INTERVAL_SECONDS", "0"),
                ("GATEWAY__HEALTH_CHECKS__DEGRADED_AFTER", "4"),
                ("GATEWAY__HEALTH_CHECKS__DOWN_AFTER", "3"),
            ],
        ))
        .unwrap_err();
        assert_eq!(
            issue_keys(&err),
            ["health_checks.interval_seconds", "health_checks.down_after"],
            "{err}"
        );
        let cfg = load(opts(None, &[("GATEWAY__HEALTH_CHECKS__INTERVAL_SECONDS", "5")])).unwrap();
        assert_eq!(cfg.health_checks.interval_seconds, 5);
        assert_eq!(cfg.health_checks.down_after, 3);
    }

    #[test]
    fn unknown_environment_and_unreadable_file_are_errors() {
        let err = load(opts(Some("staging"), &[])).unwrap_err();
        assert_eq!(issue_keys(&err), ["GATEWAY_ENV"]);
        let mut o = opts(None, &[]);
        o.config_file = Some(PathBuf::from("/no/such/file.yaml"));
        assert_eq!(issue_keys(&load(o).unwrap_err()), ["--config"]);
    }

    #[test]
    fn broken_yaml_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, "server: [unclosed\n").unwrap();
        let mut o = opts(None, &[]);
        o.config_file = Some(file.clone());
        let err = load(o).unwrap_err();
        assert_eq!(issue_keys(&err), [file.display().to_string().as_str()]);
    }
}
