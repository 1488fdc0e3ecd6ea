//! Compose service spec → Docker create request. Pure: no engine calls, unit-tested.
use std::{
    collections::HashMap,
    hash::{Hash, Hasher},
    path::Path,
};

use bollard::models::{
    ContainerCreateBody, EndpointSettings, HealthConfig, HostConfig, NetworkingConfig, PortBinding as DockerPortBinding,
    ResourcesUlimits, RestartPolicy, RestartPolicyNameEnum,
};

use super::compose::{parse_duration_ns, parse_port, ComposeError, ServiceSpec, Ulimit};

pub const LABEL_PROJECT: &str = "io.bss-control.project";
pub const LABEL_SERVICE: &str = "io.bss-control.service";
pub const LABEL_HASH: &str = "io.bss-control.config-hash";
pub const LABEL_ONESHOT: &str = "io.bss-control.oneshot";

pub fn container_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}

pub fn network_name(project: &str, network: &str) -> String {
    format!("{project}_{network}")
}

pub fn volume_name(project: &str, volume: &str) -> String {
    format!("{project}_{volume}")
}

/// The networks a service joins: its own list, or the project's default network.
pub fn service_networks(spec: &ServiceSpec) -> Vec<String> {
    if spec.networks.is_empty() {
        vec!["default".into()]
    } else {
        spec.networks.clone()
    }
}

/// A hash of everything that shapes the container; a change means "recreate". That
/// includes the contents of bind-mounted host files (a service's config, e.g.
/// `./envoy/envoy.yaml`), so editing one and running `up` applies it, as `docker compose up`
/// does not.
pub fn config_hash(project: &str, service: &str, spec: &ServiceSpec, base_dir: &Path) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (project, service, serde_json::to_string(spec).unwrap_or_default(), base_dir).hash(&mut h);
    for v in &spec.volumes {
        let source = v.split(':').next().unwrap_or_default();
        if source.starts_with('.') || source.starts_with('/') {
            hash_tree(&base_dir.join(source), &mut h, &mut 256);
        }
    }
    format!("{:016x}", h.finish())
}

/// Feeds the files under `path` (names and contents, in name order) into `h`, at most
/// `budget` files of at most 1 MiB each: config directories, not data.
fn hash_tree(path: &Path, h: &mut impl Hasher, budget: &mut u32) {
    if *budget == 0 {
        return;
    }
    let Ok(meta) = std::fs::metadata(path) else { return };
    if meta.is_file() {
        *budget -= 1;
        if meta.len() <= 1 << 20 {
            (path.file_name(), std::fs::read(path).unwrap_or_default()).hash(h);
        }
    } else if meta.is_dir() {
        let Ok(rd) = std::fs::read_dir(path) else { return };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        for e in entries {
            hash_tree(&e, h, budget);
        }
    }
}

/// A job that is done once it exits 0: no restart policy, `no`, or `on-failure` (which
/// retries only failures, e.g. `kafka-init` creating topics). Such a service counts as
/// up when it finished with 0, and the healer leaves it finished.
pub fn is_oneshot(spec: &ServiceSpec) -> bool {
    match spec.restart.as_deref() {
        None | Some("no") => true,
        Some(r) => r.starts_with("on-failure"),
    }
}

/// One entry of a service's `volumes`: a bind mount (a path, made absolute from the
/// compose file's directory; it must exist) or a named volume of the project.
pub struct VolumeMount {
    pub source: String,
    pub target: String,
    pub mode: Option<String>,
    pub bind: bool,
}

pub fn volume_mount(project: &str, base_dir: &Path, v: &str) -> Result<VolumeMount, ComposeError> {
    let mut parts = v.splitn(3, ':');
    let source = parts.next().unwrap_or_default();
    let target = parts.next().ok_or_else(|| ComposeError::Value(format!("volume {v:?}: expected SOURCE:TARGET[:ro]")))?;
    let mode = parts.next().map(String::from);
    let bind = source.starts_with('.') || source.starts_with('/');
    let source = if bind {
        let p = base_dir.join(source);
        let p = p.canonicalize().map_err(|e| ComposeError::Value(format!("volume {v:?}: {} does not exist: {e}", p.display())))?;
        p.display().to_string()
    } else {
        volume_name(project, source)
    };
    Ok(VolumeMount { source, target: target.to_string(), mode, bind })
}

/// A service's `ulimits` as the engine takes them (containers and swarm tasks alike).
pub fn ulimits(spec: &ServiceSpec) -> Vec<ResourcesUlimits> {
    spec.ulimits
        .iter()
        .map(|(name, u)| {
            let (soft, hard) = match u {
                Ulimit::Single(n) => (*n, *n),
                Ulimit::Range { soft, hard } => (*soft, *hard),
            };
            ResourcesUlimits { name: Some(name.clone()), soft: Some(soft), hard: Some(hard) }
        })
        .collect()
}

/// The engine's health check for a service's `healthcheck` (`None`: the image's own).
pub fn health_config(spec: &ServiceSpec) -> Result<Option<HealthConfig>, ComposeError> {
    Ok(match &spec.healthcheck {
        None => None,
        Some(h) if h.disable == Some(true) => Some(HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() }),
        Some(h) => Some(HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval.as_deref().map(parse_duration_ns).transpose()?,
            timeout: h.timeout.as_deref().map(parse_duration_ns).transpose()?,
            retries: h.retries.map(i64::from),
            start_period: h.start_period.as_deref().map(parse_duration_ns).transpose()?,
            start_interval: None,
        }),
    })
}

pub fn create_body(
    project: &str,
    service: &str,
    spec: &ServiceSpec,
    base_dir: &Path,
) -> Result<ContainerCreateBody, ComposeError> {
    let mut labels = HashMap::new();
    labels.insert(LABEL_PROJECT.to_string(), project.to_string());
    labels.insert(LABEL_SERVICE.to_string(), service.to_string());
    labels.insert(LABEL_HASH.to_string(), config_hash(project, service, spec, base_dir));
    labels.insert(LABEL_ONESHOT.to_string(), is_oneshot(spec).to_string());

    let mut port_bindings: HashMap<String, Option<Vec<DockerPortBinding>>> = HashMap::new();
    let mut exposed = Vec::new();
    for p in &spec.ports {
        let b = parse_port(p)?;
        let key = format!("{}/{}", b.container_port, b.protocol);
        exposed.push(key.clone());
        port_bindings.entry(key).or_insert_with(|| Some(vec![])).as_mut().unwrap().push(DockerPortBinding {
            host_ip: Some(b.host_ip),
            host_port: Some(b.host_port.to_string()),
        });
    }

    let mut binds = Vec::new();
    for v in &spec.volumes {
        let m = volume_mount(project, base_dir, v)?;
        binds.push(match m.mode {
            Some(mode) => format!("{}:{}:{mode}", m.source, m.target),
            None => format!("{}:{}", m.source, m.target),
        });
    }

    let restart_policy = spec.restart.as_deref().map(|r| {
        let (name, max) = match r {
            "always" => (RestartPolicyNameEnum::ALWAYS, None),
            "unless-stopped" => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
            "no" => (RestartPolicyNameEnum::NO, None),
            r => (RestartPolicyNameEnum::ON_FAILURE, r.strip_prefix("on-failure:").and_then(|n| n.parse().ok())),
        };
        RestartPolicy { name: Some(name), maximum_retry_count: max }
    });

    let ulimits = ulimits(spec);

    let healthcheck = health_config(spec)?;

    let networks = service_networks(spec);
    // API 1.41 accepts one network at create; the rest are connected before start.
    let first = network_name(project, &networks[0]);
    let mut endpoints = HashMap::new();
    endpoints.insert(first.clone(), EndpointSettings { aliases: Some(vec![service.to_string()]), ..Default::default() });

    let stop_timeout = spec
        .stop_grace_period
        .as_deref()
        .map(|d| parse_duration_ns(d).map(|ns| ns / 1_000_000_000))
        .transpose()?;

    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        hostname: Some(spec.hostname.clone().unwrap_or_else(|| service.to_string())),
        cmd: spec.command.clone(),
        entrypoint: spec.entrypoint.clone(),
        env: Some(spec.environment.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        user: spec.user.clone(),
        working_dir: spec.working_dir.clone(),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck,
        stop_timeout,
        host_config: Some(HostConfig {
            binds: (!binds.is_empty()).then_some(binds),
            port_bindings: (!port_bindings.is_empty()).then_some(port_bindings),
            restart_policy,
            init: spec.init,
            ulimits: (!ulimits.is_empty()).then_some(ulimits),
            extra_hosts: (!spec.extra_hosts.is_empty()).then(|| spec.extra_hosts.clone()),
            network_mode: Some(first),
            cap_add: (!spec.cap_add.is_empty()).then(|| spec.cap_add.clone()),
            dns_options: (!spec.dns_opt.is_empty()).then(|| spec.dns_opt.clone()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig { endpoints_config: Some(endpoints) }),
        ..Default::default()
    })
}

/// How a container that something else made (docker compose) differs from what the file
/// asks for, in the settings that decide what runs: image, command, entrypoint, the file's
/// environment, health check, published ports and mounts. `None`: the same; it is kept.
/// What the engine or the image adds (image environment, anonymous volumes) is not a
/// difference.
pub fn differs(want: &ContainerCreateBody, have: &bollard::models::ContainerInspectResponse) -> Option<String> {
    let cfg = have.config.clone().unwrap_or_default();
    if want.image != cfg.image {
        return Some(format!("image {:?}, the file says {:?}", cfg.image.unwrap_or_default(), want.image.clone().unwrap_or_default()));
    }
    if want.cmd.is_some() && want.cmd != cfg.cmd {
        return Some("command".into());
    }
    if want.entrypoint.is_some() && want.entrypoint != cfg.entrypoint {
        return Some("entrypoint".into());
    }
    let env = cfg.env.unwrap_or_default();
    if let Some(missing) = want.env.iter().flatten().find(|e| !env.contains(e)) {
        let key = missing.split('=').next().unwrap_or_default();
        return Some(format!("environment {key}"));
    }
    let test = |h: &Option<HealthConfig>| h.as_ref().and_then(|h| h.test.clone());
    if want.healthcheck.is_some() && test(&want.healthcheck) != test(&cfg.healthcheck) {
        return Some("health check".into());
    }
    let host = have.host_config.clone().unwrap_or_default();
    let ports = |b: Option<HashMap<String, Option<Vec<DockerPortBinding>>>>| {
        let mut v: Vec<(String, String, String)> = b
            .unwrap_or_default()
            .into_iter()
            .flat_map(|(k, bs)| {
                bs.unwrap_or_default().into_iter().map(move |b| {
                    let ip = b.host_ip.filter(|ip| !ip.is_empty()).unwrap_or_else(|| "0.0.0.0".into());
                    (k.clone(), ip, b.host_port.unwrap_or_default())
                })
            })
            .collect();
        v.sort();
        v
    };
    let want_host = want.host_config.clone().unwrap_or_default();
    if ports(want_host.port_bindings) != ports(host.port_bindings) {
        return Some("published ports".into());
    }
    let mounts: Vec<(String, String)> = have
        .mounts
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|m| (m.name.filter(|n| !n.is_empty()).or(m.source).unwrap_or_default(), m.destination.unwrap_or_default()))
        .collect();
    for b in want_host.binds.iter().flatten() {
        let mut parts = b.splitn(3, ':');
        let (src, dst) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        if !mounts.iter().any(|(s, d)| s == src && d == dst) {
            return Some(format!("mount {dst}"));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::compose::ComposeFile;

    const Y: &str = r#"
services:
  db:
    image: postgres:15
    command: ["postgres", "-c", "wal_level=replica"]
    ports: ["127.0.0.1:5433:5432"]
    environment: { A: "1", B: 2 }
    volumes: ["data:/var/lib/postgresql/data", "./:/cfg:ro"]
    restart: unless-stopped
    init: true
    ulimits: { nofile: { soft: 10000, hard: 20000 } }
    healthcheck: { test: ["CMD-SHELL", "pg_isready"], interval: 5s, timeout: 2s, retries: 3, start_period: 10s }
    networks: [bss]
  init:
    image: busybox
    restart: "no"
volumes: { data: }
networks: { bss: }
"#;

    #[test]
    fn maps_every_supported_key() {
        let f = ComposeFile::from_str(Y, "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let b = create_body("p", "db", &f.services["db"], dir.path()).unwrap();
        let hc = b.host_config.as_ref().unwrap();
        assert_eq!(b.cmd.as_ref().unwrap()[2], "wal_level=replica");
        assert_eq!(b.env.as_ref().unwrap(), &vec!["A=1".to_string(), "B=2".to_string()]);
        let pb = &hc.port_bindings.as_ref().unwrap()["5432/tcp"].as_ref().unwrap()[0];
        assert_eq!((pb.host_ip.as_deref(), pb.host_port.as_deref()), (Some("127.0.0.1"), Some("5433")));
        let binds = hc.binds.as_ref().unwrap();
        assert_eq!(binds[0], "p_data:/var/lib/postgresql/data");
        assert!(binds[1].ends_with(":/cfg:ro") && binds[1].starts_with('/'), "{binds:?}");
        assert_eq!(hc.restart_policy.as_ref().unwrap().name, Some(RestartPolicyNameEnum::UNLESS_STOPPED));
        assert_eq!(hc.network_mode.as_deref(), Some("p_bss"));
        assert_eq!(hc.ulimits.as_ref().unwrap()[0].hard, Some(20000));
        let h = b.healthcheck.unwrap();
        assert_eq!((h.interval, h.retries, h.start_period), (Some(5_000_000_000), Some(3), Some(10_000_000_000)));
        assert_eq!(b.labels.as_ref().unwrap()[LABEL_SERVICE], "db");
        assert_eq!(b.labels.as_ref().unwrap()[LABEL_ONESHOT], "false");
        let aliases = &b.networking_config.unwrap().endpoints_config.unwrap()["p_bss"];
        assert_eq!(aliases.aliases.as_deref(), Some(&["db".to_string()][..]));
    }

    /// A container as the engine reports one made from `b` by someone else (docker compose):
    /// no labels of ours, the image's own environment added, an anonymous volume.
    fn as_inspected(b: &ContainerCreateBody) -> bollard::models::ContainerInspectResponse {
        let hc = b.host_config.clone().unwrap();
        let mut env = b.env.clone().unwrap();
        env.push("PATH=/usr/bin".into());
        let mut mounts: Vec<bollard::models::MountPoint> = hc
            .binds
            .clone()
            .unwrap()
            .iter()
            .map(|b| {
                let mut p = b.splitn(3, ':');
                let (src, dst) = (p.next().unwrap().to_string(), p.next().unwrap().to_string());
                if src.starts_with('/') {
                    bollard::models::MountPoint { source: Some(src), destination: Some(dst), ..Default::default() }
                } else {
                    bollard::models::MountPoint { name: Some(src), source: Some("/var/lib/docker/volumes/x".into()), destination: Some(dst), ..Default::default() }
                }
            })
            .collect();
        mounts.push(bollard::models::MountPoint { name: Some("3f2a".into()), destination: Some("/anon".into()), ..Default::default() });
        bollard::models::ContainerInspectResponse {
            config: Some(bollard::models::ContainerConfig {
                image: b.image.clone(),
                cmd: b.cmd.clone(),
                env: Some(env),
                healthcheck: b.healthcheck.clone(),
                ..Default::default()
            }),
            host_config: Some(hc),
            mounts: Some(mounts),
            ..Default::default()
        }
    }

    #[test]
    fn a_compose_made_container_is_kept_only_when_it_runs_what_the_file_says() {
        let f = ComposeFile::from_str(Y, "t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let b = create_body("p", "db", &f.services["db"], dir.path()).unwrap();
        assert_eq!(differs(&b, &as_inspected(&b)), None);
        let mut c = as_inspected(&b);
        c.config.as_mut().unwrap().image = Some("postgres:16".into());
        assert!(differs(&b, &c).unwrap().contains("postgres:16"));
        let mut c = as_inspected(&b);
        c.config.as_mut().unwrap().env.as_mut().unwrap().retain(|e| !e.starts_with("B="));
        assert_eq!(differs(&b, &c).as_deref(), Some("environment B"));
        let mut c = as_inspected(&b);
        c.host_config.as_mut().unwrap().port_bindings.as_mut().unwrap().get_mut("5432/tcp").unwrap().as_mut().unwrap()[0].host_ip = Some("0.0.0.0".into());
        assert_eq!(differs(&b, &c).as_deref(), Some("published ports"));
        let mut c = as_inspected(&b);
        c.mounts.as_mut().unwrap().remove(0);
        assert_eq!(differs(&b, &c).as_deref(), Some("mount /var/lib/postgresql/data"));
        let mut c = as_inspected(&b);
        c.config.as_mut().unwrap().healthcheck.as_mut().unwrap().test = Some(vec!["NONE".into()]);
        assert_eq!(differs(&b, &c).as_deref(), Some("health check"));
        let mut c = as_inspected(&b);
        c.config.as_mut().unwrap().cmd = Some(vec!["postgres".into()]);
        assert_eq!(differs(&b, &c).as_deref(), Some("command"));
    }

    #[test]
    fn service_without_networks_joins_default_and_oneshot_is_marked() {
        let f = ComposeFile::from_str(Y, "t").unwrap();
        let b = create_body("p", "init", &f.services["init"], Path::new(".")).unwrap();
        assert_eq!(b.host_config.unwrap().network_mode.as_deref(), Some("p_default"));
        assert_eq!(b.labels.unwrap()[LABEL_ONESHOT], "true");
    }

    #[test]
    fn missing_bind_source_is_a_clear_error() {
        let y = "services:\n  a: { image: x, volumes: [\"./nope-not-here:/x\"] }\n";
        let f = ComposeFile::from_str(y, "t").unwrap();
        let e = create_body("p", "a", &f.services["a"], Path::new("/tmp")).unwrap_err();
        let e = e.to_string();
        assert!(e.contains("nope-not-here") && e.contains("does not exist"), "{e}");
    }

    #[test]
    fn hash_changes_with_the_spec() {
        let f = ComposeFile::from_str(Y, "t").unwrap();
        let mut s = f.services["db"].clone();
        let h1 = config_hash("p", "db", &s, Path::new("/d"));
        assert_eq!(h1, config_hash("p", "db", &s, Path::new("/d")));
        s.image = "postgres:16".into();
        assert_ne!(h1, config_hash("p", "db", &s, Path::new("/d")));
    }

    /// Editing a bind-mounted config file changes the hash (so `up` recreates the service).
    #[test]
    fn hash_changes_with_a_mounted_files_contents() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        std::fs::write(dir.path().join("conf/a.yaml"), "port: 1\n").unwrap();
        let mut s = ComposeFile::from_str(Y, "t").unwrap().services["db"].clone();
        s.volumes = vec!["./conf:/etc/x:ro".into()];
        let h1 = config_hash("p", "db", &s, dir.path());
        assert_eq!(h1, config_hash("p", "db", &s, dir.path()));
        std::fs::write(dir.path().join("conf/a.yaml"), "port: 2\n").unwrap();
        assert_ne!(h1, config_hash("p", "db", &s, dir.path()));
    }
}
