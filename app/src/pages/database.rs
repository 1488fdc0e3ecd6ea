//! Database page: the read/write router — replica admission with reasons, where reads and
//! writes went, replication lag as live charts beside the seed's "< 1 s" claim, and replay
//! pause/resume to demonstrate lag-based ejection.
use leptos::prelude::*;

use crate::error::AppError;

use super::chart::{gaps, LineChart};
use super::history::PromHistory;
use crate::api::{Admission, DbView};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/db/api.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait DbApi: Send + Sync {
    /// The read/write router: replica admission, routing counters, lag history.
    async fn db_view(&self, who: &crate::api::Principal) -> Result<crate::api::DbView, AppError>;
    /// Pauses or resumes WAL replay on a replica (operator).
    async fn set_replay_paused(&self, who: &crate::api::Principal, replica: &str, paused: bool) -> Result<String, AppError>;
}

#[server]
pub async fn get_db_view() -> Result<DbView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.db_view(&who).await
}

#[server]
pub async fn set_replay_paused(replica: String, paused: bool) -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.set_replay_paused(&who, &replica, paused).await
}

#[component]
pub fn Database() -> impl IntoView {
    // Lag is sampled every second on the server; refetch every 2 s while the page is open.
    let tick = crate::live::poll_every(2);
    let view_res = crate::live::resource(move || tick.get(), |_| get_db_view());
    let can = crate::live::use_is_operator();
    let replay = ServerAction::<SetReplayPaused>::new();

    view! {
        <h1>"Database"</h1>
        <p class="muted">"Writes and transactions go to the primary; reads round-robin over admitted replicas, fall back to the primary when none is usable; a replica lagging past the threshold is taken out until it is back under half of it."</p>
        <p role="status" class="action-result">{move || replay.value().get().map(crate::error::outcome)}</p>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading the router…"</p> }>
            {move || view_res.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => {
                    let names: Vec<String> = v.status.replicas.iter().map(|r| r.name.clone()).collect();
                    let s = v.status.clone();
                    view! {
                        <section class="card">
                            <h2>"Routing"</h2>
                            <p>"Primary: " <span class=if s.primary_up { "badge ok" } else { "badge bad" }>{if s.primary_up { "up" } else { "down" }}</span>
                               " LSN " <code>{s.primary_lsn.clone().unwrap_or_default()}</code>
                               " · writes " <b>{s.writes}</b> " · reads on primary " <b>{s.primary_reads}</b>
                               " · fallbacks " <b data-testid="fallbacks">{s.fallbacks}</b> " · retried reads " <b>{s.retried_reads}</b></p>
                            <table class="services" data-testid="replicas" aria-label="Replicas">
                                <thead><tr><th>"Replica"</th><th>"Reads"</th><th>"Admission"</th><th>"Replay LSN"</th><th>"Lag"</th><th>"Replay"</th></tr></thead>
                                <tbody>
                                    {s.replicas.into_iter().map(|r| {
                                        let name = r.name.clone();
                                        let (adm_class, adm_text) = match &r.admission {
                                            Admission::In => ("badge ok", "taking reads".to_string()),
                                            Admission::Out { reason, since_ms } => ("badge bad", format!("out since {}: {reason}", crate::live::clock(*since_ms))),
                                        };
                                        let paused = r.replay_paused;
                                        let target = name.clone();
                                        view! {
                                            <tr data-replica=name.clone() aria-label=name.clone()>
                                                <td><b>{name.clone()}</b></td>
                                                <td>{r.reads}</td>
                                                <td><span class=adm_class data-testid="admission">{adm_text}</span></td>
                                                <td><code>{r.replay_lsn.clone().unwrap_or_default()}</code></td>
                                                <td data-testid="lag">{match (r.lag_bytes, r.lag_secs) {
                                                    (Some(b), Some(s)) => format!("{b} B / {s:.2} s"),
                                                    (None, Some(s)) => format!("? B / {s:.2} s"),
                                                    _ => "unknown".to_string(),
                                                }}</td>
                                                <td>
                                                    <span class="muted">{if paused { "paused " } else { "" }}</span>
                                                    <button disabled=move || !can.get() on:click=move |_| {
                                                        replay.dispatch(SetReplayPaused { replica: target.clone(), paused: !paused });
                                                    }>{if paused { "Resume replay" } else { "Pause replay" }}</button>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </section>
                        {
                            let o = v.outbox.clone();
                            let waiting = o.pending > 0;
                            view! {
                                <section class="card" aria-label="BSS API outbox">
                                    <h2>"BSS API outbox"</h2>
                                    <p class="muted">"Each write commits with its CloudEvent in one transaction; the relay publishes them to Kafka and marks them. When the bus is down, writes still succeed and their events wait here."</p>
                                    <p>
                                        <span class=if waiting { "badge warn" } else { "badge ok" } data-testid="outbox-pending">{o.pending}</span>
                                        " waiting"
                                        {o.oldest_secs.map(|s| view! { " · oldest " <b data-testid="outbox-oldest">{crate::api::human_secs(s.round() as u64)}</b> })}
                                        " · published by this control plane " <b>{o.published}</b>
                                    </p>
                                    {o.error.map(|e| view! { <p class="error" role="alert">"Relay: " {e}</p> })}
                                </section>
                            }
                        }
                        <LineChart title="Replication lag (seconds)".to_string() unit="s" names=names.clone()
                            points=v.history.iter().map(|p| (p.at_ms, gaps(&p.lag_secs))).collect()
                            refs=vec![(v.claim_max_lag_secs, "seed claim: < 1 s"), (v.threshold_secs, "ejection threshold")]
                            testid="lag-secs".to_string()/>
                        <LineChart title="Replication lag (bytes)".to_string() unit="B" names=names
                            points=v.history.iter().map(|p| (p.at_ms, gaps(&p.lag_bytes.iter().map(|b| b.map(|b| b as f64)).collect::<Vec<_>>()))).collect()
                            testid="lag-bytes".to_string()/>
                        <LineChart title="Replication lag, last 24 h (per-minute maximum, stored)".to_string() unit="s" names=v.status.replicas.iter().map(|r| r.name.clone()).collect()
                            points=v.long_history.iter().map(|p| (p.at_ms, gaps(&p.lag_secs))).collect()
                            refs=vec![(v.claim_max_lag_secs, "seed claim: < 1 s")]
                            testid="lag-long".to_string()/>
                        <section class="card">
                            <h2>"HAProxy read pool (5435)"</h2>
                            <p class="muted">"The second read path: round-robin over the standbys, health-checked every 5 s."</p>
                            {v.haproxy_error.clone().map(|e| view! { <p class="error">{e}</p> })}
                            <super::gateway::HaproxyTable rows=v.haproxy.clone() testid="haproxy-pool"/>
                        </section>
                    }.into_any()
                }
            })}
        </Transition>
        <PromHistory chart="replication-lag" title="Replication lag per standby" unit="s"/>
    }
}
