//! Services page: the stack from the compose files, each container's state and health,
//! operator actions, logs, and the live event feed.
use leptos::prelude::*;

use crate::error::AppError;

use crate::{
    api::{ServiceStatus, StackOverview, StackVerb},
    live::{clock, use_stack_feed},
};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/runtime/api.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait StackApi: Send + Sync {
    async fn stack_overview(&self, who: &crate::api::Principal) -> Result<crate::api::StackOverview, AppError>;
    /// Runs (or, for `up`/`down`, starts) an action.
    async fn stack_action(&self, who: &crate::api::Principal, verb: crate::api::StackVerb, service: Option<String>) -> Result<String, AppError>;
    async fn service_logs(&self, who: &crate::api::Principal, service: &str, tail: usize) -> Result<Vec<String>, AppError>;
    /// The last lines of every service, merged in time order.
    async fn merged_logs(&self, who: &crate::api::Principal, tail: usize) -> Result<Vec<crate::api::LogLine>, AppError>;
}

#[server]
pub async fn get_stack_overview() -> Result<StackOverview, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.stack_overview(&who).await
}

#[server]
pub async fn run_stack_action(verb: StackVerb, service: Option<String>) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.stack_action(&who, verb, service).await
}

#[server]
pub async fn get_service_logs(service: String) -> Result<Vec<String>, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.service_logs(&who, &service, 200).await
}

#[component]
pub fn Services() -> impl IntoView {
    let feed = use_stack_feed();
    let tick = feed.tick;
    let action = ServerAction::<RunStackAction>::new();
    // Refetched on every event of the feed, after every action, and every 10 s (the swarm
    // backend has no event feed: Swarm's tasks are polled).
    let poll = crate::live::poll_every(10);
    let overview = crate::live::resource(move || (tick.get(), action.version().get(), poll.get()), |_| get_stack_overview());
    let can = crate::live::use_is_operator();
    let logs_for = RwSignal::new(None::<String>);
    let logs = crate::live::resource(
        move || (logs_for.get(), tick.get()),
        |(svc, _)| async move {
            match svc {
                Some(s) => get_service_logs(s).await.map(Some),
                None => Ok(None),
            }
        },
    );

    view! {
        <h1>"Services"</h1>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading the stack…"</p> }>
            {move || overview.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(o) => view! { <StackCard o action can/> }.into_any(),
            })}
        </Transition>
        <p role="status" aria-label="Last action" class="action-result" data-testid="action-result">
            {move || action.value().get().map(|r| match r {
                Ok(m) => m,
                Err(e) => e.refusal(),
            })}
        </p>
        <Suspense fallback=|| ()>
            {move || overview.get().and_then(|r| r.ok()).map(|o| view! {
                <ServiceTable services=o.services.clone() action logs_for can/>
            })}
        </Suspense>
        <Show when=move || logs_for.get().is_some()>
            <section class="card" aria-labelledby="logs-h">
                <div class="card-head">
                    <h2 id="logs-h">"Logs: " {move || logs_for.get().unwrap_or_default()}</h2>
                    <button on:click=move |_| logs_for.set(None)>"Close"</button>
                </div>
                <Suspense fallback=|| view! { <p>"Loading logs…"</p> }>
                    {move || logs.get().map(|r| match r {
                        Ok(Some(lines)) => view! { <pre class="logs" role="log" aria-label="Container logs" tabindex="0" data-testid="logs">{lines.join("\n")}</pre> }.into_any(),
                        Ok(None) => ().into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    })}
                </Suspense>
            </section>
        </Show>
        <section class="card" aria-labelledby="feed-h">
            <h2 id="feed-h">"Live events " <span class="muted">{move || if feed.connected.get() { "(connected)" } else { "" }}</span></h2>
            // The log role sits on a focusable wrapper: on the <ul> itself it would take the
            // items out of their list, and a scrolling region must be reachable by keyboard.
            <div class="feed" role="log" aria-label="Stack events" tabindex="0" data-testid="event-feed"><ul>
                {move || feed.events.get().into_iter().map(|e| view! {
                    <li><time>{clock(e.at_ms)}</time> " " <b>{e.service}</b> " " <span class="kind">{e.kind}</span> " " {e.message}</li>
                }).collect_view()}
                <Suspense fallback=|| ()>
                    {move || overview.get().and_then(|r| r.ok()).map(|o| o.recent_events.into_iter().map(|e| view! {
                        <li class="past"><time>{clock(e.at_ms)}</time> " " <b>{e.service}</b> " " <span class="kind">{e.kind}</span> " " {e.message}</li>
                    }).collect_view())}
                </Suspense>
            </ul></div>
        </section>
    }
}

#[component]
fn StackCard(o: StackOverview, action: ServerAction<RunStackAction>, can: Signal<bool>) -> impl IntoView {
    let busy = !o.running.is_empty();
    let running = o
        .running
        .iter()
        .map(|r| format!("{} {} by {}", r.target, r.action, r.by))
        .collect::<Vec<_>>()
        .join("; ");
    let up = o.services.iter().filter(|s| s.level() == "ok").count();
    let total = o.services.len();
    view! {
        <section class="card" aria-labelledby="stack-h">
            <div class="card-head">
                <h2 id="stack-h">"Stack " <code>{o.project.clone()}</code></h2>
                <div class="buttons">
                    <button disabled=move || busy || !can.get() on:click=move |_| { action.dispatch(RunStackAction { verb: StackVerb::Up, service: None }); }>"Provision stack"</button>
                    <button class="danger" disabled=move || busy || !can.get() on:click=move |_| { action.dispatch(RunStackAction { verb: StackVerb::Down, service: None }); }>"Tear down"</button>
                </div>
            </div>
            <p class="muted">"From " {o.compose_files.join(" + ")} " — " <span data-testid="stack-summary">{up} " of " {total} " services up"</span></p>
            {o.error.clone().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {(!running.is_empty()).then(|| view! { <p class="running" role="status" aria-label="In progress" data-testid="running-action">"In progress: " {running}</p> })}
        </section>
    }
}

#[component]
fn ServiceTable(
    services: Vec<ServiceStatus>,
    action: ServerAction<RunStackAction>,
    logs_for: RwSignal<Option<String>>,
    can: Signal<bool>,
) -> impl IntoView {
    view! {
        <table class="services" aria-label="Services">
            <thead><tr>
                <th>"Service"</th><th>"State"</th><th>"Health"</th><th>"Uptime"</th><th>"Restarts"</th><th>"Ports"</th><th>"Depends on"</th><th>"Actions"</th>
            </tr></thead>
            <tbody>
                {services.into_iter().map(|s| {
                    let name = s.service.clone();
                    let (n1, n2, n3, n4) = (name.clone(), name.clone(), name.clone(), name.clone());
                    let exit = s.exit_code.filter(|_| s.state == "exited").map(|c| format!(" ({c})")).unwrap_or_default();
                    view! {
                        <tr data-service=name.clone() aria-label=name.clone()>
                            <td><b>{name.clone()}</b><br/><span class="muted">{s.image.clone()}</span><br/><span class="muted" data-testid="container-name" title="the container that runs it (docker compose's own name when the stack was adopted)">{s.container.clone()}</span></td>
                            <td><span class=format!("badge {}", s.level())>{s.state.clone()}{exit}</span></td>
                            <td>{s.health.clone()}</td>
                            <td>{s.uptime_secs.map(crate::api::human_secs).unwrap_or_default()}</td>
                            <td>{s.restart_count}</td>
                            <td class="ports">{s.ports.join(", ")}</td>
                            <td>{s.depends_on.join(", ")}</td>
                            <td class="buttons">
                                <button disabled=move || !can.get() on:click=move |_| { action.dispatch(RunStackAction { verb: StackVerb::Start, service: Some(n1.clone()) }); }>"Start"</button>
                                <button disabled=move || !can.get() on:click=move |_| { action.dispatch(RunStackAction { verb: StackVerb::Stop, service: Some(n2.clone()) }); }>"Stop"</button>
                                <button disabled=move || !can.get() on:click=move |_| { action.dispatch(RunStackAction { verb: StackVerb::Restart, service: Some(n3.clone()) }); }>"Restart"</button>
                                <button class="secondary" on:click=move |_| logs_for.set(Some(n4.clone()))>"Logs"</button>
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
    }
}
