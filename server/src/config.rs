//! Typed configuration: one TOML file, then environment overrides, validated at start.
//!
//! Unknown keys are errors that name the key (serde `deny_unknown_fields`), so a typo never
//! silently falls back to a default.
use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
};

use app::api::Guarantee;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for environment variable {key}={value:?}: {message}")]
    Env { key: String, value: String, message: String },
    #[error("unknown environment variable {key}: known BSS_ variables are {known}")]
    UnknownEnv { key: String, known: String },
    #[error("invalid config: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub docker: DockerConfig,
    pub stack: StackConfig,
    pub runtime: RuntimeConfig,
    pub auth: AuthConfig,
    pub log: LogConfig,
    pub streams: StreamsConfig,
    pub postgres: PostgresConfig,
    pub endpoints: EndpointsConfig,
    pub verify: VerifyConfig,
}

/// The stack's PostgreSQL as the control plane reaches it (defaults: `dev/compose.yml` on
/// loopback, with its dev-only password). URLs carry credentials: `bss-control config`
/// prints them masked.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresConfig {
    /// The primary: writes and transactions.
    pub primary: String,
    /// The hot standbys, in order: reads.
    pub replicas: Vec<NamedUrl>,
    /// HAProxy's round-robin read pool over the standbys.
    pub read_pool: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NamedUrl {
    pub name: String,
    pub url: String,
}

const DEV_PG: &str = "postgres://postgres:bss-dev-postgres@127.0.0.1";

impl Default for PostgresConfig {
    fn default() -> Self {
        let url = |port: u16| format!("{DEV_PG}:{port}/bss");
        Self {
            primary: url(5432),
            replicas: (1..=2).map(|i| NamedUrl { name: format!("postgres-replica-{i}"), url: url(5432 + i) }).collect(),
            read_pool: url(5435),
        }
    }
}

/// The HTTP endpoints of the stack's services (loopback; the browser never reaches them).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointsConfig {
    pub alertmanager: String,
    pub prometheus: String,
    /// The local notification sink (SMTP + webhooks) AlertManager delivers to.
    pub sink: String,
    pub envoy_admin: String,
    pub envoy_proxy: String,
    /// HAProxy's stats page as CSV.
    pub haproxy_stats: String,
    pub node_exporter: String,
    pub postgres_exporter: String,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        let at = |port: u16| format!("http://127.0.0.1:{port}");
        Self {
            alertmanager: at(9093),
            prometheus: at(9090),
            sink: at(8025),
            envoy_admin: at(15000),
            envoy_proxy: at(15006),
            haproxy_stats: format!("{}/stats;csv", at(8084)),
            node_exporter: at(9100),
            postgres_exporter: at(9187),
        }
    }
}

impl EndpointsConfig {
    /// The swarm backend's defaults: each reader left at its engine default (loopback)
    /// names its compose service instead, which the readers' HTTP client resolves to the
    /// node the service's task runs on (`runtime::follow`), so it follows a moved task.
    /// Envoy's admin and HAProxy's stats stay on loopback: a swarm never publishes them.
    pub fn on_swarm(&mut self) {
        let d = Self::default();
        for (field, default, service) in [
            (&mut self.alertmanager, &d.alertmanager, "alertmanager"),
            (&mut self.prometheus, &d.prometheus, "prometheus"),
            (&mut self.sink, &d.sink, "bss-sink"),
            (&mut self.envoy_proxy, &d.envoy_proxy, "envoy"),
            (&mut self.node_exporter, &d.node_exporter, "node-exporter"),
            (&mut self.postgres_exporter, &d.postgres_exporter, "postgres-exporter"),
        ] {
            if field == default {
                *field = default.replacen("127.0.0.1", service, 1);
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerifyConfig {
    /// How long the replication-lag check samples, e.g. "30s".
    pub lag_window: String,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self { lag_window: "30s".into() }
    }
}

/// `scheme://user:secret@host…` → `scheme://user:***@host…`.
pub fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Kafka bootstrap servers (the stack's brokers as published on loopback).
    pub brokers: String,
    /// Start both processors when the server starts.
    pub autostart: bool,
    /// Tumbling window of the customer analytics tallies, e.g. "60s".
    pub window: String,
    /// Every processor's delivery guarantee: "at_least_once" or "exactly_once" (Kafka
    /// transactions, Kafka Streams' exactly_once_v2).
    pub guarantee: Guarantee,
    /// Per processor, over `guarantee`: `bss-order-processor = "exactly_once"`.
    pub guarantees: std::collections::BTreeMap<String, Guarantee>,
}

impl StreamsConfig {
    /// The processors a `[streams.guarantees]` key may name.
    pub const PROCESSORS: [&'static str; 2] = ["bss-customer-analytics", "bss-order-processor"];

    pub fn guarantee_of(&self, processor: &str) -> Guarantee {
        self.guarantees.get(processor).copied().unwrap_or(self.guarantee)
    }
}

impl Default for StreamsConfig {
    fn default() -> Self {
        Self { brokers: "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9095".into(), autostart: true, window: "60s".into(), guarantee: Guarantee::AtLeastOnce, guarantees: Default::default() }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Sign-in required? Unset: off on a loopback address (local mode), on elsewhere.
    /// Off on a non-loopback address is refused at start.
    pub enabled: Option<bool>,
    /// How long a session lasts, e.g. "12h".
    pub session_ttl: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self { enabled: None, session_ttl: "12h".into() }
    }
}

impl Config {
    /// The effective configuration as `bss-control config` prints it: passwords masked.
    pub fn redacted(&self) -> String {
        let mut c = self.clone();
        c.postgres.primary = mask_url(&c.postgres.primary);
        c.postgres.read_pool = mask_url(&c.postgres.read_pool);
        for r in &mut c.postgres.replicas {
            r.url = mask_url(&r.url);
        }
        format!("{c:#?}")
    }

    /// Whether sign-in is required, or why this configuration may not start.
    pub fn auth_required(&self) -> Result<bool, ConfigError> {
        let loopback = self.server.listen.ip().is_loopback();
        match (self.auth.enabled, loopback) {
            (Some(false), false) => Err(ConfigError::Invalid(format!(
                "refusing to serve on {} with sign-in disabled: the panel drives Docker (root on this host). \
                 Bind to 127.0.0.1 or set auth.enabled = true (BSS_AUTH=on)",
                self.server.listen
            ))),
            (Some(e), _) => Ok(e),
            (None, loopback) => Ok(!loopback),
        }
    }
}

/// Where the stack runs: containers on one engine, or services on a Docker Swarm whose
/// manager `docker.host` names.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Engine,
    Swarm,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub backend: Backend,
    /// Swarm only: the address tasks reach the control plane at, used for the compose
    /// files' `host-gateway` (a swarm task has none of its own).
    pub swarm_host_gateway: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StackConfig {
    /// Compose files, later ones override earlier ones (relative to the working directory).
    pub compose: Vec<PathBuf>,
    /// Prefix of every container, network and volume the product creates.
    pub project: String,
    /// How often the healer compares the engine with the compose model, e.g. "10s".
    pub heal_interval: String,
}

impl Default for StackConfig {
    fn default() -> Self {
        Self { compose: vec![PathBuf::from("dev/compose.yml")], project: "bss".into(), heal_interval: "10s".into() }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the web UI listens on. Loopback by default.
    pub listen: SocketAddr,
    /// Where cargo-leptos put the site (wasm, js, css, public assets).
    pub site_root: PathBuf,
    /// Host names this panel answers to (the `Host` header, port ignored), besides the
    /// loopback names in local mode. A request for any other name is refused (421): a DNS
    /// rebinding page cannot drive a local-mode panel. Empty in shared mode: any name (the
    /// session cookie is bound to the name it was set for). `BSS_ALLOWED_HOSTS=a,b`.
    pub allowed_hosts: Vec<String>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (the sign-in lockout and
    /// the audit log key on it). From anyone else the header is ignored, so a client cannot
    /// pick its own address. `BSS_TRUSTED_PROXIES=127.0.0.1,::1`.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The container-facing listener: the BSS API, `/healthz` and `/metrics` only, for the
    /// traffic the stack sends to the control plane (Envoy's upstream, Prometheus' scrape).
    /// `auto` (default) binds the Docker host-gateway address (what `host.docker.internal`
    /// resolves to in the containers) on port 3001, once the engine answers; `auto:PORT`,
    /// an explicit `IP:PORT` (not a wildcard), or `off`. `BSS_STACK_LISTEN`.
    pub stack_listen: String,
}

/// [`ServerConfig::stack_listen`], parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackListen {
    Off,
    /// The engine's host-gateway address, this port.
    Auto(u16),
    Addr(SocketAddr),
}

impl std::str::FromStr for StackListen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "off" => Ok(Self::Off),
            "auto" => Ok(Self::Auto(3001)),
            a => match a.strip_prefix("auto:") {
                Some(port) => port.parse().map(Self::Auto).map_err(|e| format!("auto:{port}: {e}")),
                None => {
                    let addr: SocketAddr = a.parse().map_err(|e| format!("{a:?}: {e} (expected auto, auto:PORT, IP:PORT or off)"))?;
                    if addr.ip().is_unspecified() {
                        return Err(format!("{a}: a wildcard address would offer the API to other hosts; name the Docker gateway address"));
                    }
                    Ok(Self::Addr(addr))
                }
            },
        }
    }
}

impl ServerConfig {
    pub fn stack_listen(&self) -> StackListen {
        self.stack_listen.parse().unwrap_or(StackListen::Off)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// SQLite file for the product's own state; created with its directory if missing.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DockerConfig {
    /// `unix:///path/docker.sock` or `tcp://127.0.0.1:2375`; `None` means `DOCKER_HOST`,
    /// then `/var/run/docker.sock`.
    pub host: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: ([127, 0, 0, 1], 3000).into(),
            site_root: PathBuf::from("target/site"),
            allowed_hosts: vec![],
            trusted_proxies: vec![],
            stack_listen: "auto".into(),
        }
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        let base = std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(|| PathBuf::from("."));
        Self { path: base.join("bss-control").join("state.db") }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, filter: "info,server=debug,librdkafka=off,rdkafka::client=off".into() }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            server: ServerConfig::default(),
            store: StoreConfig::default(),
            docker: DockerConfig::default(),
            stack: StackConfig::default(),
            runtime: RuntimeConfig::default(),
            auth: AuthConfig::default(),
            log: LogConfig::default(),
            streams: StreamsConfig::default(),
            postgres: PostgresConfig::default(),
            endpoints: EndpointsConfig::default(),
            verify: VerifyConfig::default(),
        }
    }
}

/// Environment variables that override file settings.
const ENV_KEYS: &[&str] = &[
    "BSS_LISTEN",
    "BSS_SITE_ROOT",
    "BSS_STORE_PATH",
    "BSS_COMPOSE",
    "BSS_PROJECT",
    "BSS_RUNTIME_BACKEND",
    "BSS_SWARM_HOST_GATEWAY",
    "BSS_AUTH",
    "BSS_LOG_FORMAT",
    "BSS_LOG",
    "BSS_KAFKA_BROKERS",
    "BSS_STREAMS_AUTOSTART",
    "BSS_STREAMS_GUARANTEE",
    "BSS_PG_PRIMARY",
    "BSS_PG_REPLICAS",
    "BSS_PG_READ_POOL",
    "BSS_ALERTMANAGER_URL",
    "BSS_PROMETHEUS_URL",
    "BSS_SINK_URL",
    "BSS_ENVOY_ADMIN_URL",
    "BSS_ENVOY_PROXY_URL",
    "BSS_HAPROXY_STATS_URL",
    "BSS_NODE_EXPORTER_URL",
    "BSS_POSTGRES_EXPORTER_URL",
    "BSS_VERIFY_LAG_WINDOW",
    "BSS_ALLOWED_HOSTS",
    "BSS_TRUSTED_PROXIES",
    "BSS_STACK_LISTEN",
];
/// `BSS_` variables read elsewhere (scripts, CLI), accepted but not config keys.
const ENV_PASSTHROUGH: &[&str] = &["BSS_CONFIG", "BSS_CACHE", "BSS_TOOLS", "BSS_BIN", "BSS_CONTROL"];

impl Config {
    /// Parses a TOML document.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }

    /// File (if given or `bss-control.toml` exists in the working directory) + environment.
    pub fn load(file: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let default_file = Path::new("bss-control.toml");
        let mut cfg = match file.or_else(|| default_file.exists().then_some(default_file)) {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.into(), source })?;
                Self::from_toml(&text, path)?
            }
            None => Self::default(),
        };
        cfg.apply_env(env)?;
        if cfg.runtime.backend == Backend::Swarm {
            cfg.endpoints.on_swarm();
            // `auto` means the engine's host-gateway address; a swarm's tasks reach the
            // control plane at `runtime.swarm_host_gateway` instead.
            if let (Ok(StackListen::Auto(port)), Some(gw)) = (cfg.server.stack_listen.parse::<StackListen>(), &cfg.runtime.swarm_host_gateway) {
                cfg.server.stack_listen = format!("{gw}:{port}");
            }
            // HAProxy's read pool is not pinned to a host either: name the service.
            if cfg.postgres.read_pool == PostgresConfig::default().read_pool {
                cfg.postgres.read_pool = cfg.postgres.read_pool.replacen("@127.0.0.1:", "@haproxy:", 1);
            }
        }
        cfg.validate()?;
        Ok(cfg)
    }

    fn apply_env(&mut self, env: impl IntoIterator<Item = (String, String)>) -> Result<(), ConfigError> {
        let bad = |key: &str, value: &str, message: String| ConfigError::Env {
            key: key.into(),
            value: value.into(),
            message,
        };
        for (key, value) in env {
            match key.as_str() {
                "BSS_LISTEN" => {
                    self.server.listen = value.parse().map_err(|e| bad(&key, &value, format!("{e} (expected IP:PORT)")))?
                }
                "BSS_SITE_ROOT" => self.server.site_root = value.into(),
                "BSS_STACK_LISTEN" => self.server.stack_listen = value,
                "BSS_STORE_PATH" => self.store.path = value.into(),
                "BSS_LOG_FORMAT" => {
                    self.log.format = match value.as_str() {
                        "text" => LogFormat::Text,
                        "json" => LogFormat::Json,
                        _ => return Err(bad(&key, &value, "expected text or json".into())),
                    }
                }
                "BSS_LOG" => self.log.filter = value,
                // Comma-separated, e.g. dev/compose.yml,dev/compose.offline.yml
                "BSS_COMPOSE" => self.stack.compose = value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(PathBuf::from).collect(),
                "BSS_PROJECT" => self.stack.project = value,
                "BSS_RUNTIME_BACKEND" => {
                    self.runtime.backend = match value.as_str() {
                        "engine" => Backend::Engine,
                        "swarm" => Backend::Swarm,
                        _ => return Err(bad(&key, &value, "expected engine or swarm".into())),
                    }
                }
                "BSS_SWARM_HOST_GATEWAY" => {
                    value.parse::<std::net::IpAddr>().map_err(|_| bad(&key, &value, "expected an IP address".into()))?;
                    self.runtime.swarm_host_gateway = Some(value)
                }
                "BSS_KAFKA_BROKERS" => self.streams.brokers = value,
                "BSS_PG_PRIMARY" => self.postgres.primary = value,
                "BSS_PG_READ_POOL" => self.postgres.read_pool = value,
                // name=url,name=url
                "BSS_PG_REPLICAS" => {
                    self.postgres.replicas = value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|p| {
                            p.split_once('=')
                                .map(|(n, u)| NamedUrl { name: n.trim().into(), url: u.trim().into() })
                                .ok_or_else(|| bad(&key, &value, format!("{p:?} is not NAME=URL")))
                        })
                        .collect::<Result<_, _>>()?
                }
                "BSS_ALERTMANAGER_URL" => self.endpoints.alertmanager = value,
                "BSS_PROMETHEUS_URL" => self.endpoints.prometheus = value,
                "BSS_SINK_URL" => self.endpoints.sink = value,
                "BSS_ENVOY_ADMIN_URL" => self.endpoints.envoy_admin = value,
                "BSS_ENVOY_PROXY_URL" => self.endpoints.envoy_proxy = value,
                "BSS_HAPROXY_STATS_URL" => self.endpoints.haproxy_stats = value,
                "BSS_NODE_EXPORTER_URL" => self.endpoints.node_exporter = value,
                "BSS_POSTGRES_EXPORTER_URL" => self.endpoints.postgres_exporter = value,
                "BSS_VERIFY_LAG_WINDOW" => self.verify.lag_window = value,
                "BSS_TRUSTED_PROXIES" => {
                    self.server.trusted_proxies = value
                        .split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(|a| a.parse().map_err(|_| bad(&key, &value, format!("{a:?} is not an IP address"))))
                        .collect::<Result<_, _>>()?;
                }
                "BSS_ALLOWED_HOSTS" => {
                    self.server.allowed_hosts = value.split(',').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
                }
                "BSS_STREAMS_AUTOSTART" => {
                    self.streams.autostart = match value.as_str() {
                        "on" | "true" | "1" => true,
                        "off" | "false" | "0" => false,
                        _ => return Err(bad(&key, &value, "expected on or off".into())),
                    };
                }
                "BSS_STREAMS_GUARANTEE" => {
                    self.streams.guarantee = Guarantee::parse(&value).ok_or_else(|| bad(&key, &value, "expected at_least_once or exactly_once".into()))?;
                }
                "BSS_AUTH" => {
                    self.auth.enabled = match value.as_str() {
                        "on" | "true" | "1" => Some(true),
                        "off" | "false" | "0" => Some(false),
                        "auto" | "" => None,
                        _ => return Err(bad(&key, &value, "expected on, off or auto".into())),
                    }
                }
                "DOCKER_HOST" if self.docker.host.is_none() && !value.is_empty() => self.docker.host = Some(value),
                k if k.starts_with("BSS_") && !ENV_PASSTHROUGH.contains(&k) => {
                    return Err(ConfigError::UnknownEnv { key, known: ENV_KEYS.join(", ") })
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.store.path.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("store.path must not be empty".into()));
        }
        self.server.stack_listen.parse::<StackListen>().map_err(|e| ConfigError::Invalid(format!("server.stack_listen {e}")))?;
        if self.stack.compose.is_empty() {
            return Err(ConfigError::Invalid("stack.compose needs at least one file".into()));
        }
        if self.stack.project.is_empty() || !self.stack.project.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(ConfigError::Invalid(format!("stack.project {:?} must be letters, digits, - or _", self.stack.project)));
        }
        humantime::parse_duration(&self.auth.session_ttl)
            .map_err(|e| ConfigError::Invalid(format!("auth.session_ttl {:?}: {e}", self.auth.session_ttl)))?;
        self.auth_required()?;
        humantime::parse_duration(&self.stack.heal_interval)
            .map_err(|e| ConfigError::Invalid(format!("stack.heal_interval {:?}: {e}", self.stack.heal_interval)))?;
        let w = humantime::parse_duration(&self.streams.window)
            .map_err(|e| ConfigError::Invalid(format!("streams.window {:?}: {e}", self.streams.window)))?;
        if w.as_millis() == 0 {
            return Err(ConfigError::Invalid("streams.window must be positive".into()));
        }
        if let Some(unknown) = self.streams.guarantees.keys().find(|k| !StreamsConfig::PROCESSORS.contains(&k.as_str())) {
            return Err(ConfigError::Invalid(format!(
                "streams.guarantees names {unknown:?}, which is not a processor (known: {})",
                StreamsConfig::PROCESSORS.join(", ")
            )));
        }
        if self.streams.brokers.split(',').any(|b| b.trim().rsplit_once(':').is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())) {
            return Err(ConfigError::Invalid(format!("streams.brokers {:?} must be HOST:PORT[,HOST:PORT…]", self.streams.brokers)));
        }
        humantime::parse_duration(&self.verify.lag_window)
            .map_err(|e| ConfigError::Invalid(format!("verify.lag_window {:?}: {e}", self.verify.lag_window)))?;
        let pg = std::iter::once(("postgres.primary", &self.postgres.primary))
            .chain(std::iter::once(("postgres.read_pool", &self.postgres.read_pool)))
            .chain(self.postgres.replicas.iter().map(|r| ("postgres.replicas", &r.url)));
        for (key, url) in pg {
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid(format!("{key} {:?} must be a postgres:// URL", mask_url(url))));
            }
            url.parse::<sqlx::postgres::PgConnectOptions>()
                .map_err(|e| ConfigError::Invalid(format!("{key} {:?}: {e}", mask_url(url))))?;
        }
        if self.postgres.replicas.iter().any(|r| r.name.is_empty()) {
            return Err(ConfigError::Invalid("postgres.replicas: every replica needs a name".into()));
        }
        let e = &self.endpoints;
        for (key, url) in [
            ("alertmanager", &e.alertmanager),
            ("prometheus", &e.prometheus),
            ("sink", &e.sink),
            ("envoy_admin", &e.envoy_admin),
            ("envoy_proxy", &e.envoy_proxy),
            ("haproxy_stats", &e.haproxy_stats),
            ("node_exporter", &e.node_exporter),
            ("postgres_exporter", &e.postgres_exporter),
        ] {
            if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len() {
                return Err(ConfigError::Invalid(format!("endpoints.{key} {url:?} must be an http:// or https:// URL")));
            }
        }
        if let Some(h) = &self.docker.host {
            if !(h.starts_with("unix://") || h.starts_with("tcp://") || h.starts_with("http://")) {
                return Err(ConfigError::Invalid(format!(
                    "docker.host {h:?} must start with unix://, tcp:// or http://"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn empty_file_gives_loopback_defaults() {
        let c = Config::from_toml("", Path::new("x.toml")).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn the_container_listener_is_parsed_and_never_a_wildcard() {
        let p = |s: &str| s.parse::<StackListen>();
        assert_eq!(p("auto"), Ok(StackListen::Auto(3001)));
        assert_eq!(p("auto:4001"), Ok(StackListen::Auto(4001)));
        assert_eq!(p("off"), Ok(StackListen::Off));
        assert_eq!(p("172.17.0.1:3001"), Ok(StackListen::Addr("172.17.0.1:3001".parse().unwrap())));
        assert!(p("0.0.0.0:3001").unwrap_err().contains("wildcard"));
        assert!(p("[::]:3001").unwrap_err().contains("wildcard"));
        assert!(p("auto:x").is_err());
        let mut c = Config::default();
        c.apply_env(env(&[("BSS_STACK_LISTEN", "0.0.0.0:1")])).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("server.stack_listen"));
    }

    #[test]
    fn on_a_swarm_the_readers_name_the_stack_services_unless_set() {
        let c = Config::load(None, env(&[("BSS_RUNTIME_BACKEND", "swarm"), ("BSS_SWARM_HOST_GATEWAY", "10.0.0.1"), ("BSS_PROMETHEUS_URL", "http://10.0.0.9:9090")])).unwrap();
        assert_eq!(c.endpoints.alertmanager, "http://alertmanager:9093");
        assert_eq!(c.endpoints.sink, "http://bss-sink:8025");
        assert_eq!(c.endpoints.postgres_exporter, "http://postgres-exporter:9187");
        assert_eq!(c.endpoints.prometheus, "http://10.0.0.9:9090", "a set address is kept");
        assert_eq!(c.endpoints.envoy_admin, "http://127.0.0.1:15000", "never published on a swarm: stays on loopback");
        assert_eq!(c.postgres.read_pool, "postgres://postgres:bss-dev-postgres@haproxy:5435/bss", "HAProxy moves with its task");
        assert_eq!(c.postgres.primary, PostgresConfig::default().primary, "the primary is pinned: its address is the user's to give");
        assert_eq!(c.server.stack_listen, "10.0.0.1:3001", "auto: where the tasks reach the control plane");
        let kept = Config::load(None, env(&[("BSS_RUNTIME_BACKEND", "swarm"), ("BSS_STACK_LISTEN", "off")])).unwrap();
        assert_eq!(kept.server.stack_listen, "off");
        assert_eq!(Config::load(None, env(&[])).unwrap().endpoints, EndpointsConfig::default(), "the engine backend keeps loopback");
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let err = Config::from_toml("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", Path::new("c.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        assert!(err.contains("c.toml"), "{err}");
    }

    #[test]
    fn unknown_section_is_rejected_by_name() {
        let err = Config::from_toml("[dokcer]\nhost = \"x\"\n", Path::new("c.toml")).unwrap_err().to_string();
        assert!(err.contains("dokcer"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let mut c = Config::from_toml("[server]\nlisten = \"127.0.0.1:4000\"\n", Path::new("c")).unwrap();
        c.apply_env(env(&[("BSS_LISTEN", "127.0.0.1:5000"), ("BSS_STORE_PATH", "/tmp/s.db")])).unwrap();
        assert_eq!(c.server.listen.port(), 5000);
        assert_eq!(c.store.path, PathBuf::from("/tmp/s.db"));
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let mut c = Config::default();
        let err = c.apply_env(env(&[("BSS_LISTEN", "localhost")])).unwrap_err().to_string();
        assert!(err.contains("BSS_LISTEN"), "{err}");
    }

    #[test]
    fn unknown_bss_env_is_rejected() {
        let mut c = Config::default();
        let err = c.apply_env(env(&[("BSS_LISTN", "x")])).unwrap_err().to_string();
        assert!(err.contains("BSS_LISTN"), "{err}");
    }

    #[test]
    fn docker_host_from_env_unless_configured() {
        let mut c = Config::default();
        c.apply_env(env(&[("DOCKER_HOST", "unix:///tmp/d.sock")])).unwrap();
        assert_eq!(c.docker.host.as_deref(), Some("unix:///tmp/d.sock"));
        let mut c = Config::from_toml("[docker]\nhost = \"unix:///a.sock\"\n", Path::new("c")).unwrap();
        c.apply_env(env(&[("DOCKER_HOST", "unix:///b.sock")])).unwrap();
        assert_eq!(c.docker.host.as_deref(), Some("unix:///a.sock"));
    }

    #[test]
    fn compose_list_from_env() {
        let mut c = Config::default();
        c.apply_env(env(&[("BSS_COMPOSE", "a.yml, b.yml")])).unwrap();
        assert_eq!(c.stack.compose, vec![PathBuf::from("a.yml"), PathBuf::from("b.yml")]);
        c.stack.project = "bad name".into();
        assert!(c.validate().unwrap_err().to_string().contains("bad name"));
    }

    #[test]
    fn auth_is_off_on_loopback_on_elsewhere_and_off_elsewhere_is_refused() {
        let mut c = Config::default();
        assert_eq!(c.auth_required().unwrap(), false);
        c.apply_env(env(&[("BSS_LISTEN", "0.0.0.0:3000")])).unwrap();
        assert_eq!(c.auth_required().unwrap(), true);
        c.apply_env(env(&[("BSS_AUTH", "off")])).unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("refusing to serve on 0.0.0.0:3000"), "{e}");
        c.apply_env(env(&[("BSS_LISTEN", "127.0.0.1:3000"), ("BSS_AUTH", "on")])).unwrap();
        assert_eq!(c.auth_required().unwrap(), true);
    }

    #[test]
    fn stack_addresses_from_file_and_env_with_secrets_masked_in_print() {
        let mut c = Config::from_toml(
            "[postgres]\nprimary = \"postgres://app:s3cret@db.internal:6432/bss\"\n[endpoints]\nprometheus = \"http://prom:9090\"\n",
            Path::new("c"),
        )
        .unwrap();
        c.apply_env(env(&[("BSS_PG_REPLICAS", "r1=postgres://app:x@r1:5432/bss, r2=postgres://app:y@r2:5432/bss"), ("BSS_VERIFY_LAG_WINDOW", "5s")])).unwrap();
        c.validate().unwrap();
        assert_eq!(c.postgres.replicas.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
        assert_eq!(c.endpoints.prometheus, "http://prom:9090");
        let shown = c.redacted();
        assert!(!shown.contains("s3cret") && !shown.contains(":x@") && !shown.contains(":y@"), "{shown}");
        assert!(shown.contains("postgres://app:***@db.internal:6432/bss"), "{shown}");
        assert!(!format!("{:?}", Config::default().redacted()).contains("bss-dev-postgres"));
    }

    #[test]
    fn delivery_guarantee_for_all_and_per_processor() {
        let mut c = Config::from_toml("[streams]\nguarantee = \"exactly_once\"\n[streams.guarantees]\nbss-order-processor = \"at_least_once\"\n", Path::new("c")).unwrap();
        c.validate().unwrap();
        assert_eq!(c.streams.guarantee_of("bss-customer-analytics"), Guarantee::ExactlyOnce);
        assert_eq!(c.streams.guarantee_of("bss-order-processor"), Guarantee::AtLeastOnce);
        c.apply_env(env(&[("BSS_STREAMS_GUARANTEE", "at-least-once")])).unwrap();
        assert_eq!(c.streams.guarantee_of("bss-customer-analytics"), Guarantee::AtLeastOnce);
        assert!(c.apply_env(env(&[("BSS_STREAMS_GUARANTEE", "twice")])).unwrap_err().to_string().contains("exactly_once"));
        let typo = Config::from_toml("[streams.guarantees]\nbss-order-procesor = \"exactly_once\"\n", Path::new("c")).unwrap();
        assert!(typo.validate().unwrap_err().to_string().contains("bss-order-procesor"));
        assert!(Config::from_toml("[streams]\nguarantee = \"once\"\n", Path::new("c")).is_err());
    }

    #[test]
    fn bad_stack_addresses_are_refused_by_name() {
        let mut c = Config::default();
        c.apply_env(env(&[("BSS_PG_PRIMARY", "mysql://nope")])).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("postgres.primary"));
        let mut c = Config::default();
        assert!(c.apply_env(env(&[("BSS_PG_REPLICAS", "just-a-url")])).unwrap_err().to_string().contains("NAME=URL"));
        c.apply_env(env(&[("BSS_ENVOY_ADMIN_URL", "127.0.0.1:15000")])).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("endpoints.envoy_admin"));
        let mut c = Config::default();
        c.apply_env(env(&[("BSS_VERIFY_LAG_WINDOW", "soon")])).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("verify.lag_window"));
    }

    #[test]
    fn bad_docker_scheme_is_invalid() {
        let c = Config::from_toml("[docker]\nhost = \"/var/run/docker.sock\"\n", Path::new("c")).unwrap();
        assert!(c.validate().unwrap_err().to_string().contains("unix://"));
    }
}
