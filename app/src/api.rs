//! Types that cross the wire between server functions and the browser.
use serde::{Deserialize, Serialize};

/// What the control plane knows about the Docker engine it drives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// Where the product looked (DOCKER_HOST or the default socket).
    pub endpoint: String,
    /// `None` when the engine answered; the reason otherwise, fit to show a person.
    pub error: Option<String>,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub containers_running: u64,
    pub containers_total: u64,
    pub images: u64,
    /// Server clock when this snapshot was read (RFC 3339), so a refresh is visible.
    pub fetched_at: String,
}

impl EngineStatus {
    pub fn reachable(&self) -> bool {
        self.error.is_none()
    }
}

/// One compose service as the supervisor sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub service: String,
    pub container: String,
    pub image: String,
    /// `missing`, `created`, `running`, `exited`, `restarting`, `paused`, `dead`.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a health check.
    pub health: String,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub started_at: Option<String>,
    /// Seconds since start while running.
    pub uptime_secs: Option<u64>,
    pub ports: Vec<String>,
    pub depends_on: Vec<String>,
    /// A job that runs once (e.g. topic creation), not a long-running service.
    pub oneshot: bool,
}

impl ServiceStatus {
    /// `ok` / `warn` / `bad` / `idle`, for colouring.
    pub fn level(&self) -> &'static str {
        match (self.state.as_str(), self.health.as_str()) {
            ("running", "healthy" | "none") => "ok",
            ("exited", _) if self.oneshot && self.exit_code == Some(0) => "ok",
            ("running", "starting") | ("restarting", _) | ("created", _) => "warn",
            ("missing", _) => "idle",
            _ => "bad",
        }
    }
}

/// One thing that happened to the stack, for the live feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackEvent {
    pub at_ms: u64,
    pub service: String,
    pub kind: String,
    pub message: String,
}

/// An action running on the stack or a service (one at a time per target).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningAction {
    pub target: String,
    pub action: String,
    pub by: String,
    pub since_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackOverview {
    pub project: String,
    pub compose_files: Vec<String>,
    /// `None` when the stack is usable; otherwise why not (no engine, bad compose file).
    pub error: Option<String>,
    pub services: Vec<ServiceStatus>,
    /// Start order: each wave depends only on earlier waves.
    pub waves: Vec<Vec<String>>,
    pub running: Vec<RunningAction>,
    pub recent_events: Vec<StackEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StackVerb {
    Up,
    Down,
    Start,
    Stop,
    Restart,
}

impl StackVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            StackVerb::Up => "up",
            StackVerb::Down => "down",
            StackVerb::Start => "start",
            StackVerb::Stop => "stop",
            StackVerb::Restart => "restart",
        }
    }
}

/// Roles, ordered: each includes what the ones before it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// Auth is off (loopback-only local mode): everyone is this local admin.
    pub local_mode: bool,
}

impl Principal {
    pub fn may(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// Every server function, classified. A test enumerates the registered server functions
/// and fails on any that is missing here, so a new endpoint cannot skip the role check.
pub const SERVER_FNS_READ: &[&str] =
    &["fetch_engine_status", "get_stack_overview", "get_service_logs", "get_merged_logs", "whoami", "get_audit", "get_db_view", "get_streams_view", "get_alerts_view", "test_route", "get_gateway_view", "get_verify_view", "get_demo_view"];
pub const SERVER_FNS_MUTATING: &[&str] = &["run_stack_action", "set_replay_paused", "processor_action", "send_sample_events", "fire_test_alert", "create_silence", "expire_silence", "burst_test", "start_verify", "start_demo", "cancel_demo"];

/// One audit log row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
}

/// One log line of one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub service: String,
    /// RFC 3339 from the engine (`timestamps=true`), empty if it had none.
    pub ts: String,
    pub line: String,
}

impl LogLine {
    /// Splits the engine's `TIMESTAMP line` form.
    pub fn parse(service: &str, raw: &str) -> LogLine {
        match raw.split_once(' ') {
            Some((ts, rest)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.contains('T') => {
                LogLine { service: service.into(), ts: ts.into(), line: rest.into() }
            }
            _ => LogLine { service: service.into(), ts: String::new(), line: raw.into() },
        }
    }
}

/// 75 → "1m 15s", 7300 → "2h 1m".
pub fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// Whether a replica takes reads, and if not, why and since when (unix ms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Admission {
    In,
    Out { reason: String, since_ms: u64 },
}

/// One replica as the read/write router sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub name: String,
    pub admission: Admission,
    pub reachable: bool,
    pub replay_paused: bool,
    pub replay_lsn: Option<String>,
    pub lag_bytes: u64,
    pub lag_secs: f64,
    pub reads: u64,
}

/// One second of replication lag history, per replica in config order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    pub at_ms: u64,
    pub lag_bytes: Vec<u64>,
    pub lag_secs: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbStatus {
    pub primary_lsn: Option<String>,
    pub primary_up: bool,
    pub writes: u64,
    pub primary_reads: u64,
    pub fallbacks: u64,
    pub retried_reads: u64,
    pub replicas: Vec<ReplicaStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbView {
    pub status: DbStatus,
    pub history: Vec<LagPoint>,
    /// The seed's claim, shown beside the measurement.
    pub claim_max_lag_secs: f64,
    pub threshold_secs: f64,
    pub threshold_bytes: u64,
    /// Per-minute maxima of the last 24 h, from the product's SQLite store.
    pub long_history: Vec<LagPoint>,
    /// HAProxy's read pool (5435) as its stats report it: the second read path.
    pub haproxy: Vec<HaproxyRow>,
    pub haproxy_error: Option<String>,
}

/// One Kafka stream processor hosted by the control plane.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessorView {
    pub name: String,
    pub input: String,
    pub output: String,
    pub group: String,
    /// `running`, `stopped`, `failed` or `starting`.
    pub state: String,
    /// Why it failed (or the last transient error while running).
    pub reason: Option<String>,
    pub since_ms: u64,
    pub restarts: u32,
    pub consumed: u64,
    pub produced: u64,
    pub dlq: u64,
    /// Sum over the input partitions of (high watermark − committed offset), if known.
    pub lag: Option<i64>,
    /// The compacted topic holding the processor's state, if it keeps any.
    pub changelog: Option<String>,
    /// Changelog records replayed into the state at the last start.
    pub restored: u64,
}

/// One second of one processor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcPoint {
    pub in_rate: f64,
    pub out_rate: f64,
    pub dlq_rate: f64,
    /// End-to-end latency (event time → output acknowledged) over that second, ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lag: i64,
}

/// Per processor, in the order of [`StreamsView::processors`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamPoint {
    pub at_ms: u64,
    pub procs: Vec<ProcPoint>,
}

/// One partition of one topic, with the lag of each processor group reading it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicPartitionRow {
    pub topic: String,
    pub partition: i32,
    pub leader: i32,
    pub low: i64,
    pub high: i64,
    /// (group, committed offset, lag) for groups that read this topic.
    pub groups: Vec<(String, Option<i64>, Option<i64>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamsView {
    pub brokers: String,
    pub processors: Vec<ProcessorView>,
    pub history: Vec<StreamPoint>,
    pub topics: Vec<TopicPartitionRow>,
    /// Why the topic table could not be read (brokers down…).
    pub topics_error: Option<String>,
    /// The seed's claims, shown beside the measured numbers.
    pub claim_events_per_sec: f64,
    pub claim_latency_ms: f64,
}

/// One AlertManager route, with inherited settings resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteNode {
    /// `root`, `root.0`, `root.0.1`…
    pub path: String,
    pub receiver: String,
    /// The receiver's integrations: `email`, `slack`, `webhook`…
    pub kinds: Vec<String>,
    pub matchers: Vec<String>,
    pub cont: bool,
    pub group_by: Vec<String>,
    pub group_wait: String,
    pub group_interval: String,
    pub repeat_interval: String,
    pub children: Vec<RouteNode>,
}

/// Which receivers get an alert with given labels, in AlertManager's order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTestResult {
    pub receivers: Vec<String>,
    /// The matched route's path, per receiver.
    pub paths: Vec<String>,
    pub group_by: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub labels: Vec<(String, String)>,
    pub state: String,
    pub starts_at: String,
    pub summary: String,
    pub silenced_by: Vec<String>,
}

/// Active alerts as AlertManager groups them (per receiver and group-by labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertGroupView {
    pub receiver: String,
    pub labels: Vec<(String, String)>,
    pub alerts: Vec<AlertRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilenceView {
    pub id: String,
    pub matchers: Vec<String>,
    pub created_by: String,
    pub comment: String,
    pub starts_at: String,
    pub ends_at: String,
    /// `active`, `pending` or `expired`.
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScrapeTarget {
    pub job: String,
    pub instance: String,
    pub health: String,
    pub last_scrape: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    pub name: String,
    pub state: String,
    pub severity: String,
    pub active: usize,
}

/// A notification the local sink received (what AlertManager actually delivered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub at_ms: u64,
    /// `email` or `slack`.
    pub kind: String,
    /// Address or webhook path.
    pub target: String,
    /// The receiver that target belongs to, from the config.
    pub receiver: String,
    /// Alert names found in the body.
    pub alerts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsView {
    pub tree: Option<RouteNode>,
    pub receivers: Vec<(String, Vec<String>)>,
    pub groups: Vec<AlertGroupView>,
    pub silences: Vec<SilenceView>,
    pub targets: Vec<ScrapeTarget>,
    pub rules: Vec<RuleView>,
    pub deliveries: Vec<Delivery>,
    /// What could not be read (service down…), one line each.
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvoyCluster {
    pub name: String,
    pub hosts: Vec<(String, String)>,
    /// (threshold name, configured max, remaining now)
    pub breakers: Vec<(String, u64, Option<u64>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaproxyRow {
    pub proxy: String,
    pub server: String,
    pub status: String,
    pub sessions: u64,
    pub total: u64,
    pub check: String,
}

/// One sample of Envoy's counters (for rates).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayPoint {
    pub at_ms: u64,
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub overflows: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayView {
    pub envoy_ready: Option<String>,
    pub clusters: Vec<EnvoyCluster>,
    /// Selected counters: name → value.
    pub counters: Vec<(String, u64)>,
    /// 1 s samples of the main counters (last 15 min).
    pub history: Vec<GatewayPoint>,
    pub haproxy: Vec<HaproxyRow>,
    pub errors: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BurstResult {
    pub sent: u32,
    pub passed: u32,
    pub limited: u32,
    pub other: u32,
    pub limited_counter_before: u64,
    pub limited_counter_after: u64,
}

/// One check of the verification suite: the seed's claim beside what was measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub group: String,
    pub name: String,
    /// `pass`, `fail` or `skip`.
    pub status: String,
    pub measured: String,
    /// What the seed report claims (empty when it claims nothing).
    pub claim: String,
    pub method: String,
    pub ms: u64,
}

/// A verification run, live while it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyRun {
    /// Store id once finished.
    pub id: Option<i64>,
    pub started_at: String,
    pub actor: String,
    /// `running`, `passed` or `failed`.
    pub status: String,
    pub total: usize,
    pub checks: Vec<CheckResult>,
}

/// A stored run, for the history table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: i64,
    pub started_at: String,
    pub actor: String,
    pub status: String,
    pub summary: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyView {
    pub current: Option<VerifyRun>,
    /// The newest finished run (the current one's previous, for the diff).
    pub previous: Option<VerifyRun>,
    pub history: Vec<RunSummary>,
}

/// The Kafka demo: events produced and followed through both processors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DemoRun {
    pub id: Option<i64>,
    pub run: String,
    pub started_at: String,
    pub actor: String,
    /// `running`, `passed`, `failed` or `cancelled`.
    pub status: String,
    pub events: u64,
    pub rate: u64,
    pub malformed_every: u64,
    pub produced: u64,
    pub processed: u64,
    pub dlq: u64,
    /// Produced but neither processed nor dead-lettered when the run ended.
    pub lost: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub elapsed_ms: u64,
    pub message: String,
    /// (elapsed ms, produced, processed) every 500 ms, for the progress chart.
    pub progress: Vec<(u64, u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoView {
    pub current: Option<DemoRun>,
    pub history: Vec<RunSummary>,
    pub max_events: u64,
    pub max_rate: u64,
}
