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
/// The live feed's events come from the same look: what changed since the one before.
pub async fn follow(swarm: Arc<super::swarm::SwarmStack>, tasks: Arc<TaskAddresses>, cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<Look> = None;
    let mut homes = Homes::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        match swarm.placement().await {
            Ok(look) => {
                tasks.replace(addresses(&look.0, &look.1));
                match &last {
                    Some(before) => {
                        for (target, kind, message) in changes(before, &look, &mut homes) {
                            swarm.emit(&target, kind, message);
                        }
                    }
                    None => homes = homes_of(&look),
                }
                last = Some(look);
            }
            Err(e) => tracing::warn!(error = %e, "swarm task list unavailable; the readers keep the last known hosts"),
        }
    }
}

/// One look at the swarm: the stack's services with their tasks, and the nodes.
pub type Look = (Vec<ServiceView>, Vec<NodeView>);

/// Service → the node its task last ran on: a move spans several looks (the old task gone,
/// the new one starting, then running), and the feed names both ends once it runs.
pub type Homes = HashMap<String, String>;

/// Where each service's current task runs, in one look.
pub fn homes_of(look: &Look) -> Homes {
    look.0.iter().filter_map(|s| s.current_task().filter(|t| t.state == "running").map(|t| (s.service.clone(), t.node.clone()))).collect()
}

/// What changed between two looks, as events of the live feed: (target, kind, message).
/// Swarm has no event for a task, and a manager's engine reports only its own containers,
/// so the feed compares task and node lists: a node's state or availability, a service's
/// current task on another node or in another state (with Swarm's reason), a task running
/// on another node than the service's last one ("moved from"), new failures.
pub fn changes(before: &Look, after: &Look, homes: &mut Homes) -> Vec<(String, &'static str, String)> {
    let mut out = vec![];
    for n in &after.1 {
        let target = format!("node {}", n.hostname);
        match before.1.iter().find(|p| p.hostname == n.hostname) {
            None => out.push((target, "node", format!("joined the swarm: {}, {}", n.state, n.availability))),
            Some(p) => {
                if p.state != n.state {
                    out.push((target.clone(), "node", format!("{} → {}", p.state, n.state)));
                }
                if p.availability != n.availability {
                    out.push((target, "node", format!("availability {} → {}", p.availability, n.availability)));
                }
            }
        }
    }
    for p in before.1.iter().filter(|p| !after.1.iter().any(|n| n.hostname == p.hostname)) {
        out.push((format!("node {}", p.hostname), "node", "left the swarm".into()));
    }
    let current = |s: &ServiceView| {
        s.current_task().map(|t| {
            let why = t.error.clone().filter(|e| !e.is_empty()).or_else(|| Some(t.message.clone()).filter(|m| !m.is_empty() && t.state != "running"));
            (t.node.clone(), t.state.clone(), why)
        })
    };
    for s in &after.0 {
        let Some(prev) = before.0.iter().find(|p| p.service == s.service) else {
            out.push((s.service.clone(), "task", "service created".into()));
            continue;
        };
        if s.failed > prev.failed {
            out.push((s.service.clone(), "failed", format!("{} more failed task(s) in Swarm's history (restarted by Swarm)", s.failed - prev.failed)));
        }
        let why = |w: &Option<String>| w.as_deref().map(|w| format!(": {w}")).unwrap_or_default();
        let now = current(s);
        if let Some((node, state, _)) = &now {
            if state == "running" {
                if let Some(home) = homes.insert(s.service.clone(), node.clone()).filter(|h| h != node) {
                    out.push((s.service.clone(), "task", format!("running on {node} (moved from {home})")));
                    continue;
                }
            }
        }
        match (current(prev), now) {
            (a, b) if a == b => {}
            (Some((an, ast, _)), Some((bn, bst, w))) if an != bn => out.push((s.service.clone(), "task", format!("{bst} on {bn} (was {ast} on {an}){}", why(&w)))),
            (_, Some((bn, bst, w))) => out.push((s.service.clone(), "task", format!("{bst} on {bn}{}", why(&w)))),
            (Some((an, _, _)), None) => out.push((
                s.service.clone(),
                "task",
                if s.replicas == Some(0) { "scaled to 0".into() } else { format!("no task: the one on {an} ended, Swarm has not placed the next yet") },
            )),
            (None, None) => {}
        }
    }
    for p in before.0.iter().filter(|p| !after.0.iter().any(|s| s.service == p.service)) {
        out.push((p.service.clone(), "task", "service removed".into()));
    }
    out
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

    #[test]
    fn the_feed_says_what_moved_between_two_looks() {
        let task = |node: &str, state: &str, message: &str| TaskView { current: true, node: node.into(), state: state.into(), desired: "running".into(), message: message.into(), ..Default::default() };
        let svc = |name: &str, t: Option<TaskView>, failed: i64| ServiceView { service: name.into(), tasks: t.into_iter().collect(), replicas: Some(1), failed, ..Default::default() };
        let node = |h: &str, state: &str, avail: &str| NodeView { hostname: h.into(), state: state.into(), availability: avail.into(), ..Default::default() };
        let before: Look = (
            vec![svc("kafka-3", Some(task("h3", "running", "started")), 0), svc("alertmanager", Some(task("h3", "running", "started")), 0), svc("bss-sink", Some(task("h1", "running", "")), 0)],
            vec![node("h1", "ready", "active"), node("h3", "ready", "active")],
        );
        let mut homes = homes_of(&before);
        assert_eq!(homes.get("kafka-3").map(String::as_str), Some("h3"));
        assert!(changes(&before, &before, &mut homes).is_empty(), "nothing changed, nothing said");
        let after: Look = (
            vec![
                svc("kafka-3", Some(task("unassigned", "pending", "no suitable node (scheduling constraints not satisfied on 2 nodes)")), 0),
                svc("alertmanager", Some(task("h1", "running", "started")), 0),
                svc("bss-sink", Some(task("h1", "running", "")), 2),
            ],
            vec![node("h1", "ready", "active"), node("h3", "down", "drain")],
        );
        let said = |b: &Look, a: &Look, homes: &mut Homes| changes(b, a, homes).into_iter().map(|(t, k, m)| format!("{t} [{k}] {m}")).collect::<Vec<_>>();
        let said_once = said(&before, &after, &mut homes.clone());
        assert_eq!(
            said_once,
            vec![
                "node h3 [node] ready → down",
                "node h3 [node] availability active → drain",
                "kafka-3 [task] pending on unassigned (was running on h3): no suitable node (scheduling constraints not satisfied on 2 nodes)",
                "alertmanager [task] running on h1 (moved from h3)",
                "bss-sink [failed] 2 more failed task(s) in Swarm's history (restarted by Swarm)",
            ]
        );
        // The same move seen over three looks: gone, starting elsewhere, running there.
        let am = |t: Option<TaskView>| (vec![svc("alertmanager", t, 0)], vec![node("h1", "ready", "active")]);
        let looks = [am(Some(task("h3", "running", "started"))), am(None), am(Some(task("h1", "starting", "starting"))), am(Some(task("h1", "running", "started")))];
        let mut homes = homes_of(&looks[0]);
        let feed: Vec<Vec<String>> = looks.windows(2).map(|w| said(&w[0], &w[1], &mut homes)).collect();
        assert_eq!(
            feed,
            vec![
                vec!["alertmanager [task] no task: the one on h3 ended, Swarm has not placed the next yet".to_string()],
                vec!["alertmanager [task] starting on h1: starting".to_string()],
                vec!["alertmanager [task] running on h1 (moved from h3)".to_string()],
            ]
        );
    }

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
