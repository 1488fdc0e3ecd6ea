//! Alerts page: AlertManager's routing tree drawn as a tree (receivers coloured by kind), a
//! route tester ("which receivers get this alert?"), a test alert and where the local sink
//! saw it delivered, active alerts as AlertManager groups them, silences (create / expire),
//! and Prometheus targets and alerting rules.
use leptos::prelude::*;

use crate::error::AppError;

use crate::live::poll_every;
use crate::api::{AlertsView, RouteNode, RouteTestResult};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/alerts/api.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait AlertsApi: Send + Sync {
    /// AlertManager's route tree, alerts, silences, deliveries; Prometheus targets and rules.
    async fn alerts_view(&self, who: &crate::api::Principal) -> Result<crate::api::AlertsView, AppError>;
    /// Which receivers get an alert with these labels (`a=b, c=d`), per the running config.
    async fn test_route(&self, who: &crate::api::Principal, labels: &str) -> Result<crate::api::RouteTestResult, AppError>;
    /// Posts a test alert with these labels (operator). Returns its name.
    async fn fire_test_alert(&self, who: &crate::api::Principal, labels: &str) -> Result<String, AppError>;
    /// Creates a silence (operator): matchers `a="b", c=~"d"`, a duration like `1h`.
    async fn create_silence(&self, who: &crate::api::Principal, matchers: &str, duration: &str, comment: &str) -> Result<String, AppError>;
    async fn expire_silence(&self, who: &crate::api::Principal, id: &str) -> Result<String, AppError>;
}

#[server]
pub async fn get_alerts_view() -> Result<AlertsView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.alerts_view(&who).await
}

#[server]
pub async fn test_route(labels: String) -> Result<RouteTestResult, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.test_route(&who, &labels).await
}

#[server]
pub async fn fire_test_alert(labels: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.fire_test_alert(&who, &labels).await
}

#[server]
pub async fn create_silence(matchers: String, duration: String, comment: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.create_silence(&who, &matchers, &duration, &comment).await
}

#[server]
pub async fn expire_silence(id: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.expire_silence(&who, &id).await
}

fn route_tree(node: RouteNode, hits: Signal<Vec<String>>) -> AnyView {
    let path = node.path.clone();
    let p2 = path.clone();
    let kinds = node.kinds.iter().map(|k| view! { <span class=format!("kind kind-{k}")>{k.clone()}</span> }).collect_view();
    let children = node.children.into_iter().map(|c| view! { <li>{route_tree(c, hits)}</li> }).collect_view();
    view! {
        <div class="route" class:hit=move || hits.get().contains(&p2) data-path=path.clone()>
            <b class="receiver">{node.receiver.clone()}</b> " " {kinds}
            " " <code>{if node.matchers.is_empty() { "(matches everything)".to_string() } else { node.matchers.join(", ") }}</code>
            {node.cont.then(|| view! { " " <span class="badge">"continue"</span> })}
            <div class="muted small">"group by [" {node.group_by.join(", ")} "] · wait " {node.group_wait} " · interval " {node.group_interval} " · repeat " {node.repeat_interval}</div>
        </div>
        <ul class="route-children">{children}</ul>
    }
    .into_any()
}

#[component]
pub fn Alerts() -> impl IntoView {
    let tick = poll_every(3);
    let data = crate::live::resource(move || tick.get(), |_| get_alerts_view());
    let can = crate::live::use_is_operator();
    let tester = ServerAction::<TestRoute>::new();
    let fire = ServerAction::<FireTestAlert>::new();
    let silence = ServerAction::<CreateSilence>::new();
    let expire = ServerAction::<ExpireSilence>::new();
    let labels = RwSignal::new("team=database, severity=critical".to_string());
    let hits = Signal::derive(move || tester.value().get().and_then(|r| r.ok()).map(|r| r.paths).unwrap_or_default());
    let result = crate::live::latest_outcome(&[fire.value(), silence.value(), expire.value()]);

    view! {
        <h1>"Alerts"</h1>
        <p role="status" class="action-result" data-testid="alerts-result">{move || result.get()}</p>
        <section class="card">
            <h2>"Route tester"</h2>
            <form class="inline" on:submit=move |ev| { ev.prevent_default(); tester.dispatch(TestRoute { labels: labels.get() }); }>
                <label>"Labels " <input type="text" size="40" prop:value=labels on:input=move |e| labels.set(event_target_value(&e)) aria-label="Alert labels"/></label>
                <button type="submit">"Test route"</button>
                <button type="button" disabled=move || !can.get() || fire.pending().get()
                    on:click=move |_| { fire.dispatch(FireTestAlert { labels: labels.get() }); }>"Fire test alert"</button>
            </form>
            <p data-testid="route-result">{move || tester.value().get().map(|r| match r {
                Err(e) => e.refusal(),
                Ok(r) => format!("→ {}", r.receivers.iter().zip(&r.paths).map(|(rx, p)| format!("{rx} (via {p})")).collect::<Vec<_>>().join(", then ")),
            })}</p>
        </section>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading AlertManager and Prometheus…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => {
                    let routes = v.tree.as_ref().map(|t| t.children.len()).unwrap_or(0);
                    let up = v.targets.iter().filter(|t| t.health == "up").count();
                    view! {
                        {(!v.errors.is_empty()).then(|| view! { <ul class="error">{v.errors.iter().map(|e| view! { <li>{e.clone()}</li> }).collect_view()}</ul> })}
                        <section class="card">
                            <h2>"Routing tree"</h2>
                            <p class="muted"><span data-testid="route-count">{routes}</span> " routes under the root · "
                               <span data-testid="receiver-count">{v.receivers.len()}</span> " receivers: "
                               {v.receivers.iter().map(|(n, k)| format!("{n} ({})", k.join("+"))).collect::<Vec<_>>().join(", ")}</p>
                            <div class="route-tree" data-testid="route-tree">{v.tree.clone().map(|t| route_tree(t, hits))}</div>
                        </section>
                        <section class="card">
                            <h2>"Delivered notifications (local sink)"</h2>
                            <table class="services" data-testid="deliveries" aria-label="Deliveries">
                                <thead><tr><th>"At"</th><th>"Kind"</th><th>"Target"</th><th>"Receiver"</th><th>"Alerts"</th></tr></thead>
                                <tbody>{v.deliveries.iter().map(|d| view! {
                                    <tr data-receiver=d.receiver.clone()><td>{crate::live::clock(d.at_ms)}</td><td>{d.kind.clone()}</td><td><code>{d.target.clone()}</code></td>
                                        <td>{d.receiver.clone()}</td><td>{d.alerts.join(", ")}</td></tr>
                                }).collect_view()}</tbody>
                            </table>
                        </section>
                        <section class="card">
                            <h2>"Active alerts"</h2>
                            {v.groups.iter().map(|g| view! {
                                <div class="alert-group">
                                    <b>{g.receiver.clone()}</b> " " <code>{g.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")}</code>
                                    <ul>{g.alerts.iter().map(|a| view! {
                                        <li data-testid="alert"><span class=if a.state == "active" { "badge bad" } else { "badge" }>{a.state.clone()}</span> " "
                                            {a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")} " — " {a.summary.clone()}</li>
                                    }).collect_view()}</ul>
                                </div>
                            }).collect_view()}
                            {v.groups.is_empty().then(|| view! { <p class="muted">"No active alerts."</p> })}
                        </section>
                        <section class="card">
                            <h2>"Silences"</h2>
                            <SilenceForm can=can action=silence/>
                            <table class="services" data-testid="silences" aria-label="Silences">
                                <thead><tr><th>"State"</th><th>"Matchers"</th><th>"Until"</th><th>"By"</th><th>"Comment"</th><th></th></tr></thead>
                                <tbody>{v.silences.iter().map(|s| {
                                    let id = s.id.clone();
                                    let active = s.state != "expired";
                                    view! {
                                        <tr><td>{s.state.clone()}</td><td><code>{s.matchers.join(", ")}</code></td><td>{s.ends_at.clone()}</td><td>{s.created_by.clone()}</td><td>{s.comment.clone()}</td>
                                            <td>{active.then(|| view! { <button disabled=move || !can.get() on:click=move |_| { expire.dispatch(ExpireSilence { id: id.clone() }); }>"Expire"</button> })}</td></tr>
                                    }
                                }).collect_view()}</tbody>
                            </table>
                        </section>
                        <section class="card">
                            <h2>"Prometheus targets"</h2>
                            <p class="muted"><b data-testid="targets-up">{up}</b> " of " {v.targets.len()} " targets up · the seed claims 22 targets: this stack scrapes what dev/prometheus/prometheus.yml lists."</p>
                            <table class="services" data-testid="targets" aria-label="Scrape targets">
                                <thead><tr><th>"Job"</th><th>"Instance"</th><th>"Health"</th><th>"Last scrape"</th><th>"Error"</th></tr></thead>
                                <tbody>{v.targets.iter().map(|t| view! {
                                    <tr><td>{t.job.clone()}</td><td>{t.instance.clone()}</td><td><span class=if t.health == "up" { "badge ok" } else { "badge bad" }>{t.health.clone()}</span></td><td>{t.last_scrape.clone()}</td><td>{t.error.clone()}</td></tr>
                                }).collect_view()}</tbody>
                            </table>
                            <h3>"Alerting rules"</h3>
                            <ul>{v.rules.iter().map(|r| view! { <li><b>{r.name.clone()}</b> " " <span class=if r.state == "firing" { "badge bad" } else { "badge ok" }>{r.state.clone()}</span> " " {r.severity.clone()}</li> }).collect_view()}</ul>
                        </section>
                    }.into_any()
                }
            })}
        </Transition>
    }
}

#[component]
fn SilenceForm(can: Signal<bool>, action: ServerAction<CreateSilence>) -> impl IntoView {
    let matchers = RwSignal::new("alertname=~\"BssControlTestAlert.*\"".to_string());
    let duration = RwSignal::new("1h".to_string());
    let comment = RwSignal::new(String::new());
    view! {
        <form class="inline" on:submit=move |ev| {
            ev.prevent_default();
            action.dispatch(CreateSilence { matchers: matchers.get(), duration: duration.get(), comment: comment.get() });
        }>
            <label>"Matchers " <input type="text" size="36" prop:value=matchers on:input=move |e| matchers.set(event_target_value(&e)) aria-label="Silence matchers"/></label>
            <label>"for " <input type="text" size="5" prop:value=duration on:input=move |e| duration.set(event_target_value(&e)) aria-label="Silence duration"/></label>
            <label>"comment " <input type="text" prop:value=comment on:input=move |e| comment.set(event_target_value(&e)) aria-label="Silence comment"/></label>
            <button type="submit" disabled=move || !can.get()>"Create silence"</button>
        </form>
    }
}
