//! The compose model: reads `dev/compose.yml` (+ an optional override such as
//! `dev/compose.offline.yml`) into typed service specs, and plans the start order.
//!
//! A subset of Compose is supported, and anything outside it is refused with the key's
//! name, so a file never half-applies. Override files merge like Compose's for mappings
//! (keys merge recursively) and replace sequences and scalars (an override that swaps an
//! image's `command` or `volumes` means "use these instead").
use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ComposeError {
    #[error("cannot read {path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("service {service}: {message}")]
    Service { service: String, message: String },
    #[error("dependency cycle between services: {0}")]
    Cycle(String),
    /// One value of a service (a port, a duration, a volume) that cannot be used as written.
    #[error("{0}")]
    Value(String),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ComposeFile {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub version: Option<String>,
    pub services: BTreeMap<String, ServiceSpec>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Option<Value>>,
    #[serde(default)]
    pub networks: BTreeMap<String, Option<Value>>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    pub image: String,
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub environment: BTreeMap<String, EnvValue>,
    #[serde(default)]
    pub ports: Vec<String>,
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub depends_on: DependsOn,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default)]
    pub restart: Option<String>,
    #[serde(default)]
    pub init: Option<bool>,
    #[serde(default)]
    pub ulimits: BTreeMap<String, Ulimit>,
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    #[serde(default)]
    pub networks: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub container_name: Option<String>,
    #[serde(default)]
    pub stop_grace_period: Option<String>,
    /// Extra kernel capabilities; only those in [`ALLOWED_CAPS`].
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Resolver options in the container's `resolv.conf` (`timeout:1`, `attempts:2`, …).
    /// Left out of the serialized spec when empty, so the config hash of a service without
    /// them is what it was before the key existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// Swarm settings (placement, endpoint mode, resource limits), used by the swarm
    /// backend only; the engine backend ignores them, as `docker compose` does. Left out
    /// of the serialized spec when absent (config hashes unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
}

/// The part of Compose's `deploy` the swarm backend honours.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// `dnsrr` (the default of the swarm backend: no IPVS needed) or `vip`.
    #[serde(default)]
    pub endpoint_mode: Option<String>,
    #[serde(default)]
    pub placement: Option<Placement>,
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Placement {
    /// Swarm constraints, e.g. `node.labels.bss.host == h1`.
    #[serde(default)]
    pub constraints: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default)]
    pub limits: Option<Limits>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// CPUs, e.g. "0.5" or 2.
    #[serde(default)]
    pub cpus: Option<EnvValue>,
    /// Bytes with an optional unit: "512M", "1g", "1048576".
    #[serde(default)]
    pub memory: Option<String>,
}

impl Limits {
    /// (nano CPUs, memory bytes).
    pub fn parsed(&self) -> Result<(Option<i64>, Option<i64>), String> {
        let cpus = match &self.cpus {
            None => None,
            Some(v) => {
                let c: f64 = v.to_string().trim().parse().map_err(|_| format!("deploy.resources.limits.cpus {v} is not a number"))?;
                if !(c > 0.0 && c <= 1024.0) {
                    return Err(format!("deploy.resources.limits.cpus {c} must be above 0"));
                }
                Some((c * 1e9) as i64)
            }
        };
        let memory = self.memory.as_deref().map(parse_bytes).transpose()?;
        Ok((cpus, memory))
    }
}

/// "512M", "1g", "64k", "1048576" (Compose's byte values) into bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').filter(|r| r.ends_with(['k', 'm', 'g'])).unwrap_or(&t);
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| format!("{s:?} is not a size like 512M"))?;
    if n <= 0.0 {
        return Err(format!("{s:?} must be above 0"));
    }
    Ok((n * mul as f64) as i64)
}

impl Deploy {
    fn validate(&self) -> Result<(), String> {
        if let Some(m) = &self.endpoint_mode {
            if m != "vip" && m != "dnsrr" {
                return Err(format!("deploy.endpoint_mode {m:?} must be vip or dnsrr"));
            }
        }
        for c in self.placement.iter().flat_map(|p| &p.constraints) {
            let ok = ["==", "!="].iter().any(|op| c.split_once(op).is_some_and(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty()));
            if !ok || c.contains('\n') {
                return Err(format!("deploy.placement constraint {c:?} must be `<attribute> == <value>` or `!=`"));
            }
        }
        if let Some(l) = self.resources.as_ref().and_then(|r| r.limits.as_ref()) {
            l.parsed()?;
        }
        Ok(())
    }
}

/// Capabilities a service may add: NET_ADMIN lets a container shape its own network
/// namespace (the fault drills' `tc netem`), nothing beyond it.
pub const ALLOWED_CAPS: &[&str] = &["NET_ADMIN"];

/// Compose allows numbers and booleans as environment values.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum EnvValue {
    Str(String),
    Num(serde_yaml::Number),
    Bool(bool),
}

impl std::fmt::Display for EnvValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EnvValue::Str(s) => f.write_str(s),
            EnvValue::Num(n) => write!(f, "{n}"),
            EnvValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Ulimit {
    Single(i64),
    Range { soft: i64, hard: i64 },
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DependsOnEntry {
    #[serde(default)]
    pub condition: Condition,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum DependsOn {
    List(Vec<String>),
    Map(BTreeMap<String, DependsOnEntry>),
}

impl Default for DependsOn {
    fn default() -> Self {
        DependsOn::List(vec![])
    }
}

impl DependsOn {
    pub fn entries(&self) -> Vec<(String, Condition)> {
        match self {
            DependsOn::List(l) => l.iter().map(|s| (s.clone(), Condition::ServiceStarted)).collect(),
            DependsOn::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.condition)).collect(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// May be left out with `disable: true`.
    #[serde(default)]
    pub test: Vec<String>,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub timeout: Option<String>,
    #[serde(default)]
    pub retries: Option<u32>,
    #[serde(default)]
    pub start_period: Option<String>,
    #[serde(default)]
    pub disable: Option<bool>,
}

/// A published port: always on a host IP (Compose default would be 0.0.0.0, which the
/// product refuses: nothing of the stack is exposed beyond loopback).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
}

pub fn parse_port(spec: &str) -> Result<PortBinding, ComposeError> {
    let (spec, protocol) = match spec.rsplit_once('/') {
        Some((s, p)) if p == "tcp" || p == "udp" => (s, p.to_string()),
        Some((_, p)) => return Err(ComposeError::Value(format!("port {spec:?}: unknown protocol {p:?}"))),
        None => (spec, "tcp".to_string()),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [ip, h, c] => (*ip, *h, *c),
        _ => return Err(ComposeError::Value(format!("port {spec:?}: must be HOST_IP:HOST_PORT:CONTAINER_PORT (bind to 127.0.0.1)"))),
    };
    let ip: std::net::IpAddr = ip.parse().map_err(|_| ComposeError::Value(format!("port {spec:?}: {ip:?} is not an IP address")))?;
    if !ip.is_loopback() {
        return Err(ComposeError::Value(format!("port {spec:?}: publishes on {ip}; only loopback addresses are allowed")));
    }
    let num = |s: &str| s.parse::<u16>().map_err(|_| ComposeError::Value(format!("port {spec:?}: {s:?} is not a port number")));
    Ok(PortBinding { host_ip: ip.to_string(), host_port: num(host)?, container_port: num(container)?, protocol })
}

/// Parses a Compose duration ("5s", "1m30s", "500ms") into nanoseconds.
pub fn parse_duration_ns(s: &str) -> Result<i64, ComposeError> {
    let d = humantime::parse_duration(s).map_err(|e| ComposeError::Value(format!("duration {s:?}: {e}")))?;
    i64::try_from(d.as_nanos()).map_err(|_| ComposeError::Value(format!("duration {s:?} too large")))
}

impl ComposeFile {
    /// Reads a base file and optional overrides (later files win).
    pub fn load(paths: &[PathBuf]) -> Result<(Self, PathBuf), ComposeError> {
        let mut merged: Option<Value> = None;
        for p in paths {
            let text = std::fs::read_to_string(p)
                .map_err(|e| ComposeError::Read { path: p.clone(), message: e.to_string() })?;
            let mut v: Value = serde_yaml::from_str(&text)
                .map_err(|e| ComposeError::Parse { path: p.display().to_string(), message: e.to_string() })?;
            // YAML merge keys (`<<: *anchor`) are resolved per file, before files merge.
            v.apply_merge()
                .map_err(|e| ComposeError::Parse { path: p.display().to_string(), message: e.to_string() })?;
            merged = Some(match merged {
                None => v,
                Some(base) => merge(base, v),
            });
        }
        let merged = merged.ok_or_else(|| ComposeError::Parse { path: "-".into(), message: "no compose file given".into() })?;
        let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" + ");
        let file = Self::from_value(merged, &shown).map_err(|e| locate(e, paths))?;
        // Bind mounts are relative to the first file's directory, as in Compose. Absolute, so
        // the config hash (which includes it) is the same whether the files were named
        // relative to the working directory or not: `bss-control up` from the repository
        // and a test naming the absolute path must not recreate each other's containers.
        let base_dir = paths[0].parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
        let base_dir = base_dir.canonicalize().unwrap_or(base_dir);
        Ok((file, base_dir))
    }

    pub fn from_str(text: &str, shown: &str) -> Result<Self, ComposeError> {
        let mut v: Value = serde_yaml::from_str(text)
            .map_err(|e| ComposeError::Parse { path: shown.into(), message: e.to_string() })?;
        v.apply_merge().map_err(|e| ComposeError::Parse { path: shown.into(), message: e.to_string() })?;
        Self::from_value(v, shown)
    }

    fn from_value(mut v: Value, shown: &str) -> Result<Self, ComposeError> {
        // Extension fields (`x-…`) are Compose's way to share snippets; drop them.
        if let Value::Mapping(m) = &mut v {
            m.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
        }
        let file: ComposeFile = serde_yaml::from_value(v)
            .map_err(|e| ComposeError::Parse { path: shown.into(), message: e.to_string() })?;
        file.validate()?;
        Ok(file)
    }

    fn validate(&self) -> Result<(), ComposeError> {
        let err = |s: &str, m: String| ComposeError::Service { service: s.into(), message: m };
        for (name, svc) in &self.services {
            if svc.image.trim().is_empty() {
                return Err(err(name, "image must not be empty".into()));
            }
            for p in &svc.ports {
                parse_port(p).map_err(|m| err(name, m.to_string()))?;
            }
            for (dep, _) in svc.depends_on.entries() {
                if !self.services.contains_key(&dep) {
                    return Err(err(name, format!("depends_on names unknown service {dep:?}")));
                }
            }
            for n in &svc.networks {
                if !self.networks.contains_key(n) {
                    return Err(err(name, format!("network {n:?} is not declared under top-level networks")));
                }
            }
            for vol in &svc.volumes {
                let source = vol.split(':').next().unwrap_or_default();
                let is_path = source.starts_with('.') || source.starts_with('/');
                if !is_path && !source.is_empty() && !self.volumes.contains_key(source) && vol.contains(':') {
                    return Err(err(name, format!("volume {source:?} is not declared under top-level volumes")));
                }
            }
            if let Some(r) = &svc.restart {
                if !["no", "always", "on-failure", "unless-stopped"].contains(&r.as_str()) && !r.starts_with("on-failure:") {
                    return Err(err(name, format!("restart {r:?} is not a Compose restart policy")));
                }
            }
            if let Some(h) = &svc.healthcheck {
                for d in [&h.interval, &h.timeout, &h.start_period].into_iter().flatten() {
                    parse_duration_ns(d).map_err(|m| err(name, format!("healthcheck: {m}")))?;
                }
                match h.test.first().map(String::as_str) {
                    _ if h.disable == Some(true) => {}
                    Some("CMD" | "CMD-SHELL" | "NONE") => {}
                    _ => return Err(err(name, "healthcheck.test must start with CMD, CMD-SHELL or NONE".into())),
                }
            }
            for c in &svc.cap_add {
                if !ALLOWED_CAPS.contains(&c.trim_start_matches("CAP_")) {
                    return Err(err(name, format!("cap_add {c:?} is not allowed (allowed: {})", ALLOWED_CAPS.join(", "))));
                }
            }
            for o in &svc.dns_opt {
                let ok = !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '-' | '_' | '.'));
                if !ok {
                    return Err(err(name, format!("dns_opt {o:?} is not a resolver option (like \"timeout:1\")")));
                }
            }
            if let Some(d) = &svc.deploy {
                d.validate().map_err(|m| err(name, m))?;
            }
            for (k, u) in &svc.ulimits {
                if k == "nofile" {
                    let hard = match u { Ulimit::Single(n) => *n, Ulimit::Range { hard, .. } => *hard };
                    if hard > 1_048_576 {
                        return Err(err(name, format!("ulimits.nofile {hard} is beyond what an engine grants")));
                    }
                }
            }
        }
        self.start_order()?;
        Ok(())
    }

    /// Services in waves: every service's dependencies are in an earlier wave. Within a
    /// wave, names are sorted so plans are stable.
    pub fn start_order(&self) -> Result<Vec<Vec<String>>, ComposeError> {
        let mut remaining: BTreeMap<&str, BTreeSet<String>> = self
            .services
            .iter()
            .map(|(n, s)| (n.as_str(), s.depends_on.entries().into_iter().map(|(d, _)| d).collect()))
            .collect();
        let mut waves = Vec::new();
        let mut done: BTreeSet<String> = BTreeSet::new();
        while !remaining.is_empty() {
            let ready: Vec<String> = remaining
                .iter()
                .filter(|(_, deps)| deps.iter().all(|d| done.contains(d)))
                .map(|(n, _)| n.to_string())
                .collect();
            if ready.is_empty() {
                return Err(ComposeError::Cycle(remaining.keys().cloned().collect::<Vec<_>>().join(", ")));
            }
            for n in &ready {
                remaining.remove(n.as_str());
                done.insert(n.clone());
            }
            waves.push(ready);
        }
        Ok(waves)
    }
}

/// Merged documents lose line numbers; for an unknown or invalid key, point at the first
/// line of the files that names it, so the error says file:line.
fn locate(e: ComposeError, paths: &[PathBuf]) -> ComposeError {
    let ComposeError::Parse { message, .. } = &e else { return e };
    let key = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("unknown field") || message.contains("missing field"))
        .map(str::to_string);
    let Some(key) = key else { return e };
    for p in paths {
        let Ok(text) = std::fs::read_to_string(p) else { continue };
        for (i, line) in text.lines().enumerate() {
            let t = line.trim_start().trim_start_matches("- ");
            if t.starts_with(&format!("{key}:")) || t.starts_with(&format!("{key} :")) {
                return ComposeError::Parse { path: format!("{}:{}", p.display(), i + 1), message: message.clone() };
            }
        }
    }
    e
}

/// Compose-style merge: mappings merge key by key, anything else is replaced.
fn merge(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (_, o) => o,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
x-common: &common
  restart: unless-stopped
services:
  db:
    <<: *common
    image: postgres:15
    ports: ["127.0.0.1:5432:5432"]
    environment: { POSTGRES_PASSWORD: dev, PORT: 5432, FLAG: true }
    healthcheck: { test: ["CMD-SHELL", "pg_isready"], interval: 5s, retries: 5 }
    volumes: ["pgdata:/var/lib/postgresql/data", "./pg/init.sh:/init.sh:ro"]
    networks: [bss]
  replica:
    image: postgres:15
    depends_on: { db: { condition: service_healthy } }
    networks: [bss]
  proxy:
    image: haproxy:2.6
    depends_on: [replica, db]
    networks: [bss]
volumes: { pgdata: }
networks: { bss: }
"#;

    #[test]
    fn start_order_is_by_dependency_waves() {
        let f = ComposeFile::from_str(BASE, "t").unwrap();
        assert_eq!(f.start_order().unwrap(), vec![vec!["db"], vec!["replica"], vec!["proxy"]]);
        assert_eq!(f.services["replica"].depends_on.entries(), vec![("db".into(), Condition::ServiceHealthy)]);
        assert_eq!(f.services["db"].restart.as_deref(), Some("unless-stopped"));
        assert_eq!(f.services["db"].environment["PORT"].to_string(), "5432");
    }

    #[test]
    fn cycle_is_refused() {
        let y = "services:\n  a: { image: x, depends_on: [b] }\n  b: { image: x, depends_on: [a] }\n";
        assert!(matches!(ComposeFile::from_str(y, "t"), Err(ComposeError::Cycle(_))));
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let y = "services:\n  a: { image: x, privileged: true }\n";
        let e = ComposeFile::from_str(y, "c.yml").unwrap_err().to_string();
        assert!(e.contains("privileged"), "{e}");
    }

    #[test]
    fn only_allowed_capabilities_are_added() {
        let f = ComposeFile::from_str("services:\n  a: { image: x, cap_add: [NET_ADMIN] }\n", "c").unwrap();
        assert_eq!(f.services["a"].cap_add, vec!["NET_ADMIN"]);
        for bad in ["SYS_ADMIN", "ALL", "CAP_SYS_PTRACE"] {
            let y = format!("services:\n  a: {{ image: x, cap_add: [{bad}] }}\n");
            let e = ComposeFile::from_str(&y, "c").unwrap_err().to_string();
            assert!(e.contains(bad) && e.contains("not allowed"), "{bad}: {e}");
        }
    }

    #[test]
    fn resolver_options_are_words_not_lines() {
        let f = ComposeFile::from_str("services:\n  a: { image: x, dns_opt: [\"timeout:1\", \"attempts:2\"] }\n", "c").unwrap();
        assert_eq!(f.services["a"].dns_opt, vec!["timeout:1", "attempts:2"]);
        // A newline would write a line of its own into resolv.conf.
        for bad in ["\"timeout:1\\nnameserver 1.2.3.4\"", "\"\"", "\"a b\""] {
            let y = format!("services:\n  a: {{ image: x, dns_opt: [{bad}] }}\n");
            let e = ComposeFile::from_str(&y, "c").unwrap_err().to_string();
            assert!(e.contains("dns_opt"), "{bad}: {e}");
        }
    }

    #[test]
    fn port_on_all_interfaces_is_refused() {
        for bad in ["5432:5432", "0.0.0.0:5432:5432", "5432"] {
            let y = format!("services:\n  a: {{ image: x, ports: [\"{bad}\"] }}\n");
            let e = ComposeFile::from_str(&y, "c").unwrap_err().to_string();
            assert!(e.contains("127.0.0.1") || e.contains("loopback"), "{bad}: {e}");
        }
        assert_eq!(parse_port("127.0.0.1:9094:9092").unwrap().container_port, 9092);
    }

    #[test]
    fn unknown_dependency_and_network_are_refused() {
        let e = ComposeFile::from_str("services:\n  a: { image: x, depends_on: [nope] }\n", "c").unwrap_err();
        assert!(e.to_string().contains("nope"));
        let e = ComposeFile::from_str("services:\n  a: { image: x, networks: [n] }\n", "c").unwrap_err();
        assert!(e.to_string().contains("network \"n\""));
    }

    #[test]
    fn bad_healthcheck_duration_is_refused() {
        let y = "services:\n  a: { image: x, healthcheck: { test: [CMD, \"true\"], interval: fivesec } }\n";
        assert!(ComposeFile::from_str(y, "c").unwrap_err().to_string().contains("fivesec"));
    }

    #[test]
    fn override_replaces_image_and_merges_environment() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("compose.yml");
        let over = dir.path().join("compose.offline.yml");
        std::fs::write(&base, BASE).unwrap();
        std::fs::write(&over, "services:\n  db:\n    image: bss-local/postgres:latest\n    environment: { EXTRA: 1 }\n    command: [run]\n").unwrap();
        let (f, dir_out) = ComposeFile::load(&[base, over]).unwrap();
        let db = &f.services["db"];
        assert_eq!(db.image, "bss-local/postgres:latest");
        assert_eq!(db.command.as_deref(), Some(&["run".to_string()][..]));
        assert!(db.environment.contains_key("POSTGRES_PASSWORD") && db.environment.contains_key("EXTRA"));
        assert_eq!(dir_out, dir.path());
    }

    #[test]
    fn base_dir_is_absolute_whichever_way_the_file_was_named() {
        // Tests run in server/; the compose file is the product's own.
        let (_, rel) = ComposeFile::load(&[PathBuf::from("../dev/compose.yml")]).unwrap();
        let (_, abs) = ComposeFile::load(&[std::env::current_dir().unwrap().join("../dev/compose.yml")]).unwrap();
        assert!(rel.is_absolute(), "{}", rel.display());
        assert_eq!(rel, abs, "the same files must give the same config hashes");
    }

    #[test]
    fn unknown_key_in_a_file_is_reported_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("compose.yml");
        std::fs::write(&base, "services:\n  a:\n    image: x\n    privileged: true\n").unwrap();
        let e = ComposeFile::load(&[base]).unwrap_err().to_string();
        assert!(e.contains("compose.yml:4") && e.contains("privileged"), "{e}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration_ns("5s").unwrap(), 5_000_000_000);
        assert_eq!(parse_duration_ns("1m30s").unwrap(), 90_000_000_000);
    }
}
