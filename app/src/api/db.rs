//! The read/write router: replica admission, lag history, HAProxy's read pool.
use serde::{Deserialize, Serialize};

use super::HaproxyRow;

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
    /// None when the last check could not tell: the replica did not answer or is no
    /// standby (and, for bytes, the primary's position is unknown). Never a made-up 0.
    pub lag_bytes: Option<u64>,
    pub lag_secs: Option<f64>,
    pub reads: u64,
}

/// One second of replication lag history, per replica in config order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LagPoint {
    pub at_ms: u64,
    /// None where the replica's lag was not known (a gap in the chart).
    pub lag_bytes: Vec<Option<u64>>,
    pub lag_secs: Vec<Option<f64>>,
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

/// The transactional outbox's backlog, read from the primary when the page asks.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OutboxView {
    pub pending: i64,
    /// Age of the oldest pending event; `None` when nothing waits.
    pub oldest_secs: Option<f64>,
    /// Published by this control plane's relay since it started.
    pub published: u64,
    /// Why the relay's last pass failed (the bus down…), or why the backlog could not be read.
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbView {
    pub status: DbStatus,
    /// The BSS API's outbox: CloudEvents committed with their rows, waiting for Kafka.
    pub outbox: OutboxView,
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
