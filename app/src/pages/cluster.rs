//! Cluster: the swarm the stack runs on (`runtime.backend = "swarm"`): its nodes (role,
//! availability, state, leader) and the stack's tasks grouped by the host they run on, with
//! what waits for a node named apart. An operator drains a node (its tasks move to the
//! others where placement allows; pinned ones wait) or makes it active again. With the
//! engine backend the page says there is no swarm and how to use one.
use leptos::prelude::*;

use crate::api::{ClusterView, NodeVerb, NodeView, ServiceView};
use crate::error::AppError;

/// What this page asks of the server (`server/src/runtime/swarm_api.rs`).
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait ClusterApi: Send + Sync {
    async fn cluster_view(&self, who: &crate::api::Principal) -> Result<ClusterView, AppError>;
    /// Drains a node or makes it active again (operator, one action at a time per node, audited).
    async fn node_action(&self, who: &crate::api::Principal, node: &str, verb: NodeVerb) -> Result<String, AppError>;
}

#[server]
pub async fn get_cluster_view() -> Result<ClusterView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.cluster_view(&who).await
}

#[server]
pub async fn run_node_action(node: String, verb: NodeVerb) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.node_action(&who, &node, verb).await
}

#[component]
pub fn Cluster() -> impl IntoView {
    let tick = crate::live::poll_every(3);
    let action = ServerAction::<RunNodeAction>::new();
    let can = crate::live::use_is_operator();
    let cluster = crate::live::resource(move || (tick.get(), action.version().get()), |_| get_cluster_view());
    view! {
        <h1>"Cluster"</h1>
        <p role="status" aria-label="Last action" class="action-result" data-testid="action-result">
            {move || action.value().get().map(crate::error::outcome)}
        </p>
        <Transition fallback=|| view! { <p aria-busy="true">"Asking the swarm…"</p> }>
            {move || cluster.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => view! { <ClusterBody v action can/> }.into_any(),
            })}
        </Transition>
    }
}

#[component]
fn ClusterBody(v: ClusterView, action: ServerAction<RunNodeAction>, can: Signal<bool>) -> impl IntoView {
    let running = v.running.iter().map(|r| format!("{} {} by {}", r.target, r.action, r.by)).collect::<Vec<_>>().join("; ");
    let head = view! {
        <section class="card" aria-labelledby="swarm-h">
            <h2 id="swarm-h">"Swarm " <code>{v.project.clone()}</code></h2>
            <dl class="facts">
                <dt>"Backend"</dt><dd data-testid="backend">{v.backend.clone()}</dd>
                <dt>"Through the engine at"</dt><dd><code>{v.endpoint.clone()}</code></dd>
            </dl>
            {v.error.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {(!running.is_empty()).then(|| view! { <p class="running" role="status" aria-label="In progress">"In progress: " {running}</p> })}
        </section>
    };
    let body = v.swarm.map(|s| {
        let busy: Vec<String> = v.running.iter().map(|r| r.target.clone()).collect();
        view! {
            <NodeTable nodes=s.nodes.clone() services=s.services.clone() busy action can/>
            <TasksByHost nodes=s.nodes services=s.services/>
        }
    });
    view! { {head} {body} }
}

/// The node a service's newest task is on, or `None` while it waits for one.
fn placed_on(s: &ServiceView) -> Option<&str> {
    s.tasks.first().map(|t| t.node.as_str()).filter(|n| *n != "unassigned")
}

#[component]
fn NodeTable(nodes: Vec<NodeView>, services: Vec<ServiceView>, busy: Vec<String>, action: ServerAction<RunNodeAction>, can: Signal<bool>) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="nodes-h">
            <h2 id="nodes-h">"Nodes"</h2>
            <table class="services" aria-labelledby="nodes-h">
                <thead><tr><th>"Host"</th><th>"Address"</th><th>"Role"</th><th>"State"</th><th>"Availability"</th><th>"Tasks"</th><th>"Labels"</th><th>"Actions"</th></tr></thead>
                <tbody>
                    {nodes.into_iter().map(|n| {
                        let tasks = services.iter().filter(|s| placed_on(s) == Some(n.hostname.as_str())).count();
                        let locked = busy.iter().any(|b| *b == format!("node:{}", n.hostname));
                        let (h1, h2) = (n.hostname.clone(), n.hostname.clone());
                        let drained = n.availability == "drain";
                        let active = n.availability == "active";
                        let state_level = if n.state == "ready" { "ok" } else { "bad" };
                        let role = match (n.leader, n.reachability.as_str()) {
                            (true, _) => format!("{} (leader)", n.role),
                            (false, "") => n.role.clone(),
                            (false, r) => format!("{} ({r})", n.role),
                        };
                        view! {
                            <tr aria-label=n.hostname.clone() data-node=n.hostname.clone()>
                                <td><b>{n.hostname.clone()}</b></td>
                                <td>{n.addr.clone()}</td>
                                <td>{role}</td>
                                <td><span class=format!("badge {state_level}") data-testid="node-state">{n.state.clone()}</span></td>
                                <td><span class=format!("badge {}", if active { "ok" } else { "warn" }) data-testid="node-availability">{n.availability.clone()}</span></td>
                                <td>{tasks}</td>
                                <td class="muted">{n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")}</td>
                                <td class="buttons">
                                    <button class="danger" disabled=move || drained || locked || !can.get()
                                        on:click=move |_| { action.dispatch(RunNodeAction { node: h1.clone(), verb: NodeVerb::Drain }); }>"Drain"</button>
                                    <button disabled=move || active || locked || !can.get()
                                        on:click=move |_| { action.dispatch(RunNodeAction { node: h2.clone(), verb: NodeVerb::Activate }); }>"Activate"</button>
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// The stack's services grouped by the host their task runs on; what no node can take yet
/// (a drained or lost host's pinned services) in a group of its own, with Swarm's reason.
#[component]
fn TasksByHost(nodes: Vec<NodeView>, services: Vec<ServiceView>) -> impl IntoView {
    let waiting: Vec<ServiceView> = services.iter().filter(|s| placed_on(s).is_none()).cloned().collect();
    let hosts = nodes.into_iter().map(|n| {
        let here: Vec<ServiceView> = services.iter().filter(|s| placed_on(s) == Some(n.hostname.as_str())).cloned().collect();
        let label = format!("Tasks on {}", n.hostname);
        view! {
            <section class="card host" aria-label=label data-host=n.hostname.clone()>
                <h3>{n.hostname.clone()} " " <span class="muted">{format!("{} · {}", n.state, n.availability)}</span></h3>
                <ul class="tasks">{here.into_iter().map(task_item).collect_view()}</ul>
            </section>
        }
    }).collect_view();
    view! {
        <h2>"Tasks by host"</h2>
        <div class="hosts">{hosts}</div>
        {(!waiting.is_empty()).then(|| view! {
            <section class="card" aria-label="Waiting for a node" data-testid="waiting">
                <h3>"Waiting for a node"</h3>
                <ul class="tasks">{waiting.into_iter().map(task_item).collect_view()}</ul>
            </section>
        })}
    }
}

fn task_item(s: ServiceView) -> impl IntoView {
    let t = s.tasks.first().cloned();
    let level = t.as_ref().map_or("bad", |t| t.level(s.oneshot));
    let state = t.as_ref().map_or_else(|| "no task".to_string(), |t| t.state.clone());
    let why = t.as_ref().and_then(|t| t.error.clone().or_else(|| (t.state != "running" && t.state != "complete").then(|| t.message.clone()))).filter(|m| !m.is_empty());
    view! {
        <li aria-label=s.service.clone() data-service=s.service.clone()>
            <span class=format!("badge {level}")>{state}</span> " " <b>{s.service.clone()}</b>
            {why.map(|w| view! { <span class="muted">" — " {w}</span> })}
        </li>
    }
}
