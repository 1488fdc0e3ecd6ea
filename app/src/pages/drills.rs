//! Drills page: break one part of the stack on purpose under load; each drill's
//! expectation beside what was measured, the timeline live, the counts, the previous run.
use leptos::prelude::*;

use crate::error::AppError;

use super::chart::LineChart;
use crate::{
    api::{DrillRun, DrillSample, DrillsView},
    live::poll_every,
};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/drills.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait DrillsApi: Send + Sync {
    /// The drills, the run in progress (or the last), the one before it, the history.
    async fn drills_view(&self, who: &crate::api::Principal) -> Result<DrillsView, AppError>;
    /// Starts a drill in the background (operator); one at a time.
    async fn start_drill(&self, who: &crate::api::Principal, name: &str) -> Result<String, AppError>;
    /// Cancels the running drill; its fault is undone.
    async fn cancel_drill(&self, who: &crate::api::Principal) -> Result<String, AppError>;
}

#[server]
pub async fn get_drills_view() -> Result<DrillsView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.drills_view(&who).await
}

#[server]
pub async fn start_drill(name: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.start_drill(&who, &name).await
}

#[server]
pub async fn cancel_drill() -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.cancel_drill(&who).await
}

fn secs(ms: Option<u64>) -> String {
    ms.map(|m| format!("{:.1} s", m as f64 / 1000.0)).unwrap_or_else(|| "–".into())
}

fn missing(m: Option<u64>) -> String {
    m.map_or_else(|| "not checked".into(), |n| n.to_string())
}

/// Per-second rates between consecutive samples: (ms since the start, one rate per field).
fn rates(samples: &[DrillSample], fields: &[fn(&DrillSample) -> u64]) -> Vec<(u64, Vec<f64>)> {
    samples
        .windows(2)
        .map(|w| {
            let dt = (w[1].at_ms.saturating_sub(w[0].at_ms)).max(1) as f64 / 1000.0;
            (w[1].at_ms, fields.iter().map(|f| f(&w[1]).saturating_sub(f(&w[0])) as f64 / dt).collect())
        })
        .collect()
}

/// The load while the drill runs: events out, reads and writes per second.
#[component]
fn DrillCharts(samples: Vec<DrillSample>) -> impl IntoView {
    let events = rates(&samples, &[|s| s.processed]);
    let reads = rates(&samples, &[|s| s.reads_ok, |s| s.reads_failed, |s| s.pool_reads_ok, |s| s.pool_reads_failed]);
    let writes = rates(&samples, &[|s| s.writes_ok, |s| s.writes_failed]);
    let through_envoy = samples.iter().any(|s| s.gateway_ok + s.gateway_failed > 0);
    let gateway = rates(&samples, &[|s| s.gateway_ok, |s| s.gateway_failed]);
    view! {
        <LineChart title="Events out of the processors per second".to_string() unit="events/s" names=vec!["processed + DLQ".into()] points=events testid="drill-events-chart".to_string()/>
        <LineChart title="Reads per second".to_string() unit="reads/s" names=vec!["router ok".into(), "router failed".into(), "HAProxy ok".into(), "HAProxy failed".into()] points=reads testid="drill-reads-chart".to_string()/>
        <LineChart title="Writes per second".to_string() unit="writes/s" names=vec!["ok".into(), "failed".into()] points=writes testid="drill-writes-chart".to_string()/>
        {through_envoy.then(|| view! {
            <LineChart title="Requests through Envoy (15006) per second".to_string() unit="requests/s" names=vec!["2xx".into(), "5xx".into()] points=gateway testid="drill-gateway-chart".to_string()/>
        })}
    }
}

#[component]
fn RunCard(run: DrillRun, previous: Option<DrillRun>) -> impl IntoView {
    let badge = match run.status.as_str() {
        "passed" => "badge ok",
        "running" => "badge",
        _ => "badge bad",
    };
    let prev = move |f: fn(&DrillRun) -> String| previous.as_ref().map(f).unwrap_or_else(|| "–".into());
    let row = |label: &'static str, now: String, before: String, testid: &'static str| {
        view! { <tr><td>{label}</td><td data-testid=testid>{now}</td><td class="muted">{before}</td></tr> }
    };
    let e = &run.events;
    view! {
        <section class="card" data-testid="drill-run" data-drill=run.drill.clone()>
            <h2>{run.drill.clone()} " " <span class=badge data-testid="drill-status">{run.status.clone()}</span></h2>
            <p class="muted">{format!("started {} by {} · {:.1} s", run.started_at, run.actor, run.elapsed_ms as f64 / 1000.0)}</p>
            <p><b>"Expected: "</b> {run.expectation.clone()}</p>
            <p data-testid="drill-verdict"><b>"Measured: "</b> {run.verdict.clone()}</p>
            <table class="services" aria-label="Drill measurements">
                <thead><tr><th></th><th>"This run"</th><th>"Previous run"</th></tr></thead>
                <tbody>
                    {row("Detected by the supervisor after", secs(run.detected_ms), prev(|p| secs(p.detected_ms)), "drill-detected")}
                    {row("Healthy again after", secs(run.recovered_ms), prev(|p| secs(p.recovered_ms)), "drill-recovered")}
                    {row("Events produced / processed / DLQ", format!("{} / {} / {}", e.produced, e.processed, e.dlq), prev(|p| format!("{} / {} / {}", p.events.produced, p.events.processed, p.events.dlq)), "drill-events")}
                    {row("Events lost", e.lost.to_string(), prev(|p| p.events.lost.to_string()), "drill-lost")}
                    {row("Duplicates (outputs seen twice)", e.duplicates.to_string(), prev(|p| p.events.duplicates.to_string()), "drill-duplicates")}
                    {row("Reads through the router ok / failed", format!("{} / {}", run.reads_ok, run.reads_failed), prev(|p| format!("{} / {}", p.reads_ok, p.reads_failed)), "drill-reads")}
                    {row("Reads through HAProxy (5435) ok / failed (retried once)", format!("{} / {} ({})", run.pool_reads_ok, run.pool_reads_failed, run.pool_reads_retried), prev(|p| format!("{} / {} ({})", p.pool_reads_ok, p.pool_reads_failed, p.pool_reads_retried)), "drill-pool-reads")}
                    {row("Writes ok / failed", format!("{} / {}", run.writes_ok, run.writes_failed), prev(|p| format!("{} / {}", p.writes_ok, p.writes_failed)), "drill-writes")}
                    {row("First failed write after", secs(run.first_write_error_ms), prev(|p| secs(p.first_write_error_ms)), "drill-first-write-error")}
                    {row("Acknowledged writes missing", missing(run.acked_writes_missing), prev(|p| missing(p.acked_writes_missing)), "drill-acked-missing")}
                    {(run.gateway != Default::default()).then(|| {
                        let g = |r: &DrillRun| format!("{} / {} / {} / {} (slowest {} ms)", r.gateway.ok, r.gateway.failed, r.gateway.limited, r.gateway.hung, r.gateway.max_ms);
                        let retries = |r: &DrillRun| match r.gateway.retries {
                            Some(n) => format!("{n} retries, {} over the retry breaker", r.gateway.retry_overflow),
                            None => "Envoy's counters could not be read".to_string(),
                        };
                        view! {
                            {row("Requests through Envoy ok / 5xx / 429 / hung", g(&run), prev(g), "drill-gateway")}
                            {row("Envoy upstream retries", retries(&run), prev(retries), "drill-gateway-retries")}
                        }
                    })}
                    {row("Reads served by", run.reads_by.iter().map(|(b, n)| format!("{b} {n}")).collect::<Vec<_>>().join(", "), String::new(), "drill-reads-by")}
                </tbody>
            </table>
            {(!run.first_write_error.is_empty()).then(|| view! { <p class="muted">"What a writer saw: " <code>{run.first_write_error.clone()}</code></p> })}
            {(!run.phases.is_empty()).then(|| view! {
                <table class="services" aria-label="Events before, during and after the fault">
                    <thead><tr><th>"Events"</th><th>"observed"</th><th>"per second"</th><th>"p50"</th><th>"p99"</th></tr></thead>
                    <tbody>{run.phases.iter().map(|p| view! {
                        <tr aria-label=p.name.clone()><td>{format!("{} the fault", p.name)}</td><td>{p.events}</td><td>{format!("{:.0}", p.per_sec)}</td>
                            <td>{format!("{:.0} ms", p.p50_ms)}</td><td>{format!("{:.0} ms", p.p99_ms)}</td></tr>
                    }).collect_view()}</tbody>
                </table>
            })}
            <DrillCharts samples=run.samples.clone()/>
            <h3>"Timeline"</h3>
            <ol class="timeline" data-testid="drill-timeline">
                {run.timeline.iter().map(|t| view! { <li><code>{format!("+{:.1} s", t.at_ms as f64 / 1000.0)}</code> " " {t.what.clone()}</li> }).collect_view()}
            </ol>
        </section>
    }
}

#[component]
pub fn Drills() -> impl IntoView {
    let tick = poll_every(1);
    let data = crate::live::resource(move || tick.get(), |_| get_drills_view());
    let can = crate::live::use_is_operator();
    let start = ServerAction::<StartDrill>::new();
    let cancel = ServerAction::<CancelDrill>::new();
    let result = crate::live::latest_outcome(&[start.value(), cancel.value()]);
    view! {
        <h1>"Drills"</h1>
        <p class="muted">"Each drill starts its own load (events through both processors; writes, reads through the router and reads through HAProxy's read pool), breaks one part of the stack once the load flows, and measures what was lost and how long recovery took. A drill always undoes its fault: when it ends, when it is cancelled, and at the next start of the control plane if it died mid-drill."</p>
        <p role="status" data-testid="drill-result">{move || result.get()}</p>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading drills…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => {
                    let running = v.current.as_ref().is_some_and(|c| c.status == "running");
                    view! {
                        <table class="services" data-testid="drills" aria-label="Drills">
                            <thead><tr><th>"Drill"</th><th>"Fault"</th><th>"Expectation"</th><th></th></tr></thead>
                            <tbody>
                                {v.drills.iter().map(|d| {
                                    let name = d.name.clone();
                                    view! {
                                        <tr data-drill=d.name.clone() aria-label=d.name.clone()>
                                            <td><b>{d.title.clone()}</b><br/><code>{d.name.clone()}</code></td>
                                            <td>{d.fault.clone()}</td>
                                            <td>{d.expectation.clone()}</td>
                                            <td><button disabled=move || !can.get() || running || start.pending().get()
                                                on:click=move |_| { start.dispatch(StartDrill { name: name.clone() }); }>"Run " {d.name.clone()}</button></td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        <button type="button" disabled=move || !can.get() || !running on:click=move |_| { cancel.dispatch(CancelDrill {}); }>"Cancel drill"</button>
                        {v.current.clone().map(|c| view! { <RunCard run=c previous=v.previous.clone()/> })}
                        <super::verify::RunHistory runs=v.history.clone() testid="drill-history"/>
                    }.into_any()
                }
            })}
        </Transition>
    }
}
