//! Gateway page: Envoy (ready state, clusters and host health, circuit breakers with
//! remaining capacity, request / 429 / retry rates as live charts, counters), a bounded
//! burst test through the proxy port, and HAProxy's read-pool backends.
use leptos::prelude::*;

use crate::error::AppError;

use super::chart::LineChart;
use super::history::PromHistory;
use crate::live::poll_every;
use crate::api::{BurstResult, GatewayView, HaproxyRow};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/gateway.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait GatewayApi: Send + Sync {
    /// Envoy clusters, breakers, counters and rates; HAProxy backends.
    async fn gateway_view(&self, who: &crate::api::Principal) -> Result<crate::api::GatewayView, AppError>;
    /// Sends a bounded burst through Envoy and counts passed vs rate-limited (operator).
    async fn burst_test(&self, who: &crate::api::Principal, requests: u32) -> Result<crate::api::BurstResult, AppError>;
}

#[server]
pub async fn get_gateway_view() -> Result<GatewayView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.gateway_view(&who).await
}

#[server]
pub async fn burst_test(requests: u32) -> Result<BurstResult, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.burst_test(&who, requests).await
}

/// Per-second deltas of cumulative counters.
fn rates(v: &GatewayView) -> Vec<(u64, Vec<f64>)> {
    v.history
        .windows(2)
        .map(|w| {
            let d = |f: fn(&crate::api::GatewayPoint) -> u64| f(&w[1]).saturating_sub(f(&w[0])) as f64;
            (w[1].at_ms, vec![d(|p| p.requests), d(|p| p.rate_limited), d(|p| p.retries), d(|p| p.overflows)])
        })
        .collect()
}

/// HAProxy servers with state and sessions (also on the Database page).
#[component]
pub fn HaproxyTable(rows: Vec<HaproxyRow>, testid: &'static str) -> impl IntoView {
    view! {
        <table class="services" data-testid=testid aria-label="HAProxy servers">
            <thead><tr><th>"Proxy"</th><th>"Server"</th><th>"Status"</th><th>"Sessions"</th><th>"Total"</th><th>"Check"</th></tr></thead>
            <tbody>{rows.into_iter().map(|h| view! {
                <tr data-server=h.server.clone() aria-label=h.server.clone()><td>{h.proxy}</td><td>{h.server.clone()}</td>
                    <td><span class=match h.status.as_str() { "UP" | "OPEN" => "badge ok", "DOWN" => "badge bad", _ => "badge" }>{h.status.clone()}</span></td>
                    <td>{h.sessions}</td><td>{h.total}</td><td>{h.check}</td></tr>
            }).collect_view()}</tbody>
        </table>
    }
}

#[component]
pub fn Gateway() -> impl IntoView {
    let tick = poll_every(2);
    let data = crate::live::resource(move || tick.get(), |_| get_gateway_view());
    let can = crate::live::use_is_operator();
    let burst = ServerAction::<BurstTest>::new();
    let n = RwSignal::new("30".to_string());

    view! {
        <h1>"Gateway"</h1>
        <section class="card">
            <h2>"Rate-limit burst test"</h2>
            <p class="muted">"Sends the requests at once to Envoy's proxy port (127.0.0.1:15006/ratelimit-probe). The local rate limit is 100 requests per minute with a burst of 10, so about 10 pass and the rest get 429."</p>
            <form class="inline" on:submit=move |ev| { ev.prevent_default(); burst.dispatch(BurstTest { requests: n.get().trim().parse().unwrap_or(0) }); }>
                <label>"Requests " <input type="number" min="1" max="200" prop:value=n on:input=move |e| n.set(event_target_value(&e)) aria-label="Burst requests"/></label>
                <button type="submit" disabled=move || !can.get() || burst.pending().get()>{move || if burst.pending().get() { "Sending…" } else { "Run burst test" }}</button>
            </form>
            <p data-testid="burst-result" role="status">{move || burst.value().get().map(|r| match r {
                Err(e) => e.refusal(),
                Ok(b) => format!("{} sent: {} passed, {} limited (429), {} other in {} ms (at most {} may pass) · Envoy's rate_limited counter {} → {}",
                    b.sent, b.passed, b.limited, b.other, b.span_ms, b.most_allowed(), b.limited_counter_before, b.limited_counter_after),
            })}</p>
        </section>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading Envoy and HAProxy…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => view! {
                    {(!v.errors.is_empty()).then(|| view! { <ul class="error">{v.errors.iter().map(|e| view! { <li>{e.clone()}</li> }).collect_view()}</ul> })}
                    <section class="card">
                        <h2>"Envoy"</h2>
                        <p>"Admin /ready: " <span class=if v.envoy_ready.as_deref() == Some("LIVE") { "badge ok" } else { "badge bad" } data-testid="envoy-ready">{v.envoy_ready.clone().unwrap_or_else(|| "unreachable".into())}</span></p>
                        {v.clusters.iter().map(|c| view! {
                            <h3>"Cluster " <code>{c.name.clone()}</code></h3>
                            <ul>{c.hosts.iter().map(|(a, h)| view! { <li><code>{a.clone()}</code> " " <span class=if h == "HEALTHY" { "badge ok" } else { "badge bad" }>{h.clone()}</span></li> }).collect_view()}</ul>
                            <table class="services" data-testid="breakers" aria-label="Circuit breakers">
                                <thead><tr><th>"Circuit breaker"</th><th>"Max"</th><th>"Remaining"</th></tr></thead>
                                <tbody>{c.breakers.iter().map(|(k, max, rem)| view! {
                                    <tr data-breaker=k.clone() aria-label=k.clone()><td>{k.clone()}</td><td>{*max}</td><td>{rem.map(|r| r.to_string()).unwrap_or_else(|| "not tracked".into())}</td></tr>
                                }).collect_view()}</tbody>
                            </table>
                        }).collect_view()}
                    </section>
                    <LineChart title="Envoy per second: requests, rate-limited (429), retries, overflows".to_string() unit="/s"
                        names=vec!["requests".into(), "rate-limited".into(), "retries".into(), "overflows".into()]
                        points=rates(&v) testid="envoy-rates".to_string()/>
                    <section class="card">
                        <h2>"Counters"</h2>
                        <table class="services" data-testid="counters" aria-label="Envoy counters"><tbody>
                            {v.counters.iter().map(|(k, n)| view! { <tr data-counter=k.clone() aria-label=k.clone()><td><code>{k.clone()}</code></td><td data-testid="value">{*n}</td></tr> }).collect_view()}
                        </tbody></table>
                    </section>
                    <section class="card">
                        <h2>"HAProxy read pool"</h2>
                        <HaproxyTable rows=v.haproxy.clone() testid="haproxy"/>
                    </section>
                }.into_any(),
            })}
        </Transition>
        <PromHistory chart="gateway-requests" title="Requests through Envoy (15006) per second, by response class" unit="req/s"/>
    }
}
