//! The supervisor: converges the engine to the compose model (idempotent — running `up`
//! twice changes nothing), starts services in dependency order by health, heals crashed or
//! removed containers, and reports every step as a [`StackEvent`].
use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bollard::{
    models::{ContainerStateStatusEnum, HealthStatusEnum, NetworkCreateRequest, NetworkConnectRequest, VolumeCreateRequest},
    query_parameters::{
        CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder, RemoveContainerOptionsBuilder,
        StopContainerOptionsBuilder,
    },
    Docker,
};
use tokio::sync::{broadcast, Mutex};

use super::{
    compose::{ComposeFile, Condition},
    spec::{self, LABEL_HASH, LABEL_PROJECT, LABEL_SERVICE},
};

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("{0}")]
    Compose(#[from] super::compose::ComposeError),
    #[error("service {service}: {message}")]
    Service { service: String, message: String },
    #[error("Docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("unknown service {0:?}")]
    UnknownService(String),
    #[error("no Docker engine: {0}")]
    NoEngine(String),
}

pub use app::api::{LogLine, ServiceStatus, StackEvent};

pub struct Supervisor {
    docker: Docker,
    pub project: String,
    file: ComposeFile,
    base_dir: PathBuf,
    events: broadcast::Sender<StackEvent>,
    /// Services an operator stopped on purpose: the healer leaves them alone.
    held: Mutex<BTreeSet<String>>,
    /// Whether the operator wants the stack up (the healer acts only then).
    desired_up: std::sync::atomic::AtomicBool,
    /// Held by `up` and `down` while they converge the engine: one at a time, and the
    /// healer stands aside (it would otherwise create the containers `up` is about to
    /// create, and one of the two gets 409 Conflict).
    converging: tokio::sync::Mutex<()>,
    /// How long `up` waits for one dependency condition.
    pub wait_timeout: Duration,
    /// Per service: restarts done by the healer, and when it may act again (backoff).
    heals: std::sync::Mutex<HashMap<String, HealState>>,
    /// Services whose container `docker compose` made (same file, same project name) and
    /// this supervisor took over: service → that container's name.
    adopted: std::sync::RwLock<HashMap<String, String>>,
}

/// The labels docker compose (v1 and v2) puts on the containers it makes.
pub const COMPOSE_PROJECT: &str = "com.docker.compose.project";
pub const COMPOSE_SERVICE: &str = "com.docker.compose.service";

#[derive(Debug, Clone, Copy)]
struct HealState {
    total: u32,
    streak: u32,
    last: Instant,
}

/// Backoff between heals of one service: 1 s, 2 s, 4 s … capped at 60 s; a service that
/// stayed up for 2 minutes starts again from 1 s.
pub fn heal_backoff(streak: u32) -> Duration {
    Duration::from_secs(1u64 << streak.min(6)).min(Duration::from_secs(60))
}

/// Ten seconds to stop before the engine kills, for every stop the supervisor makes.
fn stop_options() -> bollard::query_parameters::StopContainerOptions {
    StopContainerOptionsBuilder::default().t(10).build()
}

pub use crate::clock::now_ms;

impl Supervisor {
    pub fn new(docker: Docker, project: &str, file: ComposeFile, base_dir: PathBuf) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Self {
            docker,
            project: project.to_string(),
            file,
            base_dir,
            events,
            held: Mutex::new(BTreeSet::new()),
            desired_up: std::sync::atomic::AtomicBool::new(false),
            converging: tokio::sync::Mutex::new(()),
            wait_timeout: Duration::from_secs(240),
            heals: std::sync::Mutex::new(HashMap::new()),
            adopted: std::sync::RwLock::new(HashMap::new()),
        })
    }

    pub fn compose(&self) -> &ComposeFile {
        &self.file
    }

    pub fn subscribe(&self) -> broadcast::Receiver<StackEvent> {
        self.events.subscribe()
    }

    /// Publishes an event on the stack's feed (also used for operator actions).
    pub fn emit(&self, service: &str, kind: &str, message: impl Into<String>) {
        let ev = StackEvent { at_ms: now_ms(), service: service.into(), kind: kind.into(), message: message.into() };
        tracing::info!(service = %ev.service, kind = %ev.kind, "{}", ev.message);
        let _ = self.events.send(ev);
    }

    /// Every network of the project: declared ones and those services join (`default`).
    fn project_networks(&self) -> BTreeSet<String> {
        let mut nets: BTreeSet<String> = self.file.networks.keys().cloned().collect();
        for svc in self.file.services.values() {
            nets.extend(spec::service_networks(svc));
        }
        nets
    }

    /// The container that runs `service`: ours (`<project>-<service>`), or the one docker
    /// compose made and this supervisor adopted.
    fn name(&self, service: &str) -> String {
        self.adopted.read().unwrap().get(service).cloned().unwrap_or_else(|| spec::container_name(&self.project, service))
    }

    /// Takes over the containers `docker compose -p <project>` made from this file: each
    /// service of the file without a container of ours, whose compose-made container is
    /// found by compose's labels, is supervised through that container from now on (its
    /// health, logs, actions, healing). Nothing is recreated here; `up` recreates one only
    /// when its configuration differs from the file's. Returns the services newly adopted.
    pub async fn adopt(&self) -> Result<Vec<String>, SupervisorError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{COMPOSE_PROJECT}={}", self.project)])]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        let mut found = self.docker.list_containers(Some(opts)).await?;
        // A service's own container first (compose's number 1), never a one-off `compose run`.
        let number = |c: &bollard::models::ContainerSummary| {
            c.labels.as_ref().and_then(|l| l.get("com.docker.compose.container-number")).and_then(|n| n.parse::<u32>().ok()).unwrap_or(u32::MAX)
        };
        found.retain(|c| c.labels.as_ref().and_then(|l| l.get("com.docker.compose.oneoff")).is_none_or(|v| !v.eq_ignore_ascii_case("true")));
        found.sort_by_key(number);
        // Forget adopted containers that are gone (removed by `up`, `down` or by hand).
        let names: BTreeSet<String> =
            found.iter().filter_map(|c| c.names.as_ref()?.first().map(|n| n.trim_start_matches('/').to_string())).collect();
        self.adopted.write().unwrap().retain(|_, n| names.contains(n));
        let mut fresh = vec![];
        for c in found {
            let labels = c.labels.unwrap_or_default();
            let (Some(service), Some(name)) = (labels.get(COMPOSE_SERVICE), c.names.and_then(|n| n.into_iter().next())) else { continue };
            let name = name.trim_start_matches('/').to_string();
            if !self.file.services.contains_key(service) || labels.contains_key(LABEL_PROJECT) {
                continue;
            }
            if self.adopted.read().unwrap().get(service).is_some_and(|n| *n != name) {
                continue; // one container per service: the lowest-numbered one found first
            }
            if self.adopted.read().unwrap().get(service) == Some(&name) {
                continue;
            }
            // A container of ours for the service wins: two would fight over its ports.
            if self.docker.inspect_container(&spec::container_name(&self.project, service), None::<InspectContainerOptions>).await.is_ok() {
                continue;
            }
            self.adopted.write().unwrap().insert(service.clone(), name.clone());
            self.emit(service, "adopted", format!("container {name}, made by docker compose for project {}, is supervised from now on", self.project));
            fresh.push(service.clone());
        }
        Ok(fresh)
    }

    fn check_service(&self, service: &str) -> Result<(), SupervisorError> {
        if self.file.services.contains_key(service) {
            Ok(())
        } else {
            Err(SupervisorError::UnknownService(service.into()))
        }
    }

    /// Marks the stack as wanted up, so the healer restores what fails from now on, without
    /// converging anything now (a drill arms recovery this way on a stack that is up).
    pub fn want_up(&self) {
        self.desired_up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Brings the whole stack up in dependency order. Safe to call again at any time.
    pub async fn up(&self) -> Result<(), SupervisorError> {
        let _converging = self.converging.lock().await;
        self.desired_up.store(true, std::sync::atomic::Ordering::SeqCst);
        self.held.lock().await.clear();
        // The stack's certificates (mutual TLS to the control plane) before any container
        // that mounts them is made, and before the file is validated (its mounts must
        // exist). A set made anew replaces one that running containers read at their
        // start: those restart once the stack has converged.
        let mounting: Vec<String> = self.file.services.iter().filter(|(_, s)| s.volumes.iter().any(|v| mounts_pki(v))).map(|(n, _)| n.clone()).collect();
        let pki = crate::pki::Pki::beside(&self.base_dir);
        let was_running = futures_util::future::join_all(mounting.iter().map(|s| self.status_of(s))).await;
        let made = pki.ensure().map_err(|e| SupervisorError::Service { service: "pki".into(), message: e.to_string() })?;
        let stale: Vec<&String> = if made == crate::pki::Ensured::Made {
            mounting.iter().zip(was_running).filter(|(_, st)| st.as_ref().is_ok_and(|st| st.state == "running")).map(|(s, _)| s).collect()
        } else {
            vec![]
        };
        // Validate every service's container request before touching the engine, so a bad
        // file changes nothing.
        for (name, svc) in &self.file.services {
            spec::create_body(&self.project, name, svc, &self.base_dir)
                .map_err(|e| SupervisorError::Service { service: name.clone(), message: e.to_string() })?;
        }
        self.adopt().await?;
        self.ensure_networks_and_volumes().await?;
        // Every service starts as soon as its own dependencies meet their conditions, all
        // of them concurrently (as docker compose v2 does): a wave no longer waits for its
        // slowest member, and one wave's services are created and started side by side.
        // `start_order` still rejects cycles and unknown dependencies first.
        let order = self.file.start_order()?;
        futures_util::future::try_join_all(order.iter().flatten().map(|service| async move {
            self.wait_for_dependencies(service).await?;
            self.ensure_running(service).await
        }))
        .await?;
        for service in stale {
            self.emit(service, "starting", format!("{service} restarts to read the stack's new certificates ({})", pki.dir().display()));
            self.restart(service).await?;
        }
        // Dependents were waited for above; what nothing depends on is waited for here, so
        // "up" means every service is healthy (or a one-shot finished).
        let names: Vec<String> = self.file.services.keys().cloned().collect();
        for service in names {
            let cond = if spec::is_oneshot(&self.file.services[&service]) {
                Condition::ServiceCompletedSuccessfully
            } else {
                Condition::ServiceHealthy
            };
            self.wait_condition(&service, cond)
                .await
                .map_err(|message| SupervisorError::Service { service: service.clone(), message })?;
        }
        self.emit("*", "ready", format!("stack {} is up", self.project));
        Ok(())
    }

    async fn ensure_networks_and_volumes(&self) -> Result<(), SupervisorError> {
        for n in self.project_networks() {
            let name = spec::network_name(&self.project, &n);
            if self.networks_named(&name).await?.is_empty() {
                let labels = HashMap::from([(LABEL_PROJECT.to_string(), self.project.clone())]);
                self.docker
                    .create_network(NetworkCreateRequest { name: name.clone(), driver: Some("bridge".into()), labels: Some(labels), ..Default::default() })
                    .await?;
                self.emit("*", "creating", format!("network {name}"));
            }
            self.converge_network(&name).await?;
        }
        for v in self.file.volumes.keys() {
            let name = spec::volume_name(&self.project, v);
            let labels = HashMap::from([(LABEL_PROJECT.to_string(), self.project.clone())]);
            // Creating an existing volume is a no-op in the engine.
            self.docker.create_volume(VolumeCreateRequest { name: Some(name), labels: Some(labels), ..Default::default() }).await?;
        }
        Ok(())
    }

    /// The ids of the networks called exactly `name`, oldest first (then by id).
    async fn networks_named(&self, name: &str) -> Result<Vec<String>, SupervisorError> {
        // The engine's name filter matches substrings: `bss_bss` also finds `bss_bss2`.
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let opts = bollard::query_parameters::ListNetworksOptionsBuilder::default().filters(&filters).build();
        let mut found: Vec<_> = self
            .docker
            .list_networks(Some(opts))
            .await?
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .filter_map(|n| Some((n.created, n.id?)))
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, id)| id).collect())
    }

    /// Two `up`s at once (two panels, or the CLI beside the server) both find no network
    /// and both create one: this engine (API 1.41) accepts a second network of the same
    /// name, after which every container create fails on "network … is ambiguous". Every
    /// supervisor converges on the same one, the oldest (then lowest id), and removes the
    /// others; one still in use by a container is left (the containers are recreated on it).
    async fn converge_network(&self, name: &str) -> Result<(), SupervisorError> {
        let ids = self.networks_named(name).await?;
        for extra in ids.iter().skip(1) {
            let short = &extra[..12.min(extra.len())];
            match self.docker.remove_network(extra).await {
                Ok(()) => self.emit("*", "removing", format!("duplicate network {name} ({short})")),
                // Already gone: the other supervisor converged first.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(e) => self.emit("*", "error", format!("duplicate network {name} ({short}) not removed: {e}")),
            }
        }
        Ok(())
    }

    async fn wait_for_dependencies(&self, service: &str) -> Result<(), SupervisorError> {
        for (dep, cond) in self.file.services[service].depends_on.entries() {
            self.emit(service, "waiting", format!("waiting for {dep} ({cond:?})"));
            self.wait_dependency(&dep, cond).await.map_err(|message| SupervisorError::Service {
                service: service.into(),
                message: format!("dependency {dep}: {message}"),
            })?;
        }
        Ok(())
    }

    /// [`Self::wait_condition`] for a dependency: a dependent may start as soon as the
    /// service passes its own health test, run by the supervisor itself.
    async fn wait_dependency(&self, service: &str, cond: Condition) -> Result<(), String> {
        self.wait_until(service, cond, true).await
    }

    async fn wait_condition(&self, service: &str, cond: Condition) -> Result<(), String> {
        self.wait_until(service, cond, false).await
    }

    /// Waits for `cond`. With `probe`, a service whose health the engine still calls
    /// "starting" also counts as healthy once its own health test, run here, passes: the
    /// engine runs the first test only one `interval` after the start (this engine has no
    /// `start_interval`), so a chain of dependencies waited up to an interval per link for
    /// nothing (docker-compose waits so too). `up` itself still returns only when the
    /// engine says healthy.
    async fn wait_until(&self, service: &str, cond: Condition, probe: bool) -> Result<(), String> {
        let deadline = Instant::now() + self.wait_timeout;
        loop {
            let st = self.status_of(service).await.map_err(|e| e.to_string())?;
            let ok = match cond {
                Condition::ServiceStarted => st.state == "running" || (st.oneshot && st.exit_code == Some(0)),
                Condition::ServiceHealthy => st.state == "running" && (st.health == "healthy" || st.health == "none"),
                Condition::ServiceCompletedSuccessfully => st.state == "exited" && st.exit_code == Some(0),
            };
            if ok {
                return Ok(());
            }
            if probe && cond == Condition::ServiceHealthy && st.state == "running" && st.health == "starting" && self.passes_health_test(service).await {
                return Ok(());
            }
            if st.state == "exited" && st.exit_code != Some(0) && cond != Condition::ServiceStarted {
                return Err(format!("exited with code {:?}", st.exit_code));
            }
            if Instant::now() > deadline {
                return Err(format!("not {cond:?} after {} s (state {}, health {})", self.wait_timeout.as_secs(), st.state, st.health));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Creates (or recreates when the spec changed) and starts one service's container.
    async fn ensure_running(&self, service: &str) -> Result<(), SupervisorError> {
        let svc = &self.file.services[service];
        let name = self.name(service);
        let body = spec::create_body(&self.project, service, svc, &self.base_dir)
            .map_err(|e| SupervisorError::Service { service: service.into(), message: e.to_string() })?;
        let want_hash = body.labels.as_ref().and_then(|l| l.get(LABEL_HASH)).cloned();
        let existing = self.docker.inspect_container(&name, None::<InspectContainerOptions>).await.ok();
        let current_hash = existing.as_ref().and_then(|c| c.config.as_ref()).and_then(|c| c.labels.as_ref()).and_then(|l| l.get(LABEL_HASH)).cloned();
        let adopted = self.adopted.read().unwrap().contains_key(service);
        if adopted && existing.is_none() {
            // The adopted container is gone: the service gets a container of ours.
            self.adopted.write().unwrap().remove(service);
        }
        let name = match &existing {
            None => self.name(service),
            // Made by docker compose: kept as it is when it runs what the file says.
            Some(c) if adopted => match spec::differs(&body, c) {
                None => name,
                Some(diff) => {
                    self.emit(service, "creating", format!("adopted container {name} differs from the file ({diff}): recreating it as {}", spec::container_name(&self.project, service)));
                    self.remove(service).await?;
                    self.adopted.write().unwrap().remove(service);
                    spec::container_name(&self.project, service)
                }
            },
            Some(_) if current_hash != want_hash => {
                self.emit(service, "creating", "configuration changed: recreating");
                self.remove(service).await?;
                name
            }
            _ => name,
        };
        let state = match self.docker.inspect_container(&name, None::<InspectContainerOptions>).await {
            Ok(c) => c.state.and_then(|s| s.status),
            Err(_) => {
                if self.docker.inspect_image(&svc.image).await.is_err() {
                    return Err(SupervisorError::Service {
                        service: service.into(),
                        message: format!(
                            "image {} is not on this engine; build the offline images (dev/images/build.sh) and use dev/compose.offline.yml, or pull it",
                            svc.image
                        ),
                    });
                }
                self.emit(service, "creating", format!("container {name} from {}", svc.image));
                let opts = CreateContainerOptionsBuilder::default().name(&name).build();
                match self.docker.create_container(Some(opts), body).await {
                    Ok(_) => {
                        for extra in spec::service_networks(svc).iter().skip(1) {
                            self.docker
                                .connect_network(
                                    &spec::network_name(&self.project, extra),
                                    NetworkConnectRequest { container: name.clone(), endpoint_config: Some(bollard::models::EndpointSettings { aliases: Some(vec![service.to_string()]), ..Default::default() }) },
                                )
                                .await?;
                        }
                        Some(ContainerStateStatusEnum::CREATED)
                    }
                    // Another supervisor's `up` created it between our inspect and create:
                    // the same file made it, so it is taken as it is. The engine reserves
                    // the name before the container exists: inspect answers 404 for a moment.
                    Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                        let mut tries = 0;
                        loop {
                            match self.docker.inspect_container(&name, None::<InspectContainerOptions>).await {
                                Ok(c) => break c.state.and_then(|s| s.status),
                                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) if tries < 40 => {
                                    tries += 1;
                                    tokio::time::sleep(Duration::from_millis(250)).await;
                                }
                                Err(e) => return Err(e.into()),
                            }
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let oneshot = spec::is_oneshot(svc);
        match state {
            Some(ContainerStateStatusEnum::RUNNING) | Some(ContainerStateStatusEnum::RESTARTING) => {}
            Some(ContainerStateStatusEnum::EXITED) if oneshot => {} // a finished one-shot stays finished
            _ => {
                self.emit(service, "starting", format!("starting {name}"));
                self.docker.start_container(&name, None::<bollard::query_parameters::StartContainerOptions>).await?;
            }
        }
        Ok(())
    }

    /// Stops and removes every container of the project (reverse order); keeps volumes
    /// unless `volumes` is set.
    pub async fn down(&self, volumes: bool) -> Result<(), SupervisorError> {
        self.desired_up.store(false, std::sync::atomic::Ordering::SeqCst);
        let _converging = self.converging.lock().await;
        // Compose-made containers are removed too, even if nothing has looked at them yet.
        self.adopt().await?;
        let mut waves = self.file.start_order()?;
        waves.reverse();
        // One container at a time, unlike `up`: the three Kafka nodes share a wave, and one
        // by one each hands its leaderships to the others in a controlled shutdown instead
        // of three shutdowns racing for the same controller quorum.
        for wave in waves {
            for service in wave {
                self.remove(&service).await?;
            }
        }
        // Containers of services no longer in the file.
        for c in self.list().await? {
            if let Some(id) = c.id {
                let opts = RemoveContainerOptionsBuilder::default().force(true).build();
                let _ = self.docker.remove_container(&id, Some(opts)).await;
            }
        }
        for n in self.project_networks() {
            let _ = self.docker.remove_network(&spec::network_name(&self.project, &n)).await;
        }
        if volumes {
            for v in self.file.volumes.keys() {
                let _ = self.docker.remove_volume(&spec::volume_name(&self.project, v), None::<bollard::query_parameters::RemoveVolumeOptions>).await;
            }
        }
        self.emit("*", "removed", format!("stack {} is down", self.project));
        Ok(())
    }

    async fn remove(&self, service: &str) -> Result<(), SupervisorError> {
        let name = self.name(service);
        if self.docker.inspect_container(&name, None::<InspectContainerOptions>).await.is_ok() {
            let stop = stop_options();
            let _ = self.docker.stop_container(&name, Some(stop)).await;
            let opts = RemoveContainerOptionsBuilder::default().force(true).build();
            self.docker.remove_container(&name, Some(opts)).await?;
            self.emit(service, "removed", format!("container {name} removed"));
        }
        self.adopted.write().unwrap().remove(service);
        Ok(())
    }

    pub async fn start(&self, service: &str) -> Result<(), SupervisorError> {
        self.check_service(service)?;
        self.adopt().await?;
        self.held.lock().await.remove(service);
        self.ensure_networks_and_volumes().await?;
        self.ensure_running(service).await
    }

    pub async fn stop(&self, service: &str) -> Result<(), SupervisorError> {
        self.check_service(service)?;
        self.adopt().await?;
        self.held.lock().await.insert(service.to_string());
        let name = self.name(service);
        let stop = stop_options();
        self.docker.stop_container(&name, Some(stop)).await?;
        self.emit(service, "stopped", format!("{name} stopped by operator"));
        Ok(())
    }

    /// SIGKILL the service's container (a drill's fault): not held, so the healer (and the
    /// engine's restart policy) may bring it back.
    pub async fn kill(&self, service: &str) -> Result<(), SupervisorError> {
        self.check_service(service)?;
        let name = self.name(service);
        self.docker.kill_container(&name, Some(bollard::query_parameters::KillContainerOptionsBuilder::default().signal("SIGKILL").build())).await?;
        self.emit(service, "killed", format!("{name} killed (SIGKILL)"));
        Ok(())
    }

    /// Cuts the service's container off its networks (a drill's partition): it keeps
    /// running, but neither its peers nor the published ports reach it. Not held: the
    /// container is running, so the healer has nothing to do; [`Self::reconnect`] undoes it.
    pub async fn disconnect(&self, service: &str) -> Result<(), SupervisorError> {
        self.check_service(service)?;
        let name = self.name(service);
        for net in spec::service_networks(&self.file.services[service]) {
            let req = bollard::models::NetworkDisconnectRequest { container: name.clone(), force: Some(true) };
            self.docker.disconnect_network(&spec::network_name(&self.project, &net), req).await?;
        }
        self.emit(service, "isolated", format!("{name} disconnected from its networks"));
        Ok(())
    }

    /// Runs `cmd` inside the service's running container (a drill's `tc`); returns its exit
    /// code and its output (stdout and stderr, at most 4 KiB).
    pub async fn exec(&self, service: &str, cmd: &[&str]) -> Result<(i64, String), SupervisorError> {
        self.check_service(service)?;
        // Inside the container only; `tc` needs it whatever user the service runs as.
        self.run_exec(service, cmd.iter().map(|s| s.to_string()).collect(), Some("root")).await
    }

    /// Runs `cmd` in the service's container, as `user` or the container's own: its exit
    /// code and the start of its output (4 KiB).
    async fn run_exec(&self, service: &str, cmd: Vec<String>, user: Option<&str>) -> Result<(i64, String), SupervisorError> {
        use futures_util::StreamExt;
        let config = bollard::models::ExecConfig {
            cmd: Some(cmd),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            user: user.map(str::to_string),
            ..Default::default()
        };
        let id = self.docker.create_exec(&self.name(service), config).await?.id;
        let mut out = String::new();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } = self.docker.start_exec(&id, None).await? {
            while let Some(chunk) = output.next().await {
                if out.len() < 4096 {
                    out.push_str(&chunk?.to_string());
                }
            }
        }
        let code = self.docker.inspect_exec(&id).await?.exit_code.unwrap_or(-1);
        Ok((code, out.trim().to_string()))
    }

    /// Runs the service's own health test in its container (as its own user, within the
    /// test's timeout, at most 10 s): true when it exits 0.
    async fn passes_health_test(&self, service: &str) -> bool {
        let Some(h) = self.file.services.get(service).and_then(|s| s.healthcheck.as_ref()) else { return false };
        let cmd: Vec<String> = match h.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => vec!["/bin/sh".into(), "-c".into(), rest.join(" ")],
            _ => return false,
        };
        let limit = h
            .timeout
            .as_deref()
            .and_then(|t| super::compose::parse_duration_ns(t).ok())
            .map_or(Duration::from_secs(10), |ns| Duration::from_nanos(ns as u64).min(Duration::from_secs(10)));
        matches!(tokio::time::timeout(limit, self.run_exec(service, cmd, None)).await, Ok(Ok((0, _))))
    }

    /// Joins the service's container to each of its networks it is not on, under its
    /// service name (the alias its peers resolve). Idempotent.
    pub async fn reconnect(&self, service: &str) -> Result<(), SupervisorError> {
        self.check_service(service)?;
        let name = self.name(service);
        let on: BTreeSet<String> = self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await?
            .network_settings
            .and_then(|n| n.networks)
            .map(|n| n.into_keys().collect())
            .unwrap_or_default();
        for net in spec::service_networks(&self.file.services[service]) {
            let full = spec::network_name(&self.project, &net);
            if on.contains(&full) {
                continue;
            }
            let endpoint = bollard::models::EndpointSettings { aliases: Some(vec![service.to_string()]), ..Default::default() };
            let req = bollard::models::NetworkConnectRequest { container: name.clone(), endpoint_config: Some(endpoint) };
            self.docker.connect_network(&full, req).await?;
        }
        self.emit(service, "reconnected", format!("{name} joined its networks again"));
        Ok(())
    }

    pub async fn restart(&self, service: &str) -> Result<(), SupervisorError> {
        self.check_service(service)?;
        self.adopt().await?;
        self.held.lock().await.remove(service);
        let name = self.name(service);
        self.emit(service, "starting", format!("restarting {name}"));
        self.docker
            .restart_container(&name, Some(bollard::query_parameters::RestartContainerOptionsBuilder::default().t(10).build()))
            .await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<bollard::models::ContainerSummary>, SupervisorError> {
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_PROJECT}={}", self.project)])]);
        let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
        Ok(self.docker.list_containers(Some(opts)).await?)
    }

    pub async fn status_of(&self, service: &str) -> Result<ServiceStatus, SupervisorError> {
        self.check_service(service)?;
        let svc = &self.file.services[service];
        let name = self.name(service);
        let mut st = ServiceStatus {
            service: service.into(),
            container: name.clone(),
            image: svc.image.clone(),
            state: "missing".into(),
            health: "none".into(),
            exit_code: None,
            restart_count: 0,
            started_at: None,
            uptime_secs: None,
            ports: svc.ports.clone(),
            depends_on: svc.depends_on.entries().into_iter().map(|(d, _)| d).collect(),
            oneshot: spec::is_oneshot(svc),
            node: None,
        };
        let healed = self.heals.lock().unwrap().get(service).map(|h| i64::from(h.total)).unwrap_or(0);
        st.restart_count = healed;
        if let Ok(c) = self.docker.inspect_container(&name, None::<InspectContainerOptions>).await {
            // The engine's own restarts (restart policy) plus the healer's.
            st.restart_count += c.restart_count.unwrap_or(0);
            if let Some(s) = c.state {
                st.state = s.status.map(|s| s.to_string()).unwrap_or_else(|| "unknown".into());
                st.exit_code = s.exit_code;
                if st.state == "running" {
                    st.uptime_secs = s.started_at.as_deref().and_then(crate::clock::secs_since);
                }
                st.started_at = s.started_at;
                st.health = match s.health.and_then(|h| h.status) {
                    Some(HealthStatusEnum::HEALTHY) => "healthy",
                    Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
                    Some(HealthStatusEnum::STARTING) => "starting",
                    _ => "none",
                }
                .into();
            }
        }
        Ok(st)
    }

    /// Every service of the compose file, in start order.
    pub async fn status(&self) -> Result<Vec<ServiceStatus>, SupervisorError> {
        self.adopt().await?;
        let mut out = Vec::new();
        for wave in self.file.start_order()? {
            for s in wave {
                out.push(self.status_of(&s).await?);
            }
        }
        Ok(out)
    }

    /// One healing pass: when the stack is wanted up, recreate missing containers and start
    /// long-running ones that exited (unless an operator stopped them). Returns the
    /// services it acted on.
    pub async fn heal_once(&self) -> Result<Vec<String>, SupervisorError> {
        if !self.desired_up.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(vec![]);
        }
        // An `up` or `down` in progress owns the containers until it is done.
        let Ok(_converging) = self.converging.try_lock() else { return Ok(vec![]) };
        // `down` removes the project's networks; if they are gone, the stack was torn down
        // (perhaps by another control plane or the CLI): stop wanting it up rather than
        // fight that teardown container by container.
        let first_net = spec::network_name(&self.project, self.project_networks().first().map_or("default", String::as_str));
        if self.docker.inspect_network(&first_net, None::<bollard::query_parameters::InspectNetworkOptions>).await.is_err() {
            self.desired_up.store(false, std::sync::atomic::Ordering::SeqCst);
            self.emit("*", "idle", format!("network {first_net} is gone: stack torn down elsewhere, healer idle until the next up"));
            return Ok(vec![]);
        }
        let held = self.held.lock().await.clone();
        let mut acted = Vec::new();
        for st in self.status().await? {
            if held.contains(&st.service) {
                continue;
            }
            let needs = match st.state.as_str() {
                "missing" => true,
                "exited" | "dead" | "created" => !st.oneshot,
                _ => false,
            };
            if needs {
                let now = Instant::now();
                if let Some(h) = self.heals.lock().unwrap().get(&st.service) {
                    if now.duration_since(h.last) < heal_backoff(h.streak.saturating_sub(1)) {
                        continue; // still backing off
                    }
                }
                {
                    let mut heals = self.heals.lock().unwrap();
                    let h = heals.entry(st.service.clone()).or_insert(HealState { total: 0, streak: 0, last: now });
                    if now.duration_since(h.last) > Duration::from_secs(120) {
                        h.streak = 0;
                    }
                    h.total += 1;
                    h.streak += 1;
                    h.last = now;
                }
                let why = if st.state == "missing" {
                    "container was missing: recreated".to_string()
                } else {
                    format!("container was {} (exit {:?}): restarted", st.state, st.exit_code)
                };
                match self.ensure_running(&st.service).await {
                    Ok(()) => self.emit(&st.service, "healed", why),
                    Err(e) => self.emit(&st.service, "failed", format!("heal failed: {e}")),
                }
                acted.push(st.service);
            }
        }
        Ok(acted)
    }

    /// Runs until cancelled: forwards the engine's events for this project and heals.
    pub async fn run(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken, every: Duration) {
        let events = {
            let me = self.clone();
            let cancel = cancel.clone();
            tokio::spawn(async move { me.forward_engine_events(cancel).await })
        };
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(e) = self.heal_once().await {
                        tracing::warn!(error = %e, "heal pass failed");
                    }
                }
            }
        }
        let _ = events.await;
    }

    async fn forward_engine_events(&self, cancel: tokio_util::sync::CancellationToken) {
        use futures_util::StreamExt;
        loop {
            // Containers of this project, ours or compose-made and adopted (the engine ANDs
            // label filters, so the project is matched below).
            let filters = HashMap::from([("type".to_string(), vec!["container".to_string()])]);
            let opts = bollard::query_parameters::EventsOptionsBuilder::default().filters(&filters).build();
            let mut stream = self.docker.events(Some(opts));
            loop {
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => return,
                    item = stream.next() => match item {
                        Some(Ok(ev)) => {
                            let attrs = ev.actor.and_then(|a| a.attributes).unwrap_or_default();
                            let service = if attrs.get(LABEL_PROJECT) == Some(&self.project) {
                                attrs.get(LABEL_SERVICE).cloned().unwrap_or_default()
                            } else if attrs.get(COMPOSE_PROJECT) == Some(&self.project) {
                                attrs.get(COMPOSE_SERVICE).cloned().unwrap_or_default()
                            } else {
                                continue;
                            };
                            let action = ev.action.unwrap_or_default();
                            if matches!(action.as_str(), "exec_create" | "exec_start" | "exec_die") || action.starts_with("exec_") {
                                continue; // health check probes: noise
                            }
                            let msg = match (attrs.get("exitCode"), attrs.get("signal")) {
                                (Some(c), _) => format!("{action} (exit {c})"),
                                (None, Some(sig)) => format!("{action} (signal {sig})"),
                                (None, None) => action.clone(),
                            };
                            self.emit(&service, &action, msg);
                        }
                        Some(Err(e)) => { tracing::warn!(error = %e, "engine event stream error"); break; }
                        None => break,
                    }
                }
            }
            // Re-attach after the engine restarts, with a pause so a dead engine is not spun on.
            tokio::select! { _ = cancel.cancelled() => return, _ = tokio::time::sleep(Duration::from_secs(2)) => {} }
        }
    }

    /// Follows the logs of a service from now on, as `(timestamp, line)` pairs; ends when
    /// the container stops. Callers re-attach after restarts.
    pub fn follow_logs(&self, service: &str) -> impl futures_util::Stream<Item = LogLine> + Send + 'static {
        use futures_util::StreamExt;
        let name = self.name(service);
        let since = (now_ms() / 1000) as i32;
        let opts = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(true)
            .since(since)
            .timestamps(true)
            .build();
        let service = service.to_string();
        self.docker.logs(&name, Some(opts)).filter_map(move |chunk| {
            let service = service.clone();
            async move {
                let bytes = chunk.ok()?.into_bytes();
                let text = String::from_utf8_lossy(&bytes).trim_end().to_string();
                Some(LogLine::parse(&service, &text))
            }
        })
    }

    /// The last `tail` log lines of every service, merged in time order.
    pub async fn merged_logs(&self, tail: usize) -> Vec<LogLine> {
        let mut all = vec![];
        for service in self.file.services.keys() {
            if let Ok(lines) = self.logs(service, tail).await {
                all.push((service.clone(), lines));
            }
        }
        super::merge_logs(all)
    }

    /// The last `tail` log lines of a service (stdout and stderr interleaved).
    pub async fn logs(&self, service: &str, tail: usize) -> Result<Vec<String>, SupervisorError> {
        self.check_service(service)?;
        Ok(super::read_lines(self.docker.logs(&self.name(service), Some(super::tail_options(tail)))).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::heal_backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(heal_backoff(0), Duration::from_secs(1));
        assert_eq!(heal_backoff(3), Duration::from_secs(8));
        assert_eq!(heal_backoff(10), Duration::from_secs(60));
    }
}

/// Whether a compose volume entry bind-mounts the stack's certificates (`./pki/...`).
fn mounts_pki(volume: &str) -> bool {
    let source = volume.trim_start_matches("./");
    source.starts_with("pki/") || source.starts_with("pki:")
}
