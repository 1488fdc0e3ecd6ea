//! The Kafka stream processors: state, counters, rates, the topic table.
use serde::{Deserialize, Serialize};


/// What a processor promises about its output (`streams.guarantee`, per processor in
/// `[streams.guarantees]`, switchable on the Streams page).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Every input has an output (or a DLQ record), possibly more than one after a failure.
    #[default]
    AtLeastOnce,
    /// Kafka transactions: a `read_committed` reader sees each input's output once.
    ExactlyOnce,
}

impl Guarantee {
    pub fn as_str(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at_least_once",
            Guarantee::ExactlyOnce => "exactly_once",
        }
    }

    /// As people read it.
    pub fn label(self) -> &'static str {
        match self {
            Guarantee::AtLeastOnce => "at-least-once",
            Guarantee::ExactlyOnce => "exactly-once",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().replace('-', "_").as_str() {
            "at_least_once" => Some(Guarantee::AtLeastOnce),
            "exactly_once" => Some(Guarantee::ExactlyOnce),
            _ => None,
        }
    }

    pub fn other(self) -> Self {
        match self {
            Guarantee::AtLeastOnce => Guarantee::ExactlyOnce,
            Guarantee::ExactlyOnce => Guarantee::AtLeastOnce,
        }
    }
}

/// One Kafka stream processor hosted by the control plane.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Why it last failed and was restarted by its supervisor (kept while it runs again).
    pub last_failure: Option<String>,
    pub consumed: u64,
    pub produced: u64,
    pub dlq: u64,
    /// Sum over the input partitions of (high watermark − committed offset), if known.
    pub lag: Option<i64>,
    /// The compacted topic holding the processor's state, if it keeps any.
    pub changelog: Option<String>,
    /// Changelog records replayed into the state at the last start.
    pub restored: u64,
    /// While the state is being replayed: changelog offsets done and in all.
    pub restoring: Option<(u64, u64)>,
    pub guarantee: Guarantee,
}

/// One second of one processor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcPoint {
    pub in_rate: f64,
    pub out_rate: f64,
    pub dlq_rate: f64,
    /// End-to-end latency (event time → output acknowledged) over that second, ms; None in
    /// a second with no output acknowledged (no latency to tell, not 0 ms).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The latency per hop, p99 over that second, ms: event time → consumed (producing,
    /// the brokers' append and replication, the fetch), consumed → output acknowledged
    /// (the processor: transform, produce, acknowledgement).
    #[serde(default)]
    pub wait_p99_ms: Option<f64>,
    #[serde(default)]
    pub work_p99_ms: Option<f64>,
    /// None while the brokers' offsets are not known (no topic read answered lately).
    #[serde(default)]
    pub lag: Option<i64>,
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

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
