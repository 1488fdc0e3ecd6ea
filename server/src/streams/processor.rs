//! One processor's Kafka loop: consume → transform → produce, at-least-once.
//!
//! Offsets are *stored* only after the output (or DLQ) record and the state it changed are
//! acknowledged by the brokers (idempotent producer, `acks=all`), and stored in consumption
//! order: records go in batches (500 records or 5 ms), a batch's state changes are written
//! to the changelog when it closes (the latest value per key), and the batches' futures sit
//! in a `FuturesOrdered`, so an offset is never stored ahead of an earlier record that is
//! still in flight. One offset per partition is stored per batch. librdkafka commits stored
//! offsets every second and the loop commits synchronously on shutdown, after draining
//! what is in flight.
//!
//! A failed delivery blocks its partition: no offset of that partition is stored from then
//! on (later records of it that did reach the brokers included), the loop stops, and the
//! supervisor's restart consumes the partition again from the first unacknowledged record.
//! Other partitions' acknowledged records still have their offsets stored while draining.
use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use futures_util::{stream::FuturesOrdered, StreamExt};
use rdkafka::{
    client::ClientContext,
    config::ClientConfig,
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, Message, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
};
use tokio_util::sync::CancellationToken;

use super::{StreamsError, events::{now_ms, Changelog, CloudEvent, CustomerAnalytics, OrderProcessor, Outcome, CONTENT_TYPE}};

/// What to run and where.
#[derive(Clone, Debug)]
pub struct ProcessorSpec {
    pub name: String,
    pub brokers: String,
    pub group: String,
    pub input: String,
    pub output: String,
    pub dlq: String,
    pub kind: Kind,
    /// Customer analytics' tumbling window.
    pub window_ms: u64,
    /// The compacted topic the processor's state is written to and restored from at start
    /// (created by the processor when missing, like Kafka Streams' changelog topics);
    /// `None`: state is not kept across restarts.
    pub changelog: Option<String>,
    /// Kafka transactions instead of at-least-once (`streams.exactly_once`).
    pub exactly_once: bool,
    /// Which control plane runs it ([`super::instance_id`]): part of the transactional id,
    /// so a restart of this control plane fences its own unfinished transaction while
    /// another control plane in the same group has transactions of its own.
    pub instance: String,
    /// How long its consumer may hold no partition before it restarts ([`ASSIGN_WITHIN`]).
    pub assign_within: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    CustomerAnalytics,
    OrderProcessor,
    /// No parsing, no transform: records copied to the output with the same at-least-once
    /// bookkeeping. The bench's "raw pipe" baseline: the most any processor could do here.
    Passthrough,
}

enum Transform {
    Customer(CustomerAnalytics),
    Order(OrderProcessor),
}

impl Transform {
    fn process(&mut self, ev: &CloudEvent, now: u64) -> Outcome {
        match self {
            Transform::Customer(t) => t.process(ev, now),
            Transform::Order(t) => t.process(ev, now),
        }
    }

    fn touched(&self, ev: &CloudEvent, key: impl FnMut(&str)) {
        match self {
            Transform::Customer(t) => t.touched(ev, key),
            Transform::Order(t) => t.touched(ev, key),
        }
    }

    fn value(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Transform::Customer(t) => t.value(key),
            Transform::Order(t) => t.value(key),
        }
    }

    fn restore(&mut self, key: &str, value: Option<&[u8]>) {
        match self {
            Transform::Customer(t) => t.restore(key, value),
            Transform::Order(t) => t.restore(key, value),
        }
    }
}

/// Counters the loop updates and the sampler reads.
#[derive(Debug, Default)]
pub struct Stats {
    pub consumed: AtomicU64,
    pub produced: AtomicU64,
    pub dlq: AtomicU64,
    /// Latencies of the records acknowledged since the sampler last drained them.
    pub latencies_us: Mutex<Vec<Latency>>,
    /// The last transient error (brokers unreachable…) and when it was seen (unix ms),
    /// cleared by the next record; see [`Stats::transient_error`].
    pub last_error: Mutex<Option<(String, u64)>>,
    /// Whether `last_error` holds one (read per record instead of taking the lock).
    pub has_error: std::sync::atomic::AtomicBool,
    /// Changelog records replayed into the state at the last start.
    pub restored: AtomicU64,
    /// The restore in progress: changelog offsets replayed so far and in all (the page's
    /// "restoring n/m"); equal once done.
    pub restore_progress: Arc<(AtomicU64, AtomicU64)>,
    /// State restored and the input subscribed: records given to it now are processed.
    pub ready: std::sync::atomic::AtomicBool,
}

/// One record's latency, split where the processor sees it (µs): event time → consumed
/// (producing, the brokers' append and replication, the fetch), and end to end (event time
/// → output acknowledged); the difference is the processor's own hop (transform, produce,
/// acknowledgement).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Latency {
    pub total_us: u64,
    pub wait_us: u64,
}

impl Latency {
    /// From the event's time, when it was consumed and when its output was acknowledged
    /// (unix ms).
    fn of(event_ms: u64, consumed_ms: u64, acked_ms: u64) -> Self {
        Latency { total_us: acked_ms.saturating_sub(event_ms) * 1000, wait_us: consumed_ms.saturating_sub(event_ms) * 1000 }
    }
}

/// How a transient error ends: a record comes through (it clears the error), or the brokers
/// answer a read that began after the error was seen (the streams sampler's metadata and
/// watermark read, every 5 s) — an idle input after the brokers came back gets no record
/// to clear it, and librdkafka reports "all brokers down" once, not while it lasts.
impl Stats {
    pub fn note_error(&self, e: String) {
        *self.last_error.lock().unwrap() = Some((e, crate::clock::now_ms()));
        self.has_error.store(true, Ordering::Relaxed);
    }

    /// A record came through: the transient error is over.
    pub fn clear_error(&self) {
        self.has_error.store(false, Ordering::Relaxed);
        self.last_error.lock().unwrap().take();
    }

    /// The transient error still current, with its age at `now_ms` ("… (12 s ago)"): none
    /// once the brokers answered a read begun at `brokers_ok_since_ms` or later.
    pub fn transient_error(&self, now_ms: u64, brokers_ok_since_ms: u64) -> Option<String> {
        let guard = self.last_error.lock().unwrap();
        let (e, at) = guard.as_ref()?;
        (*at >= brokers_ok_since_ms).then(|| format!("{e} ({} s ago)", now_ms.saturating_sub(*at) / 1000))
    }
}

/// At most this many records between consumed and acknowledged.
const MAX_IN_FLIGHT: usize = 5_000;

/// Where a produced record's input came from.
struct Source {
    topic: String,
    partition: i32,
    offset: i64,
    dlq: bool,
    event_ms: u64,
    /// When the loop consumed it (unix ms).
    consumed_ms: u64,
}

/// The input's source, whether its output and state changes all reached the brokers, and
/// when its output was acknowledged (unix ms).
type Acked = (Source, Result<(), String>, u64);

pub fn producer(brokers: &str) -> Result<FutureProducer, KafkaError> {
    producer_config(brokers).create()
}

/// The settings of [`producer`]: idempotent, acks=all, a delivery resolved within 30 s.
pub fn producer_config(brokers: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000")
        .set("message.timeout.ms", "30000");
    c
}

/// Counts the consumer's partition revocations. librdkafka serves rebalances inside
/// `recv()`, on the loop's own task, so the count read between two `recv()`s tells whether
/// the records in hand were all consumed under one assignment. Every assignment and
/// revocation is logged with its partitions, and whether the consumer holds any is kept
/// for the start's assignment bound ([`ASSIGN_WITHIN`]).
pub struct Revocations(AtomicU64, String, Arc<std::sync::atomic::AtomicBool>);

impl Revocations {
    fn new(processor: &str) -> Self {
        Revocations(AtomicU64::new(0), processor.to_string(), Arc::default())
    }
}

impl ClientContext for Revocations {}

impl ConsumerContext for Revocations {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.0.fetch_add(1, Ordering::SeqCst);
            tracing::info!(processor = %self.1, partitions = %partitions_of(tpl), "partitions revoked");
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // What the consumer holds now, whatever the rebalance was (a failed one drops
        // everything; a cooperative one carries only the change).
        self.2.store(consumer.assignment().is_ok_and(|a| a.count() > 0), Ordering::SeqCst);
        match rebalance {
            Rebalance::Assign(tpl) => tracing::info!(processor = %self.1, partitions = %partitions_of(tpl), "partitions assigned"),
            Rebalance::Error(e) => tracing::warn!(processor = %self.1, error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// "topic[0,2]" for a partition list.
fn partitions_of(tpl: &rdkafka::TopicPartitionList) -> String {
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for e in tpl.elements() {
        by_topic.entry(e.topic().to_string()).or_default().push(e.partition());
    }
    if by_topic.is_empty() {
        return "none".into();
    }
    by_topic.iter().map(|(t, ps)| format!("{t}{ps:?}")).collect::<Vec<_>>().join(" ")
}

type Input = StreamConsumer<Revocations>;

/// Runs until `cancel` (then drains and commits: `Ok`) or a delivery fails (`Err`: the
/// supervisor restarts it; unacknowledged records are consumed again).
pub async fn run(spec: &ProcessorSpec, stats: &Stats, cancel: &CancellationToken) -> Result<(), StreamsError> {
    consume(spec, stats, cancel).await.map_err(StreamsError::Kafka)
}

async fn consume(spec: &ProcessorSpec, stats: &Stats, cancel: &CancellationToken) -> Result<(), String> {
    stats.ready.store(false, Ordering::Relaxed);
    let consumer: Input = ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .set("group.id", &spec.group)
        .set("client.id", &spec.name)
        // Exactly-once commits offsets inside its transactions; at-least-once stores them
        // after the acknowledgements and lets librdkafka commit every second.
        .set("enable.auto.commit", if spec.exactly_once { "false" } else { "true" })
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", if spec.exactly_once { "read_committed" } else { "read_uncommitted" })
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        // A subscribed topic created after start (the stack provisioned later) is found soon.
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create_with_context(Revocations::new(&spec.name))
        .map_err(|e| format!("consumer config: {e}"))?;
    let mut transform = match spec.kind {
        Kind::CustomerAnalytics => Some(Transform::Customer(CustomerAnalytics::new(spec.window_ms))),
        Kind::OrderProcessor => Some(Transform::Order(OrderProcessor::default())),
        Kind::Passthrough => None,
    };
    // State first: nothing is consumed before the changelog has been replayed.
    if let Some(topic) = &spec.changelog {
        if let Some(t) = transform.take() {
            let (t, n) = restore(spec, topic, t, stats.restore_progress.clone(), cancel.clone()).await?;
            stats.restored.store(n, Ordering::Relaxed);
            transform = Some(t);
        }
    }
    consumer.subscribe(&[&spec.input]).map_err(|e| format!("subscribe to {}: {e}", spec.input))?;
    stats.ready.store(true, Ordering::Relaxed);
    let unassigned = watch_assignment(spec, consumer.context().2.clone(), stats);
    tokio::pin!(unassigned);
    if spec.exactly_once {
        return run_transactional(spec, stats, cancel, consumer, transform, unassigned).await;
    }
    let producer = producer(&spec.brokers).map_err(|e| format!("producer config: {e}"))?;
    // Records are acknowledged in batches (one future per batch, not per record): a batch
    // closes at BATCH_RECORDS records or BATCH_WAIT after its first, and then the state
    // changes its records made are written to the changelog, the latest value per key once.
    let mut in_flight = FuturesOrdered::new();
    let mut in_flight_records = 0usize;
    let mut batch = Batch::default();
    let mut state = StateChanges::default();
    let mut blocked = Blocked::default();
    let mut idle = idle_ticks();
    let closes = tokio::time::sleep(BATCH_WAIT);
    tokio::pin!(closes);
    let result = loop {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break Ok(()),
            why = &mut unassigned => break Err(why),
            // Idle input: a fresh recv() below polls librdkafka, which is what keeps the
            // member in its group (max.poll.interval.ms, 5 min, counts from the last poll).
            _ = idle.tick() => {}
            Some(acks) = in_flight.next(), if !in_flight.is_empty() => {
                let acks: Vec<Acked> = acks;
                in_flight_records -= acks.len();
                if let Err(e) = acknowledge(&consumer, stats, acks, &mut blocked) {
                    break Err(e);
                }
            }
            _ = &mut closes, if !batch.is_empty() => {
                in_flight_records += batch.len();
                in_flight.push_back(batch.close(&producer, spec, &mut state, transform.as_ref()).await?);
            }
            msg = consumer.recv(), if in_flight_records + batch.len() < MAX_IN_FLIGHT => {
                let m = match msg {
                    Ok(m) => m,
                    Err(e) => {
                        // Broker transport errors are transient: librdkafka reconnects.
                        stats.note_error(e.to_string());
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                };
                stats.consumed.fetch_add(1, Ordering::Relaxed);
                if stats.has_error.load(Ordering::Relaxed) {
                    stats.clear_error();
                }
                let r = route(spec, transform.as_mut(), &m, &mut state);
                let delivery = send(&producer, spec, &m, r.dlq, &r.bytes, r.headers).await?;
                if batch.is_empty() {
                    closes.as_mut().reset(tokio::time::Instant::now() + BATCH_WAIT);
                }
                batch.push(Source { topic: m.topic().to_string(), partition: m.partition(), offset: m.offset(), dlq: r.dlq, event_ms: r.event_ms, consumed_ms: r.consumed_ms }, delivery);
                if batch.len() >= BATCH_RECORDS {
                    in_flight_records += batch.len();
                    in_flight.push_back(batch.close(&producer, spec, &mut state, transform.as_ref()).await?);
                }
            }
        }
    };
    // Drain: what was consumed is written out with its state and acknowledged (bounded),
    // then offsets are committed. A failure here blocks its partition too; the others keep
    // storing.
    let drain = async {
        let mut first_error = Ok(());
        if !batch.is_empty() {
            in_flight.push_back(batch.close(&producer, spec, &mut state, transform.as_ref()).await?);
        }
        while let Some(acks) = in_flight.next().await {
            if let Err(e) = acknowledge(&consumer, stats, acks, &mut blocked) {
                first_error = first_error.and(Err(e));
            }
        }
        first_error
    };
    let drained = tokio::time::timeout(Duration::from_secs(15), drain).await.unwrap_or_else(|_| Err("drain timed out".into()));
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        // Nothing stored since the last auto-commit is a normal case.
        if !matches!(e, KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) {
            tracing::warn!(processor = %spec.name, error = %e, "final commit failed");
        }
    }
    result.and(drained)
}

/// A batch closes at this many records, or this long after its first record.
const BATCH_RECORDS: usize = 500;
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// Records consumed and handed to the producer, not yet closed into an acknowledgement.
#[derive(Default)]
struct Batch(Vec<(Source, DeliveryFuture)>);

impl Batch {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn push(&mut self, src: Source, delivery: DeliveryFuture) {
        self.0.push((src, delivery));
    }

    /// Writes the state its records changed to the changelog and gives the future of the
    /// batch's acknowledgements: each record's own delivery, and the changelog's.
    async fn close(&mut self, producer: &FutureProducer, spec: &ProcessorSpec, state: &mut StateChanges, transform: Option<&Transform>) -> Result<impl std::future::Future<Output = Vec<Acked>> + use<>, String> {
        let changelog = match &spec.changelog {
            Some(topic) => state.write(producer, topic, transform).await?,
            None => vec![],
        };
        Ok(acked(std::mem::take(&mut self.0), changelog))
    }
}

/// State not written to the changelog yet: the keys changed since the last write, each
/// written once with its value at that time (Kafka Streams' record cache). A batch of 500
/// customer events changes the window record 500 times and each of ~100 customers several
/// times; the changelog gets one record per key, and the values are serialised then, not
/// per event. Compaction keeps only the last value of a key anyway, and a restore replays
/// the last value per key, so what is restored is the same.
#[derive(Default)]
struct StateChanges(HashSet<String>);

impl StateChanges {
    fn touch(&mut self, key: &str) {
        if !self.0.contains(key) {
            self.0.insert(key.to_string());
        }
    }

    /// Hands every changed key's current value to the producer (a tombstone for `None`)
    /// and forgets the keys.
    async fn write(&mut self, producer: &FutureProducer, topic: &str, transform: Option<&Transform>) -> Result<Vec<DeliveryFuture>, String> {
        let Some(t) = transform else {
            self.0.clear();
            return Ok(vec![]);
        };
        let mut deliveries = Vec::with_capacity(self.0.len());
        for k in self.0.drain() {
            let v = t.value(&k);
            deliveries.push(enqueue_opt(producer, topic, k.as_bytes(), v.as_deref(), None).await.map_err(|e| e.to_string())?);
        }
        Ok(deliveries)
    }
}

/// What one input record becomes: the output (or the DLQ record); the state keys it
/// changed are marked in the batch's [`StateChanges`]. The same for both delivery modes.
struct Routed {
    dlq: bool,
    bytes: Vec<u8>,
    headers: OwnedHeaders,
    event_ms: u64,
    consumed_ms: u64,
}

fn route(spec: &ProcessorSpec, transform: Option<&mut Transform>, m: &impl Message, state: &mut StateChanges) -> Routed {
    let now = now_ms();
    let kafka_ms = m.timestamp().to_millis().map(|t| t.max(0) as u64).unwrap_or(now);
    let payload = || m.payload().unwrap_or_default().to_vec();
    let dead = |reason: &str, event_ms| Routed { dlq: true, bytes: payload(), headers: dlq_headers(spec, m, reason), event_ms, consumed_ms: now };
    let Some(transform) = transform else {
        return Routed { dlq: false, bytes: payload(), headers: OwnedHeaders::new(), event_ms: kafka_ms, consumed_ms: now };
    };
    match CloudEvent::parse(m.payload().unwrap_or_default()) {
        Err(reason) => dead(&reason.0, kafka_ms),
        Ok(ev) => {
            let event_ms = ev.time_ms().unwrap_or(kafka_ms);
            match transform.process(&ev, now) {
                Outcome::Emit(out) => {
                    if spec.changelog.is_some() {
                        transform.touched(&ev, |k| state.touch(k));
                    }
                    Routed { dlq: false, bytes: out.to_bytes(), headers: ce_headers(), event_ms, consumed_ms: now }
                }
                Outcome::Reject(reason) => dead(&reason, event_ms),
            }
        }
    }
}

/// Hands a routed record to the producer: the output, or the DLQ record (keyed like its
/// input).
async fn send(producer: &FutureProducer, spec: &ProcessorSpec, m: &impl Message, dlq: bool, bytes: &[u8], headers: OwnedHeaders) -> Result<DeliveryFuture, String> {
    let dest = if dlq { &spec.dlq } else { &spec.output };
    enqueue(producer, dest, m.key().unwrap_or_default(), bytes, headers).await.map_err(|e| e.to_string())
}

/// How long a loop waits on an idle input before it polls the consumer afresh. A
/// `StreamConsumer` waiting in `recv()` is woken by new records only, and librdkafka takes a
/// member that has not polled for max.poll.interval.ms (5 min) out of its group: seen after
/// a drill's load, "Application maximum poll interval (300000ms) exceeded … leaving group".
const IDLE_POLL: Duration = Duration::from_secs(60);

/// Ticks every [`IDLE_POLL`] from now on (one timer for the loop, not one per record).
fn idle_ticks() -> tokio::time::Interval {
    tokio::time::interval_at(tokio::time::Instant::now() + IDLE_POLL, IDLE_POLL)
}

/// How long a subscribed consumer may hold no partition of an input that exists before
/// the processor restarts. A consumer that joined its group gets its share within a
/// session timeout (10 s) and a rebalance; once (CI, a stack provisioned while the
/// processors started) one sat unassigned for ten minutes, reporting "running" with
/// thousands of records waiting and no reason anywhere.
pub const ASSIGN_WITHIN: Duration = Duration::from_secs(60);

/// Resolves, with the reason, once the consumer has held no partition of `spec.input` for
/// [`ASSIGN_WITHIN`] although the topic exists and its group has no more members than the
/// topic has partitions (a member beyond that is idle by design). A missing input topic
/// (the stack still provisioning) is a transient error shown on the page, not a failure.
async fn watch_assignment(spec: &ProcessorSpec, assigned: Arc<std::sync::atomic::AtomicBool>, stats: &Stats) -> String {
    let mut since = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        if assigned.load(Ordering::SeqCst) || since.elapsed() < spec.assign_within {
            if assigned.load(Ordering::SeqCst) {
                since = tokio::time::Instant::now();
            }
            continue;
        }
        let (brokers, group, input) = (spec.brokers.clone(), spec.group.clone(), spec.input.clone());
        let seen = tokio::task::spawn_blocking(move || group_and_partitions(&brokers, &group, &input)).await;
        match seen {
            Ok(Ok(Unassigned::NoTopic)) => {
                stats.note_error(format!("waiting for the input topic {} to exist", spec.input));
                since = tokio::time::Instant::now();
            }
            // A rebalance in progress may wait for a slow member (up to its poll interval):
            // not stuck yet.
            Ok(Ok(Unassigned::MoreMembersThanPartitions | Unassigned::Rebalancing)) => since = tokio::time::Instant::now(),
            Ok(Ok(Unassigned::Stuck { members, partitions })) if !assigned.load(Ordering::SeqCst) => {
                return format!(
                    "no partition of {} assigned within {} s of joining group {} ({members} member(s), {partitions} partition(s)); restarting the consumer",
                    spec.input,
                    spec.assign_within.as_secs(),
                    spec.group
                )
            }
            Ok(Ok(Unassigned::Stuck { .. })) => since = tokio::time::Instant::now(),
            // Brokers or coordinator unreachable: a transient error (shown on the page), checked
            // again at the next tick rather than a restart (which would redo the restore).
            Ok(Err(e)) => stats.note_error(format!("no partition of {} assigned yet, and its group cannot be read: {e}", spec.input)),
            Err(e) => return format!("assignment check: {e}"),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Unassigned {
    NoTopic,
    MoreMembersThanPartitions,
    Rebalancing,
    Stuck { members: usize, partitions: usize },
}

/// Why a consumer of `group` may hold no partition of `topic`, read from the brokers.
fn group_and_partitions(brokers: &str, group: &str, topic: &str) -> Result<Unassigned, String> {
    use rdkafka::consumer::BaseConsumer;
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", brokers).create().map_err(|e| e.to_string())?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).map_err(|e| format!("metadata of {topic}: {e}"))?;
    let partitions = md.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len());
    let groups = c.fetch_group_list(Some(group), Duration::from_secs(10)).map_err(|e| format!("group {group}: {e}"))?;
    let (members, state) = groups.groups().first().map_or((0, String::new()), |g| (g.members().len(), g.state().to_string()));
    Ok(unassigned(partitions, members, &state))
}

/// See [`group_and_partitions`]; `partitions` 0: the topic does not exist; `state` the
/// group's (Stable, Empty, PreparingRebalance, CompletingRebalance, Dead).
fn unassigned(partitions: usize, members: usize, state: &str) -> Unassigned {
    match partitions {
        0 => Unassigned::NoTopic,
        _ if state.ends_with("Rebalance") => Unassigned::Rebalancing,
        p if members > p => Unassigned::MoreMembersThanPartitions,
        p => Unassigned::Stuck { members, partitions: p },
    }
}

/// Records per transaction at most, and how long a transaction waits to fill.
const TX_BATCH: usize = 500;
const TX_LINGER: Duration = Duration::from_millis(100);

/// Exactly-once (Kafka Streams' `exactly_once_v2`): each batch of inputs is consumed,
/// transformed and produced in one Kafka transaction together with its input offsets, so
/// a `read_committed` reader sees every output (and state change) once or not at all. A
/// failure aborts the transaction and ends the loop: the supervisor's restart resumes
/// from the last committed offsets with the state restored from the committed changelog.
async fn run_transactional(
    spec: &ProcessorSpec,
    stats: &Stats,
    cancel: &CancellationToken,
    consumer: Input,
    mut transform: Option<Transform>,
    mut unassigned: std::pin::Pin<&mut impl std::future::Future<Output = String>>,
) -> Result<(), String> {
    use rdkafka::{producer::Producer, TopicPartitionList};
    const T: Duration = Duration::from_secs(30);
    let producer = transactional_producer(spec).map_err(|e| format!("transactional producer config: {e}"))?;
    producer.init_transactions(T).map_err(|e| format!("init transactions: {e}"))?;
    let revocations = || consumer.context().0.load(Ordering::SeqCst);
    let mut idle = idle_ticks();
    // A record received after a revocation, kept for the next transaction.
    let mut carried = None;
    loop {
        let first = match carried.take() {
            Some(m) => Ok(m),
            None => loop {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    why = &mut unassigned => return Err(why),
                    m = consumer.recv() => break m,
                    // Idle input: poll again (see IDLE_POLL).
                    _ = idle.tick() => {}
                }
            },
        };
        let first = match first {
            Ok(m) => m,
            Err(e) => {
                stats.note_error(e.to_string());
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        // One transaction holds records of one assignment, and its offsets go with the
        // group generation they were consumed under (taken now): if the group rebalanced
        // meanwhile, the coordinator refuses them instead of committing offsets that the
        // partitions' new owner (this consumer included) has already started from.
        let revoked = revocations();
        let meta = consumer.group_metadata().ok_or_else(|| "no consumer group metadata".to_string())?;
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + TX_LINGER;
        while batch.len() < TX_BATCH {
            match tokio::time::timeout_at(until, consumer.recv()).await {
                Ok(Ok(m)) if revocations() != revoked => {
                    carried = Some(m);
                    break;
                }
                Ok(Ok(m)) => batch.push(m),
                _ => break,
            }
        }
        let rebalanced = revocations() != revoked;
        stats.clear_error();
        producer.begin_transaction().map_err(|e| format!("begin transaction: {e}"))?;
        let fail = |what: String| {
            let _ = producer.abort_transaction(T);
            what
        };
        let mut pending = Vec::with_capacity(batch.len());
        let mut next = std::collections::BTreeMap::new();
        let mut state = StateChanges::default();
        for m in &batch {
            let r = route(spec, transform.as_mut(), m, &mut state);
            pending.push((r.dlq, r.event_ms, r.consumed_ms, send(&producer, spec, m, r.dlq, &r.bytes, r.headers).await.map_err(fail)?));
            next.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
        }
        // The transaction's state changes, the latest value per key.
        let changelog = match &spec.changelog {
            Some(topic) => state.write(&producer, topic, transform.as_ref()).await.map_err(fail)?,
            None => vec![],
        };
        let (mut out, mut dead, mut lat) = (0, 0, Vec::with_capacity(batch.len()));
        for (dlq, event_ms, consumed_ms, d) in pending {
            delivered(d.await).map_err(|e| fail(format!("{e}; the transaction was aborted")))?;
            if dlq { dead += 1 } else { out += 1 }
            lat.push(Latency::of(event_ms, consumed_ms, now_ms()));
        }
        for d in changelog {
            delivered(d.await).map_err(|e| fail(format!("{e} (state changes); the transaction was aborted")))?;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), o) in &next {
            tpl.add_partition_offset(topic, *p, rdkafka::Offset::Offset(*o)).map_err(|e| fail(e.to_string()))?;
        }
        let committed = producer
            .send_offsets_to_transaction(&tpl, &meta, T)
            .map_err(|e| format!("offsets into the transaction: {e}"))
            .and_then(|()| producer.commit_transaction(T).map_err(|e| format!("commit transaction: {e}")));
        if let Err(e) = committed {
            // Refused (after a rebalance: for the old generation) and aborted: the batch is
            // consumed again from the committed offsets. The transform's in-memory state
            // already counted it, so the restart also replays the state from the committed
            // changelog, as after any other failure.
            let why = if rebalanced { format!("a rebalance moved partitions during a transaction ({e}); it was aborted") } else { e };
            return Err(fail(why));
        }
        stats.consumed.fetch_add(batch.len() as u64, Ordering::Relaxed);
        stats.produced.fetch_add(out, Ordering::Relaxed);
        stats.dlq.fetch_add(dead, Ordering::Relaxed);
        stats.latencies_us.lock().unwrap().extend(lat);
    }
}

/// The producer of one processor's transactions: its id names the group and this control
/// plane, so a restart fences the transaction its predecessor left open.
fn transactional_producer(spec: &ProcessorSpec) -> rdkafka::error::KafkaResult<FutureProducer> {
    ClientConfig::new()
        .set("bootstrap.servers", &spec.brokers)
        .set("transactional.id", format!("{}-{}", spec.group, spec.instance))
        // Kafka Streams' default under exactly-once: a dead control plane's open
        // transaction holds the group's offsets (unstable) for at most this long.
        // (librdkafka bounds each record's delivery by it too: message.timeout.ms follows,
        // and may not be set above it.)
        .set("transaction.timeout.ms", "10000")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
}

/// Waits for a batch's deliveries: each record's own (its latency is taken when it is
/// acknowledged), then the changelog's, whose failure fails every record of the batch
/// (their state is not on the brokers).
async fn acked(records: Vec<(Source, DeliveryFuture)>, changelog: Vec<DeliveryFuture>) -> Vec<Acked> {
    let mut acks = Vec::with_capacity(records.len());
    for (src, d) in records {
        let r = delivered(d.await);
        acks.push((src, r, now_ms()));
    }
    let mut state = Ok(());
    for d in changelog {
        state = state.and(delivered(d.await).map_err(|e| format!("{e} (state changes)")));
    }
    if let Err(e) = state {
        for a in acks.iter_mut().filter(|a| a.1.is_ok()) {
            a.1 = Err(e.clone());
        }
    }
    acks
}

fn delivered<Dropped>(d: Result<rdkafka::producer::future_producer::OwnedDeliveryResult, Dropped>) -> Result<(), String> {
    match d {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, m))) => Err(format!("delivery to {} failed: {e}", m.topic())),
        Err(_) => Err("producer dropped a delivery".to_string()),
    }
}

/// A changelog partition with no leader cannot be read until one of its replicas is
/// elected: say so (with its in-sync set), instead of the client's "UnknownPartition" on
/// every restart. Kafka 4 keeps such a partition leaderless when its last in-sync copy
/// stopped uncleanly (empty ISR and ELR); only the broker's unclean election, or
/// recreating the changelog (the processor's state is then rebuilt from empty), ends it.
fn leaderless_error(topic: &str, partitions: impl Iterator<Item = (i32, i32, Vec<i32>)>) -> Result<(), String> {
    let dead: Vec<String> = partitions.filter(|(_, leader, _)| *leader < 0).map(|(p, _, isr)| format!("{p} (in-sync replicas {isr:?})")).collect();
    if dead.is_empty() {
        return Ok(());
    }
    Err(format!(
        "state changelog {topic} has no leader on partition {}: its last in-sync copy stopped uncleanly; restore needs a leader — \
         elect one on the brokers (kafka-leader-election.sh --election-type unclean) or delete the changelog topic to rebuild the state from empty",
        dead.join(", ")
    ))
}

/// Whether a partition-level error is one a client sees while leadership moves: right
/// after the topic was created (the leader named in the metadata has not taken the
/// partition yet) or during an election. Such an error is retried, not a failure.
fn leadership_in_flux(code: rdkafka::types::RDKafkaErrorCode) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(code, C::NotLeaderForPartition | C::LeaderNotAvailable | C::UnknownTopicOrPartition | C::NotCoordinator | C::FencedLeaderEpoch | C::UnknownLeaderEpoch)
}

/// The low and high watermarks of `topic`'s partition `p`, retried for up to 10 s while the
/// partition's leadership is in flux (a changelog the restore has just created: the CI run
/// of 300606f failed a processor on one `NotLeaderForPartition` there).
fn watermarks(c: &rdkafka::consumer::BaseConsumer, topic: &str, p: i32) -> Result<(i64, i64), String> {
    let since = std::time::Instant::now();
    loop {
        match c.fetch_watermarks(topic, p, Duration::from_secs(10)) {
            Err(e) if e.rdkafka_error_code().is_some_and(leadership_in_flux) && since.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(250))
            }
            r => return r.map_err(|e| format!("changelog {topic}[{p}]: {e}")),
        }
    }
}

/// Replays the changelog `topic` into `t` from the beginning to the current end of every
/// partition, creating the topic (compacted) when it does not exist yet. Bounded: 120 s.
async fn restore(spec: &ProcessorSpec, topic: &str, mut t: Transform, progress: Arc<(AtomicU64, AtomicU64)>, cancel: CancellationToken) -> Result<(Transform, u64), String> {
    progress.0.store(0, Ordering::Relaxed);
    progress.1.store(0, Ordering::Relaxed);
    // Cancellable: with the brokers down this admin call waits out its timeouts, and a stop
    // (the server's shutdown) waited for it — 57 s for the two processors at a Ctrl-C of
    // `make run` with no stack up; 2 s now (tests/streams.rs).
    tokio::select! {
        r = super::topics::ensure_compacted(&spec.brokers, topic) => r.map_err(|e| e.to_string())?,
        _ = cancel.cancelled() => return Err("stopped before its state topic was ready".into()),
    }
    let (brokers, group, topic) = (spec.brokers.clone(), format!("{}-restore", spec.group), topic.to_string());
    tokio::task::spawn_blocking(move || {
        use rdkafka::{consumer::BaseConsumer, Offset, TopicPartitionList};
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            // Only committed state: an aborted transaction's changes are not replayed.
            .set("isolation.level", "read_committed")
            .create()
            .map_err(|e| format!("changelog consumer: {e}"))?;
        // A partition between leaders (an election after a broker stopped) has none for a
        // moment: only one still without a leader after 10 s (as long as the watermark
        // reads below would wait) is reported as leaderless.
        let waited = std::time::Instant::now();
        let md = loop {
            let md = c.fetch_metadata(Some(&topic), Duration::from_secs(10)).map_err(|e| format!("changelog {topic}: {e}"))?;
            let leaderless = md.topics().first().map(|t| leaderless_error(&topic, t.partitions().iter().map(|p| (p.id(), p.leader(), p.isr().to_vec()))));
            match leaderless {
                Some(Err(e)) if waited.elapsed() >= Duration::from_secs(10) => return Err(e),
                Some(Err(_)) => std::thread::sleep(Duration::from_millis(500)),
                _ => break md,
            }
        };
        let parts = md.topics().first().map(|t| t.partitions().len() as i32).unwrap_or(0);
        let mut ends = std::collections::HashMap::new();
        let mut starts = std::collections::HashMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..parts {
            let (lo, hi) = watermarks(&c, &topic, p)?;
            if hi > lo {
                tpl.add_partition_offset(&topic, p, Offset::Beginning).map_err(|e| e.to_string())?;
                ends.insert(p, hi);
                starts.insert(p, lo);
            }
        }
        let total: i64 = ends.iter().map(|(p, hi)| hi - starts[p]).sum();
        progress.1.store(total.max(0) as u64, Ordering::Relaxed);
        let mut reached: std::collections::HashMap<i32, i64> = starts.clone();
        let report = |reached: &std::collections::HashMap<i32, i64>| {
            let done: i64 = reached.iter().map(|(p, o)| o - starts[p]).sum();
            progress.0.store(done.clamp(0, total) as u64, Ordering::Relaxed);
        };
        let mut n = 0;
        if ends.is_empty() {
            return Ok((t, 0));
        }
        c.assign(&tpl).map_err(|e| format!("changelog {topic}: {e}"))?;
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !ends.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(format!("restoring state from {topic} took over 120 s ({n} records so far)"));
            }
            // A stop (or a guarantee switch) during a long restore ends it at once.
            if cancel.is_cancelled() {
                return Err(format!("stopped while restoring {topic} ({n} records so far)"));
            }
            match c.poll(Duration::from_millis(500)) {
                Some(Ok(m)) => {
                    if let Some(k) = m.key() {
                        t.restore(&String::from_utf8_lossy(k), m.payload());
                        n += 1;
                    }
                    reached.insert(m.partition(), m.offset() + 1);
                    if n % 1000 == 0 {
                        report(&reached);
                    }
                    if ends.get(&m.partition()).is_some_and(|end| m.offset() + 1 >= *end) {
                        ends.remove(&m.partition());
                    }
                }
                Some(Err(e)) => return Err(format!("changelog {topic}: {e}")),
                None => {}
            }
            // A read_committed consumer never sees transaction markers: compare its position,
            // which moves past them, with the end as well.
            if let Ok(pos) = c.position() {
                for e in pos.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        if ends.get(&e.partition()).is_some_and(|end| o >= *end) {
                            ends.remove(&e.partition());
                        }
                    }
                }
            }
        }
        progress.0.store(total.max(0) as u64, Ordering::Relaxed);
        Ok((t, n))
    })
    .await
    .map_err(|e| format!("restore: {e}"))?
}

/// Partitions with a record whose delivery failed: nothing of theirs is stored after it.
#[derive(Default)]
struct Blocked(HashSet<(String, i32)>);

impl Blocked {
    /// Whether `src`'s offset may be stored; a failed delivery blocks its partition.
    fn admit(&mut self, src: &Source, delivered: bool) -> bool {
        let key = (src.topic.clone(), src.partition);
        if !delivered {
            self.0.insert(key);
            return false;
        }
        !self.0.contains(&key)
    }
}

/// Stores the inputs' offsets once their output and state are on the brokers and nothing
/// before them on their partition failed (one call per batch, the next offset of each
/// partition); a failed delivery is an `Err` (the loop stops) and blocks the partition, so
/// the record is consumed again after the restart.
fn acknowledge(consumer: &Input, stats: &Stats, acks: Vec<Acked>, blocked: &mut Blocked) -> Result<(), String> {
    let s = settle(&acks, blocked);
    if !s.next.is_empty() {
        let mut tpl = rdkafka::TopicPartitionList::new();
        for (t, p, o) in s.next {
            let _ = tpl.add_partition_offset(t, p, rdkafka::Offset::Offset(o));
        }
        if let Err(e) = consumer.store_offsets(&tpl) {
            // The partitions were revoked meanwhile: their new owner consumes the records again.
            tracing::debug!(error = %e, "offsets not stored");
        }
    }
    stats.produced.fetch_add(s.produced, Ordering::Relaxed);
    stats.dlq.fetch_add(s.dead, Ordering::Relaxed);
    stats.latencies_us.lock().unwrap().extend(s.latencies_us);
    s.result
}

/// What a batch's acknowledgements come to.
struct Settled<'a> {
    /// (topic, partition, next offset to consume) to store.
    next: Vec<(&'a str, i32, i64)>,
    produced: u64,
    dead: u64,
    latencies_us: Vec<Latency>,
    result: Result<(), String>,
}

fn settle<'a>(acks: &'a [Acked], blocked: &mut Blocked) -> Settled<'a> {
    let mut s = Settled { next: vec![], produced: 0, dead: 0, latencies_us: Vec::with_capacity(acks.len()), result: Ok(()) };
    for (src, r, acked_ms) in acks {
        let failure = r.as_ref().err().map(|e| format!("{e} ({})", if src.dlq { "to the DLQ" } else { "to the output" }));
        if !blocked.admit(src, failure.is_none()) {
            if let Some(e) = failure {
                let e = format!("{e}; {}[{}] will be consumed again from offset {}", src.topic, src.partition, src.offset);
                if s.result.is_ok() {
                    s.result = Err(e);
                }
            }
            // Delivered, but an earlier record of its partition was not: it will be
            // produced again after the restart (at-least-once), so its offset stays unstored.
            continue;
        }
        match s.next.iter_mut().find(|(t, p, _)| *p == src.partition && *t == src.topic) {
            Some(n) => n.2 = n.2.max(src.offset + 1),
            None => s.next.push((&src.topic, src.partition, src.offset + 1)),
        }
        if src.dlq { s.dead += 1 } else { s.produced += 1 }
        s.latencies_us.push(Latency::of(src.event_ms, src.consumed_ms, *acked_ms));
    }
    s
}

/// Hands a record to librdkafka (waiting while its queue is full); the future resolves
/// when the brokers acknowledge it.
pub async fn enqueue(producer: &FutureProducer, topic: &str, key: &[u8], payload: &[u8], headers: OwnedHeaders) -> Result<DeliveryFuture, StreamsError> {
    enqueue_opt(producer, topic, key, Some(payload), Some(headers)).await
}

/// [`enqueue`] where no payload (`None`) is a tombstone: compaction drops the key.
async fn enqueue_opt(producer: &FutureProducer, topic: &str, key: &[u8], payload: Option<&[u8]>, mut headers: Option<OwnedHeaders>) -> Result<DeliveryFuture, StreamsError> {
    loop {
        let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(topic).key(key);
        record.headers = headers.take();
        if let Some(p) = payload {
            record = record.payload(p);
        }
        match producer.send_result(record) {
            Ok(d) => return Ok(d),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                // The record comes back: its headers go into the next try.
                headers = record.headers;
                tokio::time::sleep(Duration::from_millis(5)).await
            }
            Err((e, _)) => return Err(StreamsError::Kafka(format!("produce to {topic}: {e}"))),
        }
    }
}

pub fn ce_headers() -> OwnedHeaders {
    OwnedHeaders::new().insert(Header { key: "content-type", value: Some(CONTENT_TYPE) })
}

fn dlq_headers(spec: &ProcessorSpec, m: &impl Message, reason: &str) -> OwnedHeaders {
    OwnedHeaders::new()
        .insert(Header { key: "error", value: Some(reason) })
        .insert(Header { key: "processor", value: Some(spec.name.as_str()) })
        .insert(Header { key: "source-topic", value: Some(m.topic()) })
        .insert(Header { key: "source-partition", value: Some(&m.partition().to_string()) })
        .insert(Header { key: "source-offset", value: Some(&m.offset().to_string()) })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_transient_error_carries_its_age_and_ends_when_the_brokers_answer_after_it() {
        let stats = super::Stats::default();
        assert_eq!(stats.transient_error(crate::clock::now_ms(), 0), None);
        stats.note_error("Message consumption error: AllBrokersDown".into());
        let at = stats.last_error.lock().unwrap().as_ref().unwrap().1;
        // The last good read began before the error: still current, however old.
        assert_eq!(stats.transient_error(at + 125_400, at - 1).as_deref(), Some("Message consumption error: AllBrokersDown (125 s ago)"));
        // A read begun after it succeeded: over.
        assert_eq!(stats.transient_error(at + 6_000, at + 5_000), None);
    }

    #[test]
    fn an_unassigned_consumer_is_stuck_only_when_the_topic_exists_and_has_a_partition_for_it() {
        assert_eq!(unassigned(0, 1, "Stable"), Unassigned::NoTopic);
        assert_eq!(unassigned(3, 4, "Stable"), Unassigned::MoreMembersThanPartitions);
        assert_eq!(unassigned(3, 3, "Stable"), Unassigned::Stuck { members: 3, partitions: 3 });
        // A rebalance waits for its slowest member: not stuck while it lasts.
        assert_eq!(unassigned(3, 2, "PreparingRebalance"), Unassigned::Rebalancing);
        assert_eq!(unassigned(3, 2, "CompletingRebalance"), Unassigned::Rebalancing);
        // The coordinator lists no member at all: still stuck (it should list this one).
        assert_eq!(unassigned(3, 0, "Empty"), Unassigned::Stuck { members: 0, partitions: 3 });
    }

    #[test]
    fn only_errors_of_moving_leadership_are_retried_by_the_restore() {
        use rdkafka::types::RDKafkaErrorCode as C;
        for c in [C::NotLeaderForPartition, C::LeaderNotAvailable, C::UnknownTopicOrPartition] {
            assert!(super::leadership_in_flux(c), "{c:?}");
        }
        for c in [C::TopicAuthorizationFailed, C::GroupAuthorizationFailed, C::InvalidPartitions, C::UnknownTopic] {
            assert!(!super::leadership_in_flux(c), "{c:?}");
        }
    }

    #[test]
    fn a_leaderless_changelog_partition_is_named_with_its_in_sync_set() {
        assert!(super::leaderless_error("c", [(0, 1, vec![1, 2]), (1, 2, vec![2])].into_iter()).is_ok());
        let e = super::leaderless_error("bss-x-state-changelog", [(0, 1, vec![1]), (2, -1, vec![])].into_iter()).unwrap_err();
        assert!(e.contains("bss-x-state-changelog has no leader on partition 2 (in-sync replicas [])"), "{e}");
        assert!(!e.contains("partition 0"), "{e}");
        assert!(e.contains("unclean") && e.contains("delete the changelog"), "{e}");
    }

    use super::*;

    fn src(partition: i32, offset: i64) -> Source {
        Source { topic: "in".into(), partition, offset, dlq: false, event_ms: 0, consumed_ms: 2 }
    }

    #[test]
    fn the_transactional_producer_config_is_accepted() {
        // librdkafka checks the settings against each other at creation (no broker needed).
        let spec = ProcessorSpec {
            name: "p".into(),
            brokers: "127.0.0.1:1".into(),
            group: "g".into(),
            input: "in".into(),
            output: "out".into(),
            dlq: "dlq".into(),
            kind: Kind::Passthrough,
            window_ms: 1000,
            changelog: None,
            exactly_once: true,
            instance: "host-0a1b2c3d".into(),
            assign_within: ASSIGN_WITHIN,
        };
        if let Err(e) = transactional_producer(&spec) {
            panic!("{e}");
        }
    }

    #[test]
    fn a_batch_stores_the_next_offset_of_each_partition_up_to_its_first_failure() {
        let ok = |p, o, at| (src(p, o), Ok(()), at);
        let acks = vec![ok(0, 10, 5), ok(1, 3, 6), ok(0, 11, 7), (src(0, 12), Err("delivery to out failed: timed out".into()), 8), ok(0, 13, 9), ok(1, 4, 9)];
        let mut blocked = Blocked::default();
        let s = settle(&acks, &mut blocked);
        assert_eq!(s.next, vec![("in", 0, 12), ("in", 1, 5)], "partition 0 stops before the failed record 12; 13 waits");
        assert_eq!((s.produced, s.dead), (4, 0));
        let lat = |ms: u64| Latency { total_us: ms * 1000, wait_us: 2000 };
        assert_eq!(s.latencies_us, vec![lat(5), lat(6), lat(7), lat(9)]);
        let e = s.result.unwrap_err();
        assert!(e.contains("in[0] will be consumed again from offset 12") && e.contains("to the output"), "{e}");
        // The next batch of partition 0 stays blocked; partition 1 carries on.
        let later = vec![ok(0, 14, 10), ok(1, 5, 10)];
        let s = settle(&later, &mut blocked);
        assert_eq!(s.next, vec![("in", 1, 6)]);
        assert!(s.result.is_ok());
    }

    #[test]
    fn state_changes_are_written_once_per_key_with_the_value_at_the_write() {
        use crate::streams::events::{sample_event, CustomerAnalytics};
        let mut t = Transform::Customer(CustomerAnalytics::new(60_000));
        let mut state = StateChanges::default();
        for seq in [0, 194, 2] {
            // seq 0 and 194 are the same customer (cust-0), seq 2 another (cust-2).
            let (_, _, bytes) = sample_event("r", seq, 1_000);
            let ev = CloudEvent::parse(&bytes).unwrap();
            assert!(matches!(t.process(&ev, 1_000), Outcome::Emit(_)));
            t.touched(&ev, |k| state.touch(k));
        }
        let mut keys: Vec<&str> = state.0.iter().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["cust-0", "cust-2", "~window"], "one record per key, however often it changed");
        assert_eq!(t.value("cust-0").as_deref(), Some(&b"2"[..]), "the value at the write: both events counted");
        assert_eq!(t.value("cust-9"), None, "a key the state does not hold is a tombstone");
    }

    #[test]
    fn a_failed_delivery_blocks_later_offsets_of_its_partition_only() {
        let mut b = Blocked::default();
        assert!(b.admit(&src(0, 1), true));
        assert!(!b.admit(&src(0, 2), false), "the failed record itself is never stored");
        assert!(!b.admit(&src(0, 3), true), "a later record of the same partition must not move its offset past 2");
        assert!(b.admit(&src(1, 7), true), "other partitions carry on");
    }
}
