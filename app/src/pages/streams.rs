//! Streams page: the two Kafka processors hosted by the control plane — state with reasons,
//! start/stop/restart, counters, live charts of rates, end-to-end latency and consumer lag
//! (15 min), the topic table, and a button that produces sample CloudEvents.
use leptos::prelude::*;

use crate::error::AppError;

use super::chart::{gaps, LineChart};
use super::history::PromHistory;
use crate::live::poll_every;
use crate::api::StreamsView;

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/streams/api.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait StreamsApi: Send + Sync {
    /// The stream processors: state, counters, 15 min of rates and latencies, topic table.
    async fn streams_view(&self, who: &crate::api::Principal) -> Result<crate::api::StreamsView, AppError>;
    /// `start`, `stop` or `restart` a processor (operator).
    async fn processor_action(&self, who: &crate::api::Principal, processor: &str, verb: &str) -> Result<String, AppError>;
    /// Switches a processor's delivery guarantee, restarting it if it runs (operator).
    async fn set_guarantee(&self, who: &crate::api::Principal, processor: &str, guarantee: &str) -> Result<String, AppError>;
    /// Produces sample customer/order CloudEvents, some malformed on purpose (operator).
    async fn send_sample_events(&self, who: &crate::api::Principal, events: u64, malformed_every: u64) -> Result<String, AppError>;
}

#[server]
pub async fn get_streams_view() -> Result<StreamsView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.streams_view(&who).await
}

#[server]
pub async fn processor_action(processor: String, verb: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.processor_action(&who, &processor, &verb).await
}

#[server]
pub async fn set_guarantee(processor: String, guarantee: String) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.set_guarantee(&who, &processor, &guarantee).await
}

#[server]
pub async fn send_sample_events(events: u64, malformed_every: u64) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.send_sample_events(&who, events, malformed_every).await
}

fn charts(v: &StreamsView) -> impl IntoView {
    let names: Vec<String> = v.processors.iter().map(|p| p.name.clone()).collect();
    let series = |f: fn(&crate::api::ProcPoint) -> f64| -> Vec<(u64, Vec<f64>)> {
        v.history.iter().map(|p| (p.at_ms, p.procs.iter().map(f).collect())).collect()
    };
    let both: Vec<String> = names.iter().flat_map(|n| [format!("{n} p50"), format!("{n} p99")]).collect();
    let latency: Vec<(u64, Vec<f64>)> =
        v.history.iter().map(|p| (p.at_ms, gaps(&p.procs.iter().flat_map(|q| [q.p50_ms, q.p99_ms]).collect::<Vec<_>>()))).collect();
    let hop_names: Vec<String> = names.iter().flat_map(|n| [format!("{n} to it"), format!("{n} in it")]).collect();
    let hops: Vec<(u64, Vec<f64>)> =
        v.history.iter().map(|p| (p.at_ms, gaps(&p.procs.iter().flat_map(|q| [q.wait_p99_ms, q.work_p99_ms]).collect::<Vec<_>>()))).collect();
    view! {
        <div class="grid2">
            <LineChart title="Events in (per second)".to_string() unit="ev/s" names=names.clone() points=series(|p| p.in_rate) testid="in-rate".to_string()/>
            <LineChart title="Events out (per second)".to_string() unit="ev/s" names=names.clone() points=series(|p| p.out_rate) testid="out-rate".to_string()/>
            <LineChart title="Dead-lettered (per second)".to_string() unit="ev/s" names=names.clone() points=series(|p| p.dlq_rate) testid="dlq-rate".to_string()/>
            <LineChart title="End-to-end latency, event time → output acknowledged".to_string() unit="ms" names=both points=latency
                refs=vec![(v.claim_latency_ms, "seed claim: < 100 ms")] testid="latency".to_string()/>
            <LineChart title="Latency per hop, p99: event time → consumed (to it), consumed → output acknowledged (in it)".to_string() unit="ms" names=hop_names points=hops testid="hops".to_string()/>
            <LineChart title="Consumer lag (records)".to_string() unit="rec" names=names points=series(|p| p.lag.map_or(f64::NAN, |l| l as f64)) testid="lag".to_string()/>
        </div>
    }
}

#[component]
pub fn Streams() -> impl IntoView {
    let tick = poll_every(2);
    let data = crate::live::resource(move || tick.get(), |_| get_streams_view());
    let can = crate::live::use_is_operator();
    let act = ServerAction::<ProcessorAction>::new();
    let send = ServerAction::<SendSampleEvents>::new();
    let switch = ServerAction::<SetGuarantee>::new();
    let events = RwSignal::new("2000".to_string());
    let malformed = RwSignal::new("50".to_string());
    let result = crate::live::latest_outcome(&[send.value(), act.value(), switch.value()]);

    view! {
        <h1>"Streams"</h1>
        <p class="muted">"Two Rust processors run inside the control plane: CloudEvents in, CloudEvents out, malformed or invalid events to bss.dlq.events with the reason in an error header. At-least-once: an input offset is stored only after its output is acknowledged by the brokers, so a failure can repeat an output, never lose one. Exactly-once: outputs, state and input offsets commit in one Kafka transaction, and read_committed readers see each output once."</p>
        <p class="muted">"What a producer must send on each topic (event types, required data fields, examples): "<a href="/api/events.schema.json" data-testid="event-contracts">"the event contracts (JSON Schema)"</a>"."</p>
        <p role="status" class="action-result" data-testid="streams-result">{move || result.get()}</p>
        <form class="inline" on:submit=move |ev| {
            ev.prevent_default();
            let n = events.get().trim().parse::<u64>().unwrap_or(0);
            let m = malformed.get().trim().parse::<u64>().unwrap_or(0);
            send.dispatch(SendSampleEvents { events: n, malformed_every: m });
        }>
            <label>"Events " <input type="number" min="1" max="100000" prop:value=events on:input=move |e| events.set(event_target_value(&e)) aria-label="Events to send"/></label>
            <label>" one malformed every " <input type="number" min="0" prop:value=malformed on:input=move |e| malformed.set(event_target_value(&e)) aria-label="Malformed every"/></label>
            <button type="submit" disabled=move || !can.get() || send.pending().get()>
                {move || if send.pending().get() { "Sending…" } else { "Send sample events" }}
            </button>
        </form>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading the processors…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => view! {
                    <section class="card">
                        <h2>"Processors"</h2>
                        <p class="muted">"Brokers " <code>{v.brokers.clone()}</code> " · the seed claims " {format!("{:.0}", v.claim_events_per_sec)} "+ events/s and < " {format!("{:.0}", v.claim_latency_ms)} " ms processing: the charts below are what this stack measures."</p>
                        <table class="services" data-testid="processors" aria-label="Processors">
                            <thead><tr><th>"Processor"</th><th>"Topics"</th><th>"State"</th><th>"Guarantee"</th><th>"Consumed"</th><th>"Produced"</th><th>"DLQ"</th><th>"Lag"</th><th>"Restarts"</th><th></th></tr></thead>
                            <tbody>
                                {v.processors.clone().into_iter().map(|p| {
                                    let badge = match p.state.as_str() { "running" => "badge ok", "failed" => "badge bad", _ => "badge" };
                                    let running = p.state == "running" || p.state == "starting";
                                    let button = move |verb: &'static str, label: &'static str, enabled: bool, name: String| view! {
                                        <button disabled=move || !can.get() || !enabled || act.pending().get()
                                            on:click=move |_| { act.dispatch(ProcessorAction { processor: name.clone(), verb: verb.to_string() }); }>{label}</button>
                                    };
                                    view! {
                                        <tr data-processor=p.name.clone() aria-label=p.name.clone()>
                                            <td><b>{p.name.clone()}</b><br/><span class="muted">"group " {p.group.clone()}</span></td>
                                            <td><code>{p.input.clone()}</code> " → " <code>{p.output.clone()}</code>
                                                {p.changelog.clone().map(|c| view! { <br/><span class="muted">"state in " <code>{c}</code> " · " {match p.restoring {
                                                    Some((done, total)) => view! { <span data-testid="restoring">{format!("restoring {done}/{total}")}</span> }.into_any(),
                                                    None => view! { <span data-testid="restored">{p.restored}</span> " records restored at start" }.into_any(),
                                                }}</span> })}</td>
                                            <td><span class=badge data-testid="state">{p.state.clone()}</span>
                                                <span class="muted">" since " {crate::live::clock(p.since_ms)}</span>
                                                {p.reason.clone().map(|r| view! { <br/><span class="muted" data-testid="reason">{r}</span> })}</td>
                                            <td>
                                                <span data-testid="guarantee">{p.guarantee.label()}</span><br/>
                                                {
                                                    let (name, to) = (p.name.clone(), p.guarantee.other());
                                                    view! {
                                                        <button class="secondary" disabled=move || !can.get() || switch.pending().get()
                                                            on:click=move |_| { switch.dispatch(SetGuarantee { processor: name.clone(), guarantee: to.as_str().to_string() }); }>
                                                            {format!("Switch to {}", to.label())}
                                                        </button>
                                                    }
                                                }
                                            </td>
                                            <td data-testid="consumed">{p.consumed}</td>
                                            <td data-testid="produced">{p.produced}</td>
                                            <td data-testid="dlq">{p.dlq}</td>
                                            <td>{p.lag.map(|l| l.to_string()).unwrap_or_else(|| "–".into())}</td>
                                            <td data-testid="restarts">{p.restarts}
                                                {p.last_failure.clone().map(|r| view! { <br/><span class="muted" data-testid="last-failure">{format!("last: {r}")}</span> })}</td>
                                            <td class="actions">
                                                {button("start", "Start", !running, p.name.clone())}
                                                {button("stop", "Stop", running, p.name.clone())}
                                                {button("restart", "Restart", true, p.name.clone())}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                    {charts(&v)}
                    <section class="card">
                        <h2>"Topics"</h2>
                        {v.topics_error.clone().map(|e| view! { <p class="error">"Topic table: " {e}</p> })}
                        <table class="services" data-testid="topics" aria-label="Topics">
                            <thead><tr><th>"Topic"</th><th>"Partition"</th><th>"Leader"</th><th>"Low"</th><th>"High watermark"</th><th>"Groups (committed / lag)"</th></tr></thead>
                            <tbody>
                                {v.topics.clone().into_iter().map(|t| view! {
                                    <tr>
                                        <td><code>{t.topic}</code></td><td>{t.partition}</td><td>{t.leader}</td><td>{t.low}</td><td>{t.high}</td>
                                        <td>{t.groups.into_iter().map(|(g, c, l)| format!("{g}: {} / {}",
                                            c.map(|c| c.to_string()).unwrap_or_else(|| "none".into()),
                                            l.map(|l| l.to_string()).unwrap_or_else(|| "?".into()))).collect::<Vec<_>>().join(" · ")}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </section>
                }.into_any(),
            })}
        </Transition>
        <div class="grid2">
            <PromHistory chart="consumer-lag" title="Consumer lag per processor" unit="rec"/>
            <PromHistory chart="consumer-lag-partition" title="Consumer lag per processor and input partition" unit="rec"/>
            <PromHistory chart="broker-messages-in" title="Messages into each broker per second" unit="msg/s"/>
        </div>
    }
}
