//! The Kafka demo: produce N customer and order CloudEvents at a chosen rate (some
//! malformed on purpose), follow them through both processors to `bss.analytics.events`
//! (and the DLQ), and report produced / processed / DLQ / lost, throughput and end-to-end
//! latency (event time → observed on the output topic), live while it runs; cancellable.
use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use app::{
    api::{DemoRun, DemoView, Principal, Role},
    backend::DemoApi,
    error::AppError,
};
use rdkafka::message::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    state::{require, Act, Finished, Services},
    streams::{
        events::{self, now_ms, CloudEvent},
        percentile, processor, Streams,
    },
};

pub const MAX_EVENTS: u64 = 100_000;
pub const MAX_RATE: u64 = 20_000;
/// How long a run waits for processors still restoring their state before it produces.
pub const READY_WITHIN: Duration = Duration::from_secs(120);
/// How long the run waits, after production ended, for an output when none is coming: an
/// event counts as lost only then. As long as a processor may legitimately be silent — a
/// processor restarted after a failed delivery replays its state first (up to
/// READY_WITHIN). With 30 s, a broker drill once counted 3 442 late events as lost while
/// the order processor replayed its changelog.
const SETTLE: Duration = READY_WITHIN;

pub fn validate(events: u64, rate: u64, malformed_every: u64) -> Result<(), AppError> {
    if events == 0 || events > MAX_EVENTS {
        return Err(AppError::Invalid(format!("events must be between 1 and {MAX_EVENTS}, got {events}")));
    }
    if rate == 0 || rate > MAX_RATE {
        return Err(AppError::Invalid(format!("rate must be between 1 and {MAX_RATE} events/s, got {rate}")));
    }
    if malformed_every == 1 {
        return Err(AppError::Invalid("malformed_every = 1 would make every event malformed; use 0 for none or ≥ 2".into()));
    }
    Ok(())
}

/// Runs a demo, keeping `state` current (the page reads it every second).
pub async fn run(streams: &Streams, state: Arc<Mutex<DemoRun>>, cancel: CancellationToken) -> DemoRun {
    let brokers = streams.brokers();
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
    // A processor replaying its changelog consumes nothing yet: wait for it (bounded), so
    // the run measures processing, not a restore.
    if let Err(e) = streams.wait_ready(READY_WITHIN).await {
        return finish("failed", e.to_string());
    }
    let obs = match crate::streams::observer(brokers, &[events::ANALYTICS_TOPIC, events::DLQ_TOPIC], &format!("bss-demo-{run}")).await {
        Ok(c) => c,
        Err(e) => return finish("failed", e.to_string()),
    };
    let producer = match processor::producer(brokers) {
        Ok(p) => p,
        Err(e) => return finish("failed", e.to_string()),
    };
    let t0 = Instant::now();
    let produced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let not_acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let prod_done = CancellationToken::new();
    // Producer: paced, bounded, stops on cancel.
    let producing = {
        let (run, produced, not_acked, prod_done, cancel) = (run.clone(), produced.clone(), not_acked.clone(), prod_done.clone(), cancel.clone());
        tokio::spawn(async move {
            // Each delivery report counted once: acknowledged → produced, else not acknowledged.
            let count = |r: &Result<_, _>| match r {
                Ok(Ok(_)) => produced.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                _ => not_acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            };
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
                    count(&r);
                }
            }
            while let Some(r) = futures_util::StreamExt::next(&mut pending).await {
                count(&r);
            }
            prod_done.cancel();
            err
        })
    };

    let prefix = format!("{run}-");
    let mut processed: HashSet<String> = HashSet::new();
    let mut dead: HashSet<Vec<u8>> = HashSet::new();
    let mut duplicates = 0u64;
    // (observed at, end-to-end ms) per output: the percentiles and a drill's phases.
    let mut lat_at: Vec<(u64, u64)> = vec![];
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
                    s.not_acked = not_acked.load(std::sync::atomic::Ordering::Relaxed);
                    s.processed = processed.len() as u64;
                    s.dlq = dead.len() as u64;
                    s.duplicates = duplicates;
                    s.elapsed_ms = t0.elapsed().as_millis() as u64;
                    let at = s.elapsed_ms;
                    s.progress.push((at, p, seen));
                    let mut l: Vec<u64> = lat_at.iter().map(|x| x.1).collect();
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
                if !cause.starts_with(&prefix) {
                    continue;
                }
                if !processed.insert(cause.to_string()) {
                    duplicates += 1;
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
                    let at = now_ms();
                    lat_at.push((at, at.saturating_sub(t)));
                }
            }
        }
    };
    if let Ok(Some(e)) = producing.await {
        return finish("failed", format!("producing stopped: {e}"));
    }
    let mut s = state.lock().unwrap();
    s.produced = produced.load(std::sync::atomic::Ordering::Relaxed);
    s.not_acked = not_acked.load(std::sync::atomic::Ordering::Relaxed);
    s.processed = processed.len() as u64;
    s.dlq = dead.len() as u64;
    s.duplicates = duplicates;
    s.lost = s.produced.saturating_sub(s.processed + s.dlq);
    s.elapsed_ms = t0.elapsed().as_millis() as u64;
    let mut l: Vec<u64> = lat_at.iter().map(|x| x.1).collect();
    (s.p50_ms, s.p95_ms, s.p99_ms) = (percentile(&mut l, 0.50), percentile(&mut l, 0.95), percentile(&mut l, 0.99));
    s.status = outcome.0.into();
    s.message = outcome.1;
    let mut r = s.clone();
    r.latencies = lat_at;
    r
}

/// "5000 produced → 4900 processed + 100 DLQ, 0 lost; 2400 ev/s; p99 35 ms", and how many
/// sends were not acknowledged when any were.
pub fn summary(r: &DemoRun) -> String {
    let not_acked = match r.not_acked {
        0 => String::new(),
        n => format!(" ({n} more sent but not acknowledged: the producer reported them failed)"),
    };
    format!(
        "{} produced{not_acked} → {} processed + {} DLQ, {} lost; {:.0} ev/s; p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms",
        r.produced, r.processed, r.dlq, r.lost, r.throughput, r.p50_ms, r.p95_ms, r.p99_ms
    )
}

/// The demo in progress or last finished in this process, and how to cancel the running one.
pub type Runner = crate::actions::RunSlot<DemoRun>;

/// A new run's state, before it starts.
pub fn new_run(actor: &str, events: u64, rate: u64, malformed_every: u64) -> DemoRun {
    DemoRun {
        run: format!("demo{}", now_ms()),
        started_at: crate::clock::now_rfc3339(),
        actor: actor.into(),
        status: "running".into(),
        events,
        rate,
        malformed_every,
        ..Default::default()
    }
}

impl Services {
    /// Runs the Kafka demo to the end and stores it. Also what `bss-control demo` calls.
    pub async fn run_demo(&self, state: Arc<Mutex<DemoRun>>, cancel: CancellationToken) -> DemoRun {
        let mut r = run(&self.streams, state.clone(), cancel).await;
        let summary = summary(&r);
        match self.store.save_run("demo", &r.started_at, &r.actor, &r.status, &summary, &serde_json::to_value(&r).unwrap_or_default()).await {
            Ok(id) => r.id = Some(id),
            Err(e) => tracing::error!(error = %e, "could not store the demo run"),
        }
        state.lock().unwrap().id = r.id;
        self.emit("demo", if r.status == "passed" { "action" } else { "failed" }, format!("demo {}: {summary}", r.status));
        r
    }
}

/// What the Demo page asks: the runs, starting and cancelling one.
#[async_trait::async_trait]
impl DemoApi for Services {
    async fn demo_view(&self, who: &Principal) -> Result<DemoView, AppError> {
        require(who, Role::Viewer, "reading demo runs")?;
        let stored = self.store.runs("demo", 20).await?;
        let current = self.demo.snapshot().or_else(|| stored.first().and_then(|r| serde_json::from_str(&r.5).ok()));
        Ok(DemoView { current, history: crate::store::summaries(&stored), max_events: MAX_EVENTS, max_rate: MAX_RATE })
    }

    async fn start_demo(&self, who: &Principal, events: u64, rate: u64, malformed_every: u64) -> Result<String, AppError> {
        let target = format!("{events} events at {rate}/s");
        let act = Act { role: Role::Operator, what: "running the Kafka demo", lock: "demo", verb: "demo", audit: "demo.start", target: &target };
        self.guarded(who, act, |guard| async move {
            validate(events, rate, malformed_every)?;
            let state = Arc::new(Mutex::new(new_run(&who.user, events, rate, malformed_every)));
            let cancel = self.demo.start(state.clone());
            self.emit("demo", "action", format!("{}: demo started ({events} events at {rate}/s)", who.user));
            self.run_in_background(guard, "demo.finished", |me| async move {
                let r = me.run_demo(state, cancel).await;
                Finished { summary: summary(&r), actor: r.actor, target: r.status }
            })?;
            Ok("demo started".into())
        })
        .await
    }

    async fn cancel_demo(&self, who: &Principal) -> Result<String, AppError> {
        // Not behind the demo's lock: the running demo holds it.
        let act = Act { role: Role::Operator, what: "cancelling the demo", lock: "demo-cancel", verb: "cancel", audit: "demo.cancel", target: "demo" };
        self.guarded(who, act, |_guard| async move { self.demo.cancel_running(|r| r.status == "running", "demo").map(|()| "demo cancelled".to_string()) })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_unacknowledged_sends_only_when_there_are_some() {
        let r = DemoRun { produced: 3976, not_acked: 24, processed: 3896, dlq: 80, ..Default::default() };
        let s = summary(&r);
        assert!(s.starts_with("3976 produced (24 more sent but not acknowledged: the producer reported them failed) → 3896 processed + 80 DLQ, 0 lost"), "{s}");
        assert!(summary(&DemoRun { not_acked: 0, ..r }).starts_with("3976 produced → "));
    }
}
