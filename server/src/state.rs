//! `AppState`: one handle per module, shared by axum handlers, server functions and CLI.
use std::{collections::VecDeque, sync::Arc, time::Duration};

use app::{
    api::{AuditEntry, EngineStatus, Principal, Role, StackEvent, StackOverview, StackVerb},
    backend::Backend,
};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use tokio::sync::broadcast;

use crate::{
    actions::{ActionLocks, STACK},
    auth::Auth,
    config::Config,
    metrics::Metrics,
    runtime::{compose::ComposeFile, supervisor::Supervisor, Runtime},
    store::Store,
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Arc<Services>,
}

/// The service modules. Implements the UI's [`Backend`] seam.
pub struct Services {
    pub config: Config,
    pub runtime: Runtime,
    pub store: Store,
    pub metrics: Metrics,
    /// The supervisor, or why there is none (bad compose file, no engine).
    pub stack: Result<Arc<Supervisor>, String>,
    pub locks: Arc<ActionLocks>,
    pub auth: Auth,
    /// The read/write router for the stack's PostgreSQL (its monitor runs in the background).
    pub db: Arc<crate::db::DbRouter>,
    /// The Kafka stream processors and their sampler.
    pub streams: Arc<crate::streams::Streams>,
    pub alerts: crate::alerts::Alerts,
    pub gateway: Arc<crate::gateway::Gateway>,
    /// The verification run in progress or last finished in this process.
    verify_run: Arc<std::sync::Mutex<Option<app::api::VerifyRun>>>,
    /// The demo in progress or last finished, and how to cancel the running one.
    demo_run: std::sync::Mutex<Option<(Arc<std::sync::Mutex<app::api::DemoRun>>, tokio_util::sync::CancellationToken)>>,
    me: std::sync::Weak<Services>,
    recent: std::sync::Mutex<VecDeque<StackEvent>>,
}

/// The one place a role is checked: every service method starts with it.
pub fn require(who: &Principal, role: Role, what: &str) -> Result<(), String> {
    if who.may(role) {
        Ok(())
    } else {
        Err(format!("forbidden: {what} needs the {} role; {} is {}", role.as_str(), who.user, who.role.as_str()))
    }
}

const RECENT_EVENTS: usize = 200;

impl Services {
    pub fn new(config: Config, runtime: Runtime, store: Store) -> Arc<Self> {
        let stack = load_stack(&config, &runtime);
        let auth_on = config.auth_required().unwrap_or(true);
        let ttl = humantime::parse_duration(&config.auth.session_ttl).unwrap_or(Duration::from_secs(12 * 3600));
        let auth = Auth::new(store.clone(), auth_on, ttl);
        if let Err(e) = &stack {
            tracing::warn!(error = %e, "stack supervisor unavailable");
        }
        let window_ms = humantime::parse_duration(&config.streams.window).map(|d| d.as_millis() as u64).unwrap_or(60_000);
        let streams = crate::streams::Streams::new(&config.streams.brokers, window_ms);
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            verify_run: Default::default(),
            demo_run: Default::default(),
            config,
            runtime,
            store,
            metrics: Metrics::default(),
            stack,
            locks: Arc::new(ActionLocks::default()),
            auth,
            db: Arc::new(crate::db::DbRouter::new(crate::db::DbConfig::dev_stack())),
            streams,
            alerts: crate::alerts::Alerts::new(Default::default()),
            gateway: Arc::new(crate::gateway::Gateway::new(Default::default())),
            recent: std::sync::Mutex::new(VecDeque::new()),
        })
    }

    /// Starts the background work: the healer and the recent-events recorder.
    pub fn spawn_background(self: &Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        tokio::spawn(self.db.clone().run(cancel.clone()));
        tokio::spawn(self.clone().downsample_lag(cancel.clone()));
        tokio::spawn(self.streams.clone().run_sampler(cancel.clone()));
        tokio::spawn(self.gateway.clone().run_sampler(cancel.clone()));
        if self.config.streams.autostart {
            for name in self.streams.names() {
                if let Err(e) = self.streams.start(&name) {
                    tracing::warn!(processor = %name, error = %e, "autostart failed");
                }
            }
        }
        let Ok(sup) = self.stack.clone() else { return };
        let every = humantime::parse_duration(&self.config.stack.heal_interval).unwrap_or(Duration::from_secs(10));
        tokio::spawn(sup.clone().run(cancel.clone(), every));
        let me = self.clone();
        let mut rx = sup.subscribe();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    ev = rx.recv() => match ev {
                        Ok(ev) => {
                            let mut r = me.recent.lock().unwrap();
                            if r.len() == RECENT_EVENTS { r.pop_front(); }
                            r.push_back(ev);
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(_) => break,
                    }
                }
            }
        });
    }

    /// Every minute, stores each replica's maximum lag of the past minute in SQLite.
    async fn downsample_lag(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = crate::streams::events::now_ms();
            let minute = now - now % 60_000 - 60_000;
            let recent: Vec<_> = self.db.history().into_iter().filter(|p| p.at_ms >= minute && p.at_ms < minute + 60_000).collect();
            if recent.is_empty() {
                continue;
            }
            let rows: Vec<(String, u64, f64)> = self
                .db
                .replica_names()
                .into_iter()
                .enumerate()
                .map(|(i, name)| {
                    let bytes = recent.iter().filter_map(|p| p.lag_bytes.get(i)).copied().max().unwrap_or(0);
                    let secs = recent.iter().filter_map(|p| p.lag_secs.get(i)).copied().fold(0.0, f64::max);
                    (name, bytes, secs)
                })
                .collect();
            if let Err(e) = self.store.save_lag_minute(minute, &rows).await {
                tracing::warn!(error = %e, "could not store downsampled lag");
            }
        }
    }

    /// Follows every service's logs into one channel, re-attaching after restarts; the
    /// followers stop when the receiver is dropped (the browser went away).
    pub fn follow_all_logs(&self, who: &Principal) -> Result<tokio::sync::mpsc::Receiver<app::api::LogLine>, String> {
        use futures_util::StreamExt;
        require(who, Role::Viewer, "reading logs")?;
        let sup = self.stack.clone()?;
        let (tx, rx) = tokio::sync::mpsc::channel(1024);
        for service in sup.compose().services.keys().cloned() {
            let (sup, tx) = (sup.clone(), tx.clone());
            tokio::spawn(async move {
                while !tx.is_closed() {
                    let mut s = std::pin::pin!(sup.follow_logs(&service));
                    while let Some(line) = s.next().await {
                        if tx.send(line).await.is_err() {
                            return;
                        }
                    }
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            });
        }
        Ok(rx)
    }

    pub fn subscribe(&self) -> Option<broadcast::Receiver<StackEvent>> {
        self.stack.as_ref().ok().map(|s| s.subscribe())
    }

    pub async fn audit(&self, actor: &str, action: &str, target: &str, result: &Result<String, String>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        if let Err(e) = self.store.audit(actor, action, target, &outcome, serde_json::json!({})).await {
            tracing::error!(error = %e, "audit write failed");
        }
    }
}

fn load_stack(config: &Config, runtime: &Runtime) -> Result<Arc<Supervisor>, String> {
    let (file, base_dir) = ComposeFile::load(&config.stack.compose).map_err(|e| e.to_string())?;
    let docker = runtime.docker_handle()?;
    Ok(Supervisor::new(docker, &config.stack.project, file, base_dir))
}

#[async_trait::async_trait]
impl Backend for Services {
    async fn engine_status(&self, who: &Principal) -> Result<EngineStatus, String> {
        require(who, Role::Viewer, "reading the engine status")?;
        let s = self.runtime.engine_status().await;
        self.metrics.observe_engine(s.reachable());
        Ok(s)
    }

    async fn stack_overview(&self, who: &Principal) -> Result<StackOverview, String> {
        require(who, Role::Viewer, "reading the stack")?;
        let mut o = StackOverview {
            project: self.config.stack.project.clone(),
            compose_files: self.config.stack.compose.iter().map(|p| p.display().to_string()).collect(),
            error: None,
            services: vec![],
            waves: vec![],
            running: self.locks.running(),
            recent_events: self.recent.lock().unwrap().iter().rev().take(50).cloned().collect(),
        };
        match &self.stack {
            Err(e) => o.error = Some(e.clone()),
            Ok(sup) => {
                o.waves = sup.compose().start_order().unwrap_or_default();
                match sup.status().await {
                    Ok(s) => o.services = s,
                    Err(e) => o.error = Some(e.to_string()),
                }
            }
        }
        Ok(o)
    }

    async fn stack_action(&self, who: &Principal, verb: StackVerb, service: Option<String>) -> Result<String, String> {
        let target = service.clone().unwrap_or_else(|| STACK.to_string());
        let audit_action = match verb {
            StackVerb::Up | StackVerb::Down => format!("stack.{}", verb.as_str()),
            _ => format!("service.{}", verb.as_str()),
        };
        // Every attempt is audited, refused ones included.
        let r = self.stack_action_inner(who, verb, service).await;
        self.audit(&who.user, &audit_action, &target, &r).await;
        r
    }

    async fn service_logs(&self, who: &Principal, service: &str, tail: usize) -> Result<Vec<String>, String> {
        require(who, Role::Viewer, "reading logs")?;
        let sup = self.stack.clone()?;
        sup.logs(service, tail.clamp(1, 2000)).await.map_err(|e| e.to_string())
    }

    async fn merged_logs(&self, who: &Principal, tail: usize) -> Result<Vec<app::api::LogLine>, String> {
        require(who, Role::Viewer, "reading logs")?;
        let sup = self.stack.clone()?;
        Ok(sup.merged_logs(tail.clamp(1, 500)).await)
    }

    async fn db_view(&self, who: &Principal) -> Result<app::api::DbView, String> {
        require(who, Role::Viewer, "reading the database router")?;
        let t = self.db.thresholds();
        let (haproxy, haproxy_error) = match self.gateway.haproxy().await {
            Ok(rows) => (rows.into_iter().filter(|r| r.proxy == "pg_replicas").collect(), None),
            Err(e) => (vec![], Some(e)),
        };
        let names = self.db.replica_names();
        let rows = self.store.lag_minutes(crate::streams::events::now_ms().saturating_sub(86_400_000)).await.map_err(|e| e.to_string())?;
        let mut long_history: Vec<app::api::LagPoint> = vec![];
        for (at, replica, bytes, secs) in rows {
            if long_history.last().is_none_or(|p| p.at_ms != at as u64) {
                long_history.push(app::api::LagPoint { at_ms: at as u64, lag_bytes: vec![0; names.len()], lag_secs: vec![0.0; names.len()] });
            }
            if let (Some(i), Some(p)) = (names.iter().position(|n| *n == replica), long_history.last_mut()) {
                p.lag_bytes[i] = bytes.max(0) as u64;
                p.lag_secs[i] = secs;
            }
        }
        Ok(app::api::DbView {
            long_history,
            haproxy,
            haproxy_error,
            status: self.db.status(),
            history: self.db.history(),
            claim_max_lag_secs: 1.0,
            threshold_secs: t.max_lag.as_secs_f64(),
            threshold_bytes: t.max_lag_bytes,
        })
    }

    async fn set_replay_paused(&self, who: &Principal, replica: &str, paused: bool) -> Result<String, String> {
        let action = if paused { "db.replay_pause" } else { "db.replay_resume" };
        let r = async {
            require(who, Role::Operator, "pausing or resuming replay")?;
            let _guard = self.locks.acquire(replica, action, &who.user)?;
            self.db.set_replay_paused(replica, paused).await.map_err(|e| e.to_string())?;
            Ok(format!("{replica}: replay {}", if paused { "paused" } else { "resumed" }))
        }
        .await;
        self.audit(&who.user, action, replica, &r).await;
        r
    }

    async fn streams_view(&self, who: &Principal) -> Result<app::api::StreamsView, String> {
        require(who, Role::Viewer, "reading the stream processors")?;
        Ok(self.streams.view())
    }

    async fn processor_action(&self, who: &Principal, processor: &str, verb: &str) -> Result<String, String> {
        let action = format!("processor.{verb}");
        let r = async {
            require(who, Role::Operator, &format!("{verb} on a processor"))?;
            let _guard = self.locks.acquire(processor, verb, &who.user)?;
            match verb {
                "start" => self.streams.start(processor)?,
                "stop" => self.streams.stop(processor).await?,
                "restart" => self.streams.restart(processor).await?,
                _ => return Err(format!("unknown action {verb:?} (start, stop or restart)")),
            }
            Ok(format!("{processor}: {verb} done"))
        }
        .await;
        self.audit(&who.user, &action, processor, &r).await;
        r
    }

    async fn send_sample_events(&self, who: &Principal, events: u64, malformed_every: u64) -> Result<String, String> {
        let r = async {
            require(who, Role::Operator, "producing sample events")?;
            let _guard = self.locks.acquire("sample-events", "send", &who.user)?;
            let run = format!("ui-{}", crate::streams::events::now_ms());
            let (acked, malformed) = self.streams.send_samples(&run, events, malformed_every).await?;
            Ok(format!("{acked} events acknowledged by the brokers ({malformed} malformed on purpose), run {run}"))
        }
        .await;
        self.audit(&who.user, "streams.send_samples", &format!("{events} events"), &r).await;
        r
    }

    async fn alerts_view(&self, who: &Principal) -> Result<app::api::AlertsView, String> {
        require(who, Role::Viewer, "reading alerts")?;
        Ok(self.alerts.view().await)
    }

    async fn test_route(&self, who: &Principal, labels: &str) -> Result<app::api::RouteTestResult, String> {
        require(who, Role::Viewer, "testing routes")?;
        let labels = crate::alerts::route::parse_labels(labels)?;
        Ok(self.alerts.config().await?.test(&labels))
    }

    async fn fire_test_alert(&self, who: &Principal, labels: &str) -> Result<String, String> {
        let r = async {
            require(who, Role::Operator, "firing a test alert")?;
            let labels = crate::alerts::route::parse_labels(labels)?;
            let _guard = self.locks.acquire("alertmanager", "test alert", &who.user)?;
            let expected = self.alerts.config().await?.test(&labels).receivers;
            let name = self.alerts.fire_test_alert(labels).await?;
            Ok(format!("{name} posted; AlertManager should deliver it to {}", expected.join(", ")))
        }
        .await;
        self.audit(&who.user, "alerts.test_alert", labels, &r).await;
        r
    }

    async fn create_silence(&self, who: &Principal, matchers: &str, duration: &str, comment: &str) -> Result<String, String> {
        let r = async {
            require(who, Role::Operator, "creating a silence")?;
            let ms: Vec<String> = matchers.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect();
            let d = humantime::parse_duration(duration.trim()).map_err(|e| format!("duration {duration:?}: {e}"))?;
            let id = self.alerts.create_silence(&ms, d, &who.user, comment).await?;
            Ok(format!("silence {id} created for {duration}"))
        }
        .await;
        self.audit(&who.user, "alerts.silence_create", matchers, &r).await;
        r
    }

    async fn expire_silence(&self, who: &Principal, id: &str) -> Result<String, String> {
        let r = async {
            require(who, Role::Operator, "expiring a silence")?;
            self.alerts.expire_silence(id).await?;
            Ok(format!("silence {id} expired"))
        }
        .await;
        self.audit(&who.user, "alerts.silence_expire", id, &r).await;
        r
    }

    async fn gateway_view(&self, who: &Principal) -> Result<app::api::GatewayView, String> {
        require(who, Role::Viewer, "reading the gateway")?;
        Ok(self.gateway.view().await)
    }

    async fn burst_test(&self, who: &Principal, requests: u32) -> Result<app::api::BurstResult, String> {
        let r = async {
            require(who, Role::Operator, "running a burst test")?;
            let _guard = self.locks.acquire("envoy", "burst test", &who.user)?;
            self.gateway.burst(requests).await
        }
        .await;
        let summary = r.as_ref().map(|b| format!("{} passed, {} limited, {} other", b.passed, b.limited, b.other)).map_err(Clone::clone);
        self.audit(&who.user, "gateway.burst", &format!("{requests} requests"), &summary).await;
        r
    }

    async fn verify_view(&self, who: &Principal) -> Result<app::api::VerifyView, String> {
        require(who, Role::Viewer, "reading verification runs")?;
        let stored = self.store.runs("verify", 20).await.map_err(|e| e.to_string())?;
        let parse = |json: &str| serde_json::from_str::<app::api::VerifyRun>(json).ok();
        let current = self.verify_run.lock().unwrap().clone().or_else(|| stored.first().and_then(|r| parse(&r.5)));
        let previous = stored.iter().find(|r| Some(r.0) != current.as_ref().and_then(|c| c.id)).and_then(|r| parse(&r.5));
        Ok(app::api::VerifyView { current, previous, history: summaries(&stored) })
    }

    async fn start_verify(&self, who: &Principal) -> Result<String, String> {
        let r = self.start_verify_inner(who);
        self.audit(&who.user, "verify.start", "verify", &r).await;
        r
    }

    async fn demo_view(&self, who: &Principal) -> Result<app::api::DemoView, String> {
        require(who, Role::Viewer, "reading demo runs")?;
        let stored = self.store.runs("demo", 20).await.map_err(|e| e.to_string())?;
        let current = match &*self.demo_run.lock().unwrap() {
            Some((s, _)) => Some(s.lock().unwrap().clone()),
            None => stored.first().and_then(|r| serde_json::from_str(&r.5).ok()),
        };
        Ok(app::api::DemoView { current, history: summaries(&stored), max_events: crate::demo::MAX_EVENTS, max_rate: crate::demo::MAX_RATE })
    }

    async fn start_demo(&self, who: &Principal, events: u64, rate: u64, malformed_every: u64) -> Result<String, String> {
        let r = self.start_demo_inner(who, events, rate, malformed_every);
        self.audit(&who.user, "demo.start", &format!("{events} events at {rate}/s"), &r).await;
        r
    }

    async fn cancel_demo(&self, who: &Principal) -> Result<String, String> {
        let r = async {
            require(who, Role::Operator, "cancelling the demo")?;
            match &*self.demo_run.lock().unwrap() {
                Some((s, cancel)) if s.lock().unwrap().status == "running" => {
                    cancel.cancel();
                    Ok("demo cancelled".to_string())
                }
                _ => Err("no demo is running".to_string()),
            }
        }
        .await;
        self.audit(&who.user, "demo.cancel", "demo", &r).await;
        r
    }

    async fn audit_log(&self, who: &Principal, actor: Option<String>, action: Option<String>, limit: i64) -> Result<Vec<AuditEntry>, String> {
        require(who, Role::Viewer, "reading the audit log")?;
        self.store.audit_filtered(actor.as_deref(), action.as_deref(), limit.clamp(1, 10_000)).await.map_err(|e| e.to_string())
    }
}

fn summaries(stored: &[(i64, String, String, String, String, String)]) -> Vec<app::api::RunSummary> {
    stored
        .iter()
        .map(|r| app::api::RunSummary { id: r.0, started_at: r.1.clone(), actor: r.2.clone(), status: r.3.clone(), summary: r.4.clone() })
        .collect()
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

impl Services {
    /// Emits on the live feed (browsers refetch), when there is a stack supervisor.
    fn emit(&self, target: &str, kind: &str, msg: String) {
        if let Ok(sup) = &self.stack {
            sup.emit(target, kind, msg);
        }
    }

    /// Runs the verification suite to the end and stores it; `actor` for the record. Also
    /// what `bss-control verify` calls.
    pub async fn run_verify(self: &Arc<Self>, actor: &str) -> app::api::VerifyRun {
        let total = crate::verify::suite(self).len();
        let started_at = now_rfc3339();
        *self.verify_run.lock().unwrap() =
            Some(app::api::VerifyRun { id: None, started_at: started_at.clone(), actor: actor.into(), status: "running".into(), total, checks: vec![] });
        let (slot, me) = (self.verify_run.clone(), Arc::downgrade(self));
        let on_step: Arc<dyn Fn(app::api::CheckResult) + Send + Sync> = Arc::new(move |c: app::api::CheckResult| {
            if let Some(me) = me.upgrade() {
                me.emit("verify", if c.status == "fail" { "failed" } else { "action" }, format!("verify: {} — {}: {}", c.name, c.status, c.measured));
            }
            if let Some(r) = slot.lock().unwrap().as_mut() {
                r.checks.push(c);
            }
        });
        let checks = crate::verify::run(self, on_step).await;
        let status = if checks.iter().any(|c| c.status == "fail") { "failed" } else { "passed" };
        let summary = crate::verify::summary(&checks);
        let mut run = app::api::VerifyRun { id: None, started_at: started_at.clone(), actor: actor.into(), status: status.into(), total, checks };
        match self.store.save_run("verify", &started_at, actor, status, &summary, &serde_json::to_value(&run).unwrap_or_default()).await {
            Ok(id) => run.id = Some(id),
            Err(e) => tracing::error!(error = %e, "could not store the verification run"),
        }
        *self.verify_run.lock().unwrap() = Some(run.clone());
        self.emit("verify", if status == "passed" { "action" } else { "failed" }, format!("verify {status}: {summary}"));
        run
    }

    fn start_verify_inner(&self, who: &Principal) -> Result<String, String> {
        require(who, Role::Operator, "running the verification suite")?;
        if let Some(r) = self.verify_run.lock().unwrap().as_ref().filter(|r| r.status == "running") {
            return Ok(format!("a run started by {} at {} is in progress: showing it", r.actor, r.started_at));
        }
        let me = self.me.upgrade().ok_or("shutting down")?;
        let guard = self.locks.acquire("verify", "verify", &who.user)?;
        let actor = who.user.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let run = me.run_verify(&actor).await;
            let r = Ok(crate::verify::summary(&run.checks));
            me.audit(&actor, "verify.finished", run.status.as_str(), &r).await;
        });
        Ok("verification started".into())
    }

    /// Runs the Kafka demo to the end and stores it. Also what `bss-control demo` calls.
    pub async fn run_demo(&self, state: Arc<std::sync::Mutex<app::api::DemoRun>>, cancel: tokio_util::sync::CancellationToken) -> app::api::DemoRun {
        let mut r = crate::demo::run(&self.streams, &self.config.streams.brokers, state.clone(), cancel).await;
        let summary = crate::demo::summary(&r);
        match self.store.save_run("demo", &r.started_at, &r.actor, &r.status, &summary, &serde_json::to_value(&r).unwrap_or_default()).await {
            Ok(id) => r.id = Some(id),
            Err(e) => tracing::error!(error = %e, "could not store the demo run"),
        }
        state.lock().unwrap().id = r.id;
        self.emit("demo", if r.status == "passed" { "action" } else { "failed" }, format!("demo {}: {summary}", r.status));
        r
    }

    pub fn new_demo(actor: &str, events: u64, rate: u64, malformed_every: u64) -> app::api::DemoRun {
        app::api::DemoRun {
            run: format!("demo{}", crate::streams::events::now_ms()),
            started_at: now_rfc3339(),
            actor: actor.into(),
            status: "running".into(),
            events,
            rate,
            malformed_every,
            ..Default::default()
        }
    }

    fn start_demo_inner(&self, who: &Principal, events: u64, rate: u64, malformed_every: u64) -> Result<String, String> {
        require(who, Role::Operator, "running the Kafka demo")?;
        crate::demo::validate(events, rate, malformed_every)?;
        let mut slot = self.demo_run.lock().unwrap();
        if let Some((s, _)) = slot.as_ref() {
            let s = s.lock().unwrap();
            if s.status == "running" {
                return Ok(format!("a demo started by {} at {} is in progress: showing it", s.actor, s.started_at));
            }
        }
        let me = self.me.upgrade().ok_or("shutting down")?;
        let guard = self.locks.acquire("demo", "demo", &who.user)?;
        let state = Arc::new(std::sync::Mutex::new(Self::new_demo(&who.user, events, rate, malformed_every)));
        let cancel = tokio_util::sync::CancellationToken::new();
        *slot = Some((state.clone(), cancel.clone()));
        self.emit("demo", "action", format!("{}: demo started ({events} events at {rate}/s)", who.user));
        tokio::spawn(async move {
            let _guard = guard;
            let r = me.run_demo(state, cancel).await;
            me.audit(&r.actor, "demo.finished", &r.status, &Ok(crate::demo::summary(&r))).await;
        });
        Ok("demo started".into())
    }

    async fn stack_action_inner(&self, who: &Principal, verb: StackVerb, service: Option<String>) -> Result<String, String> {
        require(who, Role::Operator, &format!("{} on the stack", verb.as_str()))?;
        let actor = who.user.as_str();
        let sup = self.stack.clone()?;
        let target = match (&verb, &service) {
            (StackVerb::Up | StackVerb::Down, _) => STACK.to_string(),
            (_, Some(s)) if sup.compose().services.contains_key(s) => s.clone(),
            (_, Some(s)) => return Err(format!("unknown service {s:?}")),
            (_, None) => return Err(format!("{} needs a service", verb.as_str())),
        };
        let action = verb.as_str();
        match verb {
            StackVerb::Up | StackVerb::Down => {
                // Minutes of work: run it in the background, report through the event feed.
                let guard = self.locks.acquire(&target, action, actor)?;
                sup.emit("*", "action", format!("{actor}: {action} started"));
                let actor = actor.to_string();
                let store = self.store.clone();
                tokio::spawn(async move {
                    let _guard = guard;
                    let r = if verb == StackVerb::Up { sup.up().await } else { sup.down(false).await };
                    let (outcome, msg) = match &r {
                        Ok(()) => ("ok".to_string(), format!("{actor}: {action} finished")),
                        Err(e) => (format!("error: {e}"), format!("{actor}: {action} failed: {e}")),
                    };
                    sup.emit("*", if r.is_ok() { "action" } else { "failed" }, msg);
                    if let Err(e) = store.audit(&actor, &format!("stack.{action}.finished"), STACK, &outcome, serde_json::json!({})).await {
                        tracing::error!(error = %e, "audit write failed");
                    }
                });
                Ok(format!("{action} started"))
            }
            _ => {
                let _guard = self.locks.acquire(&target, action, actor)?;
                sup.emit(&target, "action", format!("{actor}: {action}"));
                let r = match verb {
                    StackVerb::Start => sup.start(&target).await,
                    StackVerb::Stop => sup.stop(&target).await,
                    _ => sup.restart(&target).await,
                };
                r.map(|()| format!("{target}: {action} done")).map_err(|e| e.to_string())
            }
        }
    }
}
