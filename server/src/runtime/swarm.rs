//! The swarm backend (`runtime.backend = "swarm"`): the same compose files become Docker
//! Swarm services on an attachable overlay network, through the engine API of a swarm
//! manager (bollard's service, task and node calls).
//!
//! Healing is Swarm's: each service's restart policy and the orchestrator reschedule tasks
//! (no second healer here). `up` is idempotent: a service whose config hash (label, as for
//! containers) is unchanged is left alone, a changed one is updated in place.
//!
//! Translation ([`service_spec`], pure, unit-tested):
//! - one replicated service per compose service (a one-shot service, e.g. `kafka-init`,
//!   becomes a replicated job), named `<project>_<service>` like `docker stack deploy`,
//!   reachable by its compose name on the overlay (alias);
//! - `deploy.placement.constraints`, `deploy.resources.limits` and `deploy.endpoint_mode`
//!   (default `dnsrr`: this kernel has no IPVS, so VIPs do not work here);
//! - published ports in host mode on the node the task runs on (Swarm cannot bind a
//!   published port to one address: the node's firewall or a private network must keep
//!   them in). Envoy's admin and HAProxy's stats are never published ([`NEVER_PUBLISHED`]);
//! - `extra_hosts: host-gateway` becomes the address given as `runtime.swarm_host_gateway`
//!   (where the tasks reach the control plane), an error when unset.
use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
    time::Duration,
};

use bollard::{
    models::{
        EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum, EndpointSpec, EndpointSpecModeEnum, Limit, Mount,
        MountType, NetworkAttachmentConfig, NetworkCreateRequest, ServiceSpec as SwarmService, ServiceSpecMode,
        ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecDnsConfig, TaskSpecPlacement,
        TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
    },
    Docker,
};
use app::api::{NodeVerb, NodeView, ServiceView, StackEvent, SwarmStatus, TaskView};

use super::{
    compose::{parse_duration_ns, parse_port, ComposeError, ComposeFile, ServiceSpec},
    spec::{config_hash, health_config, is_oneshot, network_name, service_networks, ulimits, volume_mount, LABEL_HASH, LABEL_ONESHOT, LABEL_PROJECT, LABEL_SERVICE},
};

/// Container ports that stay inside the overlay in swarm mode, whatever the file says:
/// a host-mode published port listens on every address of its node, and Envoy's admin,
/// its unlimited bench listener and HAProxy's stats must never be reachable beyond
/// loopback.
pub const NEVER_PUBLISHED: &[(&str, u16)] = &[("envoy", 15000), ("envoy", 15007), ("haproxy", 8084)];

/// How long one wave of services may take to have every task running (healthy: a task
/// with a health check is `starting` until it passes) or, for a job, complete.
const WAVE_WITHIN: Duration = Duration::from_secs(420);

#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    #[error(transparent)]
    Compose(#[from] ComposeError),
    #[error("{0}")]
    NotManager(String),
    #[error("swarm API: {0}")]
    Api(#[from] bollard::errors::Error),
    #[error("{service}: {message}")]
    Service { service: String, message: String },
    #[error("no service {0:?} in the stack on the swarm")]
    NoSuchService(String),
    #[error("no node named {0:?} in the swarm")]
    NoSuchNode(String),
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
}

/// Marks the start of each answer in a reading job's output.
const READ_MARK: &str = "==bss-read==";
/// The label of a reading job (`read_inside`): never one of the stack's services.
const LABEL_READER: &str = "io.bss-control.reader";
/// How long a reading job may take, scheduling included.
const READ_INSIDE_WITHIN: Duration = Duration::from_secs(45);

/// A reading job's output → each answer's body: the lines after each mark, an HTTP status
/// line and headers, then the body up to the next mark.
pub fn parse_reads(lines: &[String], want: usize) -> Result<Vec<String>, String> {
    let mut out: Vec<(String, Vec<String>)> = vec![];
    for l in lines {
        let l = l.trim_end_matches('\r');
        match l.strip_prefix(READ_MARK) {
            Some(path) => out.push((path.trim().to_string(), vec![])),
            None => {
                if let Some(cur) = out.last_mut() {
                    cur.1.push(l.to_string());
                }
            }
        }
    }
    if out.len() != want {
        return Err(format!("{} answers in the job's output, {want} asked for", out.len()));
    }
    out.into_iter()
        .map(|(path, lines)| {
            let status = lines.first().cloned().unwrap_or_default();
            if !(status.starts_with("HTTP/1.") && status.split_whitespace().nth(1) == Some("200")) {
                return Err(format!("GET {path}: {}", if status.is_empty() { "no answer".to_string() } else { status }));
            }
            let body_at = lines.iter().position(|l| l.is_empty()).map_or(lines.len(), |i| i + 1);
            Ok(lines[body_at..].join("\n").trim_end().to_string())
        })
        .collect()
}

pub fn service_name(project: &str, service: &str) -> String {
    format!("{project}_{service}")
}

/// The swarm service for one compose service. Pure (reads the bind-mounted files only to
/// hash them and to check they exist).
pub fn service_spec(project: &str, service: &str, spec: &ServiceSpec, base_dir: &Path, host_gateway: Option<&str>) -> Result<SwarmService, SwarmError> {
    let err = |m: String| SwarmError::Service { service: service.to_string(), message: m };
    let mut labels = HashMap::new();
    labels.insert(LABEL_PROJECT.to_string(), project.to_string());
    labels.insert(LABEL_SERVICE.to_string(), service.to_string());
    // The gateway is not in the compose entry but shapes the task: part of the hash.
    let hash = config_hash(project, service, spec, base_dir);
    labels.insert(LABEL_HASH.to_string(), match host_gateway {
        Some(gw) if spec.extra_hosts.iter().any(|e| e.ends_with(":host-gateway")) => format!("{hash}-{gw}"),
        _ => hash,
    });
    labels.insert(LABEL_ONESHOT.to_string(), is_oneshot(spec).to_string());

    let mut mounts = vec![];
    for v in &spec.volumes {
        let m = volume_mount(project, base_dir, v)?;
        mounts.push(Mount {
            target: Some(m.target),
            source: Some(m.source),
            typ: Some(if m.bind { MountType::BIND } else { MountType::VOLUME }),
            read_only: Some(m.mode.as_deref().is_some_and(|mode| mode.split(',').any(|o| o == "ro"))),
            ..Default::default()
        });
    }

    let mut hosts = vec![];
    for e in &spec.extra_hosts {
        let (name, ip) = e.split_once(':').ok_or_else(|| err(format!("extra_hosts {e:?}: expected NAME:IP")))?;
        let ip = match ip {
            "host-gateway" => host_gateway.ok_or_else(|| {
                err(format!(
                    "extra_hosts {e:?}: a swarm task has no host gateway; set runtime.swarm_host_gateway (BSS_SWARM_HOST_GATEWAY) to the address where tasks reach the control plane"
                ))
            })?,
            ip => ip,
        };
        // Swarm's order: "IP NAME".
        hosts.push(format!("{ip} {name}"));
    }

    let mut ports = vec![];
    for p in &spec.ports {
        let b = parse_port(p)?;
        if NEVER_PUBLISHED.contains(&(service, b.container_port)) {
            continue;
        }
        ports.push(EndpointPortConfig {
            protocol: Some(if b.protocol == "udp" { EndpointPortConfigProtocolEnum::UDP } else { EndpointPortConfigProtocolEnum::TCP }),
            target_port: Some(i64::from(b.container_port)),
            published_port: Some(i64::from(b.host_port)),
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            ..Default::default()
        });
    }

    let deploy = spec.deploy.clone().unwrap_or_default();
    let endpoint_mode = match deploy.endpoint_mode.as_deref() {
        Some("vip") => EndpointSpecModeEnum::VIP,
        _ => EndpointSpecModeEnum::DNSRR,
    };
    let limits = match deploy.resources.as_ref().and_then(|r| r.limits.as_ref()) {
        Some(l) => {
            let (nano_cpus, memory_bytes) = l.parsed().map_err(err)?;
            Some(Limit { nano_cpus, memory_bytes, pids: None })
        }
        None => None,
    };

    let oneshot = is_oneshot(spec);
    let restart_policy = match spec.restart.as_deref() {
        Some("always" | "unless-stopped") => TaskSpecRestartPolicy { condition: Some(TaskSpecRestartPolicyConditionEnum::ANY), delay: Some(2_000_000_000), ..Default::default() },
        Some(r) if r.starts_with("on-failure") => TaskSpecRestartPolicy {
            condition: Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE),
            delay: Some(2_000_000_000),
            max_attempts: r.strip_prefix("on-failure:").and_then(|n| n.parse().ok()),
            ..Default::default()
        },
        _ => TaskSpecRestartPolicy { condition: Some(TaskSpecRestartPolicyConditionEnum::NONE), ..Default::default() },
    };

    let ulimits = ulimits(spec);

    let networks = service_networks(spec)
        .iter()
        .map(|n| NetworkAttachmentConfig { target: Some(network_name(project, n)), aliases: Some(vec![service.to_string()]), ..Default::default() })
        .collect();

    let container = TaskSpecContainerSpec {
        image: Some(spec.image.clone()),
        labels: Some(labels.clone()),
        command: spec.entrypoint.clone(),
        args: spec.command.clone(),
        hostname: Some(spec.hostname.clone().unwrap_or_else(|| service.to_string())),
        env: Some(spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        dir: spec.working_dir.clone(),
        user: spec.user.clone(),
        mounts: (!mounts.is_empty()).then_some(mounts),
        stop_grace_period: spec.stop_grace_period.as_deref().map(parse_duration_ns).transpose()?,
        health_check: health_config(spec)?,
        hosts: (!hosts.is_empty()).then_some(hosts),
        dns_config: (!spec.dns_opt.is_empty()).then(|| TaskSpecContainerSpecDnsConfig { options: Some(spec.dns_opt.clone()), ..Default::default() }),
        init: spec.init,
        capability_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
        ulimits: (!ulimits.is_empty()).then_some(ulimits),
        ..Default::default()
    };

    Ok(SwarmService {
        name: Some(service_name(project, service)),
        labels: Some(labels),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: limits.map(|l| TaskSpecResources { limits: Some(l), ..Default::default() }),
            restart_policy: Some(restart_policy),
            placement: deploy.placement.as_ref().map(|p| TaskSpecPlacement { constraints: Some(p.constraints.clone()), ..Default::default() }),
            networks: Some(networks),
            ..Default::default()
        }),
        mode: Some(if oneshot {
            ServiceSpecMode { replicated_job: Some(ServiceSpecModeReplicatedJob { max_concurrent: Some(1), total_completions: Some(1) }), ..Default::default() }
        } else {
            ServiceSpecMode { replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }), ..Default::default() }
        }),
        endpoint_spec: Some(EndpointSpec { mode: Some(endpoint_mode), ports: (!ports.is_empty()).then_some(ports) }),
        ..Default::default()
    })
}

/// The stack on a swarm, driven through one manager's engine.
pub struct SwarmStack {
    docker: Docker,
    project: String,
    compose: Vec<PathBuf>,
    host_gateway: Option<String>,
    /// The live feed on a swarm: what changed between two looks at its task and node
    /// lists (`runtime::follow`), and the control plane's own runs (verify, the demo).
    events: tokio::sync::broadcast::Sender<StackEvent>,
}

fn lower<T: std::fmt::Debug>(v: &Option<T>) -> String {
    v.as_ref().map(|v| format!("{v:?}").to_lowercase()).unwrap_or_default()
}

impl SwarmStack {
    pub fn new(docker: Docker, project: &str, compose: Vec<PathBuf>, host_gateway: Option<String>) -> Self {
        SwarmStack { docker, project: project.to_string(), compose, host_gateway, events: tokio::sync::broadcast::channel(256).0 }
    }

    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<StackEvent> {
        self.events.subscribe()
    }

    pub fn emit(&self, service: &str, kind: &str, message: impl Into<String>) {
        let ev = StackEvent { at_ms: crate::clock::now_ms(), service: service.into(), kind: kind.into(), message: message.into() };
        tracing::info!(service = %ev.service, kind = %ev.kind, "{}", ev.message);
        let _ = self.events.send(ev);
    }

    /// The stack of `config`, through the engine `runtime` drives (a manager of the swarm).
    pub fn for_config(config: &crate::config::Config, runtime: &super::Runtime) -> Result<Self, super::RuntimeError> {
        Ok(Self::new(runtime.docker_handle()?, &config.stack.project, config.stack.compose.clone(), config.runtime.swarm_host_gateway.clone()))
    }

    async fn require_manager(&self) -> Result<(), SwarmError> {
        let info = self.docker.info().await?;
        let swarm = info.swarm.unwrap_or_default();
        let state = lower(&swarm.local_node_state);
        if state != "active" || swarm.control_available != Some(true) {
            return Err(SwarmError::NotManager(format!(
                "the engine at DOCKER_HOST is not a swarm manager (swarm state: {}); point it at a manager of the swarm, or use runtime.backend = \"engine\"",
                if state.is_empty() { "inactive".to_string() } else { state }
            )));
        }
        Ok(())
    }

    /// Creates or updates every service, wave by wave in dependency order, each wave
    /// waited for (tasks running and healthy, jobs complete). `progress` gets a line per step.
    pub async fn up(&self, progress: &(dyn Fn(&str, &str) + Sync)) -> Result<(), SwarmError> {
        let (file, base_dir) = ComposeFile::load(&self.compose)?;
        self.require_manager().await?;
        // Every spec first: a bad file changes nothing.
        let mut specs = BTreeMap::new();
        for (name, spec) in &file.services {
            specs.insert(name.clone(), service_spec(&self.project, name, spec, &base_dir, self.host_gateway.as_deref())?);
        }
        for net in file.services.values().flat_map(service_networks).collect::<std::collections::BTreeSet<_>>() {
            let full = network_name(&self.project, &net);
            match self.docker.inspect_network(&full, None::<bollard::query_parameters::InspectNetworkOptions>).await {
                Ok(n) if n.driver.as_deref() == Some("overlay") => continue,
                Ok(n) => {
                    return Err(SwarmError::Service {
                        service: "*".into(),
                        message: format!(
                            "network {full} exists with driver {} (the engine backend's stack on this engine?): bring that stack down first",
                            n.driver.unwrap_or_default()
                        ),
                    })
                }
                Err(e) if !not_found(&e) => return Err(e.into()),
                Err(_) => {}
            }
            {
                progress("*", &format!("creating overlay network {full}"));
                self.docker
                    .create_network(NetworkCreateRequest {
                        name: full.clone(),
                        driver: Some("overlay".into()),
                        attachable: Some(true),
                        labels: Some(HashMap::from([(LABEL_PROJECT.to_string(), self.project.clone())])),
                        ..Default::default()
                    })
                    .await?;
            }
        }
        for wave in file.start_order()? {
            for name in &wave {
                let want = specs.remove(name).expect("a spec per service");
                let full = service_name(&self.project, name);
                match self.docker.inspect_service(&full, None::<bollard::query_parameters::InspectServiceOptions>).await {
                    Ok(have) => {
                        let hash = |l: Option<&HashMap<String, String>>| l.and_then(|l| l.get(LABEL_HASH).cloned());
                        let replicas = have.spec.as_ref().and_then(|s| s.mode.as_ref()).and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
                        if hash(have.spec.as_ref().and_then(|s| s.labels.as_ref())) == hash(want.labels.as_ref()) {
                            if replicas == Some(0) {
                                // Stopped from the Services page: `up` runs the whole stack.
                                progress(name, "scaling to 1 (it was stopped)");
                                self.set_replicas(name, 1).await?;
                            } else {
                                progress(name, "unchanged");
                            }
                            continue;
                        }
                        let is_job = |m: Option<&ServiceSpecMode>| m.is_some_and(|m| m.replicated_job.is_some());
                        if is_job(have.spec.as_ref().and_then(|s| s.mode.as_ref())) != is_job(want.mode.as_ref()) {
                            // Swarm refuses to change a service's mode in place.
                            progress(name, "recreating (it changed between a job and a long-running service)");
                            self.docker.delete_service(&full).await?;
                            self.docker.create_service(want, None).await?;
                            continue;
                        }
                        let version = have.version.and_then(|v| v.index).unwrap_or_default();
                        progress(name, "updating (its compose entry changed)");
                        let opts = bollard::query_parameters::UpdateServiceOptionsBuilder::default().version(version as i32).build();
                        self.docker.update_service(&full, want, opts, None).await?;
                    }
                    Err(e) if !not_found(&e) => return Err(e.into()),
                    Err(_) => {
                        progress(name, "creating");
                        self.docker.create_service(want, None).await?;
                    }
                }
            }
            self.wait_wave(&wave, progress).await?;
        }
        progress("*", &format!("stack {} is up on the swarm", self.project));
        Ok(())
    }

    async fn wait_wave(&self, wave: &[String], progress: &(dyn Fn(&str, &str) + Sync)) -> Result<(), SwarmError> {
        let deadline = tokio::time::Instant::now() + WAVE_WITHIN;
        let mut pending: Vec<String> = wave.to_vec();
        let mut last: HashMap<String, String> = HashMap::new();
        while !pending.is_empty() {
            let status = self.services().await?;
            pending.retain(|name| {
                let Some(s) = status.iter().find(|s| &s.service == name) else { return true };
                let Some(t) = s.tasks.first() else { return true };
                let line = format!("{} on {}{}", t.state, t.node, t.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default());
                if last.get(name) != Some(&line) {
                    progress(name, &line);
                    last.insert(name.clone(), line);
                }
                let done = t.current && if s.oneshot { t.state == "complete" } else { t.state == "running" };
                !done
            });
            if pending.is_empty() {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                let why: Vec<String> = pending.iter().map(|p| format!("{p} ({})", last.get(p).map(String::as_str).unwrap_or("no task yet"))).collect();
                return Err(SwarmError::Service {
                    service: pending.join(", "),
                    message: format!("not running within {} s: {}", WAVE_WITHIN.as_secs(), why.join("; ")),
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Ok(())
    }

    /// The stack's services with their current tasks (desired running or complete), newest
    /// first, and the node each runs on.
    pub async fn services(&self) -> Result<Vec<ServiceView>, SwarmError> {
        self.services_on(&self.nodes().await?).await
    }

    /// [`Self::services`] with the node list already read (ids → hostnames).
    async fn services_on(&self, nodes: &[(String, NodeView)]) -> Result<Vec<ServiceView>, SwarmError> {
        let node_names: HashMap<String, String> = nodes.iter().map(|(id, n)| (id.clone(), n.hostname.clone())).collect();
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_PROJECT}={}", self.project)])]);
        let services = self.docker.list_services(Some(bollard::query_parameters::ListServicesOptions { filters: Some(filters), ..Default::default() })).await?;
        let mut out = vec![];
        for s in services {
            let labels = s.spec.as_ref().and_then(|sp| sp.labels.clone()).unwrap_or_default();
            let Some(name) = labels.get(LABEL_SERVICE).cloned() else { continue };
            let oneshot = labels.get(LABEL_ONESHOT).is_some_and(|v| v == "true");
            let want_hash = labels.get(LABEL_HASH).cloned();
            let tf = HashMap::from([("service".to_string(), vec![s.id.clone().unwrap_or_default()])]);
            let mut tasks = self.docker.list_tasks(Some(bollard::query_parameters::ListTasksOptions { filters: Some(tf) })).await?;
            tasks.sort_by(|a, b| b.created_at.cmp(&a.created_at));
            let failed = tasks.iter().filter(|t| matches!(t.status.as_ref().and_then(|s| s.state), Some(TaskState::FAILED | TaskState::REJECTED))).count() as i64;
            let replicas = s.spec.as_ref().and_then(|sp| sp.mode.as_ref()).and_then(|m| m.replicated.as_ref()).and_then(|r| r.replicas);
            let tasks = tasks
                .into_iter()
                .filter(|t| matches!(t.desired_state, Some(TaskState::RUNNING | TaskState::COMPLETE)))
                .map(|t| {
                    let st = t.status.unwrap_or_default();
                    let hash = t.spec.as_ref().and_then(|s| s.container_spec.as_ref()).and_then(|c| c.labels.as_ref()).and_then(|l| l.get(LABEL_HASH).cloned());
                    TaskView {
                        current: hash.is_some() && hash == want_hash,
                        node: t.node_id.as_ref().and_then(|id| node_names.get(id).cloned()).unwrap_or_else(|| "unassigned".into()),
                        state: lower(&st.state),
                        desired: lower(&t.desired_state),
                        message: st.message.unwrap_or_default(),
                        error: st.err,
                        since: st.timestamp,
                        exit_code: st.container_status.and_then(|c| c.exit_code),
                    }
                })
                .collect();
            out.push(ServiceView { service: name, oneshot, tasks, replicas, failed });
        }
        out.sort_by(|a, b| a.service.cmp(&b.service));
        Ok(out)
    }

    /// The stack's services with their tasks, and the nodes, from one node list (what
    /// [`Self::status`] shows and [`super::follow`] refreshes from).
    pub async fn placement(&self) -> Result<(Vec<ServiceView>, Vec<NodeView>), SwarmError> {
        let nodes = self.nodes().await?;
        let services = self.services_on(&nodes).await?;
        Ok((services, nodes.into_iter().map(|(_, n)| n).collect()))
    }

    async fn nodes(&self) -> Result<Vec<(String, NodeView)>, SwarmError> {
        let nodes = self.docker.list_nodes(None::<bollard::query_parameters::ListNodesOptions>).await?;
        let mut out: Vec<(String, NodeView)> = nodes
            .into_iter()
            .map(|n| {
                let spec = n.spec.unwrap_or_default();
                let status = n.status.unwrap_or_default();
                (
                    n.id.unwrap_or_default(),
                    NodeView {
                        hostname: n.description.and_then(|d| d.hostname).unwrap_or_default(),
                        addr: status.addr.unwrap_or_default(),
                        role: lower(&spec.role),
                        availability: lower(&spec.availability),
                        state: lower(&status.state),
                        leader: n.manager_status.as_ref().and_then(|m| m.leader).unwrap_or(false),
                        reachability: n.manager_status.as_ref().map(|m| lower(&m.reachability)).unwrap_or_default(),
                        labels: spec.labels.unwrap_or_default().into_iter().collect(),
                    },
                )
            })
            .collect();
        out.sort_by(|a, b| a.1.hostname.cmp(&b.1.hostname));
        Ok(out)
    }

    /// The inspected service of compose service `name`, and its version for an update.
    async fn inspect(&self, name: &str) -> Result<(SwarmService, i32), SwarmError> {
        let have = match self.docker.inspect_service(&service_name(&self.project, name), None::<bollard::query_parameters::InspectServiceOptions>).await {
            Err(e) if not_found(&e) => return Err(SwarmError::NoSuchService(name.to_string())),
            r => r?,
        };
        let version = have.version.and_then(|v| v.index).unwrap_or_default() as i32;
        Ok((have.spec.unwrap_or_default(), version))
    }

    async fn update(&self, name: &str, spec: SwarmService, version: i32) -> Result<(), SwarmError> {
        let opts = bollard::query_parameters::UpdateServiceOptionsBuilder::default().version(version).build();
        self.docker.update_service(&service_name(&self.project, name), spec, opts, None).await?;
        Ok(())
    }

    /// Start and stop in Swarm terms: a long-running service scaled to 1 or 0 replicas (a
    /// job runs once and has no replicas to scale).
    pub async fn set_replicas(&self, name: &str, replicas: i64) -> Result<String, SwarmError> {
        let (mut spec, version) = self.inspect(name).await?;
        let Some(r) = spec.mode.as_mut().and_then(|m| m.replicated.as_mut()) else {
            return Err(SwarmError::Service {
                service: name.into(),
                message: "a job runs once and cannot be started or stopped; restart runs it again".into(),
            });
        };
        if r.replicas == Some(replicas) {
            return Ok(format!("{name}: already at {replicas} replica(s)"));
        }
        r.replicas = Some(replicas);
        self.update(name, spec, version).await?;
        Ok(format!("{name}: scaled to {replicas}"))
    }

    /// Restart in Swarm terms: a forced update, which replaces the service's task (and runs
    /// a job again) with the same spec.
    pub async fn force_update(&self, name: &str) -> Result<String, SwarmError> {
        let (mut spec, version) = self.inspect(name).await?;
        let t = spec.task_template.get_or_insert_with(Default::default);
        t.force_update = Some(t.force_update.unwrap_or(0) + 1);
        self.update(name, spec, version).await?;
        Ok(format!("{name}: force-updated (its task is replaced)"))
    }

    /// GETs `paths` from `host:port` inside the stack's overlay network — where Envoy's
    /// admin listens on a swarm, never published. A one-shot job on the overlay, from the
    /// image of compose service `via` (it has Python), makes the requests and prints the
    /// answers; the manager gathers its output from the node that ran it; the job is
    /// removed afterwards, whatever happened. Each answer's body, in the order of `paths`;
    /// an answer that is not `200` is an error.
    pub async fn read_inside(&self, via: &str, host: &str, port: u16, paths: &[&str]) -> Result<Vec<String>, SwarmError> {
        let err = |m: String| SwarmError::Service { service: format!("{host}:{port} (read inside the overlay)"), message: m };
        if paths.iter().chain([&host]).any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || "/?=&._-".contains(c))) {
            return Err(err(format!("refused to read {paths:?}: only plain names and paths")));
        }
        let (file, _) = ComposeFile::load(&self.compose)?;
        let spec = file.services.get(via).ok_or_else(|| SwarmError::NoSuchService(via.to_string()))?;
        let net = service_networks(spec).into_iter().next().ok_or_else(|| err(format!("{via} is on no network")))?;
        let script = format!(
            "import sys, urllib.request\nfor p in sys.argv[1:]:\n    print('{READ_MARK} ' + p)\n    try:\n        r = urllib.request.urlopen('http://{host}:{port}' + p, timeout=10)\n        print('HTTP/1.1 %d' % r.status)\n        print()\n        print(r.read().decode())\n    except Exception as e:\n        print('HTTP/1.1 000 %s' % e)\n        print()\n"
        );
        let mut command = vec!["python3".to_string(), "-c".into(), script];
        command.extend(paths.iter().map(|p| p.to_string()));
        let name = format!("{}_read-{}", self.project, crate::clock::now_ms());
        let job = SwarmService {
            name: Some(name.clone()),
            labels: Some(HashMap::from([(LABEL_READER.to_string(), self.project.clone())])),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(spec.image.clone()),
                    command: Some(command),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy { condition: Some(TaskSpecRestartPolicyConditionEnum::NONE), ..Default::default() }),
                networks: Some(vec![NetworkAttachmentConfig { target: Some(network_name(&self.project, &net)), ..Default::default() }]),
                ..Default::default()
            }),
            mode: Some(ServiceSpecMode { replicated_job: Some(ServiceSpecModeReplicatedJob { max_concurrent: Some(1), total_completions: Some(1) }), ..Default::default() }),
            ..Default::default()
        };
        self.docker.create_service(job, None).await?;
        let out = async {
            let tf = HashMap::from([("service".to_string(), vec![name.clone()])]);
            let deadline = tokio::time::Instant::now() + READ_INSIDE_WITHIN;
            loop {
                let tasks = self.docker.list_tasks(Some(bollard::query_parameters::ListTasksOptions { filters: Some(tf.clone()) })).await?;
                let st = tasks.first().and_then(|t| t.status.clone()).unwrap_or_default();
                match st.state {
                    Some(TaskState::COMPLETE) => break,
                    Some(TaskState::FAILED | TaskState::REJECTED) => {
                        return Err(err(format!("the reading job failed: {}", st.err.or(st.message).unwrap_or_default())));
                    }
                    _ if tokio::time::Instant::now() > deadline => {
                        return Err(err(format!("the reading job did not complete within {} s (last state {})", READ_INSIDE_WITHIN.as_secs(), lower(&st.state))));
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            let opts = bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).stderr(true).tail("all").build();
            let lines = super::read_lines(self.docker.service_logs(&name, Some(opts))).await?;
            parse_reads(&lines, paths.len()).map_err(err)
        }
        .await;
        if let Err(e) = self.docker.delete_service(&name).await {
            tracing::warn!(service = %name, error = %e, "the reading job was not removed");
        }
        out
    }

    /// The last `tail` lines of a service's tasks, wherever they ran (Swarm gathers them
    /// from the nodes).
    pub async fn logs(&self, name: &str, tail: usize) -> Result<Vec<String>, SwarmError> {
        let (file, _) = ComposeFile::load(&self.compose)?;
        if !file.services.contains_key(name) {
            return Err(SwarmError::NoSuchService(name.to_string()));
        }
        self.service_logs(name, tail).await
    }

    async fn service_logs(&self, name: &str, tail: usize) -> Result<Vec<String>, SwarmError> {
        Ok(super::read_lines(self.docker.service_logs(&service_name(&self.project, name), Some(super::tail_options(tail)))).await?)
    }

    /// The last `tail` lines of every service, merged in time order.
    pub async fn merged_logs(&self, tail: usize) -> Result<Vec<app::api::LogLine>, SwarmError> {
        let (file, _) = ComposeFile::load(&self.compose)?;
        let mut all = vec![];
        for name in file.services.keys() {
            if let Ok(lines) = self.service_logs(name, tail).await {
                all.push((name.clone(), lines));
            }
        }
        Ok(super::merge_logs(all))
    }

    /// The stack's services (of `file`, the loaded compose files) as the Services and
    /// Topology pages show them: every compose service, with its task's state, node and
    /// exit, `missing` when it has no service.
    pub async fn service_statuses(&self, file: &ComposeFile) -> Result<Vec<app::api::ServiceStatus>, SwarmError> {
        let views = self.services().await?;
        Ok(file.services.iter().map(|(name, spec)| service_status(name, spec, views.iter().find(|v| &v.service == name))).collect())
    }

    /// Drains a node (Swarm moves its tasks to the others where placement allows; pinned
    /// ones wait for it) or makes it active again. Refuses to drain the last active node:
    /// nothing could run anywhere.
    pub async fn set_availability(&self, hostname: &str, verb: NodeVerb) -> Result<String, SwarmError> {
        use bollard::models::NodeSpecAvailabilityEnum as A;
        self.require_manager().await?;
        let nodes = self.nodes().await?;
        let err = |m: String| SwarmError::Node { node: hostname.to_string(), message: m };
        let mut named = nodes.iter().filter(|(_, n)| n.hostname == hostname);
        let (id, node) = match (named.next(), named.next()) {
            (None, _) => return Err(SwarmError::NoSuchNode(hostname.to_string())),
            (Some(_), Some(_)) => return Err(err("two nodes have this hostname: act on them with `docker node update` by id".into())),
            (Some(one), None) => one,
        };
        if node.availability == verb.availability() {
            return Ok(format!("{hostname} is already {}", node.availability));
        }
        if verb == NodeVerb::Drain && !others_can_run(&nodes, id) {
            return Err(err("it is the last active, ready node: draining it would leave the stack nowhere to run".into()));
        }
        let have = self.docker.inspect_node(id).await?;
        let mut spec = have.spec.unwrap_or_default();
        spec.availability = Some(match verb {
            NodeVerb::Drain => A::DRAIN,
            NodeVerb::Activate => A::ACTIVE,
        });
        let version = have.version.and_then(|v| v.index).unwrap_or_default();
        let opts = bollard::query_parameters::UpdateNodeOptionsBuilder::default().version(version as i64).build();
        self.docker.update_node(id, spec, opts).await?;
        Ok(match verb {
            NodeVerb::Drain => format!("{hostname} drained: Swarm moves its tasks to the other nodes; services pinned to it wait"),
            NodeVerb::Activate => format!("{hostname} active: it takes tasks again"),
        })
    }

    pub async fn status(&self) -> Result<SwarmStatus, SwarmError> {
        self.require_manager().await?;
        let (services, nodes) = self.placement().await?;
        Ok(SwarmStatus { nodes, services })
    }

    /// Removes the stack's services and then its networks. Named volumes stay on the nodes
    /// their tasks ran on (a manager cannot remove another node's volumes); `docker volume
    /// rm` on each node removes them.
    pub async fn down(&self, progress: &(dyn Fn(&str, &str) + Sync)) -> Result<(), SwarmError> {
        self.require_manager().await?;
        let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_PROJECT}={}", self.project)])]);
        let services = self.docker.list_services(Some(bollard::query_parameters::ListServicesOptions { filters: Some(filters.clone()), ..Default::default() })).await?;
        for s in &services {
            let name = s.spec.as_ref().and_then(|sp| sp.name.clone()).unwrap_or_default();
            progress(&name, "removing");
            self.docker.delete_service(&name).await?;
        }
        // A network is removable once the tasks attached to it are gone on every node. Only
        // the project's overlays: an engine-backend stack on the same engine keeps its
        // bridge networks.
        let mut nets_filter = filters.clone();
        nets_filter.insert("driver".into(), vec!["overlay".into()]);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        let mut last_error = String::new();
        loop {
            let nets = self.docker.list_networks(Some(bollard::query_parameters::ListNetworksOptions { filters: Some(nets_filter.clone()) })).await?;
            if nets.is_empty() {
                break;
            }
            for n in nets {
                let name = n.name.unwrap_or_default();
                match self.docker.remove_network(&name).await {
                    Ok(()) => progress("*", &format!("network {name} removed")),
                    Err(e) => last_error = format!("{name}: {e}"),
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(SwarmError::Service {
                    service: "*".into(),
                    message: format!("the stack's networks were still there 90 s after its services were removed ({last_error})"),
                });
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        progress("*", &format!("stack {} removed from the swarm (named volumes stay on their nodes)", self.project));
        Ok(())
    }
}

/// A compose service as the engine's pages show it, from its swarm service's newest task:
/// `running` (health `starting` until Swarm calls it healthy), `exited` with the exit code
/// once done or failed, `created` while waiting for a node, `missing` without a service.
pub fn service_status(name: &str, spec: &ServiceSpec, view: Option<&ServiceView>) -> app::api::ServiceStatus {
    let task = view.and_then(|v| v.tasks.first());
    let has_check = spec.healthcheck.as_ref().is_some_and(|h| h.disable != Some(true) && h.test.first().is_some_and(|t| t != "NONE"));
    let (state, health) = match (view, task.map(|t| t.state.as_str())) {
        (None, _) => ("missing", "none"),
        (Some(v), None) if v.replicas == Some(0) => ("exited", "none"),
        (Some(_), None) => ("created", "none"),
        (_, Some("running")) => ("running", if has_check { "healthy" } else { "none" }),
        (_, Some("starting")) => ("running", "starting"),
        (_, Some("complete" | "failed" | "rejected" | "shutdown" | "orphaned" | "remove")) => ("exited", "none"),
        (_, Some(_)) => ("created", "none"),
    };
    let exit_code = match task.map(|t| t.state.as_str()) {
        Some("complete") => Some(task.and_then(|t| t.exit_code).unwrap_or(0)),
        Some(_) if state == "exited" => task.and_then(|t| t.exit_code),
        _ => None,
    };
    let since = task.and_then(|t| t.since.clone());
    app::api::ServiceStatus {
        service: name.into(),
        container: task.map(|t| format!("task on {}", t.node)).unwrap_or_else(|| "no task".into()),
        image: spec.image.clone(),
        state: state.into(),
        health: health.into(),
        exit_code,
        restart_count: view.map_or(0, |v| v.failed),
        uptime_secs: since.as_deref().filter(|_| state == "running").and_then(crate::clock::secs_since),
        started_at: since,
        ports: spec.ports.clone(),
        depends_on: spec.depends_on.entries().into_iter().map(|(d, _)| d).collect(),
        oneshot: is_oneshot(spec),
        node: task.map(|t| t.node.clone()).filter(|n| n != "unassigned"),
    }
}

/// Whether a node other than `id` is active and ready, so draining `id` leaves the stack
/// somewhere to run.
fn others_can_run(nodes: &[(String, NodeView)], id: &str) -> bool {
    nodes.iter().any(|(i, n)| i != id && n.availability == "active" && n.state == "ready")
}

/// Whether an engine error is a 404 (no such service or network).
fn not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_inside_refuses_what_is_not_a_plain_name_or_path_before_any_call() {
        // No engine answers at this address: a refusal must come before any call to it.
        let docker = Docker::connect_with_http("http://127.0.0.1:1", 2, bollard::API_DEFAULT_VERSION).unwrap();
        let stack = SwarmStack::new(docker, "bss", vec![], None);
        for (host, path) in [("envoy", "/x'); import os; os.system('id"), ("envoy'+'", "/ready"), ("envoy", ""), ("envoy", "/a b")] {
            let e = stack.read_inside("bss-sink", host, 15000, &[path]).await.unwrap_err().to_string();
            assert!(e.contains("only plain names and paths"), "{host} {path}: {e}");
        }
    }

    #[test]
    fn a_reading_jobs_output_gives_each_answers_body() {
        let out: Vec<String> = [
            "==bss-read== /clusters?format=json",
            "HTTP/1.1 200",
            "",
            "{\"cluster_statuses\": [",
            "  {\"name\": \"control_plane\"}]}",
            "",
            "==bss-read== /config_dump",
            "HTTP/1.1 200",
            "",
            "{\"configs\": []}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let bodies = parse_reads(&out, 2).unwrap();
        assert_eq!(bodies, vec!["{\"cluster_statuses\": [\n  {\"name\": \"control_plane\"}]}".to_string(), "{\"configs\": []}".to_string()]);
        assert!(parse_reads(&out, 3).unwrap_err().contains("2 answers"));
        let refused = vec!["==bss-read== /ready".to_string(), "HTTP/1.1 000 <urlopen error [Errno 111] Connection refused>".to_string(), String::new()];
        assert!(parse_reads(&refused, 1).unwrap_err().contains("GET /ready: HTTP/1.1 000 <urlopen error"));
        assert!(parse_reads(&["==bss-read== /x".to_string()], 1).unwrap_err().contains("no answer"));
    }

    const FILE: &str = r#"
services:
  kafka-1:
    image: bss-local/kafka:latest
    command: ["run"]
    restart: unless-stopped
    ports: ["127.0.0.1:9092:9092"]
    volumes: ["kafka-1-data:/var/lib/kafka/data"]
    dns_opt: ["timeout:1"]
    healthcheck: { test: ["CMD-SHELL", "true"], interval: 5s, retries: 3 }
    networks: [bss]
    deploy:
      placement: { constraints: ["node.labels.bss.host == h1"] }
      resources: { limits: { cpus: "0.5", memory: 768M } }
  kafka-init:
    image: bss-local/kafka:latest
    restart: "on-failure:5"
    depends_on: [kafka-1]
    networks: [bss]
  envoy:
    image: bss-local/envoy:latest
    restart: unless-stopped
    ports: ["127.0.0.1:15000:15000", "127.0.0.1:15006:15006", "127.0.0.1:15007:15007"]
    volumes: ["./:/etc/envoy:ro,z"]
    extra_hosts: ["host.docker.internal:host-gateway"]
    networks: [bss]
volumes:
  kafka-1-data:
networks:
  bss:
"#;

    fn spec(name: &str, gw: Option<&str>) -> Result<SwarmService, SwarmError> {
        let f = ComposeFile::from_str(FILE, "test").unwrap();
        service_spec("bss", name, &f.services[name], Path::new("/"), gw)
    }

    #[test]
    fn a_broker_is_a_pinned_replicated_service_with_host_mode_ports_and_dnsrr() {
        let s = spec("kafka-1", None).unwrap();
        assert_eq!(s.name.as_deref(), Some("bss_kafka-1"));
        let t = s.task_template.unwrap();
        assert_eq!(t.placement.unwrap().constraints.unwrap(), ["node.labels.bss.host == h1"]);
        let l = t.resources.unwrap().limits.unwrap();
        assert_eq!((l.nano_cpus, l.memory_bytes), (Some(500_000_000), Some(768 << 20)));
        assert_eq!(t.restart_policy.unwrap().condition, Some(TaskSpecRestartPolicyConditionEnum::ANY));
        let c = t.container_spec.unwrap();
        assert_eq!(c.args.unwrap(), ["run"], "compose command = swarm args");
        assert_eq!(c.dns_config.unwrap().options.unwrap(), ["timeout:1"]);
        assert!(c.health_check.is_some());
        let m = &c.mounts.unwrap()[0];
        assert_eq!((m.source.as_deref(), m.typ), (Some("bss_kafka-1-data"), Some(MountType::VOLUME)));
        let n = &t.networks.unwrap()[0];
        assert_eq!((n.target.as_deref(), n.aliases.clone().unwrap()), (Some("bss_bss"), vec!["kafka-1".to_string()]));
        let e = s.endpoint_spec.unwrap();
        assert_eq!(e.mode, Some(EndpointSpecModeEnum::DNSRR));
        let p = &e.ports.unwrap()[0];
        assert_eq!((p.published_port, p.target_port, p.publish_mode), (Some(9092), Some(9092), Some(EndpointPortConfigPublishModeEnum::HOST)));
        assert!(s.mode.unwrap().replicated.is_some());
    }

    #[test]
    fn a_oneshot_service_is_a_job_retried_on_failure() {
        let s = spec("kafka-init", None).unwrap();
        assert!(s.mode.unwrap().replicated_job.is_some());
        let r = s.task_template.unwrap().restart_policy.unwrap();
        assert_eq!((r.condition, r.max_attempts), (Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE), Some(5)));
    }

    #[test]
    fn envoy_admin_is_never_published_and_host_gateway_needs_an_address() {
        let e = spec("envoy", None).unwrap_err().to_string();
        assert!(e.contains("set runtime.swarm_host_gateway"), "{e}");
        let s = spec("envoy", Some("198.18.0.254")).unwrap();
        let ports: Vec<i64> = s.endpoint_spec.unwrap().ports.unwrap().iter().filter_map(|p| p.published_port).collect();
        assert_eq!(ports, [15006], "admin 15000 and the unlimited bench listener 15007 stay inside the overlay");
        let c = s.task_template.clone().unwrap().container_spec.unwrap();
        assert_eq!(c.mounts.unwrap()[0].read_only, Some(true), "ro among other options is still read-only");
        let hosts = s.task_template.unwrap().container_spec.unwrap().hosts.unwrap();
        assert_eq!(hosts, ["198.18.0.254 host.docker.internal"]);
        let hash = |gw| spec("envoy", Some(gw)).unwrap().labels.unwrap()[LABEL_HASH].clone();
        assert_ne!(hash("198.18.0.254"), hash("10.0.0.1"), "a new gateway is a change `up` applies");
    }

    #[test]
    fn a_services_task_reads_as_the_engine_pages_state() {
        let f = ComposeFile::from_str(FILE, "test").unwrap();
        let task = |state: &str, node: &str, exit_code: Option<i64>| TaskView {
            current: true, node: node.into(), state: state.into(), desired: "running".into(), message: String::new(), error: None,
            since: Some("2026-01-01T00:00:00.5Z".into()), exit_code,
        };
        let view = |tasks: Vec<TaskView>, replicas: Option<i64>| ServiceView { service: "x".into(), oneshot: false, tasks, replicas, failed: 2 };
        let of = |name: &str, v: Option<&ServiceView>| {
            let s = service_status(name, &f.services[name], v);
            let level = s.level();
            (s.state, s.health, s.exit_code, s.node, level)
        };
        let broker = view(vec![task("running", "h1", None)], Some(1));
        assert_eq!(of("kafka-1", Some(&broker)), ("running".into(), "healthy".into(), None, Some("h1".into()), "ok"));
        let s = service_status("kafka-1", &f.services["kafka-1"], Some(&broker));
        assert_eq!((s.restart_count, s.container.as_str()), (2, "task on h1"));
        assert!(s.uptime_secs.is_some_and(|u| u > 0), "uptime from the task's timestamp");
        assert_eq!(of("envoy", Some(&view(vec![task("running", "h2", None)], Some(1)))).1, "none", "no health check: health none");
        assert_eq!(of("kafka-1", Some(&view(vec![task("starting", "h1", None)], Some(1)))).4, "warn");
        let job = ServiceView { oneshot: true, ..view(vec![task("complete", "h3", Some(0))], None) };
        assert_eq!(of("kafka-init", Some(&job)), ("exited".into(), "none".into(), Some(0), Some("h3".into()), "ok"));
        assert_eq!(of("kafka-1", Some(&view(vec![], Some(0)))).0, "exited", "scaled to 0: stopped");
        let waiting = of("kafka-1", Some(&view(vec![task("pending", "unassigned", None)], Some(1))));
        assert_eq!((waiting.0.as_str(), waiting.3), ("created", None), "waiting for a node: on none");
        assert_eq!(of("kafka-1", Some(&view(vec![task("failed", "h1", Some(137))], Some(1)))).2, Some(137));
        assert_eq!(of("kafka-1", None).0, "missing");
    }

    #[test]
    fn a_node_may_be_drained_only_while_another_is_active_and_ready() {
        let node = |id: &str, availability: &str, state: &str| {
            (id.to_string(), NodeView {
                hostname: id.into(), addr: String::new(), role: "manager".into(), availability: availability.into(), state: state.into(),
                leader: false, reachability: String::new(), labels: BTreeMap::new(),
            })
        };
        let nodes = [node("a", "active", "ready"), node("b", "drain", "ready"), node("c", "active", "down")];
        assert!(!others_can_run(&nodes, "a"), "b is drained and c is down: a is the last");
        assert!(others_can_run(&nodes, "b"));
        assert!(others_can_run(&[node("a", "active", "ready"), node("b", "active", "ready")], "a"));
    }

    #[test]
    fn bad_deploy_settings_are_refused_with_the_service_named() {
        for (bad, says) in [
            ("endpoint_mode: ipvs", "must be vip or dnsrr"),
            ("placement: { constraints: [\"node.labels.bss.host\"] }", "must be `<attribute> == <value>`"),
            ("resources: { limits: { memory: lots } }", "is not a size"),
            ("resources: { limits: { cpus: \"-1\" } }", "must be above 0"),
        ] {
            let text = format!("services:\n  a:\n    image: x\n    deploy:\n      {bad}\n");
            let e = ComposeFile::from_str(&text, "t").unwrap_err().to_string();
            assert!(e.contains(says) && e.contains('a'), "{bad}: {e}");
        }
    }
}
