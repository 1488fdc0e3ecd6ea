//! `AppState`: one handle per module, shared by axum handlers, server functions and CLI,
//! and [`Services::guarded`], the one path every mutating action takes.
use std::{collections::VecDeque, sync::Arc, time::Duration};

use app::{
    api::{Principal, Role, StackEvent},
    error::AppError,
};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use tokio::sync::broadcast;

use crate::{
    actions::{ActionGuard, ActionLocks},
    auth::Auth,
    config::Config,
    metrics::Metrics,
    runtime::{compose::ComposeFile, supervisor::Supervisor, swarm::SwarmStack, Runtime},
    store::Store,
};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Arc<Services>,
}

/// The service modules. Each module implements its page's part of the UI's
/// [`app::backend::Backend`] seam beside its own code (`runtime/api.rs`, `db/api.rs`,
/// `streams/api.rs`, `alerts/api.rs`, `gateway.rs`, `verify.rs`, `demo.rs`, `auth.rs`);
/// this file holds only the shared state, the wiring and the one guarded-action path.
pub struct Services {
    pub config: Config,
    pub runtime: Runtime,
    pub store: Store,
    pub metrics: Metrics,
    /// The supervisor, or why there is none (bad compose file, no engine, the swarm
    /// backend).
    pub stack: Result<Arc<Supervisor>, String>,
    /// The stack as Swarm services (`runtime.backend = "swarm"`), or why there is none.
    pub swarm: Result<Arc<SwarmStack>, String>,
    /// Swarm mode: where the stack's services' tasks run, for the readers' HTTP client
    /// (kept current by [`crate::runtime::follow::follow`] while serving; empty otherwise).
    pub tasks: Arc<crate::runtime::follow::TaskAddresses>,
    /// The readers' one HTTP client (on a swarm it resolves stack services through `tasks`).
    pub http: reqwest::Client,
    pub locks: Arc<ActionLocks>,
    /// Live SSE streams: at most 16 per user and 128 in all.
    pub streams_open: Arc<crate::actions::StreamSlots>,
    pub auth: Auth,
    /// The read/write router for the stack's PostgreSQL (its monitor runs in the background).
    pub db: Arc<crate::db::DbRouter>,
    /// The Kafka stream processors and their sampler.
    pub streams: Arc<crate::streams::Streams>,
    pub alerts: crate::alerts::Alerts,
    pub prometheus: crate::prometheus::Prometheus,
    pub gateway: Arc<crate::gateway::Gateway>,
    /// The BSS API's transactional outbox and its relay to Kafka.
    pub outbox: Arc<crate::outbox::Outbox>,
    pub verify: crate::verify::Runner,
    pub demo: crate::demo::Runner,
    pub drills: crate::drills::Runner,
    me: std::sync::Weak<Services>,
    /// Cancelled when the server shuts down: background work stops, SSE streams end (so
    /// graceful shutdown is not held open by browsers), log followers return.
    pub shutdown: tokio_util::sync::CancellationToken,
    recent: std::sync::Mutex<VecDeque<StackEvent>>,
}

/// The one place a role is checked: every read starts with it, every action goes through
/// [`Services::guarded`], which starts with it.
pub fn require(who: &Principal, role: Role, what: &str) -> Result<(), AppError> {
    if who.may(role) {
        Ok(())
    } else {
        Err(AppError::Forbidden(format!("{what} needs the {} role; {} is {}", role.as_str(), who.user, who.role.as_str())))
    }
}

/// What a background run reports for its audit record when it ends.
pub struct Finished {
    pub actor: String,
    /// The run's status or name, the record's target.
    pub target: String,
    pub summary: String,
}

/// A mutating action, described once for [`Services::guarded`]: who may run it, what it
/// locks (one action at a time per target) and how the audit log names it.
pub struct Act<'a> {
    pub role: Role,
    /// For a refusal: "{what} needs the operator role".
    pub what: &'a str,
    /// The lock's target and the verb shown to others while it runs ("kafka-1 restart is in
    /// progress by alice").
    pub lock: &'a str,
    pub verb: &'a str,
    /// The audit log's action and target.
    pub audit: &'a str,
    pub target: &'a str,
}

const RECENT_EVENTS: usize = 200;

/// Why the Cluster page has nothing to show with the engine backend.
const ENGINE_ONLY: &str = "this control plane drives one Docker engine (runtime.backend = \"engine\"), not a swarm: set runtime.backend = \"swarm\" and point docker.host at a swarm manager to run the stack across hosts (README: Several hosts)";
/// Why what needs the engine's container supervisor (the drills) is unavailable with the
/// swarm backend.
const SWARM_NOT_ENGINE: &str = "the stack runs as Swarm services (runtime.backend = \"swarm\"): this needs the engine backend's container supervisor (the drills); the Cluster and Services pages show the swarm";

/// The compose service the router's primary URL points at.
pub const PRIMARY_SERVICE: &str = "postgres-primary";

impl Services {
    pub fn new(config: Config, runtime: Runtime, store: Store) -> Arc<Self> {
        let (stack, swarm) = match config.runtime.backend {
            crate::config::Backend::Engine => (load_stack(&config, &runtime), Err(ENGINE_ONLY.to_string())),
            // Swarm heals its own services: no engine supervisor (it would start the stack's
            // containers on the manager's engine beside them).
            crate::config::Backend::Swarm => (
                Err(SWARM_NOT_ENGINE.to_string()),
                SwarmStack::for_config(&config, &runtime).map(Arc::new).map_err(|e| e.to_string()),
            ),
        };
        let auth_on = config.auth_required().unwrap_or(true);
        let ttl = humantime::parse_duration(&config.auth.session_ttl).unwrap_or(Duration::from_secs(12 * 3600));
        let auth = Auth::new(store.clone(), auth_on, ttl);
        if let Err(e) = &stack {
            tracing::warn!(error = %e, "stack supervisor unavailable");
        }
        let window_ms = humantime::parse_duration(&config.streams.window).map(|d| d.as_millis() as u64).unwrap_or(60_000);
        let instance = crate::streams::instance_id(&config.store.path);
        let streams = crate::streams::Streams::new(&config.streams.brokers, window_ms, &instance, |name| config.streams.guarantee_of(name));
        let db = Arc::new(crate::db::DbRouter::new(crate::db::DbConfig::new(&config.postgres)));
        // On a swarm the readers name the stack's services and follow their tasks.
        let tasks = Arc::new(crate::runtime::follow::TaskAddresses::default());
        let http = crate::runtime::follow::http_client(swarm.is_ok().then(|| tasks.clone()));
        let alerts = crate::alerts::Alerts::new(crate::alerts::Endpoints::new(&config.endpoints)).with_http(http.clone());
        let prometheus = crate::prometheus::Prometheus::new(&config.endpoints.prometheus).with_http(http.clone());
        let mut gateway = crate::gateway::Gateway::new(crate::gateway::Endpoints::new(&config.endpoints)).with_http(http.clone());
        if swarm.is_ok() {
            gateway = gateway.scraped_through(prometheus.clone());
        }
        let gateway = Arc::new(gateway);
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            shutdown: tokio_util::sync::CancellationToken::new(),
            verify: Default::default(),
            demo: Default::default(),
            drills: Default::default(),
            config,
            runtime,
            store,
            metrics: Metrics::default(),
            stack,
            swarm,
            tasks,
            http,
            locks: Arc::new(ActionLocks::default()),
            streams_open: crate::actions::StreamSlots::new(16, 128),
            auth,
            db,
            streams,
            alerts,
            prometheus,
            gateway,
            outbox: Default::default(),
            recent: std::sync::Mutex::new(VecDeque::new()),
        })
    }

    /// Closes the router's write gate the moment the engine reports the primary's container
    /// going down (a stop or kill signal, or `die`), rather than when a check first times
    /// out and a write its pool's acquire timeout later. Runs until `cancel` (or the stack
    /// has no supervisor).
    pub async fn gate_writes_on_engine_events(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let Some(mut rx) = self.subscribe() else { return };
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                ev = rx.recv() => match ev {
                    // The engine sending it SIGTERM/SIGINT/SIGKILL (a stop or kill under way),
                    // or its process gone.
                    Ok(ev) if ev.service == PRIMARY_SERVICE && (ev.kind == "die" || (ev.kind == "kill" && ["signal 15)", "signal 2)", "signal 9)"].iter().any(|s| ev.message.ends_with(s)))) => {
                        self.db.close_write_gate(format!("the engine reports {PRIMARY_SERVICE} going down ({})", ev.message));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                },
            }
        }
    }

    /// Starts the background work: the healer and the recent-events recorder.
    pub fn spawn_background(self: &Arc<Self>) {
        let cancel = self.shutdown.clone();
        tokio::spawn(self.db.clone().run(cancel.clone()));
        tokio::spawn(self.clone().gate_writes_on_engine_events(cancel.clone()));
        tokio::spawn(self.clone().downsample_lag(cancel.clone()));
        tokio::spawn(self.streams.clone().run_sampler(cancel.clone()));
        tokio::spawn(self.gateway.clone().run_sampler(cancel.clone()));
        tokio::spawn(self.outbox.clone().run(self.db.clone(), self.streams.clone(), cancel.clone()));
        if let Ok(swarm) = &self.swarm {
            tokio::spawn(crate::runtime::follow::follow(swarm.clone(), self.tasks.clone(), cancel.clone()));
        }
        if self.config.streams.autostart {
            for name in self.streams.names() {
                if let Err(e) = self.streams.start(&name) {
                    tracing::warn!(processor = %name, error = %e, "autostart failed");
                }
            }
        }
        // A drill that died with the previous process left its fault behind: undo it.
        let me = self.clone();
        tokio::spawn(async move {
            crate::drills::undo_pending(&me).await;
        });
        if let Ok(sup) = self.stack.clone() {
            let every = humantime::parse_duration(&self.config.stack.heal_interval).unwrap_or(Duration::from_secs(10));
            tokio::spawn(sup.run(cancel.clone(), every));
        }
        // The recent-events recorder: the engine's feed, or the swarm's.
        let Some(mut rx) = self.subscribe() else { return };
        let me = self.clone();
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

    /// The live feed: the engine supervisor's events, or on a swarm what its task and node
    /// lists say changed (`runtime::follow::changes`).
    pub fn subscribe(&self) -> Option<broadcast::Receiver<StackEvent>> {
        match (&self.stack, &self.swarm) {
            (Ok(sup), _) => Some(sup.subscribe()),
            (_, Ok(swarm)) => Some(swarm.subscribe()),
            _ => None,
        }
    }

    /// Writes one audit row: `ok` or `error: <what the user was told>`.
    pub async fn audit<T, E: std::fmt::Display>(&self, actor: &str, action: &str, target: &str, result: &Result<T, E>) {
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("error: {e}"),
        };
        if let Err(e) = self.store.audit(actor, action, target, &outcome, serde_json::json!({})).await {
            tracing::error!(error = %e, "audit write failed");
        }
    }

    /// The one path of every mutating action: role check → per-target lock → audit that it
    /// starts → run → audit its result. Refusals are audited too. It fails closed: when the
    /// audit log cannot be written, nothing runs (like Kubernetes' RequestReceived stage, the
    /// "started" record comes first). `run` gets the lock, so work that goes on in the
    /// background (`up`, verify, the demo) can keep holding it.
    pub async fn guarded<T, F, Fut>(&self, who: &Principal, act: Act<'_>, run: F) -> Result<T, AppError>
    where
        F: FnOnce(ActionGuard) -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        let r = async {
            require(who, act.role, act.what)?;
            let guard = self.locks.acquire(act.lock, act.verb, &who.user)?;
            if let Err(e) = self.store.audit(&who.user, act.audit, act.target, "started", serde_json::json!({})).await {
                tracing::error!(error = %e, action = act.audit, "audit write failed: action refused");
                return Err(AppError::Unavailable(format!("the audit log cannot be written, so {} was not started", act.what)));
            }
            run(guard).await
        }
        .await;
        self.audit(&who.user, act.audit, act.target, &r).await;
        r
    }

    /// An owned handle for work that outlives the request (verify, the demo).
    /// Runs `work` on its own task, holding the action's lock until it ends, then audits
    /// `audit` ("demo.finished", …) with what it reports. The demo, drills and verify start
    /// their runs this way.
    pub fn run_in_background<F, Fut>(&self, guard: ActionGuard, audit: &'static str, work: F) -> Result<(), AppError>
    where
        F: FnOnce(Arc<Services>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Finished> + Send + 'static,
    {
        let me = self.me()?;
        tokio::spawn(async move {
            let _guard = guard;
            let f = work(me.clone()).await;
            let done: Result<String, AppError> = Ok(f.summary);
            me.audit(&f.actor, audit, &f.target, &done).await;
        });
        Ok(())
    }

    pub fn me(&self) -> Result<Arc<Services>, AppError> {
        self.me.upgrade().ok_or_else(|| AppError::Unavailable("the server is shutting down".into()))
    }

    /// The newest `n` events of the live feed, newest first.
    pub fn recent_events(&self, n: usize) -> Vec<StackEvent> {
        self.recent.lock().unwrap().iter().rev().take(n).cloned().collect()
    }

    /// Emits on the live feed (browsers refetch), the engine's or the swarm's.
    pub fn emit(&self, target: &str, kind: &str, msg: String) {
        match (&self.stack, &self.swarm) {
            (Ok(sup), _) => sup.emit(target, kind, msg),
            (_, Ok(swarm)) => swarm.emit(target, kind, msg),
            _ => {}
        }
    }

    /// The stack supervisor, or why there is none.
    pub fn supervisor(&self) -> Result<Arc<Supervisor>, AppError> {
        self.stack.clone().map_err(AppError::Unavailable)
    }
}

fn load_stack(config: &Config, runtime: &Runtime) -> Result<Arc<Supervisor>, String> {
    let (file, base_dir) = ComposeFile::load(&config.stack.compose).map_err(|e| e.to_string())?;
    let docker = runtime.docker_handle().map_err(|e| e.to_string())?;
    Ok(Supervisor::new(docker, &config.stack.project, file, base_dir))
}

