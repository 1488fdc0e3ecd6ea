//! Demo page: the Kafka demo — N CloudEvents at a chosen rate, some malformed on purpose,
//! followed through both processors; produced / processed / DLQ / lost, throughput and
//! latency percentiles, live while it runs (refreshed every second), cancellable; history.
use leptos::prelude::*;

use crate::error::AppError;

use super::chart::LineChart;
use crate::live::poll_every;
use crate::api::DemoView;

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/demo.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait DemoApi: Send + Sync {
    async fn demo_view(&self, who: &crate::api::Principal) -> Result<crate::api::DemoView, AppError>;
    /// Starts the Kafka demo (operator): `events` at `rate`/s, one malformed every `malformed_every`.
    async fn start_demo(&self, who: &crate::api::Principal, events: u64, rate: u64, malformed_every: u64) -> Result<String, AppError>;
    async fn cancel_demo(&self, who: &crate::api::Principal) -> Result<String, AppError>;
}

#[server]
pub async fn get_demo_view() -> Result<DemoView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.demo_view(&who).await
}

#[server]
pub async fn start_demo(events: u64, rate: u64, malformed_every: u64) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.start_demo(&who, events, rate, malformed_every).await
}

#[server]
pub async fn cancel_demo() -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.cancel_demo(&who).await
}

#[component]
pub fn Demo() -> impl IntoView {
    let tick = poll_every(1);
    let data = crate::live::resource(move || tick.get(), |_| get_demo_view());
    let can = crate::live::use_is_operator();
    let start = ServerAction::<StartDemo>::new();
    let cancel = ServerAction::<CancelDemo>::new();
    let events = RwSignal::new("5000".to_string());
    let rate = RwSignal::new("1000".to_string());
    let bad = RwSignal::new("50".to_string());
    let num = |s: RwSignal<String>| s.get().trim().parse::<u64>().unwrap_or(0);
    let result = crate::live::latest_outcome(&[start.value(), cancel.value()]);

    view! {
        <h1>"Demo"</h1>
        <p class="muted">"Produces customer and order CloudEvents into bss.customer.events and bss.order.events and follows each one to bss.analytics.events (or the DLQ). The seed claims 10,000+ events/s and < 100 ms processing: here is what this stack does."</p>
        <form class="inline" on:submit=move |ev| {
            ev.prevent_default();
            start.dispatch(StartDemo { events: num(events), rate: num(rate), malformed_every: num(bad) });
        }>
            <label>"Events " <input type="number" min="1" prop:value=events on:input=move |e| events.set(event_target_value(&e)) aria-label="Demo events"/></label>
            <label>" at " <input type="number" min="1" prop:value=rate on:input=move |e| rate.set(event_target_value(&e)) aria-label="Demo rate"/> " /s"</label>
            <label>" one malformed every " <input type="number" min="0" prop:value=bad on:input=move |e| bad.set(event_target_value(&e)) aria-label="Demo malformed every"/></label>
            <button type="submit" disabled=move || !can.get() || start.pending().get()>"Run demo"</button>
            <button type="button" disabled=move || !can.get() on:click=move |_| { cancel.dispatch(CancelDemo {}); }>"Cancel"</button>
        </form>
        <p role="status" data-testid="demo-result">{move || result.get()}</p>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading the demo…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => view! {
                    {v.current.clone().map(|d| {
                        let points: Vec<(u64, Vec<f64>)> = d.progress.iter().map(|(t, p, s)| (*t + 1, vec![*p as f64, *s as f64])).collect();
                        let badge = match d.status.as_str() { "passed" => "badge ok", "running" => "badge", _ => "badge bad" };
                        view! {
                            <section class="card" data-testid="demo-run">
                                <h2>{d.run.clone()} " " <span class=badge data-testid="demo-status">{d.status.clone()}</span></h2>
                                <p class="muted">{format!("{} events at {}/s, one malformed every {} · started {} by {} · {:.1} s", d.events, d.rate, d.malformed_every, d.started_at, d.actor, d.elapsed_ms as f64 / 1000.0)}</p>
                                <table class="services" aria-label="Demo counts"><tbody>
                                    <tr><td>"Produced (acknowledged)"</td><td data-testid="demo-produced">{d.produced}</td></tr>
                                    <tr><td>"Sent, not acknowledged (the producer reported them failed; not produced)"</td><td data-testid="demo-not-acked">{d.not_acked}</td></tr>
                                    <tr><td>"Processed (seen on bss.analytics.events)"</td><td data-testid="demo-processed">{d.processed}</td></tr>
                                    <tr><td>"Dead-lettered (bss.dlq.events)"</td><td data-testid="demo-dlq">{d.dlq}</td></tr>
                                    <tr><td>"Lost"</td><td data-testid="demo-lost">{d.lost}</td></tr>
                                    <tr><td>"Throughput (first → last output)"</td><td>{format!("{:.0} events/s (seed claims 10,000+)", d.throughput)}</td></tr>
                                    <tr><td>"End-to-end latency p50 / p95 / p99"</td><td data-testid="demo-latency">{format!("{:.0} / {:.0} / {:.0} ms (seed claims < 100 ms)", d.p50_ms, d.p95_ms, d.p99_ms)}</td></tr>
                                </tbody></table>
                                <p data-testid="demo-message">{d.message.clone()}</p>
                                <LineChart title="Progress".to_string() unit="events" names=vec!["produced".into(), "processed + DLQ".into()] points=points testid="demo-progress".to_string()/>
                            </section>
                        }
                    })}
                    <super::verify::RunHistory runs=v.history.clone() testid="demo-history"/>
                }.into_any(),
            })}
        </Transition>
    }
}
