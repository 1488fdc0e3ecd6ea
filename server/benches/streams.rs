//! `make bench` part 2: the stream processors against two baselines, same run, same brokers
//! (the stack's three Apache Kafka brokers, 3 partitions, RF 3, acks=all):
//!   pipe      — the raw pipe, the limit on these brokers: a byte copy written as fast as the
//!               client allows (a `BaseConsumer` polled on its own thread → a `BaseProducer`
//!               with a delivery callback, offsets stored per partition once acknowledged,
//!               in batches), with the same at-least-once bookkeeping and producer settings
//!   loop      — the processors' own at-least-once loop with no parsing and no transform
//!               (Kind::Passthrough): what the loop costs before any transform
//!   rust      — bss-customer-analytics / bss-order-processor as hosted by the control plane
//!   rust-eos  — the same under exactly-once (Kafka transactions; latency is to the output's
//!               append, its visibility to read_committed readers waits for the commit)
//!   kstreams  — the same transforms as a Kafka Streams topology (dev/bench/kstreams, Java 17)
//! For each: (1) throughput draining a backlog of N events (first → last output, broker
//! LogAppendTime), (2) end-to-end latency at a paced rate (output LogAppendTime − input event
//! time), p50/p99. Prints every number and the ratios; asserts nothing (the machine is shared).
//!
//! Needs the stack up and KSTREAMS_CP (the jar + lib/*; bench.sh builds it with Maven).
use std::{
    collections::{HashMap, VecDeque},
    process::{Child, Command},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::{ClientContext, DefaultClientContext},
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    error::{KafkaError, RDKafkaErrorCode},
    message::Message,
    producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext},
    Offset, Timestamp, TopicPartitionList,
};
use server::streams::{
    events::{now_ms, rfc3339_to_ms, sample_event, CloudEvent},
    percentile,
    processor::{self, Kind, ProcessorSpec},
    Streams,
};

const BROKERS: &str = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9095";

/// The paced phases below the headline rate: (events/s, seconds).
const PACED: [(u64, u64); 4] = [(100, 3), (300, 3), (1_000, 2), (5_000, 2)];

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

async fn create_topics(names: &[String]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", BROKERS).create().unwrap();
    let topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 3, TopicReplication::Fixed(3)).set("message.timestamp.type", "LogAppendTime"))
        .collect();
    for r in admin.create_topics(&topics, &AdminOptions::new()).await.expect("create topics") {
        r.expect("topic created");
    }
}

/// Events of one kind: customer events use even sequence numbers, orders odd.
fn event(kind: &str, run: &str, i: u64) -> (String, Vec<u8>) {
    let seq = if kind == "customer" { i * 2 } else { i * 2 + 1 };
    let (_, key, bytes) = sample_event(run, seq, now_ms());
    (key, bytes)
}

/// Produces events `from..from + n` on `p`, paced at `rate` events/s if given; returns the
/// rate achieved, acknowledgements included.
async fn produce(p: &rdkafka::producer::FutureProducer, topic: &str, kind: &str, run: &str, from: u64, n: u64, rate: Option<u64>) -> f64 {
    let start = Instant::now();
    let mut pending = Vec::with_capacity(n as usize);
    for i in from..from + n {
        if let Some(r) = rate {
            // Paced: event i is due at (i - from) / rate seconds.
            let due = Duration::from_secs_f64((i - from) as f64 / r as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                if wait > Duration::from_millis(1) {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let (key, bytes) = event(kind, run, i);
        pending.push(processor::enqueue(p, topic, key.as_bytes(), &bytes, processor::ce_headers()).await.unwrap());
    }
    for d in pending {
        d.await.unwrap().expect("acknowledged");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn high_watermarks(topic: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", BROKERS).create().unwrap();
    (0..3).map(|p| c.fetch_watermarks(topic, p, Duration::from_secs(5)).map(|w| w.1).unwrap_or(0)).sum()
}

/// One record as read back: its LogAppendTime, the input event's id and time (an output
/// carries them as causationid / causationtime; the raw pipe's output is the input itself),
/// and when a processor handled it (`processedat`, outputs only). Times in unix ms.
struct Seen {
    appended: i64,
    input_id: String,
    input_ms: i64,
    processed_ms: Option<i64>,
}

fn rfc3339(v: Option<&serde_json::Value>) -> Option<i64> {
    rfc3339_to_ms(v?.as_str()?).map(|t| t as i64)
}

/// Every record on `topic` (up to `want`, or until 10 s pass without one).
async fn read_times(topic: &str, want: usize) -> Vec<Seen> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", format!("bench-reader-{topic}"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut out = Vec::with_capacity(want);
    while out.len() < want {
        let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(10), c.recv()).await else { break };
        let appended = match m.timestamp() {
            Timestamp::LogAppendTime(t) | Timestamp::CreateTime(t) => t,
            Timestamp::NotAvailable => continue,
        };
        let Ok(ev) = CloudEvent::parse(m.payload().unwrap_or_default()) else { continue };
        let input_ms = rfc3339(ev.extensions.get("causationtime")).or_else(|| ev.time_ms().map(|t| t as i64));
        let input_id = ev.extensions.get("causationid").and_then(|v| v.as_str()).unwrap_or(&ev.id).to_string();
        if let Some(input_ms) = input_ms {
            out.push(Seen { appended, input_id, input_ms, processed_ms: rfc3339(ev.extensions.get("processedat")) });
        }
    }
    out
}

/// The paced phase's latency split per hop, p50 / p99 (ms): event time → input appended,
/// input appended → processed (processors only), processed → output appended, and end to
/// end (event time → output appended).
fn hops(inputs: &[Seen], outputs: &[&Seen]) -> Vec<(&'static str, f64, f64)> {
    let appended_in: std::collections::HashMap<&str, i64> = inputs.iter().map(|s| (s.input_id.as_str(), s.appended)).collect();
    let (mut produce, mut consume, mut emit, mut total) = (vec![], vec![], vec![], vec![]);
    for o in outputs {
        let Some(&ia) = appended_in.get(o.input_id.as_str()) else { continue };
        produce.push((ia - o.input_ms).max(0) as u64);
        total.push((o.appended - o.input_ms).max(0) as u64);
        match o.processed_ms {
            Some(p) => {
                consume.push((p - ia).max(0) as u64);
                emit.push((o.appended - p).max(0) as u64);
            }
            None => emit.push((o.appended - ia).max(0) as u64),
        }
    }
    let mut rows = vec![];
    for (name, mut v) in [("event → input appended", produce), ("input appended → processed", consume), ("→ output appended", emit), ("end to end", total)] {
        if !v.is_empty() {
            rows.push((name, percentile(&mut v, 0.50), percentile(&mut v, 0.99)));
        }
    }
    rows
}

enum Running {
    InProcess(std::sync::Arc<Streams>),
    Java(Child),
    Pipe(RawPipe),
}

/// The raw pipe: consume → produce the same bytes, at-least-once, on one thread.
struct RawPipe {
    stop: Arc<AtomicBool>,
    produced: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

/// Deliveries come back through the producer's poll on the pipe's own thread.
struct PipeDeliveries {
    acked: Mutex<Vec<(i32, i64)>>,
    failed: AtomicBool,
}

impl ClientContext for PipeDeliveries {}

impl ProducerContext for PipeDeliveries {
    /// The input's (partition, offset), packed: offset << 16 | partition.
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, opaque: usize) {
        match r {
            Ok(_) => self.acked.lock().unwrap().push(((opaque & 0xffff) as i32, (opaque >> 16) as i64)),
            Err(_) => self.failed.store(true, Ordering::Relaxed),
        }
    }
}

impl RawPipe {
    fn start(input: &str, output: &str, group: &str) -> RawPipe {
        let stop = Arc::new(AtomicBool::new(false));
        let produced = Arc::new(AtomicU64::new(0));
        let (input, output, group) = (input.to_string(), output.to_string(), group.to_string());
        let (s, p) = (stop.clone(), produced.clone());
        let thread = std::thread::spawn(move || raw_pipe(&input, &output, &group, &s, &p));
        RawPipe { stop, produced, thread }
    }
}

fn raw_pipe(input: &str, output: &str, group: &str, stop: &AtomicBool, produced: &AtomicU64) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[input]).unwrap();
    let producer: BaseProducer<PipeDeliveries> = processor::producer_config(BROKERS)
        .create_with_context(PipeDeliveries { acked: Mutex::new(vec![]), failed: AtomicBool::new(false) })
        .unwrap();
    // Per input partition: offsets in flight, in consumption order, and whether acknowledged.
    let mut in_flight: HashMap<i32, VecDeque<(i64, bool)>> = HashMap::new();
    let mut pending = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let mut got = 0;
        while got < 1000 && pending < 50_000 {
            let wait = if got == 0 && pending == 0 { Duration::from_millis(20) } else { Duration::ZERO };
            let Some(m) = consumer.poll(wait) else { break };
            let Ok(m) = m else { break };
            let opaque = ((m.offset() as usize) << 16) | m.partition() as usize;
            let mut record = BaseRecord::with_opaque_to(output, opaque).payload(m.payload().unwrap_or_default());
            if let Some(k) = m.key() {
                record = record.key(k);
            }
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => panic!("raw pipe produce: {e}"),
                }
            }
            in_flight.entry(m.partition()).or_default().push_back((m.offset(), false));
            pending += 1;
            got += 1;
        }
        producer.poll(if got == 0 && pending > 0 { Duration::from_millis(1) } else { Duration::ZERO });
        assert!(!producer.context().failed.load(Ordering::Relaxed), "raw pipe: a delivery failed");
        let acked = std::mem::take(&mut *producer.context().acked.lock().unwrap());
        if acked.is_empty() {
            continue;
        }
        produced.fetch_add(acked.len() as u64, Ordering::Relaxed);
        pending -= acked.len();
        for (p, o) in acked {
            let q = in_flight.get_mut(&p).unwrap();
            let i = q.partition_point(|(x, _)| *x < o);
            q[i].1 = true;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, q) in &mut in_flight {
            let mut next = None;
            while let Some((o, true)) = q.front().copied() {
                next = Some(o + 1);
                q.pop_front();
            }
            if let Some(n) = next {
                tpl.add_partition_offset(input, *p, Offset::Offset(n)).unwrap();
            }
        }
        if tpl.count() > 0 {
            let _ = consumer.store_offsets(&tpl);
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

impl Running {
    /// Whether `want` outputs are out: the processor's own count in process (under
    /// exactly-once the output's watermarks also count transaction markers), the topic's
    /// watermarks for Kafka Streams.
    fn reached(&self, output: &str, want: u64) -> bool {
        match self {
            Running::InProcess(s) => s.view().processors[0].produced >= want,
            Running::Java(_) => high_watermarks(output) >= want as i64,
            Running::Pipe(p) => p.produced.load(Ordering::Relaxed) >= want,
        }
    }

    async fn stop(self) {
        match self {
            Running::InProcess(s) => s.stop_all().await,
            Running::Java(mut c) => {
                let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
                let deadline = Instant::now() + Duration::from_secs(20);
                while c.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let _ = c.kill();
            }
            Running::Pipe(p) => {
                p.stop.store(true, Ordering::Relaxed);
                let _ = tokio::task::spawn_blocking(move || p.thread.join()).await;
            }
        }
    }
}

fn start(contender: &str, kind: &str, input: &str, output: &str, dlq: &str, run: &str) -> Running {
    let group = format!("{run}-{contender}-{kind}");
    if contender == "kstreams" {
        let cp = std::env::var("KSTREAMS_CP").expect("KSTREAMS_CP: classpath of dev/bench/kstreams (bench.sh sets it)");
        let child = Command::new("java")
            .args(["-Xmx512m", "-cp", &cp, "bss.bench.KStreamsBench", BROKERS, kind, input, output, dlq, &group])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("java");
        return Running::Java(child);
    }
    if contender == "pipe" {
        return Running::Pipe(RawPipe::start(input, output, &group));
    }
    let k = match (contender, kind) {
        ("loop", _) => Kind::Passthrough,
        (_, "customer") => Kind::CustomerAnalytics,
        _ => Kind::OrderProcessor,
    };
    let spec = ProcessorSpec {
        name: contender.into(),
        brokers: BROKERS.into(),
        group,
        input: input.into(),
        output: output.into(),
        dlq: dlq.into(),
        kind: k,
        window_ms: 60_000,
        // As in production: the transform's state goes to a changelog (the raw pipe has none).
        changelog: (k != Kind::Passthrough).then(|| format!("{output}-{contender}-changelog")),
        exactly_once: contender == "rust-eos",
        instance: "test".into(),
        assign_within: processor::ASSIGN_WITHIN,
    };
    let s = Streams::with_specs(BROKERS, vec![spec]);
    s.start(contender).unwrap();
    Running::InProcess(s)
}

struct Result {
    /// Per paced rate (events/s): the latency split per hop.
    hops: Vec<(u64, Vec<(&'static str, f64, f64)>)>,
    throughput: f64,
    p50: f64,
    p99: f64,
    paced_rate: f64,
}

async fn measure(contender: &str, kind: &str, run: &str, n: u64, rate: u64, secs: u64) -> Option<Result> {
    let base = format!("bench.{run}.{contender}.{kind}");
    let (input, output, dlq) = (format!("{base}.in"), format!("{base}.out"), format!("{base}.dlq"));
    create_topics(&[input.clone(), output.clone(), dlq.clone()]).await;
    // One producer for the whole measurement, as a service keeps one: a new idempotent
    // producer's first ~0.5 s (producer id, metadata, a connection per leader) held back the
    // first events of every paced phase, and that stall alone was the p99 of the first hop
    // at every rate (≈ 490 ms at 1 000, 5 000 and 10 000 ev/s).
    let producer = processor::producer(BROKERS).unwrap();
    // (1) Backlog: N events waiting before the contender starts.
    produce(&producer, &input, kind, run, 0, n, None).await;
    let running = start(contender, kind, &input, &output, &dlq, run);
    let deadline = Instant::now() + Duration::from_secs(240);
    while !running.reached(&output, n) {
        if Instant::now() > deadline {
            eprintln!("{contender}/{kind}: backlog not drained in 240 s ({} of {n})", high_watermarks(&output));
            running.stop().await;
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // (2) Paced, with the contender warm: 100 and 300 events/s for 3 s each (where the raw
    // pipe's p99 may stay under 50 ms), 1 000 and 5 000 events/s for 2 s each (the latency
    // budget's lower rates), then `rate` events/s for `secs` s (the headline).
    let mut phases: Vec<(u64, u64, u64)> = vec![]; // (rate, first event, events)
    let mut next = n;
    for (r, s) in PACED.into_iter().filter(|(r, _)| *r < rate).chain([(rate, secs)]) {
        phases.push((r, next, r * s));
        next += r * s;
    }
    let mut paced_rate = 0.0;
    for &(r, from, count) in &phases {
        paced_rate = produce(&producer, &input, kind, run, from, count, Some(r)).await;
    }
    let total = next;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running.reached(&output, total) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
    let times = read_times(&output, total as usize).await;
    let inputs = read_times(&input, total as usize).await;
    // Which event an input id is: "<run>-<seq>", seq = 2 × event (+1 for orders).
    let event_of = |id: &str| id.rsplit('-').next().and_then(|s| s.parse::<u64>().ok()).map(|seq| seq / 2);
    let in_phase = |s: &Seen, (_, from, count): (u64, u64, u64)| event_of(&s.input_id).is_some_and(|i| i >= from && i < from + count);
    let mut backlog: Vec<i64> = times.iter().filter(|s| event_of(&s.input_id).is_some_and(|i| i < n)).map(|s| s.appended).collect();
    backlog.sort_unstable();
    // The first 10 % of the backlog is warm-up (group join, partitions assigned one by
    // one): skipped.
    let drained = &backlog[backlog.len() / 10..];
    let span_ms = (drained.last().copied().unwrap_or(0) - drained.first().copied().unwrap_or(0)).max(1);
    let per_phase: Vec<(u64, Vec<&Seen>)> = phases.iter().map(|&ph| (ph.0, times.iter().filter(|s| in_phase(s, ph)).collect())).collect();
    let headline = &per_phase.last().unwrap().1;
    let mut lat: Vec<u64> = headline.iter().map(|s| (s.appended - s.input_ms).max(0) as u64).collect();
    Some(Result {
        hops: per_phase.iter().map(|(r, outs)| (*r, hops(&inputs, outs))).collect(),
        throughput: drained.len() as f64 / (span_ms as f64 / 1000.0),
        p50: percentile(&mut lat, 0.50),
        p99: percentile(&mut lat, 0.99),
        paced_rate,
    })
}

/// A result's end-to-end (p50, p99) at a paced rate.
fn end_to_end(r: &Result, rate: u64) -> Option<(f64, f64)> {
    r.hops.iter().find(|h| h.0 == rate)?.1.iter().find(|x| x.0 == "end to end").map(|x| (x.1, x.2))
}

#[tokio::main]
async fn main() {
    let n = env_u64("BENCH_EVENTS", 100_000);
    let rate = env_u64("BENCH_RATE", 10_000);
    let secs = env_u64("BENCH_SECS", 3);
    let run = format!("b{}", now_ms());
    println!("streams bench: 3 Apache Kafka 4.4 brokers (KRaft, Docker on this host), topics 3 partitions RF 3,");
    println!("  idempotent producers acks=all; backlog {n} events; paced {rate} ev/s for {secs} s");
    let rounds = env_u64("BENCH_STREAM_ROUNDS", 3) as usize;
    println!("  throughput: backlog drain, first 10 % skipped; pipe, rust and rust-eos alternate for {rounds} rounds, medians count;");
    println!("  loop and kstreams once");
    let kinds = std::env::var("BENCH_KINDS").unwrap_or_else(|_| "customer order".into());
    for kind in kinds.split_whitespace() {
        let mut rows: Vec<(&str, Option<Result>)> = vec![];
        // BENCH_CONTENDERS="pipe rust" measures a subset (experiments); all by default.
        let only = std::env::var("BENCH_CONTENDERS").ok();
        let order = (0..rounds)
            .flat_map(|_| ["pipe", "rust", "rust-eos"])
            .chain(["loop", "kstreams"])
            .filter(|c| only.as_deref().is_none_or(|o| o.split_whitespace().any(|x| x == *c)));
        for (round, contender) in order.enumerate() {
            let r = measure(contender, kind, &format!("{run}r{round}"), n, rate, secs).await;
            match &r {
                Some(r) => println!(
                    "  {kind:8} {contender:8} throughput {:>9.0} ev/s   paced at {:>6.0} ev/s: p50 {:>5.0} ms  p99 {:>5.0} ms",
                    r.throughput, r.paced_rate, r.p50, r.p99
                ),
                None => println!("  {kind:8} {contender:8} did not finish"),
            }
            for (rate, hops) in r.iter().flat_map(|r| &r.hops) {
                let split: Vec<String> = hops.iter().map(|(h, p50, p99)| format!("{h} {p50:.0}/{p99:.0}")).collect();
                println!("  {kind:8} {contender:8}   at {rate:>5} ev/s, per hop p50/p99 ms: {}", split.join(", "));
            }
            rows.push((contender, r));
        }
        // The median round of a contender (by throughput; its p99 is the median p99).
        let get = |c: &str| -> Option<Result> {
            let runs: Vec<&Result> = rows.iter().filter(|r| r.0 == c).filter_map(|r| r.1.as_ref()).collect();
            if runs.is_empty() {
                return None;
            }
            let median = |mut v: Vec<f64>| {
                v.sort_by(f64::total_cmp);
                v[v.len() / 2]
            };
            // Per paced rate, the median end-to-end p50 / p99 of the rounds.
            let hops = runs[0]
                .hops
                .iter()
                .map(|(rate, _)| {
                    let per: Vec<(f64, f64)> = runs.iter().filter_map(|r| end_to_end(r, *rate)).collect();
                    (*rate, vec![("end to end", median(per.iter().map(|x| x.0).collect()), median(per.iter().map(|x| x.1).collect()))])
                })
                .collect();
            Some(Result {
                throughput: median(runs.iter().map(|r| r.throughput).collect()),
                p50: median(runs.iter().map(|r| r.p50).collect()),
                p99: median(runs.iter().map(|r| r.p99).collect()),
                hops,
                paced_rate: median(runs.iter().map(|r| r.paced_rate).collect()),
            })
        };
        if let (Some(pipe), Some(rust)) = (get("pipe"), get("rust")) {
            let ratio = rust.throughput / pipe.throughput;
            println!(
                "  {kind:8} medians: raw pipe {:.0} ev/s, processor {:.0} ev/s: ratio {ratio:.2} (goal ≥ 0.80)",
                pipe.throughput, rust.throughput
            );
            server::goals::report(&format!("streams: {kind} processor / raw pipe throughput"), &format!("{ratio:.2}"), "≥ 0.80", ratio >= 0.8);
            let lat = rust.p99 / pipe.p99.max(1.0);
            println!("  {kind:8} p99 at {rate} ev/s: processor {:.0} ms, raw pipe {:.0} ms: ratio {lat:.2} (goal ≤ 1.2)", rust.p99, pipe.p99);
            server::goals::report(&format!("streams: {kind} processor p99 / raw pipe p99 at {rate} ev/s"), &format!("{lat:.2}"), "≤ 1.2", lat <= 1.2);
            // At every paced rate (medians of the rounds): the worst ratio is the goal's.
            let p99_at = |r: &Result, rate: u64| end_to_end(r, rate).map(|x| x.1);
            let mut worst: Option<(u64, f64)> = None;
            for (r, _) in &pipe.hops {
                if let (Some(p), Some(q)) = (p99_at(&pipe, *r), p99_at(&rust, *r)) {
                    let ratio = q / p.max(1.0);
                    println!("  {kind:8} end-to-end p99 at {r:>5} ev/s: raw pipe {p:.0} ms, processor {q:.0} ms: ratio {ratio:.2}");
                    if worst.is_none_or(|w| ratio > w.1) {
                        worst = Some((*r, ratio));
                    }
                }
            }
            if let Some((r, w)) = worst {
                server::goals::report(
                    &format!("streams: {kind} processor p99 / raw pipe p99, worst paced rate"),
                    &format!("{w:.2} (at {r} ev/s)"),
                    "≤ 1.2",
                    w <= 1.2,
                );
            }
            // Where the raw pipe itself keeps p99 under 50 ms.
            let under: Vec<u64> = pipe.hops.iter().filter(|(r, _)| p99_at(&pipe, *r).is_some_and(|p| p < 50.0)).map(|h| h.0).collect();
            let rates: Vec<String> = pipe.hops.iter().map(|h| h.0.to_string()).collect();
            server::goals::figure(
                &format!("streams: {kind}: highest paced rate at which the raw pipe keeps end-to-end p99 < 50 ms (of {} ev/s)", rates.join(", ")),
                &under.iter().max().map_or("none".to_string(), |r| format!("{r} ev/s")),
            );
        }
        if let (Some(pipe), Some(lp)) = (get("pipe"), get("loop")) {
            println!("  {kind:8} the processors' loop without a transform / raw pipe: {:.2}", lp.throughput / pipe.throughput);
        }
        if let (Some(pipe), Some(rust), Some(eos)) = (get("pipe"), get("rust"), get("rust-eos")) {
            println!(
                "  {kind:8} exactly-once / raw pipe throughput ratio {:.2}; exactly-once / at-least-once {:.2} (the cost of transactions)",
                eos.throughput / pipe.throughput,
                eos.throughput / rust.throughput
            );
        }
        if let (Some(ks), Some(rust)) = (get("kstreams"), get("rust")) {
            println!(
                "  {kind:8} rust / Kafka Streams throughput ratio {:.2} (goal > 1); p99 {:.0} ms vs {:.0} ms (goal < 50 ms at {rate} ev/s)",
                rust.throughput / ks.throughput,
                rust.p99,
                ks.p99
            );
            let ratio = rust.throughput / ks.throughput;
            server::goals::report(&format!("streams: {kind} processor / Kafka Streams throughput"), &format!("{ratio:.2}"), "> 1", ratio > 1.0);
            server::goals::report(&format!("streams: {kind} processor p99 at {rate} ev/s"), &format!("{:.0} ms", rust.p99), "< 50 ms", rust.p99 < 50.0);
        }
    }
}
