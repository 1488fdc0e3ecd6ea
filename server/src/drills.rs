//! Fault drills: break one part of the stack on purpose under a steady load, and measure
//! what was lost and how long recovery took.
//!
//! A drill = a load it starts itself (CloudEvents through both processors, followed to
//! their outputs like the demo; writes and reads through the read/write router), a fault
//! injected at a known time, the fault removed (by the drill, or left to the supervisor's
//! healer), and a verdict against the expectation stated beside it. Every fault is written
//! to the store *before* it is applied and marked undone after; a control plane that died
//! mid-drill undoes what is left at its next start ([`undo_pending`]). One drill at a time,
//! operator only, audited, cancellable; the page, `bss-control drill NAME` and the tests
//! run the same code.
use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use app::{
    api::{DemoRun, DrillInfo, DrillRun, DrillsView, Principal, Role, TimelineEntry},
    backend::DrillsApi,
    error::AppError,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{
    clock::now_rfc3339,
    db::boxed,
    state::{require, Act, Finished, Services},
};

/// How a drill breaks its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the container; recovery is left to the healer (and the engine's restart policy).
    Kill,
    /// Stop the container (held, so the healer leaves it) for `hold`; the drill starts it again.
    Stop { hold: Duration },
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop { .. } => "stop",
        }
    }
}

pub struct Drill {
    pub name: &'static str,
    pub title: &'static str,
    pub service: &'static str,
    pub fault: Fault,
    pub fault_text: &'static str,
    pub expectation: &'static str,
    /// The service must be healthy again within this long after the fault was injected.
    pub recover_within: Duration,
    /// Reads through the router must all succeed (a replica's loss is the router's job).
    pub reads_must_succeed: bool,
}

pub const DRILLS: &[Drill] = &[
    Drill {
        name: "broker-kill",
        title: "Kafka broker killed under load",
        service: "kafka-2",
        fault: Fault::Kill,
        fault_text: "SIGKILL kafka-2 five seconds into the load; nobody restarts it but the supervisor's healer (or the engine's restart policy)",
        expectation: "0 events lost; producers and processors carry on; kafka-2 healthy again within 120 s",
        recover_within: Duration::from_secs(120),
        reads_must_succeed: false,
    },
    Drill {
        name: "replica-stop",
        title: "PostgreSQL replica stopped under load",
        service: "postgres-replica-1",
        fault: Fault::Stop { hold: Duration::from_secs(15) },
        fault_text: "stop postgres-replica-1 for 15 s five seconds into the load, then start it again",
        expectation: "0 failed reads (the router ejects the replica and serves from the other one or the primary), 0 events lost; the replica healthy again within 90 s",
        recover_within: Duration::from_secs(90),
        reads_must_succeed: true,
    },
];

/// Events per second and seconds of the Kafka load (the fault comes 5 s in).
const LOAD_RATE: u64 = 200;
const LOAD_SECS: u64 = 30;
const FAULT_AT: Duration = Duration::from_secs(5);
/// How long the load may take to be flowing before the drill gives up without a fault.
const LOAD_START_TIMEOUT: Duration = Duration::from_secs(60);

pub fn find(name: &str) -> Result<&'static Drill, AppError> {
    DRILLS.iter().find(|d| d.name == name).ok_or_else(|| {
        AppError::NotFound(format!("no drill {name:?} (drills: {})", DRILLS.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")))
    })
}

fn info(d: &Drill) -> DrillInfo {
    DrillInfo { name: d.name.into(), title: d.title.into(), fault: d.fault_text.into(), expectation: d.expectation.into() }
}

/// The drill in progress or last finished in this process, and how to cancel it.
pub type Runner = crate::actions::RunSlot<DrillRun>;

pub fn new_run(d: &Drill, actor: &str) -> DrillRun {
    DrillRun {
        drill: d.name.into(),
        started_at: now_rfc3339(),
        actor: actor.into(),
        status: "running".into(),
        expectation: d.expectation.into(),
        ..Default::default()
    }
}

/// Undoes every fault a drill applied and never undid (the control plane died mid-drill).
/// Returns what it did, one line per fault.
pub async fn undo_pending(svc: &Services) -> Vec<String> {
    let Ok(pending) = svc.store.pending_faults().await else { return vec![] };
    let mut done = vec![];
    for (id, drill, service, fault) in pending {
        let r = match svc.supervisor() {
            Ok(sup) => sup.start(&service).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let line = match &r {
            Ok(()) => format!("{drill}: {fault} of {service} undone at start-up ({service} started)"),
            Err(e) => format!("{drill}: {fault} of {service} could not be undone at start-up: {e}"),
        };
        tracing::warn!("{line}");
        if r.is_ok() {
            let _ = svc.store.fault_undone(id, "undone at start-up").await;
        }
        svc.emit(&service, if r.is_ok() { "action" } else { "failed" }, line.clone());
        done.push(line);
    }
    done
}

/// Counts of the database load.
#[derive(Default)]
struct DbLoad {
    writes_ok: AtomicU64,
    writes_failed: AtomicU64,
    reads_ok: AtomicU64,
    reads_failed: AtomicU64,
    by: Mutex<BTreeMap<String, u64>>,
}

/// One write on the primary and one read through the router every 100 ms until `stop`.
async fn db_load(svc: Arc<Services>, load: Arc<DbLoad>, stop: CancellationToken) {
    let _ = sqlx::query("CREATE TABLE IF NOT EXISTS bss_drill_load (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now())")
        .execute(svc.db.write())
        .await;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !stop.is_cancelled() {
        tokio::select! { _ = stop.cancelled() => break, _ = tick.tick() => {} }
        let w = tokio::time::timeout(Duration::from_secs(3), sqlx::query("INSERT INTO bss_drill_load DEFAULT VALUES").execute(svc.db.write())).await;
        let counter = if matches!(w, Ok(Ok(_))) { &load.writes_ok } else { &load.writes_failed };
        counter.fetch_add(1, Ordering::Relaxed);
        let read = svc.db.read(|p| boxed(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM bss_drill_load WHERE id > 0").fetch_one(p)));
        match tokio::time::timeout(Duration::from_secs(3), read).await {
            Ok(Ok((who, _))) => {
                load.reads_ok.fetch_add(1, Ordering::Relaxed);
                *load.by.lock().unwrap().entry(who).or_default() += 1;
            }
            _ => {
                load.reads_failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Services {
    /// Runs drill `d` to the end (the fault undone whatever happens) and stores it. Also
    /// what `bss-control drill` calls.
    pub async fn run_drill(self: &Arc<Self>, d: &'static Drill, state: Arc<Mutex<DrillRun>>, cancel: CancellationToken) -> DrillRun {
        let t0 = Instant::now();
        let at = move || t0.elapsed().as_millis() as u64;
        let note = |what: String| {
            let mut s = state.lock().unwrap();
            s.timeline.push(TimelineEntry { at_ms: at(), what: what.clone() });
            s.elapsed_ms = at();
            drop(s);
            self.emit("drills", "action", format!("drill {}: {what}", d.name));
        };
        let outcome = self.drill_body(d, &state, &cancel, &note, t0).await;
        let mut r = state.lock().unwrap().clone();
        r.elapsed_ms = at();
        let (status, verdict) = match outcome {
            Err(e) => ("error".to_string(), e),
            Ok(()) if cancel.is_cancelled() => ("cancelled".to_string(), "cancelled by the operator; the fault was undone".to_string()),
            Ok(()) => verdict(d, &r),
        };
        r.status = status;
        r.verdict = verdict;
        let summary = summary(&r);
        match self.store.save_run("drill", &r.started_at, &r.actor, &r.status, &summary, &serde_json::to_value(&r).unwrap_or_default()).await {
            Ok(id) => r.id = Some(id),
            Err(e) => tracing::error!(error = %e, "could not store the drill run"),
        }
        *state.lock().unwrap() = r.clone();
        self.emit("drills", if r.status == "passed" { "action" } else { "failed" }, format!("drill {}: {summary}", d.name));
        r
    }

    async fn drill_body(
        self: &Arc<Self>,
        d: &'static Drill,
        state: &Arc<Mutex<DrillRun>>,
        cancel: &CancellationToken,
        note: &(dyn Fn(String) + Sync),
        t0: Instant,
    ) -> Result<(), String> {
        let sup = self.supervisor().map_err(|e| e.to_string())?;
        let down = self.streams.not_running();
        if !down.is_empty() {
            return Err(format!("processors not running: {} (start them on the Streams page)", down.join(", ")));
        }
        let st = sup.status_of(d.service).await.map_err(|e| e.to_string())?;
        if st.level() != "ok" {
            return Err(format!("{} is {}/{} before the drill: nothing to measure", d.service, st.state, st.health));
        }
        // The healer only acts on a stack this control plane wants up.
        sup.want_up();
        let _service_lock = self.locks.acquire(d.service, &format!("drill {}", d.name), "drills").map_err(|e| e.to_string())?;
        let mut events = sup.subscribe();

        // Load: events through both processors, writes and reads through the router.
        let stop_load = CancellationToken::new();
        let db = Arc::new(DbLoad::default());
        let db_task = tokio::spawn(db_load(self.clone(), db.clone(), stop_load.clone()));
        let demo_state = Arc::new(Mutex::new(crate::demo::new_run("drill", LOAD_RATE * LOAD_SECS, LOAD_RATE, 0)));
        let demo_cancel = cancel.child_token();
        let demo_task = {
            let (me, st, c) = (self.clone(), demo_state.clone(), demo_cancel.clone());
            tokio::spawn(async move { crate::demo::run(&me.streams, st, c).await })
        };
        let publish = |s: &mut DrillRun, demo: &DemoRun| {
            s.events = DemoRun { progress: vec![], ..demo.clone() };
            s.writes_ok = db.writes_ok.load(Ordering::Relaxed);
            s.writes_failed = db.writes_failed.load(Ordering::Relaxed);
            s.reads_ok = db.reads_ok.load(Ordering::Relaxed);
            s.reads_failed = db.reads_failed.load(Ordering::Relaxed);
            s.reads_by = db.by.lock().unwrap().iter().map(|(k, v)| (k.clone(), *v)).collect();
            s.elapsed_ms = t0.elapsed().as_millis() as u64;
        };
        note(format!("load started: {LOAD_RATE} events/s for {LOAD_SECS} s through both processors, 10 writes + 10 reads/s through the router"));

        // The fault goes in once the load is steady: FAULT_AT after the start at the
        // earliest, and only once events come out of the processors (the observer has
        // joined and the processors run). On a slow machine that can take longer than
        // FAULT_AT; a fault injected before would measure nothing.
        let steady_by = Instant::now() + LOAD_START_TIMEOUT;
        let mut steady = false;
        while !cancel.is_cancelled() {
            let (flowing, over, why) = {
                let s = demo_state.lock().unwrap();
                (s.processed > 0, s.status != "running", s.message.clone())
            };
            if flowing && t0.elapsed() >= FAULT_AT {
                steady = true;
                break;
            }
            if over || Instant::now() > steady_by {
                demo_cancel.cancel();
                stop_load.cancel();
                let _ = demo_task.await;
                let _ = db_task.await;
                let why = if why.is_empty() { format!("no output within {} s", LOAD_START_TIMEOUT.as_secs()) } else { why };
                note(format!("the load did not start: {why}; no fault injected"));
                return Err(format!("the drill's load did not start ({why}); no fault was injected"));
            }
            tokio::select! { _ = cancel.cancelled() => {}, _ = tokio::time::sleep(Duration::from_millis(250)) => {} }
        }
        // The fault, recorded before it is applied.
        let mut injected = None;
        if steady && !cancel.is_cancelled() {
            let id = self.store.record_fault(d.name, d.service, d.fault.name()).await.map_err(|e| format!("fault journal: {e}"))?;
            let applied = match d.fault {
                Fault::Kill => sup.kill(d.service).await,
                Fault::Stop { .. } => sup.stop(d.service).await,
            };
            match applied {
                Ok(()) => {
                    injected = Some((id, Instant::now()));
                    note(format!("fault injected: {} {}", d.fault.name(), d.service));
                }
                Err(e) => {
                    let _ = self.store.fault_undone(id, &format!("never applied: {e}")).await;
                    note(format!("fault could not be injected: {e}"));
                }
            }
        }

        // Watch: detection (the engine's event feed, the router's admission), the fault's
        // removal, recovery (only after the service was seen down: a kill takes a moment).
        let mut detected = false;
        let mut router_saw = false;
        let mut seen_down = false;
        let mut removed = !matches!(d.fault, Fault::Stop { .. });
        let mut recovered = false;
        let deadline = Instant::now() + d.recover_within;
        let mut poll = tokio::time::interval(Duration::from_millis(500));
        while let Some((_, since)) = injected.filter(|_| !recovered) {
            tokio::select! {
                _ = cancel.cancelled() => break,
                ev = events.recv() => {
                    if let Ok(ev) = ev.as_ref().map_err(|_| ()).and_then(|e| if e.service == d.service { Ok(e) } else { Err(()) }) {
                        // The injection's own events (kill, stop) are not detection.
                        let sign = ev.kind == "die" || ev.kind.contains("unhealthy");
                        if sign {
                            seen_down = true;
                        }
                        if sign && !detected {
                            detected = true;
                            state.lock().unwrap().detected_ms = Some(since.elapsed().as_millis() as u64);
                            note(format!("detected by the supervisor: {}", ev.message));
                        }
                        if ev.kind == "healed" {
                            note(format!("restarted by the healer: {}", ev.message));
                        }
                    }
                }
                _ = poll.tick() => {
                    if let Fault::Stop { hold } = d.fault {
                        if !removed && since.elapsed() >= hold {
                            removed = true;
                            match sup.start(d.service).await {
                                Ok(()) => note(format!("fault removed: {} started", d.service)),
                                Err(e) => note(format!("fault removal failed: {e}")),
                            }
                        }
                    }
                    if !router_saw {
                        if let Some(r) = self.db.status().replicas.into_iter().find(|r| r.name == d.service) {
                            if r.admission != app::api::Admission::In {
                                router_saw = true;
                                note(format!("detected by the router: {} out of the read pool", d.service));
                            }
                        }
                    }
                    let status = sup.status_of(d.service).await;
                    if status.as_ref().is_ok_and(|st| st.level() != "ok") {
                        seen_down = true;
                    }
                    if removed && seen_down {
                        if let Ok(st) = status {
                            if st.level() == "ok" {
                                recovered = true;
                                let ms = since.elapsed().as_millis() as u64;
                                state.lock().unwrap().recovered_ms = Some(ms);
                                note(format!("recovered: {} running and healthy, {:.1} s after the fault", d.service, ms as f64 / 1000.0));
                            }
                        }
                    }
                    if !recovered && Instant::now() > deadline {
                        note(format!("not recovered within {} s", d.recover_within.as_secs()));
                        break;
                    }
                    let demo = demo_state.lock().unwrap().clone();
                    publish(&mut state.lock().unwrap(), &demo);
                }
            }
        }
        // A drill always undoes its fault: on cancel, on a timeout, and when it went well.
        if let Some((id, _)) = injected {
            let undo = if recovered { Ok(()) } else { sup.start(d.service).await.map_err(|e| e.to_string()) };
            let result = match &undo {
                Ok(()) if recovered => "recovered".to_string(),
                Ok(()) => format!("{} started by the drill", d.service),
                Err(e) => format!("undo failed: {e}"),
            };
            if undo.is_ok() {
                let _ = self.store.fault_undone(id, &result).await;
            }
            if !recovered {
                note(format!("fault undone by the drill: {result}"));
            }
        }

        // The load runs to its end (the demo waits for the last events), then the counts.
        let demo = demo_task.await.map_err(|e| format!("load: {e}"))?;
        stop_load.cancel();
        let _ = db_task.await;
        publish(&mut state.lock().unwrap(), &demo);
        note(format!(
            "load finished: {} produced, {} processed, {} DLQ, {} lost; reads {} ok / {} failed, writes {} ok / {} failed",
            demo.produced,
            demo.processed,
            demo.dlq,
            demo.lost,
            db.reads_ok.load(Ordering::Relaxed),
            db.reads_failed.load(Ordering::Relaxed),
            db.writes_ok.load(Ordering::Relaxed),
            db.writes_failed.load(Ordering::Relaxed)
        ));
        Ok(())
    }
}

/// The verdict against the drill's expectation: (status, why).
pub fn verdict(d: &Drill, r: &DrillRun) -> (String, String) {
    let mut failed = vec![];
    if r.recovered_ms.is_none() {
        failed.push(format!("{} not healthy again within {} s", d.service, d.recover_within.as_secs()));
    }
    if r.events.status != "passed" || r.events.lost > 0 {
        failed.push(format!("{} of {} events lost ({})", r.events.lost, r.events.produced, r.events.message));
    }
    if d.reads_must_succeed && r.reads_failed > 0 {
        failed.push(format!("{} of {} reads failed", r.reads_failed, r.reads_failed + r.reads_ok));
    }
    let rec = r.recovered_ms.map(|ms| format!("recovered in {:.1} s", ms as f64 / 1000.0)).unwrap_or_default();
    if failed.is_empty() {
        ("passed".into(), format!("as expected: 0 of {} events lost, {rec}, {} of {} reads ok", r.events.produced, r.reads_ok, r.reads_ok + r.reads_failed))
    } else {
        ("failed".into(), failed.join("; "))
    }
}

pub fn summary(r: &DrillRun) -> String {
    format!("{} {}: {}", r.drill, r.status, r.verdict)
}

/// What the Drills page asks: the drills, runs, starting and cancelling one.
#[async_trait::async_trait]
impl DrillsApi for Services {
    async fn drills_view(&self, who: &Principal) -> Result<DrillsView, AppError> {
        require(who, Role::Viewer, "reading drills")?;
        let stored = self.store.runs("drill", 20).await?;
        let parse = |json: &str| serde_json::from_str::<DrillRun>(json).ok();
        let current = self.drills.snapshot().or_else(|| stored.first().and_then(|r| parse(&r.5)));
        let previous = stored
            .iter()
            .filter(|r| Some(r.0) != current.as_ref().and_then(|c| c.id))
            .filter_map(|r| parse(&r.5))
            .find(|p| current.as_ref().is_some_and(|c| c.drill == p.drill));
        Ok(DrillsView { drills: DRILLS.iter().map(info).collect(), current, previous, history: crate::store::summaries(&stored) })
    }

    async fn start_drill(&self, who: &Principal, name: &str) -> Result<String, AppError> {
        let act = Act { role: Role::Operator, what: "running a drill", lock: "drills", verb: "drill", audit: "drill.start", target: name };
        self.guarded(who, act, |guard| async move {
            let d = find(name)?;
            let state = Arc::new(Mutex::new(new_run(d, &who.user)));
            let cancel = self.drills.start(state.clone());
            self.run_in_background(guard, "drill.finished", move |me| async move {
                let r = me.run_drill(d, state, cancel).await;
                Finished { summary: summary(&r), actor: r.actor, target: r.drill }
            })?;
            Ok(format!("drill {name} started"))
        })
        .await
    }

    async fn cancel_drill(&self, who: &Principal) -> Result<String, AppError> {
        // Not behind the drills lock: the running drill holds it.
        let act = Act { role: Role::Operator, what: "cancelling a drill", lock: "drills-cancel", verb: "cancel", audit: "drill.cancel", target: "drills" };
        self.guarded(who, act, |_guard| async move {
            self.drills.cancel_running(|r| r.status == "running", "drill").map(|()| "drill cancelled; its fault is being undone".to_string())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(recovered: Option<u64>, lost: u64, reads_failed: u64) -> DrillRun {
        DrillRun {
            recovered_ms: recovered,
            reads_ok: 100,
            reads_failed,
            events: DemoRun { status: if lost == 0 { "passed" } else { "failed" }.into(), produced: 6000, lost, ..Default::default() },
            ..Default::default()
        }
    }

    #[test]
    fn verdict_checks_each_part_of_the_expectation() {
        let broker = find("broker-kill").unwrap();
        let replica = find("replica-stop").unwrap();
        assert_eq!(verdict(broker, &run(Some(9000), 0, 3)).0, "passed", "a broker drill does not promise reads");
        assert_eq!(verdict(replica, &run(Some(9000), 0, 3)).0, "failed");
        let (s, why) = verdict(broker, &run(None, 2, 0));
        assert_eq!(s, "failed");
        assert!(why.contains("not healthy again") && why.contains("2 of 6000 events lost"), "{why}");
        assert!(find("nope").is_err());
    }
}
