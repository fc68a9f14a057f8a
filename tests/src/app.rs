//! The real application, in-process, on a free port.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gateway_http::AppState;
use gateway_http::settings::{self, LoadOptions};
use gateway_store::test_support::TestDb;
use gateway_types::config::GatewayConfig;
use gateway_types::store::Stores;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long [`TestApp`] waits for `/health/live` to answer after starting.
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Poll interval while waiting for readiness.
const READY_POLL: Duration = Duration::from_millis(10);

type StoresHook = Box<dyn FnOnce(Stores) -> Stores + Send>;

/// Configures a [`TestApp`] before it starts.
pub struct TestAppBuilder {
    env_vars: HashMap<String, String>,
    environment: Option<String>,
    database_url: Option<String>,
    stores_hook: Option<StoresHook>,
    config_yaml: Option<String>,
}

impl std::fmt::Debug for TestAppBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestAppBuilder")
            .field("env_vars", &self.env_vars.keys().collect::<Vec<_>>())
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl TestAppBuilder {
    /// A `GATEWAY__SECTION__KEY` override, exactly as the binary would read it from its
    /// environment (the process environment is never touched).
    #[must_use]
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env_vars.insert(key.to_owned(), value.to_owned());
        self
    }

    /// `GATEWAY_ENV`.
    #[must_use]
    pub fn environment(mut self, name: &str) -> Self {
        self.environment = Some(name.to_owned());
        self
    }

    /// A YAML configuration layered as `--config FILE` (environment variables still win).
    #[must_use]
    pub fn config_yaml(mut self, yaml: &str) -> Self {
        self.config_yaml = Some(yaml.to_owned());
        self
    }

    /// Use this database (already migrated) instead of a fresh SQLite file.
    #[must_use]
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Replace or wrap stores after connecting (e.g. a store whose ping hangs).
    #[must_use]
    pub fn map_stores(mut self, hook: impl FnOnce(Stores) -> Stores + Send + 'static) -> Self {
        self.stores_hook = Some(Box::new(hook));
        self
    }

    /// Loads the configuration, migrates and connects the store, binds `127.0.0.1:0`, serves,
    /// and returns once `/health/live` answers.
    ///
    /// # Panics
    /// Any step fails: this is a test harness.
    pub async fn spawn(self) -> TestApp {
        let db = match self.database_url {
            Some(_) => None,
            None => Some(TestDb::sqlite().await),
        };
        let database_url = self
            .database_url
            .clone()
            .or_else(|| db.as_ref().map(|db| db.url().to_owned()))
            .expect("a database url");

        let mut env_vars = HashMap::from([
            ("GATEWAY__SERVER__HOST".to_owned(), "127.0.0.1".to_owned()),
            ("GATEWAY__SERVER__PORT".to_owned(), "0".to_owned()),
            ("GATEWAY__SERVER__WORKERS".to_owned(), "1".to_owned()),
            (
                "GATEWAY__SERVER__SHUTDOWN_TIMEOUT_SECONDS".to_owned(),
                "5".to_owned(),
            ),
            ("GATEWAY__DATABASE__URL".to_owned(), database_url),
            // Capability discovery connects to every registered server (starting stdio ones):
            // tests that want it turn it on (`.env("GATEWAY__DISCOVERY__ENABLED", "true")`).
            ("GATEWAY__DISCOVERY__ENABLED".to_owned(), "false".to_owned()),
        ]);
        env_vars.extend(self.env_vars);
        let config_dir = tempfile::tempdir().expect("temp dir");
        let config_file = self.config_yaml.map(|yaml| {
            let path = config_dir.path().join("extra.yaml");
            std::fs::write(&path, yaml).expect("write the test configuration");
            path
        });
        let config = settings::load(LoadOptions {
            environment: self.environment,
            // A directory without default.yaml or <env>.yaml: the built-in copies apply.
            config_dir: PathBuf::from(config_dir.path()),
            config_file,
            env_vars,
        })
        .unwrap_or_else(|problems| panic!("test configuration rejected: {problems}"));

        let mut stores = gateway_store::connect_all(&config.database, &config.redis)
            .await
            .expect("connect to the test store");
        if let Some(hook) = self.stores_hook {
            stores = hook(stores);
        }
        TestApp::start(config, stores, db).await
    }
}

/// A running gateway. Dropping it stops the server (the runtime drops the serving task).
#[derive(Debug)]
pub struct TestApp {
    /// The bound address.
    pub address: SocketAddr,
    /// The configuration it runs with.
    pub config: Arc<GatewayConfig>,
    /// A client that never uses a proxy and never follows redirects.
    pub client: reqwest::Client,
    /// The stores the app runs on (to arrange test data).
    pub stores: Stores,
    /// The application state the server runs with (shared handles: auditor, policies…).
    pub state: AppState,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    _db: Option<TestDb>,
}

impl TestApp {
    /// A gateway with the default configuration on a fresh, migrated SQLite store.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// Configure before spawning.
    #[must_use]
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            env_vars: HashMap::new(),
            environment: None,
            database_url: None,
            stores_hook: None,
            config_yaml: None,
        }
    }

    async fn start(config: GatewayConfig, stores: Stores, db: Option<TestDb>) -> Self {
        let config = Arc::new(config);
        let state = AppState::new(Arc::clone(&config), stores.clone()).expect("app state");
        let listener =
            TcpListener::bind((config.server.host.as_str(), config.server.port)).expect("bind 127.0.0.1:0");
        let address = listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel::<()>();
        let served = state.clone();
        let server = tokio::spawn(gateway_http::serve(listener, served, async move {
            let _ = stopped.await;
        }));
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("reqwest client");
        let app = Self {
            address,
            config,
            client,
            stores,
            state,
            stop: Some(stop),
            server: Some(server),
            _db: db,
        };
        app.wait_until_live().await;
        app
    }

    async fn wait_until_live(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(res) = self.client.get(self.url("/health/live")).send().await
                && res.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not answer /health/live within {READY_TIMEOUT:?}"
            );
            tokio::time::sleep(READY_POLL).await;
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// Waits until every audit event recorded so far is written (the auditor writes off the
    /// request path).
    ///
    /// # Panics
    /// The audit writer has stopped.
    pub async fn flush_audit(&self) {
        self.state.auditor.flush().await.expect("audit writer running");
    }

    /// Stops the server gracefully and returns what `serve` returned.
    pub async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.server.take() {
            Some(server) => server.await.expect("server task"),
            None => Ok(()),
        }
    }
}
