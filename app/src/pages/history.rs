//! History from Prometheus: a chart of one of the server's fixed PromQL queries over
//! 15 m / 1 h / 6 h / 24 h, beside the pages' live 15-minute charts (which sample the
//! services every second). The browser names a chart, never a query: the server owns the
//! PromQL (`server/src/prometheus.rs`), and shows it under the chart with a link to
//! Prometheus' own graph of it.
use leptos::prelude::*;

use super::chart::LineChart;
use crate::api::{History, HISTORY_WINDOWS};
use crate::error::AppError;

/// What the history charts ask of the server.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait HistoryApi: Send + Sync {
    /// `chart` over `window` (one of [`HISTORY_WINDOWS`]), from Prometheus (viewer).
    async fn history(&self, who: &crate::api::Principal, chart: &str, window: &str) -> Result<History, AppError>;
}

#[server]
pub async fn get_history(chart: String, window: String) -> Result<History, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.history(&who, &chart, &window).await
}

/// A history chart with its window buttons; refreshed every 30 s (Prometheus scrapes every 15 s).
#[component]
pub fn PromHistory(chart: &'static str, title: &'static str, unit: &'static str) -> impl IntoView {
    let window = RwSignal::new("1h");
    let tick = crate::live::poll_every(30);
    let res = crate::live::resource(move || (window.get(), tick.get()), move |(w, _)| get_history(chart.to_string(), w.to_string()));
    let heading = format!("history-{chart}-h");
    let labelled_by = heading.clone();
    view! {
        <section class="card" aria-labelledby=labelled_by data-testid=format!("history-{chart}")>
            <div class="card-head">
                <h2 id=heading>{title} <span class="muted">" (Prometheus)"</span></h2>
                <div class="buttons" role="group" aria-label=format!("{title}: time window")>
                    {HISTORY_WINDOWS.iter().map(|(w, _)| view! {
                        <button class="secondary" aria-pressed=move || (window.get() == *w).to_string()
                            on:click=move |_| window.set(*w)>{*w}</button>
                    }).collect_view()}
                </div>
            </div>
            <Transition fallback=|| view! { <p aria-busy="true">"Asking Prometheus…"</p> }>
                {move || res.get().map(|r| match r {
                    Err(e) => crate::error::error_view(&e),
                    Ok(h) => {
                        let caption = format!("{title}, last {} (one point per {} s)", h.window, h.step_s);
                        view! {
                            <LineChart title=caption unit=unit names=h.names.clone() points=with_gaps(&h.points) testid=format!("history-{chart}-chart")/>
                            <p class="muted promql">"PromQL: " <code data-testid=format!("history-{chart}-query")>{h.query.clone()}</code>
                                " · " <a href=h.graph_url.clone() target="_blank" rel="noopener">"open in Prometheus"</a></p>
                        }.into_any()
                    }
                })}
            </Transition>
        </section>
    }
}

/// The chart's rows: a missing sample becomes NaN, which [`LineChart`] draws as a gap.
fn with_gaps(points: &[(u64, Vec<Option<f64>>)]) -> Vec<(u64, Vec<f64>)> {
    points.iter().map(|(t, v)| (*t, v.iter().map(|x| x.unwrap_or(f64::NAN)).collect())).collect()
}
