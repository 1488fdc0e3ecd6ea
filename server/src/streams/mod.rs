//! The Kafka stream processors hosted by the control plane (`bss-customer-analytics`,
//! `bss-order-processor`): supervision (start / stop / restart, restart with backoff on
//! failure), a 1 s sampler of rates and latencies (15 min of history), and the topic table
//! (partitions, watermarks, lag per processor group).
//!
//! - `events`: schemas and transforms, pure.
//! - `processor`: the at-least-once Kafka loop of one processor.
//! - `topics`: metadata, watermarks and committed offsets (blocking librdkafka calls).
pub mod api;
pub mod contracts;
pub mod events;
pub mod processor;
pub mod topics;

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use app::api::{Guarantee, ProcPoint, ProcessorView, StreamPoint, StreamsView, TopicPartitionRow};
use rdkafka::{
    config::ClientConfig,
    consumer::{Consumer, StreamConsumer},
    producer::FutureProducer,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use events::{now_ms, ANALYTICS_TOPIC, CUSTOMER_TOPIC, DLQ_TOPIC, ORDER_TOPIC};
use processor::{Kind, ProcessorSpec, Stats};

/// 15 minutes of 1 s points.
const HISTORY: usize = 900;
/// The most events one "send sample events" call may produce.
pub const MAX_SAMPLE_EVENTS: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    #[error("unknown processor {name:?} (known: {known})")]
    UnknownProcessor { name: String, known: String },
    #[error("{name} is already {state}")]
    AlreadyRunning { name: String, state: &'static str },
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("processors not ready: {0}")]
    NotReady(String),
    #[error("{0} did not stop within 30 s")]
    StopTimeout(String),
    #[error("{0}")]
    Invalid(String),
    /// The brokers refused or did not acknowledge (down, unreachable, topic missing).
    #[error("{0}")]
    Kafka(String),
}

struct Ctl {
    state: &'static str,
    reason: Option<String>,
    since_ms: u64,
    restarts: u32,
    /// The reason of the last restart by the supervisor.
    last_failure: Option<String>,
    cancel: Option<CancellationToken>,
    task: Option<JoinHandle<()>>,
}

struct Handle {
    spec: ProcessorSpec,
    /// The delivery guarantee of the next (re)start; the spec's is the configured one.
    exactly_once: std::sync::atomic::AtomicBool,
    stats: Stats,
    ctl: Mutex<Ctl>,
}

impl Handle {
    fn set(&self, state: &'static str, reason: Option<String>) {
        let mut c = self.ctl.lock().unwrap();
        c.state = state;
        c.reason = reason;
        c.since_ms = now_ms();
    }
}

/// This control plane among others on the same brokers: its host name and a digest of its
/// store's path, stable across restarts on the same store (so a restarted control plane
/// fences the transactions its previous run left open, as Kafka Streams' persisted process
/// id does) and distinct between control planes (which must not fence each other).
pub fn instance_id(store_path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect::<String>())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let path = std::fs::canonicalize(store_path).unwrap_or_else(|_| store_path.to_path_buf());
    let digest = Sha256::digest(path.to_string_lossy().as_bytes());
    format!("{host}-{}", digest.iter().take(4).map(|b| format!("{b:02x}")).collect::<String>())
}

pub struct Streams {
    brokers: String,
    procs: Vec<Arc<Handle>>,
    history: Mutex<VecDeque<StreamPoint>>,
    topics: Mutex<(Vec<TopicPartitionRow>, Option<String>)>,
    /// When the last topics read that the brokers answered began (unix ms): a processor's
    /// transport error seen before it is over.
    brokers_ok_since_ms: AtomicU64,
    producer: tokio::sync::OnceCell<FutureProducer>,
}

impl Streams {
    /// Both processors on the standard topics, each with its configured guarantee, run by
    /// the control plane `instance` ([`instance_id`]).
    pub fn new(brokers: &str, window_ms: u64, instance: &str, guarantee_of: impl Fn(&str) -> Guarantee) -> Arc<Self> {
        let spec = |name: &str, input: &str, kind| ProcessorSpec {
            name: name.into(),
            brokers: brokers.into(),
            group: name.into(),
            input: input.into(),
            output: ANALYTICS_TOPIC.into(),
            dlq: DLQ_TOPIC.into(),
            kind,
            window_ms,
            // Kafka Streams' naming: <application id>-<store>-changelog.
            changelog: Some(format!("{name}-state-changelog")),
            exactly_once: guarantee_of(name) == Guarantee::ExactlyOnce,
            instance: instance.into(),
            assign_within: processor::ASSIGN_WITHIN,
        };
        Self::with_specs(
            brokers,
            vec![
                spec(events::CustomerAnalytics::NAME, CUSTOMER_TOPIC, Kind::CustomerAnalytics),
                spec(events::OrderProcessor::NAME, ORDER_TOPIC, Kind::OrderProcessor),
            ],
        )
    }

    /// Any processors (tests run them on their own topics and groups).
    pub fn with_specs(brokers: &str, specs: Vec<ProcessorSpec>) -> Arc<Self> {
        let procs = specs
            .into_iter()
            .map(|spec| {
                Arc::new(Handle {
                    exactly_once: spec.exactly_once.into(),
                    spec,
                    stats: Stats::default(),
                    ctl: Mutex::new(Ctl { state: "stopped", reason: None, since_ms: now_ms(), restarts: 0, last_failure: None, cancel: None, task: None }),
                })
            })
            .collect();
        Arc::new(Self {
            brokers: brokers.into(),
            procs,
            history: Mutex::new(VecDeque::new()),
            topics: Mutex::new((vec![], None)),
            brokers_ok_since_ms: AtomicU64::new(0),
            producer: tokio::sync::OnceCell::new(),
        })
    }

    /// The bootstrap servers every Kafka client of the product uses.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    pub fn names(&self) -> Vec<String> {
        self.procs.iter().map(|h| h.spec.name.clone()).collect()
    }

    fn handle(&self, name: &str) -> Result<&Arc<Handle>, StreamsError> {
        self.procs
            .iter()
            .find(|h| h.spec.name == name)
            .ok_or_else(|| StreamsError::UnknownProcessor { name: name.into(), known: self.names().join(", ") })
    }

    pub fn start(&self, name: &str) -> Result<(), StreamsError> {
        let h = self.handle(name)?.clone();
        let mut c = h.ctl.lock().unwrap();
        if c.task.as_ref().is_some_and(|t| !t.is_finished()) {
            return Err(StreamsError::AlreadyRunning { name: name.into(), state: c.state });
        }
        let cancel = CancellationToken::new();
        c.cancel = Some(cancel.clone());
        c.state = "starting";
        c.since_ms = now_ms();
        c.reason = None;
        c.task = Some(tokio::spawn(supervise(h.clone(), cancel)));
        Ok(())
    }

    /// Stops after draining in-flight records and committing offsets.
    pub async fn stop(&self, name: &str) -> Result<(), StreamsError> {
        let h = self.handle(name)?;
        let (cancel, task) = {
            let mut c = h.ctl.lock().unwrap();
            (c.cancel.take(), c.task.take())
        };
        let (Some(cancel), Some(task)) = (cancel, task) else {
            return Err(StreamsError::NotRunning(name.into()));
        };
        cancel.cancel();
        match tokio::time::timeout(Duration::from_secs(30), task).await {
            Ok(_) => Ok(()),
            Err(_) => Err(StreamsError::StopTimeout(name.into())),
        }
    }

    /// Switches a processor's guarantee; a running processor is restarted into it (it drains
    /// and commits first, so nothing is lost or repeated by the switch). Returns whether it
    /// was running.
    pub async fn set_guarantee(&self, name: &str, g: Guarantee) -> Result<bool, StreamsError> {
        let h = self.handle(name)?;
        let eos = g == Guarantee::ExactlyOnce;
        if h.exactly_once.load(Ordering::SeqCst) == eos {
            return Err(StreamsError::Invalid(format!("{name} is already {}", g.label())));
        }
        h.exactly_once.store(eos, Ordering::SeqCst);
        let running = h.ctl.lock().unwrap().task.as_ref().is_some_and(|t| !t.is_finished());
        if running {
            if let Err(e) = self.restart(name).await {
                // Still draining under the old guarantee: do not claim the new one.
                h.exactly_once.store(!eos, Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(running)
    }

    /// Ends a processor the way a crash does: its task is aborted mid-flight, nothing is
    /// drained or committed (fault drills and tests; an operator's stop drains).
    pub fn abort(&self, name: &str) -> Result<(), StreamsError> {
        let h = self.handle(name)?;
        let mut c = h.ctl.lock().unwrap();
        let Some(task) = c.task.take() else { return Err(StreamsError::NotRunning(name.into())) };
        task.abort();
        c.cancel = None;
        c.state = "failed";
        c.reason = Some("aborted (crash)".into());
        c.since_ms = now_ms();
        Ok(())
    }

    pub async fn restart(&self, name: &str) -> Result<(), StreamsError> {
        match self.stop(name).await {
            Ok(()) | Err(StreamsError::NotRunning(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(name)
    }

    pub async fn stop_all(&self) {
        for n in self.names() {
            let _ = self.stop(&n).await;
        }
    }

    /// "name is state" for every processor that is neither running nor starting (empty when
    /// all are up): what the verify check and the demo refuse to go on without.
    /// Processors that would not process a record produced now, and why: not running, or
    /// still replaying their changelog ("restoring n/m").
    pub fn unready(&self) -> Vec<String> {
        self.procs
            .iter()
            .filter_map(|h| {
                let state = h.ctl.lock().unwrap().state;
                if state != "running" {
                    return Some(format!("{} is {state}", h.spec.name));
                }
                if h.stats.ready.load(Ordering::Relaxed) {
                    return None;
                }
                let (done, total) = (h.stats.restore_progress.0.load(Ordering::Relaxed), h.stats.restore_progress.1.load(Ordering::Relaxed));
                Some(format!("{} is restoring its state ({done}/{total})", h.spec.name))
            })
            .collect()
    }

    /// Waits until every processor is ready ([`Self::unready`] empty), at most `within`.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), StreamsError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let unready = self.unready();
            if unready.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                return Err(StreamsError::NotReady(format!("{} after {} s", unready.join(", "), within.as_secs())));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn not_running(&self) -> Vec<String> {
        self.procs
            .iter()
            .filter_map(|h| {
                let state = h.ctl.lock().unwrap().state;
                (state != "running" && state != "starting").then(|| format!("{} is {state}", h.spec.name))
            })
            .collect()
    }

    pub fn view(&self) -> StreamsView {
        let (topics, topics_error) = self.topic_table(now_ms());
        let history: Vec<StreamPoint> = self.history.lock().unwrap().iter().cloned().collect();
        let processors = self
            .procs
            .iter()
            .map(|h| {
                let c = h.ctl.lock().unwrap();
                let transient = if c.state == "running" { h.stats.transient_error(now_ms(), self.brokers_ok_since_ms.load(Ordering::Relaxed)) } else { None };
                ProcessorView {
                    name: h.spec.name.clone(),
                    input: h.spec.input.clone(),
                    output: h.spec.output.clone(),
                    group: h.spec.group.clone(),
                    state: c.state.to_string(),
                    reason: c.reason.clone().or(transient),
                    since_ms: c.since_ms,
                    restarts: c.restarts,
                    last_failure: c.last_failure.clone(),
                    consumed: h.stats.consumed.load(Ordering::Relaxed),
                    produced: h.stats.produced.load(Ordering::Relaxed),
                    dlq: h.stats.dlq.load(Ordering::Relaxed),
                    lag: lag_of(&topics, &h.spec.input, &h.spec.group),
                    changelog: h.spec.changelog.clone(),
                    restored: h.stats.restored.load(Ordering::Relaxed),
                    restoring: {
                        let (done, total) = (h.stats.restore_progress.0.load(Ordering::Relaxed), h.stats.restore_progress.1.load(Ordering::Relaxed));
                        (c.state == "running" && done < total).then_some((done, total))
                    },
                    guarantee: if h.exactly_once.load(Ordering::Relaxed) { Guarantee::ExactlyOnce } else { Guarantee::AtLeastOnce },
                }
            })
            .collect();
        StreamsView {
            brokers: self.brokers.clone(),
            processors,
            history,
            topics,
            topics_error,
            claim_events_per_sec: 10_000.0,
            claim_latency_ms: 100.0,
        }
    }

    /// Samples every second; reads the topic table every 5 s. Runs until `cancel`.
    pub async fn run_sampler(self: Arc<Self>, cancel: CancellationToken) {
        let mut last: Vec<(u64, u64, u64)> = vec![(0, 0, 0); self.procs.len()];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            if n % 5 == 0 {
                let (brokers, groups) = (self.brokers.clone(), self.groups());
                let began = now_ms();
                let r = tokio::task::spawn_blocking(move || topics::read(&brokers, &groups)).await;
                let mut t = self.topics.lock().unwrap();
                match r {
                    Ok(Ok(rows)) => {
                        *t = (rows, None);
                        self.brokers_ok_since_ms.store(began, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => t.1 = Some(e.to_string()),
                    Err(e) => t.1 = Some(e.to_string()),
                }
            }
            n += 1;
            let (topics, _) = self.topic_table(now_ms());
            let procs = self
                .procs
                .iter()
                .zip(last.iter_mut())
                .map(|(h, last)| {
                    let now = (
                        h.stats.consumed.load(Ordering::Relaxed),
                        h.stats.produced.load(Ordering::Relaxed),
                        h.stats.dlq.load(Ordering::Relaxed),
                    );
                    let lats = std::mem::take(&mut *h.stats.latencies_us.lock().unwrap());
                    let mut lat: Vec<u64> = lats.iter().map(|l| l.total_us).collect();
                    let mut wait: Vec<u64> = lats.iter().map(|l| l.wait_us).collect();
                    let mut work: Vec<u64> = lats.iter().map(|l| l.total_us.saturating_sub(l.wait_us)).collect();
                    let point = ProcPoint {
                        in_rate: now.0.saturating_sub(last.0) as f64,
                        out_rate: now.1.saturating_sub(last.1) as f64,
                        dlq_rate: now.2.saturating_sub(last.2) as f64,
                        // A second with nothing acknowledged has no latency (a gap), not 0 ms.
                        p50_ms: (!lat.is_empty()).then(|| percentile(&mut lat, 0.50) / 1000.0),
                        p99_ms: (!lat.is_empty()).then(|| percentile(&mut lat, 0.99) / 1000.0),
                        wait_p99_ms: (!wait.is_empty()).then(|| percentile(&mut wait, 0.99) / 1000.0),
                        work_p99_ms: (!work.is_empty()).then(|| percentile(&mut work, 0.99) / 1000.0),
                        lag: lag_of(&topics, &h.spec.input, &h.spec.group),
                    };
                    *last = now;
                    point
                })
                .collect();
            let mut hist = self.history.lock().unwrap();
            if hist.len() == HISTORY {
                hist.pop_front();
            }
            hist.push_back(StreamPoint { at_ms: now_ms(), procs });
        }
    }

    /// The topic table as it stands at `now`: see [`topic_table`].
    fn topic_table(&self, now: u64) -> (Vec<TopicPartitionRow>, Option<String>) {
        let t = self.topics.lock().unwrap();
        topic_table(&t.0, t.1.as_deref(), self.brokers_ok_since_ms.load(Ordering::Relaxed), now)
    }

    /// (group, input topic) of every processor.
    fn groups(&self) -> Vec<(String, String)> {
        self.procs.iter().map(|h| (h.spec.group.clone(), h.spec.input.clone())).collect()
    }

    async fn producer(&self) -> Result<&FutureProducer, StreamsError> {
        self.producer.get_or_try_init(|| async { processor::producer(&self.brokers).map_err(|e| StreamsError::Kafka(format!("producer: {e}"))) }).await
    }

    /// Publishes already-encoded CloudEvents (topic, key, payload) and waits for each
    /// acknowledgement: one result per record, in order (the outbox relay).
    pub async fn publish_batch<'a>(&self, records: impl IntoIterator<Item = (&'a str, &'a str, &'a [u8])>) -> Vec<Result<(), StreamsError>> {
        let records: Vec<_> = records.into_iter().collect();
        let producer = match self.producer().await {
            Ok(p) => p,
            Err(e) => return records.iter().map(|_| Err(StreamsError::Kafka(e.to_string()))).collect(),
        };
        let mut pending = Vec::with_capacity(records.len());
        for (topic, key, payload) in &records {
            pending.push(processor::enqueue(producer, topic, key.as_bytes(), payload, processor::ce_headers()).await);
        }
        // librdkafka resolves every delivery within message.timeout.ms (30 s); the timeout
        // only guards against a producer that never answers.
        let acks = pending.into_iter().zip(&records).map(|(d, (topic, _, _))| async move {
            let d = d?;
            match tokio::time::timeout(Duration::from_secs(40), d).await {
                Ok(Ok(Ok(_))) => Ok(()),
                Ok(Ok(Err((e, _)))) => Err(StreamsError::Kafka(format!("{topic}: {e}"))),
                Ok(Err(_)) => Err(StreamsError::Kafka(format!("{topic}: delivery dropped"))),
                Err(_) => Err(StreamsError::Kafka(format!("{topic}: no acknowledgement within 40 s"))),
            }
        });
        futures_util::future::join_all(acks).await
    }

    /// Produces `n` sample customer/order CloudEvents (every `malformed_every`-th one broken
    /// on purpose when non-zero) and waits for the brokers' acknowledgements.
    /// Returns (acknowledged, malformed).
    pub async fn send_samples(&self, run: &str, n: u64, malformed_every: u64) -> Result<(u64, u64), StreamsError> {
        if n == 0 || n > MAX_SAMPLE_EVENTS {
            return Err(StreamsError::Invalid(format!("events must be between 1 and {MAX_SAMPLE_EVENTS}, got {n}")));
        }
        let producer = self.producer().await?;
        let mut pending = futures_util::stream::FuturesUnordered::new();
        let mut malformed = 0;
        for seq in 0..n {
            let (topic, key, mut bytes) = events::sample_event(run, seq, now_ms());
            if malformed_every > 0 && seq % malformed_every == malformed_every - 1 {
                bytes = events::malformed_event(run, seq);
                malformed += 1;
            }
            pending.push(processor::enqueue(producer, topic, key.as_bytes(), &bytes, processor::ce_headers()).await?);
        }
        use futures_util::StreamExt;
        let mut acked = 0;
        while let Some(r) = pending.next().await {
            match r {
                Ok(Ok(_)) => acked += 1,
                Ok(Err((e, _))) => return Err(StreamsError::Kafka(format!("produce failed after {acked} acknowledged: {e}"))),
                Err(_) => return Err(StreamsError::Kafka(format!("producer dropped a delivery after {acked} acknowledged"))),
            }
        }
        Ok((acked, malformed))
    }
}

/// How long an observer waits for its first partitions.
const OBSERVER_JOIN: Duration = Duration::from_secs(90);

/// A consumer of `topics` positioned at their end, returned once partitions are assigned
/// (so nothing produced afterwards is missed): how the demo and verify watch the outputs.
pub async fn observer(brokers: &str, topics: &[&str], group: &str) -> Result<StreamConsumer, StreamsError> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        // Under exactly-once an aborted transaction's outputs must not count as processed.
        .set("isolation.level", "read_committed")
        // A topic just created (by the demo or verify) can be missing from the first
        // metadata answer; librdkafka's default second look comes after 5 min, past the join bound.
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()
        .map_err(|e| StreamsError::Kafka(format!("observer: {e}")))?;
    c.subscribe(topics).map_err(|e| StreamsError::Kafka(format!("observer: {e}")))?;
    // A freshly provisioned cluster creates `__consumer_offsets` (50 partitions, RF 3) at
    // the first group join: on a busy 2-core machine that took over 20 s (CI, on fresh
    // volumes), so the first observer of a new stack gets 90 s.
    let deadline = tokio::time::Instant::now() + OBSERVER_JOIN;
    while c.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        if tokio::time::Instant::now() > deadline {
            return Err(StreamsError::Kafka(format!("the observer got no partitions within {} s (brokers down?)", OBSERVER_JOIN.as_secs())));
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), c.recv()).await;
    }
    // The assignment is in place; give the "latest" offset lookup a moment to resolve.
    let _ = tokio::time::timeout(Duration::from_millis(800), c.recv()).await;
    Ok(c)
}

/// How many brokers the cluster's metadata lists (a blocking call, run off the runtime).
pub async fn broker_count(brokers: &str) -> Result<usize, StreamsError> {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        c.fetch_metadata(None, Duration::from_secs(8)).map(|m| m.brokers().len())
    })
    .await
    .map_err(|e| StreamsError::Kafka(e.to_string()))?
    .map_err(|e| StreamsError::Kafka(format!("metadata: {e}")))
}

/// The cluster as its metadata shows it: live (unfenced) brokers, and partitions whose
/// in-sync replicas are fewer than their replicas (a broker out of the ISR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterHealth {
    pub brokers: usize,
    pub under_replicated: usize,
}

pub async fn cluster_health(brokers: &str) -> Result<ClusterHealth, StreamsError> {
    let brokers = brokers.to_string();
    tokio::task::spawn_blocking(move || {
        let c: rdkafka::consumer::BaseConsumer = ClientConfig::new().set("bootstrap.servers", &brokers).create()?;
        let m = c.fetch_metadata(None, Duration::from_secs(3))?;
        let under_replicated = m.topics().iter().flat_map(|t| t.partitions()).filter(|p| p.isr().len() < p.replicas().len()).count();
        Ok::<_, rdkafka::error::KafkaError>(ClusterHealth { brokers: m.brokers().len(), under_replicated })
    })
    .await
    .map_err(|e| StreamsError::Kafka(e.to_string()))?
    .map_err(|e| StreamsError::Kafka(format!("metadata: {e}")))
}

/// How long the last good topic read stands for the consumer lag: six missed reads (a
/// leader election, a broker restarting). Past that the lag is unknown (the processors'
/// lag "–", the chart a gap, no series in /metrics), not the last value read.
const LAG_TRUSTED_FOR_MS: u64 = 30_000;

/// The topic table shown at `now`, from the rows of the last read the brokers answered
/// (begun at `read_ms`, 0 for none) and the error of a failed read since: the rows stay (the
/// last known partitions and offsets, said to be that old) but their lag is cleared once
/// the read is older than [`LAG_TRUSTED_FOR_MS`].
fn topic_table(rows: &[TopicPartitionRow], error: Option<&str>, read_ms: u64, now: u64) -> (Vec<TopicPartitionRow>, Option<String>) {
    let age_ms = now.saturating_sub(read_ms);
    let trusted = read_ms > 0 && age_ms <= LAG_TRUSTED_FOR_MS;
    let mut rows = rows.to_vec();
    if !trusted {
        for (_, _, lag) in rows.iter_mut().flat_map(|r| r.groups.iter_mut()) {
            *lag = None;
        }
    }
    let error = error.map(|e| match (rows.is_empty(), trusted) {
        (true, _) => e.to_string(),
        (false, true) => format!("{e} (the table below is the read of {} s ago)", age_ms / 1000),
        (false, false) => format!("{e} (the table below is the read of {} s ago; its lag is no longer known)", age_ms / 1000),
    });
    (rows, error)
}

fn lag_of(topics: &[TopicPartitionRow], topic: &str, group: &str) -> Option<i64> {
    let lags: Vec<i64> = topics
        .iter()
        .filter(|r| r.topic == topic)
        .filter_map(|r| r.groups.iter().find(|g| g.0 == group).and_then(|g| g.2))
        .collect();
    (!lags.is_empty()).then(|| lags.iter().sum())
}

/// Nearest-rank percentile of `v` (sorted in place), 0 when empty.
pub fn percentile(v: &mut [u64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable();
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1] as f64
}

async fn supervise(h: Arc<Handle>, cancel: CancellationToken) {
    let mut backoff = Duration::from_secs(1);
    loop {
        h.set("running", None);
        let spec = ProcessorSpec { exactly_once: h.exactly_once.load(Ordering::SeqCst), ..h.spec.clone() };
        let r = processor::run(&spec, &h.stats, &cancel).await;
        if cancel.is_cancelled() {
            h.set("stopped", r.err().map(|e| format!("stopped; while draining: {e}")));
            return;
        }
        let reason = r.err().map_or_else(|| "exited".into(), |e| e.to_string());
        tracing::warn!(processor = %h.spec.name, %reason, ?backoff, "processor failed; restarting");
        h.set("failed", Some(reason.clone()));
        {
            let mut c = h.ctl.lock().unwrap();
            c.restarts += 1;
            c.last_failure = Some(reason);
        }
        tokio::select! {
            _ = cancel.cancelled() => { h.set("stopped", None); return }
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_id_is_stable_per_store_and_differs_between_stores() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        std::fs::write(&a, b"").unwrap();
        assert_eq!(instance_id(&a), instance_id(&a), "the same store after a restart: the same transactional ids");
        assert_eq!(instance_id(&a), instance_id(&dir.path().join(".").join("a.db")), "however the path is spelled");
        assert_ne!(instance_id(&a), instance_id(&b), "two control planes must not fence each other");
        assert!(instance_id(&a).chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'), "{}", instance_id(&a));
    }

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentile(&mut v, 0.5), 50.0);
        assert_eq!(percentile(&mut v, 0.99), 99.0);
        assert_eq!(percentile(&mut [7], 0.99), 7.0);
        assert_eq!(percentile(&mut [], 0.5), 0.0);
    }

    #[test]
    fn lag_sums_partitions_of_the_group() {
        let row = |p, lag| TopicPartitionRow {
            topic: "t".into(),
            partition: p,
            leader: 1,
            low: 0,
            high: 10,
            groups: vec![("g".into(), Some(10 - lag), Some(lag)), ("other".into(), None, Some(100))],
        };
        assert_eq!(lag_of(&[row(0, 3), row(1, 4)], "t", "g"), Some(7));
        assert_eq!(lag_of(&[row(0, 3)], "u", "g"), None);
    }

    #[test]
    fn a_stale_topic_table_keeps_its_rows_but_not_its_lag() {
        let rows = vec![TopicPartitionRow { topic: "t".into(), partition: 0, leader: 1, low: 0, high: 10, groups: vec![("g".into(), Some(4), Some(6))] }];
        let now = 1_000_000;
        // The last read answered: as read.
        assert_eq!(topic_table(&rows, None, now - 4_000, now), (rows.clone(), None));
        // Reads failing for a while: the rows and their lag stand, said to be that old.
        let (t, e) = topic_table(&rows, Some("metadata: timed out"), now - 12_000, now);
        assert_eq!(lag_of(&t, "t", "g"), Some(6));
        assert_eq!(e.as_deref(), Some("metadata: timed out (the table below is the read of 12 s ago)"));
        // Past LAG_TRUSTED_FOR_MS: the offsets read stay, the lag is unknown, and it says so.
        let (t, e) = topic_table(&rows, Some("metadata: timed out"), now - LAG_TRUSTED_FOR_MS - 1_000, now);
        assert_eq!((t[0].high, t[0].groups[0].1, t[0].groups[0].2), (10, Some(4), None));
        assert_eq!(lag_of(&t, "t", "g"), None);
        assert!(e.unwrap().ends_with("31 s ago; its lag is no longer known)"));
        // Never read: nothing to show, nothing known.
        assert_eq!(topic_table(&[], Some("metadata: timed out"), 0, now), (vec![], Some("metadata: timed out".into())));
    }

    /// The sampler against brokers that are not there (a real librdkafka client, connection
    /// refused): the lag is unknown everywhere it is shown, never 0.
    #[tokio::test]
    async fn with_no_broker_answering_the_lag_is_unknown_not_zero() {
        let s = Streams::new("127.0.0.1:1", 1000, "test", |_| Guarantee::AtLeastOnce);
        let cancel = CancellationToken::new();
        tokio::spawn(s.clone().run_sampler(cancel.clone()));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let v = loop {
            let v = s.view();
            if v.topics_error.is_some() && !v.history.is_empty() {
                break v;
            }
            assert!(tokio::time::Instant::now() < deadline, "the topic read never failed: {v:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        cancel.cancel();
        assert!(v.topics.is_empty());
        assert!(v.processors.iter().all(|p| p.lag.is_none()), "{:?}", v.processors);
        assert!(v.history.iter().flat_map(|p| &p.procs).all(|p| p.lag.is_none()), "{:?}", v.history);
    }

    #[tokio::test]
    async fn control_errors_are_clear() {
        let s = Streams::new("127.0.0.1:1", 1000, "test", |_| Guarantee::AtLeastOnce);
        assert!(s.start("nope").unwrap_err().to_string().contains("unknown processor"));
        assert_eq!(s.not_running(), ["bss-customer-analytics is stopped", "bss-order-processor is stopped"]);
        assert!(s.stop("bss-order-processor").await.unwrap_err().to_string().contains("not running"));
        assert!(s.send_samples("r", 0, 0).await.unwrap_err().to_string().contains("between 1 and"));
        assert!(s.send_samples("r", MAX_SAMPLE_EVENTS + 1, 0).await.is_err());
    }
}
