//! Fault drills: what each drill does and expects, and a run's timeline and counts.
use serde::{Deserialize, Serialize};

use super::{DemoRun, RunSummary};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillInfo {
    pub name: String,
    pub title: String,
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
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DrillsView {
    pub drills: Vec<DrillInfo>,
    /// The run in progress or the last one, and the one before it (for the diff).
    pub current: Option<DrillRun>,
    pub previous: Option<DrillRun>,
    pub history: Vec<RunSummary>,
}
