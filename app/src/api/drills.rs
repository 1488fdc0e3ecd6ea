//! Fault drills: what each drill does and expects, and a run's timeline and counts.
use serde::{Deserialize, Serialize};

use super::{DemoRun, RunSummary};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillInfo {
    pub name: String,
    pub title: String,
    /// What it breaks: a compose service, a replica or a stream processor.
    pub service: String,
    /// What is broken, and how it is undone.
    pub fault: String,
    /// What the product promises while it is broken; the verdict checks it.
    pub expectation: String,
}

/// One moment of a drill, in ms since the drill started.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at_ms: u64,
    pub what: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillRun {
    pub id: Option<i64>,
    pub drill: String,
    pub started_at: String,
    pub actor: String,
    /// `running`, `passed`, `failed`, `cancelled` or `error`.
    pub status: String,
    pub expectation: String,
    /// Why it passed or failed, in one line.
    pub verdict: String,
    pub timeline: Vec<TimelineEntry>,
    /// The Kafka load: events through both processors (produced, processed, DLQ, lost).
    pub events: DemoRun,
    /// The database load through the read/write router.
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    /// Who served the reads: (backend, count).
    pub reads_by: Vec<(String, u64)>,
    /// Fault injected → first sign of it from the supervisor (engine event or health).
    pub detected_ms: Option<u64>,
    /// Fault injected → the service running and healthy again.
    pub recovered_ms: Option<u64>,
    pub elapsed_ms: u64,
    /// Reads through HAProxy's read pool (a new connection each, as its clients make them).
    #[serde(default)]
    pub pool_reads_ok: u64,
    #[serde(default)]
    pub pool_reads_failed: u64,
    /// HAProxy reads whose first connection failed and that were tried once more.
    #[serde(default)]
    pub pool_reads_retried: u64,
    /// Fault injected → the first write that failed, and its error (what a client saw).
    #[serde(default)]
    pub first_write_error_ms: Option<u64>,
    #[serde(default)]
    pub first_write_error: String,
    /// Writes acknowledged during the drill and missing from the primary afterwards
    /// (`None` when they could not be checked).
    #[serde(default)]
    pub acked_writes_missing: Option<u64>,
    /// The alert raised while its target was down: the target's return → the alert at its
    /// receiver (the alert drill).
    #[serde(default)]
    pub alert_delivered_ms: Option<u64>,
    /// Requests through Envoy's proxy port (15006) to the BSS API, one a second (the
    /// drills that break Envoy's upstream): answered 2xx, answered 5xx (by Envoy, after
    /// its retries), refused by the rate limit (429), and not answered within the client's
    /// timeout (a hang: what the gateway must never do).
    #[serde(default)]
    pub gateway: GatewayLoad,
    /// Cumulative counts every 500 ms, for the live charts.
    #[serde(default)]
    pub samples: Vec<DrillSample>,
    /// The events' end-to-end latency and rate before the fault, while it was in, after.
    #[serde(default)]
    pub phases: Vec<LatencyPhase>,
}

/// Outputs observed in one phase of a drill, their rate and end-to-end latency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyPhase {
    /// `before`, `during` or `after`.
    pub name: String,
    pub events: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// What the clients of Envoy's proxy port saw during a drill, and what Envoy counted.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayLoad {
    pub ok: u64,
    pub failed: u64,
    pub limited: u64,
    pub hung: u64,
    /// The slowest answer, ms (a 503 after three retries still comes fast).
    pub max_ms: u64,
    /// Envoy's `upstream_rq_retry` and `upstream_rq_retry_overflow` counters of the
    /// `control_plane` cluster: how much each moved during the drill.
    /// `None` when Envoy's counters could not be read (the verdict then fails).
    pub retries: Option<u64>,
    pub retry_overflow: u64,
}

/// Cumulative counts of a drill's load at one moment (ms since the drill started).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillSample {
    pub at_ms: u64,
    pub processed: u64,
    pub reads_ok: u64,
    pub reads_failed: u64,
    pub writes_ok: u64,
    pub writes_failed: u64,
    pub pool_reads_ok: u64,
    pub pool_reads_failed: u64,
    #[serde(default)]
    pub gateway_ok: u64,
    #[serde(default)]
    pub gateway_failed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillsView {
    pub drills: Vec<DrillInfo>,
    /// The run in progress or the last one, and the one before it (for the diff).
    pub current: Option<DrillRun>,
    pub previous: Option<DrillRun>,
    pub history: Vec<RunSummary>,
}
