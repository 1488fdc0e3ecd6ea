//! Envoy's admin API and HAProxy's stats, read-only, on loopback: clusters and host health,
//! circuit-breaker thresholds, the counters that matter (requests, 429s, retries,
//! overflows) sampled every second, HAProxy's read-pool backends — and a bounded burst
//! through Envoy's proxy port to show the rate limit at work. The control plane never
//! proxies anything to the admin endpoints.
//!
//! On a swarm neither admin endpoint is published (Swarm publishes a port on every address
//! of a node, and these must stay on 127.0.0.1): the same figures come from Prometheus,
//! which scrapes Envoy's `/stats/prometheus` and HAProxy's `/metrics` over the overlay
//! ([`Gateway::scraped_through`]). What only the admin API has — circuit-breaker
//! thresholds, host addresses, the running config — is then reported as unavailable.
use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use app::{
    api::{BurstResult, EnvoyCluster, GatewayPoint, GatewayView, HaproxyRow, Principal, Role},
    backend::GatewayApi,
    error::AppError,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    alerts::http_client,
    state::{require, Act, Services},
};

#[derive(Clone, Debug)]
pub struct Endpoints {
    pub envoy_admin: String,
    pub envoy_proxy: String,
    pub haproxy_stats: String,
}

impl Endpoints {
    pub fn new(e: &crate::config::EndpointsConfig) -> Self {
        let trim = |u: &str| u.trim_end_matches('/').to_string();
        Self { envoy_admin: trim(&e.envoy_admin), envoy_proxy: trim(&e.envoy_proxy), haproxy_stats: e.haproxy_stats.clone() }
    }
}

impl Default for Endpoints {
    /// The dev stack's, from the config's defaults.
    fn default() -> Self {
        Self::new(&Default::default())
    }
}

pub const RATE_LIMITED: &str = "http_local_rate_limiter.http_local_rate_limit.rate_limited";
const REQUESTS: &str = "http.ingress_http.downstream_rq_total";
const RETRIES: &str = "cluster.control_plane.upstream_rq_retry";
const RETRY_OVERFLOW: &str = "cluster.control_plane.upstream_rq_retry_overflow";
/// Counters shown on the page.
const COUNTERS: &[&str] = &[
    REQUESTS,
    "http.ingress_http.downstream_rq_2xx",
    "http.ingress_http.downstream_rq_4xx",
    "http.ingress_http.downstream_rq_5xx",
    RATE_LIMITED,
    "cluster.control_plane.upstream_rq_total",
    RETRIES,
    "cluster.control_plane.upstream_rq_retry_success",
    RETRY_OVERFLOW,
    "cluster.control_plane.upstream_cx_overflow",
    "cluster.control_plane.upstream_rq_pending_overflow",
    "cluster.control_plane.health_check.healthy",
    "cluster.control_plane.health_check.failure",
];
/// The most requests one burst test may send.
pub const MAX_BURST: u32 = 200;
const HISTORY: usize = 900;

pub struct Gateway {
    http: reqwest::Client,
    ep: Endpoints,
    history: Mutex<VecDeque<GatewayPoint>>,
    /// The `envoy-upstream-fail` drill's fault, applied by this process's container-facing
    /// listener (Envoy's upstream).
    pub upstream: UpstreamFault,
    /// Swarm mode: Envoy's and HAProxy's figures as Prometheus last scraped them.
    scraped: Option<crate::prometheus::Prometheus>,
}

/// Why a swarm shows less of Envoy than one engine does.
pub const ADMIN_NOT_PUBLISHED: &str = "Envoy's admin API is not published on a swarm (it must stay on 127.0.0.1, and Swarm publishes on every address of a node): counters, readiness and host health come from Prometheus's scrape; circuit-breaker thresholds, host addresses and the running config are read by `bss-control verify` from inside the overlay";

/// The stats read on a swarm (through Prometheus), beside the page's counters.
const SCRAPED_EXTRA: &[&str] = &["server.state", "cluster.control_plane.ssl.handshake", "cluster.control_plane.membership_healthy", "cluster.control_plane.membership_total"];

/// Envoy's `/stats` name as Prometheus stores it after scraping `/stats/prometheus`: the
/// metric and the labels Envoy's tag extraction takes out of the name.
pub fn scraped_name(stat: &str) -> Option<(String, Vec<(&'static str, String)>)> {
    if stat == RATE_LIMITED {
        return Some(("envoy_http_local_rate_limit_rate_limited".into(), vec![("envoy_local_http_ratelimit_prefix", "http_local_rate_limiter".into())]));
    }
    if let Some(rest) = stat.strip_prefix("server.") {
        return Some((format!("envoy_server_{}", rest.replace('.', "_")), vec![]));
    }
    let (kind, label, rest) = if let Some(r) = stat.strip_prefix("http.") {
        ("http", "envoy_http_conn_manager_prefix", r)
    } else if let Some(r) = stat.strip_prefix("cluster.") {
        ("cluster", "envoy_cluster_name", r)
    } else {
        return None;
    };
    let (tag, name) = rest.split_once('.')?;
    let mut labels = vec![(label, tag.to_string())];
    // downstream_rq_2xx → downstream_rq_xx{envoy_response_code_class="2"}
    let name = match name.strip_suffix("xx").and_then(|n| n.char_indices().last().filter(|(_, c)| c.is_ascii_digit()).map(|(i, c)| (&n[..i], c))) {
        Some((prefix, class)) => {
            labels.push(("envoy_response_code_class", class.to_string()));
            format!("{prefix}xx")
        }
        None => name.to_string(),
    };
    Some((format!("envoy_{kind}_{}", name.replace('.', "_")), labels))
}

/// The value of `stat` among samples of one query (`__name__` kept).
fn scraped_value(samples: &[crate::prometheus::Sample], stat: &str) -> Option<u64> {
    let (metric, want) = scraped_name(stat)?;
    samples
        .iter()
        .find(|s| s.label("__name__") == Some(metric.as_str()) && want.iter().all(|(k, v)| s.label(k) == Some(v.as_str())))
        .map(|s| s.value as u64)
}

/// HAProxy's servers from its Prometheus exporter's series (`haproxy_server_status` and
/// `haproxy_server_check_status` are state sets: the state whose value is 1).
pub fn haproxy_rows_from_samples(samples: &[crate::prometheus::Sample]) -> Vec<HaproxyRow> {
    let label = |s: &crate::prometheus::Sample, k: &str| s.label(k).unwrap_or_default().to_string();
    let mut rows: std::collections::BTreeMap<(String, String), HaproxyRow> = Default::default();
    for s in samples {
        let key = (label(s, "proxy"), label(s, "server"));
        let row = rows.entry(key.clone()).or_insert_with(|| HaproxyRow { proxy: key.0, server: key.1, status: String::new(), sessions: 0, total: 0, check: String::new() });
        match label(s, "__name__").as_str() {
            "haproxy_server_status" if s.value == 1.0 => row.status = label(s, "state"),
            "haproxy_server_check_status" if s.value == 1.0 => row.check = label(s, "state"),
            "haproxy_server_current_sessions" => row.sessions = s.value as u64,
            "haproxy_server_sessions_total" => row.total = s.value as u64,
            _ => {}
        }
    }
    rows.into_values().collect()
}

/// A fault in Envoy's path for the drills: while it is in, the container-facing listener
/// answers every BSS API request with 503, as a failing application would; its `/healthz`
/// stays up, so Envoy's health check keeps the host in rotation and its retry policy (not
/// host ejection) is what the clients meet. Only the process that serves the listener can
/// apply it.
#[derive(Default)]
pub struct UpstreamFault {
    serving: AtomicBool,
    failing: AtomicBool,
}

impl UpstreamFault {
    /// Called by the container-facing listener when it is bound, and when it stops.
    pub fn set_serving(&self, on: bool) {
        self.serving.store(on, Ordering::SeqCst);
    }

    /// Whether this process serves the container-facing listener (Envoy's upstream and
    /// Prometheus' `bss-control` target).
    pub fn serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
    }

    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::SeqCst)
    }

    /// Makes the listener fail the BSS API; refused when this process does not serve it
    /// (the fault would change nothing Envoy sees).
    pub fn fail(&self) -> Result<(), GatewayError> {
        if !self.serving.load(Ordering::SeqCst) {
            return Err(GatewayError::Unavailable(
                "this process does not serve the container-facing listener (server.stack_listen is off, or another bss-control holds its port): Envoy's upstream is not its to fail".into(),
            ));
        }
        self.failing.store(true, Ordering::SeqCst);
        Ok(())
    }

    pub fn heal(&self) {
        self.failing.store(false, Ordering::SeqCst);
    }
}

/// One stat of a `/stats` read, by name.
fn stat(stats: &[(String, u64)], name: &str) -> Result<u64, GatewayError> {
    stats.iter().find(|(n, _)| n == name).map(|x| x.1).ok_or_else(|| GatewayError::Unavailable(format!("Envoy has no stat {name}")))
}

/// Parses `name: value` lines of Envoy's `/stats` (counters and gauges; histograms skipped).
pub fn parse_stats(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|l| l.rsplit_once(": "))
        .filter_map(|(k, v)| v.trim().parse::<u64>().ok().map(|v| (k.trim().to_string(), v)))
        .collect()
}

/// The standbys of HAProxy's PostgreSQL read pool (`pg_replicas`), without its frontend
/// and backend summary rows.
pub fn read_pool_servers(rows: Vec<HaproxyRow>) -> impl Iterator<Item = HaproxyRow> {
    rows.into_iter().filter(|r| r.proxy == "pg_replicas" && r.server != "BACKEND" && r.server != "FRONTEND")
}

/// HAProxy's `;csv` stats: the `# pxname,svname,…` header names the columns.
pub fn parse_haproxy_csv(text: &str) -> Result<Vec<HaproxyRow>, GatewayError> {
    let mut lines = text.lines();
    let header = lines.next().and_then(|h| h.strip_prefix("# ")).ok_or_else(|| GatewayError::Unavailable("HAProxy stats: no CSV header".into()))?;
    let cols: Vec<&str> = header.split(',').collect();
    let idx = |name: &str| cols.iter().position(|c| *c == name).ok_or_else(|| GatewayError::Unavailable(format!("HAProxy stats: no column {name}")));
    let (px, sv, st, scur, stot, chk) = (idx("pxname")?, idx("svname")?, idx("status")?, idx("scur")?, idx("stot")?, idx("check_status")?);
    Ok(lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let g = |i: usize| f.get(i).copied().unwrap_or_default().to_string();
            HaproxyRow {
                proxy: g(px),
                server: g(sv),
                status: g(st),
                sessions: g(scur).parse().unwrap_or(0),
                total: g(stot).parse().unwrap_or(0),
                check: g(chk),
            }
        })
        .collect())
}

/// Envoy's `/clusters?format=json` → each cluster's hosts with their health and its DEFAULT
/// priority's circuit-breaker thresholds (with what `stats` says remains).
pub fn clusters(v: &Value, stats: &[(String, u64)]) -> Vec<EnvoyCluster> {
    v["cluster_statuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let hosts = c["host_statuses"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|h| {
                    let a = &h["address"]["socket_address"];
                    let addr = format!("{}:{}", a["address"].as_str().unwrap_or("?"), a["port_value"]);
                    let hs = &h["health_status"];
                    let failed: Vec<&str> = hs
                        .as_object()
                        .into_iter()
                        .flatten()
                        .filter(|(k, v)| k.starts_with("failed") && v.as_bool() == Some(true))
                        .map(|(k, _)| k.as_str())
                        .collect();
                    let health = if failed.is_empty() { hs["eds_health_status"].as_str().unwrap_or("UNKNOWN").to_string() } else { format!("UNHEALTHY ({})", failed.join(", ")) };
                    (addr, health)
                })
                .collect();
            // The DEFAULT priority is the entry without "priority".
            let t = c["circuit_breakers"]["thresholds"].as_array().and_then(|a| a.iter().find(|t| t.get("priority").is_none())).cloned().unwrap_or(Value::Null);
            let remaining = |k: &str| stats.iter().find(|(n, _)| n == &format!("cluster.{name}.circuit_breakers.default.{k}")).map(|x| x.1);
            let breakers = [("max_connections", "remaining_cx"), ("max_pending_requests", "remaining_pending"), ("max_requests", "remaining_rq"), ("max_retries", "remaining_retries")]
                .iter()
                .filter_map(|(k, r)| t.get(*k).and_then(Value::as_u64).map(|max| (k.to_string(), max, remaining(r))))
                .collect();
            EnvoyCluster { name, hosts, breakers }
        })
        .collect()
}

/// Why a gateway call failed: the request was wrong, or Envoy/HAProxy did not answer.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

impl Gateway {
    pub fn new(ep: Endpoints) -> Self {
        Self { http: http_client(), ep, history: Mutex::new(VecDeque::new()), upstream: UpstreamFault::default(), scraped: None }
    }

    /// Reads Envoy's and HAProxy's figures from `prometheus` instead of their admin
    /// endpoints (swarm mode: those are never published).
    pub fn scraped_through(self, prometheus: crate::prometheus::Prometheus) -> Self {
        Self { scraped: Some(prometheus), ..self }
    }

    /// Whether the figures come from Prometheus's scrape (a swarm) rather than the admin API.
    pub fn scraped(&self) -> bool {
        self.scraped.is_some()
    }

    /// One query for every Envoy series this module reads, and Envoy's scrape health.
    async fn scraped_envoy(&self, p: &crate::prometheus::Prometheus) -> Result<Vec<crate::prometheus::Sample>, GatewayError> {
        let names: Vec<String> = COUNTERS.iter().chain(SCRAPED_EXTRA).filter_map(|s| scraped_name(s)).map(|(m, _)| m).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        let q = format!("{{job=\"envoy\",__name__=~\"up|{}\"}}", names.join("|"));
        let samples = p.query(&q).await.map_err(|e| GatewayError::Unavailable(format!("Prometheus: {e}")))?;
        let up = samples.iter().find(|s| s.label("__name__") == Some("up")).map(|s| s.value);
        match up {
            Some(v) if v == 1.0 => Ok(samples),
            Some(_) => Err(GatewayError::Unavailable("Prometheus's last scrape of Envoy's /stats/prometheus failed".into())),
            None => Err(GatewayError::Unavailable("Prometheus has no scrape of Envoy (job envoy)".into())),
        }
    }

    /// With this HTTP client instead (swarm mode: one that follows the stack's tasks).
    pub fn with_http(self, http: reqwest::Client) -> Self {
        Self { http, ..self }
    }

    /// One GET of `path` through Envoy's proxy port, as a client of the BSS API makes it
    /// (with `cookie`, the session, in shared mode): its status and how long it took, or
    /// `None` when nothing came back within `timeout` (a hang, or no connection).
    pub async fn through_proxy(&self, path: &str, cookie: Option<&str>, timeout: Duration) -> (Option<u16>, Duration) {
        let t = Instant::now();
        let mut req = self.http.get(format!("{}{path}", self.ep.envoy_proxy)).timeout(timeout);
        if let Some(c) = cookie {
            req = req.header(reqwest::header::COOKIE, c);
        }
        let status = match req.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                Some(s)
            }
            Err(_) => None,
        };
        (status, t.elapsed())
    }

    async fn text(&self, url: &str) -> Result<String, GatewayError> {
        let fail = |e: String| GatewayError::Unavailable(format!("GET {url}: {e}"));
        let r = self.http.get(url).send().await.map_err(|e| fail(e.to_string()))?;
        let status = r.status();
        let body = r.text().await.map_err(|e| fail(e.to_string()))?;
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}: {}", body.trim())));
        }
        Ok(body)
    }

    pub async fn stats(&self) -> Result<Vec<(String, u64)>, GatewayError> {
        if let Some(p) = &self.scraped {
            let samples = self.scraped_envoy(p).await?;
            return Ok(COUNTERS.iter().chain(SCRAPED_EXTRA).filter_map(|s| scraped_value(&samples, s).map(|v| (s.to_string(), v))).collect());
        }
        Ok(parse_stats(&self.text(&format!("{}/stats", self.ep.envoy_admin)).await?))
    }

    pub async fn counter(&self, name: &str) -> Result<u64, GatewayError> {
        stat(&self.stats().await?, name)
    }

    /// The `control_plane` cluster's retry counters, from one read of the stats: (retries,
    /// retries refused by the circuit breaker's `max_retries`).
    pub async fn retry_counters(&self) -> Result<(u64, u64), GatewayError> {
        let stats = self.stats().await?;
        Ok((stat(&stats, RETRIES)?, stat(&stats, RETRY_OVERFLOW).unwrap_or(0)))
    }

    /// Envoy's running configuration (read-only admin endpoint).
    pub async fn config_dump(&self) -> Result<String, GatewayError> {
        if self.scraped.is_some() {
            return Err(GatewayError::Unavailable(ADMIN_NOT_PUBLISHED.into()));
        }
        self.text(&format!("{}/config_dump", self.ep.envoy_admin)).await
    }

    pub async fn haproxy(&self) -> Result<Vec<HaproxyRow>, GatewayError> {
        if let Some(p) = &self.scraped {
            let q = "{job=\"haproxy\",__name__=~\"haproxy_server_(status|check_status|current_sessions|sessions_total)\"}";
            let rows = haproxy_rows_from_samples(&p.query(q).await.map_err(|e| GatewayError::Unavailable(format!("Prometheus: {e}")))?);
            if rows.is_empty() {
                return Err(GatewayError::Unavailable("Prometheus has no series of HAProxy's servers (job haproxy)".into()));
            }
            return Ok(rows);
        }
        parse_haproxy_csv(&self.text(&self.ep.haproxy_stats).await?)
    }

    pub async fn view(&self) -> GatewayView {
        if self.scraped.is_some() {
            return self.scraped_view().await;
        }
        let admin = &self.ep.envoy_admin;
        let (ready_url, clusters_url) = (format!("{admin}/ready"), format!("{admin}/clusters?format=json"));
        let (ready, stats, cl, hap) = tokio::join!(self.text(&ready_url), self.stats(), self.text(&clusters_url), self.haproxy());
        let mut errors = vec![];
        let stats = stats.map_err(|e| errors.push(format!("Envoy stats: {e}"))).unwrap_or_default();
        let clusters = match cl.map_err(|e| e.to_string()).and_then(|t| serde_json::from_str::<Value>(&t).map_err(|e| e.to_string())) {
            Ok(v) => clusters(&v, &stats),
            Err(e) => {
                errors.push(format!("Envoy clusters: {e}"));
                vec![]
            }
        };
        let haproxy = hap.map_err(|e| errors.push(format!("HAProxy stats: {e}"))).unwrap_or_default();
        let ready = match ready {
            Ok(t) => Some(t.trim().to_string()),
            Err(e) => {
                errors.push(format!("Envoy ready: {e}"));
                None
            }
        };
        GatewayView {
            envoy_ready: ready,
            clusters,
            counters: COUNTERS.iter().filter_map(|c| stats.iter().find(|(n, _)| n == c).cloned()).collect(),
            history: self.history.lock().unwrap().iter().cloned().collect(),
            haproxy,
            errors,
        }
    }

    /// The page's view from Prometheus's scrape: readiness from `server.state`, each
    /// cluster's healthy and total hosts (no addresses, no thresholds: see
    /// [`ADMIN_NOT_PUBLISHED`]).
    async fn scraped_view(&self) -> GatewayView {
        let mut errors = vec![ADMIN_NOT_PUBLISHED.to_string()];
        let (stats, hap) = tokio::join!(self.stats(), self.haproxy());
        let stats = stats.map_err(|e| errors.push(format!("Envoy: {e}"))).unwrap_or_default();
        let haproxy = hap.map_err(|e| errors.push(format!("HAProxy: {e}"))).unwrap_or_default();
        let get = |n: &str| stats.iter().find(|(k, _)| k == n).map(|x| x.1);
        let envoy_ready = get("server.state").map(|v| ["LIVE", "DRAINING", "PRE_INITIALIZING", "INITIALIZING"].get(v as usize).copied().unwrap_or("UNKNOWN").to_string());
        let clusters = match (get("cluster.control_plane.membership_healthy"), get("cluster.control_plane.membership_total")) {
            (Some(healthy), Some(total)) => vec![EnvoyCluster {
                name: "control_plane".into(),
                hosts: (0..total).map(|i| ("(address: admin API only)".to_string(), if i < healthy { "HEALTHY" } else { "UNHEALTHY" }.to_string())).collect(),
                breakers: vec![],
            }],
            _ => vec![],
        };
        GatewayView {
            envoy_ready,
            clusters,
            counters: COUNTERS.iter().filter_map(|c| stats.iter().find(|(n, _)| n == c).cloned()).collect(),
            history: self.history.lock().unwrap().iter().cloned().collect(),
            haproxy,
            errors,
        }
    }

    /// Samples Envoy's counters every second (for the rate charts) until `cancel`.
    pub async fn run_sampler(self: std::sync::Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Ok(stats) = self.stats().await else { continue };
            let get = |n: &str| stat(&stats, n).unwrap_or(0);
            let p = GatewayPoint {
                at_ms: crate::streams::events::now_ms(),
                requests: get(REQUESTS),
                rate_limited: get(RATE_LIMITED),
                retries: get(RETRIES),
                overflows: get("cluster.control_plane.upstream_cx_overflow") + get("cluster.control_plane.upstream_rq_pending_overflow"),
            };
            let mut h = self.history.lock().unwrap();
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(p);
        }
    }

    /// Sends `n` requests (≤ MAX_BURST) at once to Envoy's rate-limit probe route on
    /// loopback and counts 200 / 429 / other, with Envoy's own 429 counter before and after.
    pub async fn burst(&self, n: u32) -> Result<BurstResult, GatewayError> {
        if n == 0 || n > MAX_BURST {
            return Err(GatewayError::Invalid(format!("a burst is 1 to {MAX_BURST} requests, got {n}")));
        }
        let before = self.counter(RATE_LIMITED).await?;
        let url = format!("{}/ratelimit-probe", self.ep.envoy_proxy);
        let reqs = (0..n).map(|_| {
            let (http, url) = (self.http.clone(), url.clone());
            async move { http.get(&url).send().await.map(|r| r.status().as_u16()) }
        });
        let sent_at = std::time::Instant::now();
        let codes = futures_util::future::join_all(reqs).await;
        let span_ms = u64::try_from(sent_at.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut r = BurstResult { sent: n, passed: 0, limited: 0, other: 0, limited_counter_before: before, limited_counter_after: before, span_ms };
        for c in codes {
            match c {
                Ok(200) => r.passed += 1,
                Ok(429) => r.limited += 1,
                _ => r.other += 1,
            }
        }
        r.limited_counter_after = self.counter(RATE_LIMITED).await?;
        Ok(r)
    }
}

impl From<GatewayError> for AppError {
    fn from(e: GatewayError) -> Self {
        match e {
            GatewayError::Invalid(m) => AppError::Invalid(m),
            GatewayError::Unavailable(m) => AppError::Unavailable(m),
        }
    }
}

/// What the Gateway page asks of Envoy and HAProxy.
#[async_trait::async_trait]
impl GatewayApi for Services {
    async fn gateway_view(&self, who: &Principal) -> Result<GatewayView, AppError> {
        require(who, Role::Viewer, "reading the gateway")?;
        Ok(self.gateway.view().await)
    }

    async fn burst_test(&self, who: &Principal, requests: u32) -> Result<BurstResult, AppError> {
        let target = format!("{requests} requests");
        let act = Act { role: Role::Operator, what: "running a burst test", lock: "envoy", verb: "burst test", audit: "gateway.burst", target: &target };
        self.guarded(who, act, |_guard| async move { Ok(self.gateway.burst(requests).await?) }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `token_bucket` in a parsed YAML tree.
    fn token_buckets(v: &serde_yaml::Value, out: &mut Vec<serde_yaml::Value>) {
        match v {
            serde_yaml::Value::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() == Some("token_bucket") {
                        out.push(v.clone());
                    }
                    token_buckets(v, out);
                }
            }
            serde_yaml::Value::Sequence(s) => s.iter().for_each(|v| token_buckets(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_burst_bound_is_the_bucket_envoy_is_given() {
        // The rate-limit checks judge a burst by BUCKET_TOKENS and REFILL_MS; if the
        // gateway's config changed and they did not, every verdict would be wrong.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../dev/envoy/envoy.yaml");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut buckets = vec![];
        token_buckets(&yaml, &mut buckets);
        assert_eq!(buckets.len(), 1, "one local rate limit in {}", path.display());
        let b = &buckets[0];
        assert_eq!(b["max_tokens"].as_u64(), Some(u64::from(app::api::BUCKET_TOKENS)));
        assert_eq!(b["tokens_per_fill"].as_u64(), Some(1));
        let fill = b["fill_interval"].as_str().and_then(|s| s.strip_suffix('s')).and_then(|s| s.parse::<f64>().ok()).unwrap();
        assert_eq!((fill * 1000.0).round() as u64, app::api::REFILL_MS);
        // The seed's figure: 100 requests a minute, a burst of 10.
        assert_eq!(60_000 / app::api::REFILL_MS, 100);
        assert_eq!(app::api::BUCKET_TOKENS, 10);
    }

    #[test]
    fn stat_names_as_prometheus_stores_them() {
        // As seen on Envoy 1.x's /stats/prometheus beside /stats.
        let n = |s: &str| scraped_name(s).map(|(m, l)| (m, l.into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",")));
        assert_eq!(n(RATE_LIMITED), Some(("envoy_http_local_rate_limit_rate_limited".into(), "envoy_local_http_ratelimit_prefix=http_local_rate_limiter".into())));
        assert_eq!(n(REQUESTS), Some(("envoy_http_downstream_rq_total".into(), "envoy_http_conn_manager_prefix=ingress_http".into())));
        assert_eq!(
            n("http.ingress_http.downstream_rq_5xx"),
            Some(("envoy_http_downstream_rq_xx".into(), "envoy_http_conn_manager_prefix=ingress_http,envoy_response_code_class=5".into()))
        );
        assert_eq!(n("cluster.control_plane.ssl.handshake"), Some(("envoy_cluster_ssl_handshake".into(), "envoy_cluster_name=control_plane".into())));
        assert_eq!(n("cluster.control_plane.health_check.healthy"), Some(("envoy_cluster_health_check_healthy".into(), "envoy_cluster_name=control_plane".into())));
        assert_eq!(n("server.state"), Some(("envoy_server_state".into(), String::new())));
        assert_eq!(n("listener.x"), None);
        // Every counter of the page has a name there.
        assert!(COUNTERS.iter().chain(SCRAPED_EXTRA).all(|c| scraped_name(c).is_some()));
        let sample = |name: &str, labels: &[(&str, &str)], value: f64| crate::prometheus::Sample {
            labels: std::iter::once(("__name__".to_string(), name.to_string())).chain(labels.iter().map(|(k, v)| (k.to_string(), v.to_string()))).collect(),
            value,
        };
        let samples = vec![
            sample("envoy_http_downstream_rq_xx", &[("envoy_response_code_class", "2"), ("envoy_http_conn_manager_prefix", "ingress_http")], 7.0),
            sample("envoy_http_downstream_rq_xx", &[("envoy_response_code_class", "4"), ("envoy_http_conn_manager_prefix", "ingress_http")], 3.0),
            sample("envoy_http_downstream_rq_xx", &[("envoy_response_code_class", "4"), ("envoy_http_conn_manager_prefix", "admin")], 9.0),
        ];
        assert_eq!(scraped_value(&samples, "http.ingress_http.downstream_rq_4xx"), Some(3));
        assert_eq!(scraped_value(&samples, "http.ingress_http.downstream_rq_2xx"), Some(7));
        assert_eq!(scraped_value(&samples, "http.ingress_http.downstream_rq_5xx"), None);
        // HAProxy's state sets: the state whose value is 1.
        let hap = vec![
            sample("haproxy_server_status", &[("proxy", "pg_replicas"), ("server", "postgres-replica-1"), ("state", "DOWN")], 0.0),
            sample("haproxy_server_status", &[("proxy", "pg_replicas"), ("server", "postgres-replica-1"), ("state", "UP")], 1.0),
            sample("haproxy_server_check_status", &[("proxy", "pg_replicas"), ("server", "postgres-replica-1"), ("state", "L7OK")], 1.0),
            sample("haproxy_server_sessions_total", &[("proxy", "pg_replicas"), ("server", "postgres-replica-1")], 12.0),
            sample("haproxy_server_current_sessions", &[("proxy", "pg_replicas"), ("server", "postgres-replica-1")], 2.0),
            sample("haproxy_server_status", &[("proxy", "pg_replicas"), ("server", "postgres-replica-2"), ("state", "DOWN")], 1.0),
        ];
        let rows = haproxy_rows_from_samples(&hap);
        assert_eq!(rows[0], HaproxyRow { proxy: "pg_replicas".into(), server: "postgres-replica-1".into(), status: "UP".into(), sessions: 2, total: 12, check: "L7OK".into() });
        assert_eq!((rows[1].server.as_str(), rows[1].status.as_str()), ("postgres-replica-2", "DOWN"));
    }

    #[test]
    fn envoy_stats_lines() {
        let s = parse_stats("a.b: 3\nc: 10\ncluster.x.upstream_rq_time: P0(nan,1) P25(nan,2)\n");
        assert_eq!(s, vec![("a.b".to_string(), 3), ("c".to_string(), 10)]);
    }

    #[test]
    fn haproxy_csv_by_header() {
        let csv = "# pxname,svname,qcur,scur,stot,status,check_status\npg,FRONTEND,,1,5,OPEN,\npg,r1,0,2,9,UP,L7OK\n";
        let rows = parse_haproxy_csv(csv).unwrap();
        assert_eq!(rows[1], HaproxyRow { proxy: "pg".into(), server: "r1".into(), status: "UP".into(), sessions: 2, total: 9, check: "L7OK".into() });
        assert!(parse_haproxy_csv("pxname\n").unwrap_err().to_string().contains("header"));
        assert!(parse_haproxy_csv("# pxname,svname\n").unwrap_err().to_string().contains("status"));
    }

    #[test]
    fn cluster_breakers_and_health() {
        let v: Value = serde_json::from_str(r#"{"cluster_statuses":[{"name":"cp","host_statuses":[{"address":{"socket_address":{"address":"1.2.3.4","port_value":3000}},
            "health_status":{"failed_active_health_check":true,"eds_health_status":"HEALTHY"}}],
            "circuit_breakers":{"thresholds":[{"max_connections":100,"max_pending_requests":100,"max_requests":1000,"max_retries":3},{"priority":"HIGH","max_connections":1024}]}}]}"#).unwrap();
        let c = clusters(&v, &[("cluster.cp.circuit_breakers.default.remaining_cx".into(), 97)]);
        assert_eq!(c[0].hosts[0], ("1.2.3.4:3000".into(), "UNHEALTHY (failed_active_health_check)".into()));
        assert_eq!(c[0].breakers[0], ("max_connections".into(), 100, Some(97)));
        assert_eq!(c[0].breakers[3], ("max_retries".into(), 3, None));
    }
}
