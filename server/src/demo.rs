//! The Kafka demo: produce N customer and order CloudEvents at a chosen rate (some
//! malformed on purpose), follow them through both processors to `bss.analytics.events`
//! (and the DLQ), and report produced / processed / DLQ / lost, throughput and end-to-end
//! latency (event time → observed on the output topic), live while it runs; cancellable.
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::api::DemoRun;
use rdkafka::{
    config::ClientConfig,
    consumer::{Consumer, StreamConsumer},
    message::Message,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::streams::{
    events::{self, now_ms, CloudEvent},
    percentile, processor, Streams,
};

pub const MAX_EVENTS: u64 = 100_000;
pub const MAX_RATE: u64 = 20_000;
/// How long the run waits for the last events after production ended.
const SETTLE: Duration = Duration::from_secs(30);

pub fn validate(events: u64, rate: u64, malformed_every: u64) -> Result<(), String> {
    if events == 0 || events > MAX_EVENTS {
        return Err(format!("events must be between 1 and {MAX_EVENTS}, got {events}"));
    }
    if rate == 0 || rate > MAX_RATE {
        return Err(format!("rate must be between 1 and {MAX_RATE} events/s, got {rate}"));
    }
    if malformed_every == 1 {
        return Err("malformed_every = 1 would make every event malformed; use 0 for none or ≥ 2".into());
    }
    Ok(())
}

/// A consumer of `topics` positioned at their end, returned once partitions are assigned
/// (so nothing produced afterwards is missed).
pub async fn observer(brokers: &str, topics: &[&str], group: &str) -> Result<StreamConsumer, String> {
    let c: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())?;
    c.subscribe(topics).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        if Instant::now() > deadline {
            return Err("the observer got no partitions within 20 s (brokers down?)".into());
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), c.recv()).await;
    }
    // The assignment is in place; give the "latest" offset lookup a moment to resolve.
    let _ = tokio::time::timeout(Duration::from_millis(800), c.recv()).await;
    Ok(c)
}

/// Runs a demo, keeping `state` current (the page reads it every second).
pub async fn run(streams: &Streams, brokers: &str, state: Arc<Mutex<DemoRun>>, cancel: CancellationToken) -> DemoRun {
    let (run, n, rate, bad_every) = {
        let s = state.lock().unwrap();
        (s.run.clone(), s.events, s.rate, s.malformed_every)
    };
    let finish = |status: &str, message: String| {
        let mut s = state.lock().unwrap();
        s.status = status.into();
        s.message = message;
        s.clone()
    };
    let down = streams.not_running();
    if !down.is_empty() {
        return finish("failed", format!("processors not running: {}", down.join(", ")));
    }
    let obs = match observer(brokers, &[events::ANALYTICS_TOPIC, events::DLQ_TOPIC], &format!("bss-demo-{run}")).await {
        Ok(c) => c,
        Err(e) => return finish("failed", e),
    };
    let producer = match processor::producer(brokers) {
        Ok(p) => p,
        Err(e) => return finish("failed", e.to_string()),
    };
    let t0 = Instant::now();
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let prod_done = CancellationToken::new();
    // Producer: paced, bounded, stops on cancel.
    let producing = {
        let (run, produced, prod_done, cancel) = (run.clone(), produced.clone(), prod_done.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut pending = futures_util::stream::FuturesUnordered::new();
            let mut err = None;
            for seq in 0..n {
                if cancel.is_cancelled() {
                    break;
                }
                let due = Duration::from_secs_f64(seq as f64 / rate as f64);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    if wait > Duration::from_millis(2) {
                        tokio::time::sleep(wait).await;
                    }
                }
                let (topic, key, mut bytes) = events::sample_event(&run, seq, now_ms());
                if bad_every > 1 && seq % bad_every == bad_every - 1 {
                    bytes = events::malformed_event(&run, seq);
                }
                match processor::enqueue(&producer, topic, key.as_bytes(), &bytes, processor::ce_headers()).await {
                    Ok(d) => pending.push(d),
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
                // Count acknowledgements as they arrive.
                while let Some(Some(r)) = futures_util::FutureExt::now_or_never(futures_util::StreamExt::next(&mut pending)) {
                    if matches!(r, Ok(Ok(_))) {
                        produced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            while let Some(r) = futures_util::StreamExt::next(&mut pending).await {
                if matches!(r, Ok(Ok(_))) {
                    produced.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            prod_done.cancel();
            err
        })
    };

    let prefix = format!("{run}-");
    let mut processed: HashSet<String> = HashSet::new();
    let mut dead: HashSet<Vec<u8>> = HashSet::new();
    let mut lat: Vec<u64> = vec![];
    let (mut first_out, mut last_out) = (None::<Instant>, None::<Instant>);
    let mut last_progress = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let outcome = loop {
        tokio::select! {
            _ = cancel.cancelled() => break ("cancelled", "cancelled by the operator".to_string()),
            _ = tick.tick() => {
                let p = produced.load(std::sync::atomic::Ordering::Relaxed);
                let (done, seen) = (prod_done.is_cancelled(), processed.len() as u64 + dead.len() as u64);
                {
                    let mut s = state.lock().unwrap();
                    s.produced = p;
                    s.processed = processed.len() as u64;
                    s.dlq = dead.len() as u64;
                    s.elapsed_ms = t0.elapsed().as_millis() as u64;
                    let at = s.elapsed_ms;
                    s.progress.push((at, p, seen));
                    let mut l = lat.clone();
                    (s.p50_ms, s.p95_ms, s.p99_ms) = (percentile(&mut l, 0.50), percentile(&mut l, 0.95), percentile(&mut l, 0.99));
                    if let (Some(a), Some(b)) = (first_out, last_out) {
                        s.throughput = processed.len() as f64 / b.duration_since(a).as_secs_f64().max(0.001);
                    }
                }
                if done && seen >= p {
                    break ("passed", format!("all {p} events accounted for"));
                }
                if done && last_progress.elapsed() > SETTLE {
                    break ("failed", format!("{} events unaccounted for {} s after production ended", p.saturating_sub(seen), SETTLE.as_secs()));
                }
            }
            m = obs.recv() => {
                let Ok(m) = m else { continue };
                let payload = m.payload().unwrap_or_default();
                if m.topic() == events::DLQ_TOPIC {
                    if payload.windows(prefix.len()).any(|w| w == prefix.as_bytes()) && dead.insert(payload.to_vec()) {
                        last_progress = Instant::now();
                    }
                    continue;
                }
                let Ok(ev) = CloudEvent::parse(payload) else { continue };
                let Some(cause) = ev.extensions.get("causationid").and_then(|v| v.as_str()) else { continue };
                if !cause.starts_with(&prefix) || !processed.insert(cause.to_string()) {
                    continue;
                }
                let now = Instant::now();
                first_out.get_or_insert(now);
                last_out = Some(now);
                last_progress = now;
                let input_ms = ev.extensions.get("causationtime").and_then(|t| t.as_str())
                    .and_then(|t| humantime::parse_rfc3339_weak(t).ok())
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64);
                if let Some(t) = input_ms {
                    lat.push(now_ms().saturating_sub(t));
                }
            }
        }
    };
    if let Ok(Some(e)) = producing.await {
        return finish("failed", format!("producing stopped: {e}"));
    }
    let mut s = state.lock().unwrap();
    s.produced = produced.load(std::sync::atomic::Ordering::Relaxed);
    s.processed = processed.len() as u64;
    s.dlq = dead.len() as u64;
    s.lost = s.produced.saturating_sub(s.processed + s.dlq);
    s.elapsed_ms = t0.elapsed().as_millis() as u64;
    let mut l = lat;
    (s.p50_ms, s.p95_ms, s.p99_ms) = (percentile(&mut l, 0.50), percentile(&mut l, 0.95), percentile(&mut l, 0.99));
    s.status = outcome.0.into();
    s.message = outcome.1;
    s.clone()
}

/// "5000 produced → 4900 processed + 100 DLQ, 0 lost; 2400 ev/s; p99 35 ms".
pub fn summary(r: &DemoRun) -> String {
    format!(
        "{} produced → {} processed + {} DLQ, {} lost; {:.0} ev/s; p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        r.produced, r.processed, r.dlq, r.lost, r.throughput, r.p50_ms, r.p95_ms, r.p99_ms
    )
}
