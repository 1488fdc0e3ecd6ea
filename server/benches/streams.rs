//! `make bench` part 2: the stream processors against two baselines, same run, same brokers
//! (the stack's three Apache Kafka brokers, 3 partitions, RF 3, acks=all):
//!   raw       — the same at-least-once loop with no parsing and no transform (Kind::Passthrough)
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
    process::{Child, Command},
    time::{Duration, Instant},
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    message::Message,
    Timestamp,
};
use server::streams::{
    events::{now_ms, sample_event, CloudEvent},
    percentile,
    processor::{self, Kind, ProcessorSpec},
    Streams,
};

const BROKERS: &str = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9095";

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

async fn produce(topic: &str, kind: &str, run: &str, from: u64, n: u64, rate: Option<u64>) -> f64 {
    let p = processor::producer(BROKERS).unwrap();
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
        pending.push(processor::enqueue(&p, topic, key.as_bytes(), &bytes, processor::ce_headers()).await.unwrap());
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

/// (LogAppendTime ms, input event time ms) of every record on `topic`.
async fn read_times(topic: &str, want: usize) -> Vec<(i64, i64)> {
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
        // Outputs carry the input's time as causationtime; the raw pipe's output is the input.
        let input_ms = ev
            .extensions
            .get("causationtime")
            .and_then(|t| t.as_str())
            .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
            .map(|t| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
            .or_else(|| ev.time_ms().map(|t| t as i64));
        if let Some(i) = input_ms {
            out.push((appended, i));
        }
    }
    out
}

enum Running {
    InProcess(std::sync::Arc<Streams>),
    Java(Child),
}

impl Running {
    /// Whether `want` outputs are out: the processor's own count in process (under
    /// exactly-once the output's watermarks also count transaction markers), the topic's
    /// watermarks for Kafka Streams.
    fn reached(&self, output: &str, want: u64) -> bool {
        match self {
            Running::InProcess(s) => s.view().processors[0].produced >= want,
            Running::Java(_) => high_watermarks(output) >= want as i64,
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
    let k = match (contender, kind) {
        ("raw", _) => Kind::Passthrough,
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
    };
    let s = Streams::with_specs(BROKERS, vec![spec]);
    s.start(contender).unwrap();
    Running::InProcess(s)
}

struct Result {
    throughput: f64,
    p50: f64,
    p99: f64,
    paced_rate: f64,
}

async fn measure(contender: &str, kind: &str, run: &str, n: u64, rate: u64, secs: u64) -> Option<Result> {
    let base = format!("bench.{run}.{contender}.{kind}");
    let (input, output, dlq) = (format!("{base}.in"), format!("{base}.out"), format!("{base}.dlq"));
    create_topics(&[input.clone(), output.clone(), dlq.clone()]).await;
    // (1) Backlog: N events waiting before the contender starts.
    produce(&input, kind, run, 0, n, None).await;
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
    // (2) Paced: `rate` events/s for `secs` s with the contender warm.
    let paced = rate * secs;
    let paced_rate = produce(&input, kind, run, n, paced, Some(rate)).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !running.reached(&output, n + paced) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    running.stop().await;
    let times = read_times(&output, (n + paced) as usize).await;
    let mut backlog: Vec<i64> = times.iter().map(|(a, _)| *a).collect();
    backlog.sort_unstable();
    // The first N outputs by append time are the backlog; the rest the paced phase. The first
    // 10 % of the backlog is warm-up (group join, partitions assigned one by one): skipped.
    let drained = &backlog[..(n as usize).min(backlog.len())];
    let drained = &drained[drained.len() / 10..];
    let span_ms = (drained.last().copied().unwrap_or(0) - drained.first().copied().unwrap_or(0)).max(1);
    let mut by_append = times.clone();
    by_append.sort_unstable();
    let mut lat: Vec<u64> = by_append.iter().skip(n as usize).map(|(a, i)| (a - i).max(0) as u64).collect();
    Some(Result {
        throughput: drained.len() as f64 / (span_ms as f64 / 1000.0),
        p50: percentile(&mut lat, 0.50),
        p99: percentile(&mut lat, 0.99),
        paced_rate,
    })
}

#[tokio::main]
async fn main() {
    let n = env_u64("BENCH_EVENTS", 100_000);
    let rate = env_u64("BENCH_RATE", 10_000);
    let secs = env_u64("BENCH_SECS", 3);
    let run = format!("b{}", now_ms());
    println!("streams bench: 3 Apache Kafka 4.4 brokers (KRaft, Docker on this host), topics 3 partitions RF 3,");
    println!("  idempotent producers acks=all; backlog {n} events; paced {rate} ev/s for {secs} s");
    println!("  throughput: backlog drain, first 10 % skipped; raw, rust and rust-eos run twice, interleaved, the better round counts");
    for kind in ["customer", "order"] {
        let mut rows: Vec<(&str, Option<Result>)> = vec![];
        for (round, contender) in ["raw", "rust", "rust-eos", "raw", "rust", "rust-eos", "kstreams"].into_iter().enumerate() {
            let r = measure(contender, kind, &format!("{run}r{round}"), n, rate, secs).await;
            match &r {
                Some(r) => println!(
                    "  {kind:8} {contender:8} throughput {:>9.0} ev/s   paced at {:>6.0} ev/s: p50 {:>5.0} ms  p99 {:>5.0} ms",
                    r.throughput, r.paced_rate, r.p50, r.p99
                ),
                None => println!("  {kind:8} {contender:8} did not finish"),
            }
            rows.push((contender, r));
        }
        let get = |c: &str| {
            rows.iter().filter(|r| r.0 == c).filter_map(|r| r.1.as_ref()).max_by(|a, b| a.throughput.total_cmp(&b.throughput))
        };
        if let (Some(raw), Some(rust)) = (get("raw"), get("rust")) {
            let ratio = rust.throughput / raw.throughput;
            println!("  {kind:8} rust / raw pipe throughput ratio {ratio:.2} (goal ≥ 0.80)");
            server::goals::report(&format!("streams: {kind} processor / raw pipe throughput"), &format!("{ratio:.2}"), "≥ 0.80", ratio >= 0.8);
        }
        if let (Some(raw), Some(rust), Some(eos)) = (get("raw"), get("rust"), get("rust-eos")) {
            println!(
                "  {kind:8} exactly-once / raw pipe throughput ratio {:.2}; exactly-once / at-least-once {:.2} (the cost of transactions)",
                eos.throughput / raw.throughput,
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
