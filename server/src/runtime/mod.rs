//! `runtime` owns the one connection to the Docker engine (bollard). Nothing else in the
//! product talks to Docker; later stages (compose model, reconcile loop, events, logs) live
//! here too.
pub mod api;
pub mod compose;
pub mod follow;
pub mod spec;
pub mod supervisor;
pub mod swarm;
pub mod swarm_api;

use std::time::{Duration, SystemTime};

use app::api::EngineStatus;
use bollard::{Docker, API_DEFAULT_VERSION};

/// How long one engine call may take before the UI is told it does not answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one container operation (create, start, stop, remove) may take: a loaded
/// laptop starting three JVMs took 8 s to start a container, so the read timeout above
/// would fail a healthy `up`.
const ACTION_TIMEOUT: Duration = Duration::from_secs(120);
pub const DEFAULT_SOCKET: &str = "unix:///var/run/docker.sock";

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot use Docker endpoint {endpoint}: {source}")]
    Connect { endpoint: String, source: bollard::errors::Error },
    #[error("Docker engine at {endpoint} did not answer within {secs} s")]
    Timeout { endpoint: String, secs: u64 },
    #[error("Docker engine at {endpoint}: {source}")]
    Api { endpoint: String, source: bollard::errors::Error },
    /// The endpoint could not be used at start (kept, worded for people, by [`Runtime`]).
    #[error("Docker endpoint {endpoint}: {reason}")]
    Unusable { endpoint: String, reason: String },
}

#[derive(Clone)]
pub struct Runtime {
    endpoint: String,
    docker: Result<Docker, String>,
}

impl Runtime {
    /// `host`: `unix://…`, `tcp://…`/`http://…`, or `None` for the default socket.
    /// Never fails: an unusable endpoint is reported by every call instead, so the UI can
    /// say so rather than the server refusing to start.
    pub fn new(host: Option<&str>) -> Self {
        let endpoint = host.unwrap_or(DEFAULT_SOCKET).to_string();
        let docker = connect(&endpoint).map_err(|e| friendly(&e));
        Self { endpoint, docker }
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A clone of the engine handle for the modules that drive containers, with the longer
    /// timeout of container operations.
    pub fn docker_handle(&self) -> Result<Docker, RuntimeError> {
        self.docker
            .clone()
            .map(|d| d.with_timeout(ACTION_TIMEOUT))
            .map_err(|reason| RuntimeError::Unusable { endpoint: self.endpoint.clone(), reason })
    }

    fn docker(&self) -> Result<&Docker, String> {
        self.docker.as_ref().map_err(Clone::clone)
    }

    async fn call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T, RuntimeError> {
        match tokio::time::timeout(CALL_TIMEOUT, fut).await {
            Err(_) => Err(RuntimeError::Timeout { endpoint: self.endpoint.clone(), secs: CALL_TIMEOUT.as_secs() }),
            Ok(r) => r.map_err(|source| RuntimeError::Api { endpoint: self.endpoint.clone(), source }),
        }
    }

    /// A snapshot of the engine: version, API version, container and image counts.
    #[tracing::instrument(skip(self), fields(endpoint = %self.endpoint))]
    pub async fn engine_status(&self) -> EngineStatus {
        let mut status = EngineStatus {
            endpoint: self.endpoint.clone(),
            error: None,
            version: None,
            api_version: None,
            os: None,
            kernel: None,
            containers_running: 0,
            containers_total: 0,
            images: 0,
            fetched_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        };
        let docker = match self.docker() {
            Ok(d) => d,
            Err(e) => {
                status.error = Some(e);
                return status;
            }
        };
        let (version, info) = tokio::join!(self.call(docker.version()), self.call(docker.info()));
        match (version, info) {
            (Ok(v), Ok(i)) => {
                status.version = v.version;
                status.api_version = v.api_version;
                status.os = v.os;
                status.kernel = v.kernel_version;
                status.containers_running = i.containers_running.unwrap_or(0).max(0) as u64;
                status.containers_total = i.containers.unwrap_or(0).max(0) as u64;
                status.images = i.images.unwrap_or(0).max(0) as u64;
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "docker engine unreachable");
                status.error = Some(friendly(&e));
            }
        }
        status
    }
}

impl Runtime {
    /// The address containers reach this host at: the gateway of the engine's default
    /// `bridge` network, which `host.docker.internal:host-gateway` resolves to (dockerd's
    /// default `host-gateway-ip`). `None` when the engine does not answer or has no bridge.
    pub async fn host_gateway(&self) -> Option<std::net::IpAddr> {
        let docker = self.docker().ok()?;
        let net = self.call(docker.inspect_network("bridge", None::<bollard::query_parameters::InspectNetworkOptions>)).await.ok()?;
        let configs = net.ipam?.config?;
        configs
            .iter()
            .filter_map(|c| c.gateway.as_deref())
            .find_map(|g| g.parse().ok())
            .or_else(|| configs.iter().filter_map(|c| c.subnet.as_deref()).find_map(first_host))
    }
}

/// Log options for the last `tail` lines, stdout and stderr, with the engine's timestamps.
pub(crate) fn tail_options(tail: usize) -> bollard::query_parameters::LogsOptions {
    bollard::query_parameters::LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&tail.to_string()).timestamps(true).build()
}

/// A container's or a swarm service's log stream, read to its end, as lines.
pub(crate) async fn read_lines(
    s: impl futures_util::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>,
) -> Result<Vec<String>, bollard::errors::Error> {
    use futures_util::StreamExt;
    let mut s = std::pin::pin!(s);
    let mut lines = Vec::new();
    while let Some(chunk) = s.next().await {
        lines.extend(String::from_utf8_lossy(&chunk?.into_bytes()).lines().map(str::to_string));
    }
    Ok(lines)
}

/// Every service's lines in one list, in time order.
pub(crate) fn merge_logs(per_service: Vec<(String, Vec<String>)>) -> Vec<app::api::LogLine> {
    let mut all: Vec<app::api::LogLine> =
        per_service.iter().flat_map(|(service, lines)| lines.iter().map(|l| app::api::LogLine::parse(service, l))).collect();
    // RFC 3339 timestamps with the same precision sort as text.
    all.sort_by(|a, b| a.ts.cmp(&b.ts));
    all
}

/// The first address of an IPv4 subnet ("172.17.0.0/16" → 172.17.0.1): where dockerd puts
/// the default bridge's gateway. A freshly started engine (Debian's 20.10, its docker0 made
/// by itself) reports the bridge's subnet without a `Gateway`; the container-facing
/// listener waited for one forever and Prometheus never reached the control plane (a
/// fresh machine's CI run).
fn first_host(subnet: &str) -> Option<std::net::IpAddr> {
    let (net, len) = subnet.split_once('/')?;
    let (net, len): (std::net::Ipv4Addr, u32) = (net.parse().ok()?, len.parse().ok()?);
    if len >= 31 {
        return None;
    }
    Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(u32::from(net) + 1)))
}

fn connect(endpoint: &str) -> Result<Docker, RuntimeError> {
    let r = if let Some(path) = endpoint.strip_prefix("unix://") {
        Docker::connect_with_unix(path, CALL_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(&endpoint.replacen("tcp://", "http://", 1), CALL_TIMEOUT.as_secs(), API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_local_defaults()
    };
    r.map_err(|source| RuntimeError::Connect { endpoint: endpoint.into(), source })
}

/// The engine error as a person should read it (a missing socket is the common case).
fn friendly(e: &RuntimeError) -> String {
    let text = e.to_string();
    if text.contains("No such file or directory") || text.contains("os error 2") || text.contains("Socket not found") {
        "the socket does not exist (is dockerd running?)".into()
    } else if text.contains("Connection refused") || text.contains("os error 111") {
        "connection refused (is dockerd running?)".into()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bridge_gateway_is_its_subnets_first_address() {
        assert_eq!(first_host("172.17.0.0/16"), Some("172.17.0.1".parse().unwrap()));
        assert_eq!(first_host("10.9.8.0/24"), Some("10.9.8.1".parse().unwrap()));
        for bad in ["fd00::/64", "172.17.0.0", "172.17.0.0/32", "x/16"] {
            assert_eq!(first_host(bad), None, "{bad}");
        }
    }

    #[tokio::test]
    async fn missing_socket_is_reported_not_fatal() {
        let rt = Runtime::new(Some("unix:///nonexistent/bss-test/docker.sock"));
        let s = rt.engine_status().await;
        assert!(!s.reachable());
        assert_eq!(s.endpoint, "unix:///nonexistent/bss-test/docker.sock");
        let e = s.error.unwrap();
        assert!(e.contains("dockerd"), "error should tell what to do: {e}");
    }
}
