//! Database page: the read/write router — replica admission with reasons, where reads and
//! writes went, replication lag as live charts beside the seed's "< 1 s" claim, and replay
//! pause/resume to demonstrate lag-based ejection.
use leptos::prelude::*;

use crate::api::{Admission, DbView, LagPoint, Role};

#[server]
pub async fn get_db_view() -> Result<DbView, ServerFnError> {
    let (backend, who) = crate::backend::caller()?;
    backend.db_view(&who).await.map_err(ServerFnError::new)
}

#[server]
pub async fn set_replay_paused(replica: String, paused: bool) -> Result<String, ServerFnError> {
    let (backend, who) = crate::backend::caller()?;
    backend.set_replay_paused(&who, &replica, paused).await.map_err(ServerFnError::new)
}

/// Series colours are classes `c0`…`c2` in the stylesheet (the CSP forbids inline styles).
const COLORS: &[&str] = &["c0", "c1", "c2"];

/// A line chart of one series per replica, with horizontal reference lines.
#[component]
fn LagChart(
    title: &'static str,
    unit: &'static str,
    names: Vec<String>,
    points: Vec<LagPoint>,
    value: fn(&LagPoint, usize) -> f64,
    refs: Vec<(f64, &'static str)>,
    testid: &'static str,
) -> impl IntoView {
    let (w, h, pad) = (720.0, 180.0, 36.0);
    let max_v = points
        .iter()
        .flat_map(|p| (0..names.len()).map(move |i| value(p, i)))
        .chain(refs.iter().map(|r| r.0))
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.15;
    let (t0, t1) = (points.first().map(|p| p.at_ms).unwrap_or(0), points.last().map(|p| p.at_ms).unwrap_or(1));
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let x = move |t: u64| pad + (t.saturating_sub(t0)) as f64 / span * (w - pad - 8.0);
    let y = move |v: f64| h - 20.0 - v / max_v * (h - 30.0);
    let lines = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let pts = points.iter().map(|p| format!("{:.1},{:.1}", x(p.at_ms), y(value(p, i)))).collect::<Vec<_>>().join(" ");
            view! { <polyline points=pts class=format!("series c{}", i % COLORS.len()) data-series=name.clone()/> }
        })
        .collect_view();
    let refs = refs
        .into_iter()
        .map(|(v, label)| view! {
            <line x1=pad x2=w - 8.0 y1=y(v) y2=y(v) class="ref"/>
            <text x=w - 10.0 y=y(v) - 4.0 text-anchor="end" class="ref-label">{label}</text>
        })
        .collect_view();
    let latest = points.last().map(|p| (0..names.len()).map(|i| value(p, i)).collect::<Vec<_>>()).unwrap_or_default();
    view! {
        <figure class="chart" data-testid=testid>
            <figcaption>{title} <span class="muted">" (last " {points.len()} " s)"</span></figcaption>
            <svg viewBox=format!("0 0 {w} {h}") role="img" aria-label=title>
                <text x="4" y="14" class="axis">{format!("{:.2} {unit}", max_v)}</text>
                <text x="4" y=h - 22.0 class="axis">"0"</text>
                {refs}
                {lines}
            </svg>
            <ul class="legend">
                {names.iter().enumerate().map(|(i, n)| view! {
                    <li><span class=format!("swatch c{}", i % COLORS.len())></span>
                        {n.clone()} ": " <b data-testid=format!("{testid}-{n}")>{format!("{:.2}", latest.get(i).copied().unwrap_or(0.0))}</b> " " {unit}</li>
                }).collect_view()}
            </ul>
        </figure>
    }
}

#[component]
pub fn Database() -> impl IntoView {
    let tick = RwSignal::new(0u32);
    // Lag is sampled every second on the server; refetch every 2 s while the page is open.
    Effect::new(move |_| {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), std::time::Duration::from_secs(2));
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    let view_res = Resource::new(move || tick.get(), |_| get_db_view());
    let who = Resource::new(|| (), |_| crate::pages::auth::whoami());
    let can = Signal::derive(move || who.get().and_then(|r| r.ok()).is_some_and(|p| p.may(Role::Operator)));
    let replay = ServerAction::<SetReplayPaused>::new();

    view! {
        <h1>"Database"</h1>
        <p class="muted">"Writes and transactions go to the primary; reads round-robin over admitted replicas, fall back to the primary when none is usable; a replica lagging past the threshold is taken out until it is back under half of it."</p>
        <p role="status" class="action-result">{move || replay.value().get().map(|r| r.unwrap_or_else(|e| format!("Refused: {e}")))}</p>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading the router…"</p> }>
            {move || view_res.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
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
                            <table class="services" data-testid="replicas">
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
                                            <tr data-replica=name.clone()>
                                                <td><b>{name.clone()}</b></td>
                                                <td>{r.reads}</td>
                                                <td><span class=adm_class data-testid="admission">{adm_text}</span></td>
                                                <td><code>{r.replay_lsn.clone().unwrap_or_default()}</code></td>
                                                <td>{format!("{} B / {:.2} s", r.lag_bytes, r.lag_secs)}</td>
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
                        <LagChart title="Replication lag (seconds)" unit="s" names=names.clone() points=v.history.clone()
                            value=|p, i| p.lag_secs.get(i).copied().unwrap_or(0.0)
                            refs=vec![(v.claim_max_lag_secs, "seed claim: < 1 s"), (v.threshold_secs, "ejection threshold")]
                            testid="lag-secs"/>
                        <LagChart title="Replication lag (bytes)" unit="B" names=names points=v.history
                            value=|p, i| p.lag_bytes.get(i).copied().unwrap_or(0) as f64
                            refs=vec![]
                            testid="lag-bytes"/>
                    }.into_any()
                }
            })}
        </Transition>
    }
}
