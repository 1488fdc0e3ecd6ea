//! Runs with history: the verification suite and the Kafka demo.
use serde::{Deserialize, Serialize};


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
    /// Sends the producer reported failed (the brokers never took them, e.g. while a
    /// partition had no leader): not produced, so not counted as lost either; shown so no
    /// event of the requested count goes unexplained.
    #[serde(default)]
    pub not_acked: u64,
    pub processed: u64,
    pub dlq: u64,
    /// Produced but neither processed nor dead-lettered when the run ended.
    pub lost: u64,
    /// Outputs seen again for an input already processed (at-least-once after a crash).
    #[serde(default)]
    pub duplicates: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub elapsed_ms: u64,
    pub message: String,
    /// (elapsed ms, produced, processed) every 500 ms, for the progress chart.
    pub progress: Vec<(u64, u64, u64)>,
    /// (unix ms observed, end-to-end ms) per output, for callers in the server (a drill
    /// splits them around its fault); never sent to the browser.
    #[serde(skip)]
    pub latencies: Vec<(u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoView {
    pub current: Option<DemoRun>,
    pub history: Vec<RunSummary>,
    pub max_events: u64,
    pub max_rate: u64,
}
