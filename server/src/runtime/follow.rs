//! Swarm mode: the control plane's HTTP readers (AlertManager, Prometheus, the notification
//! sink, Envoy's proxy, the exporters) follow the stack's tasks from host to host.
//!
//! Their URLs name the compose service (`http://alertmanager:9093`, the swarm backend's
//! defaults); the readers' HTTP client resolves such a name with [`TaskAddresses`]: the
//! address of the node the service's running task is on, where its host-mode published
//! port listens. [`SwarmStack::follow`](super::swarm::SwarmStack) refreshes the table every
//! few seconds from Swarm's task list, so after a task moves (a drained or lost host) the
//! next request goes to its new node. Any other name resolves through the system as usual;
//! with the engine backend the table stays empty and nothing changes.
use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, RwLock},
    time::Duration,
};

use app::api::{NodeView, ServiceView};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Compose service name → the addresses of the nodes its running tasks are on.
#[derive(Default)]
pub struct TaskAddresses {
    table: RwLock<HashMap<String, Vec<IpAddr>>>,
}

impl TaskAddresses {
    pub fn replace(&self, table: HashMap<String, Vec<IpAddr>>) {
        *self.table.write().unwrap() = table;
    }

    /// The nodes `service`'s running tasks are on: `None` for a name that is not one of the
    /// stack's services, empty while the service has no running task.
    pub fn lookup(&self, service: &str) -> Option<Vec<IpAddr>> {
        self.table.read().unwrap().get(service).cloned()
    }
}

impl Resolve for TaskAddresses {
    fn resolve(&self, name: Name) -> Resolving {
        let known = self.lookup(name.as_str());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = match known {
                Some(ips) if ips.is_empty() => return Err(format!("{} has no running task on the swarm", name.as_str()).into()),
                Some(ips) => ips.into_iter().map(|ip| SocketAddr::new(ip, 0)).collect(),
                None => tokio::net::lookup_host((name.as_str(), 0)).await?.collect(),
            };
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Where each service's running tasks are: the address Swarm reports for each of their
/// nodes. A task that is not running (starting, waiting for a node, exited) gives none, so
/// a reader gets "cannot resolve" rather than a stale host.
pub fn addresses(services: &[ServiceView], nodes: &[NodeView]) -> HashMap<String, Vec<IpAddr>> {
    let by_host: HashMap<&str, IpAddr> = nodes.iter().filter_map(|n| Some((n.hostname.as_str(), n.addr.parse().ok()?))).collect();
    services
        .iter()
        .map(|s| {
            let mut ips: Vec<IpAddr> =
                s.tasks.iter().filter(|t| t.state == "running" && t.desired == "running").filter_map(|t| by_host.get(t.node.as_str()).copied()).collect();
            ips.sort();
            ips.dedup();
            (s.service.clone(), ips)
        })
        .collect()
}

/// How often the table is refreshed from Swarm's task list (the Cluster page's poll).
const REFRESH: Duration = Duration::from_secs(3);

/// Keeps `tasks` current from the swarm until `cancel`; a failed refresh keeps the last
/// table (the manager may be busy electing a leader after a host loss).
pub async fn follow(swarm: Arc<super::swarm::SwarmStack>, tasks: Arc<TaskAddresses>, cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match swarm.placement().await {
            Ok((services, nodes)) => tasks.replace(addresses(&services, &nodes)),
            Err(e) => tracing::warn!(error = %e, "swarm task list unavailable; the readers keep the last known hosts"),
        }
    }
}

/// The readers' HTTP client: bounded in time, no proxy, stack names through `tasks`.
pub fn http_client(tasks: Option<Arc<TaskAddresses>>) -> reqwest::Client {
    let b = reqwest::Client::builder().timeout(Duration::from_secs(5)).connect_timeout(Duration::from_secs(2)).no_proxy();
    match tasks {
        Some(t) => b.dns_resolver(t),
        None => b,
    }
    .build()
    .expect("reqwest client")
}

#[cfg(test)]
mod tests {
    use super::*;
    use app::api::TaskView;

    fn task(node: &str, state: &str, desired: &str) -> TaskView {
        TaskView { node: node.into(), state: state.into(), desired: desired.into(), current: true, ..Default::default() }
    }

    fn node(host: &str, addr: &str) -> NodeView {
        NodeView { hostname: host.into(), addr: addr.into(), ..Default::default() }
    }

    #[test]
    fn a_service_resolves_to_the_node_of_its_running_task_only() {
        let nodes = [node("h1", "198.18.0.1"), node("h2", "198.18.0.2"), node("h3", "not an address")];
        let services = [
            // Moved: the old task on h1 is shut down, the new one runs on h2.
            ServiceView { service: "alertmanager".into(), tasks: vec![task("h2", "running", "running"), task("h1", "shutdown", "shutdown")], ..Default::default() },
            // Waiting for a node: nowhere to send a request.
            ServiceView { service: "kafka-3".into(), tasks: vec![task("unassigned", "pending", "running")], ..Default::default() },
            ServiceView { service: "prometheus".into(), tasks: vec![task("h3", "running", "running")], ..Default::default() },
        ];
        let table = addresses(&services, &nodes);
        assert_eq!(table["alertmanager"], vec!["198.18.0.2".parse::<IpAddr>().unwrap()]);
        assert!(table["kafka-3"].is_empty());
        assert!(table["prometheus"].is_empty(), "a node without a parseable address gives none");
        let t = TaskAddresses::default();
        t.replace(table);
        assert_eq!(t.lookup("alertmanager").unwrap().len(), 1);
        assert_eq!(t.lookup("kafka-3"), Some(vec![]), "a stack service with no running task");
        assert_eq!(t.lookup("grafana"), None, "not a stack service");
    }

    #[tokio::test]
    async fn the_client_sends_a_service_name_to_its_task_and_other_names_through_the_system() {
        // A real listener on loopback stands for the node the task runs on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok").await;
            }
        });
        let tasks = Arc::new(TaskAddresses::default());
        let http = http_client(Some(tasks.clone()));
        let url = format!("http://alertmanager:{port}/-/ready");
        assert!(http.get(&url).send().await.is_err(), "unknown before the table names it");
        tasks.replace(HashMap::from([("alertmanager".to_string(), vec![])]));
        let e = http.get(&url).send().await.unwrap_err();
        assert!(format!("{e:?}").contains("alertmanager has no running task on the swarm"), "{e:?}");
        tasks.replace(HashMap::from([("alertmanager".to_string(), vec!["127.0.0.1".parse().unwrap()])]));
        assert_eq!(http.get(&url).send().await.unwrap().text().await.unwrap(), "ok");
        assert_eq!(http.get(format!("http://localhost:{port}/")).send().await.unwrap().status(), 200, "other names resolve as usual");
    }
}
