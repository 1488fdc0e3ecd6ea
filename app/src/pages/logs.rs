//! Logs of every service merged in time order, with a service filter and text search,
//! following live over `/sse/logs`.
use std::collections::BTreeSet;

use leptos::prelude::*;

use crate::error::AppError;

use crate::{api::LogLine, live::use_event_source};

#[server]
pub async fn get_merged_logs() -> Result<Vec<LogLine>, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.merged_logs(&who, 100).await
}

/// Lines shown (the initial 100 per service all fit, so a chatty service cannot hide a quiet one).
const KEEP: usize = 2000;

#[component]
pub fn Logs() -> impl IntoView {
    let initial = crate::live::resource(|| (), |_| get_merged_logs());
    let live = RwSignal::new(Vec::<LogLine>::new());
    let connected = use_event_source("/sse/logs", "log", move |l: LogLine| {
        live.update(|v| {
            v.push(l);
            if v.len() > KEEP {
                v.drain(..v.len() - KEEP);
            }
        })
    });
    let search = RwSignal::new(String::new());
    // Services hidden by the filter (empty: all shown).
    let hidden = RwSignal::new(BTreeSet::<String>::new());

    view! {
        <h1>"Logs"</h1>
        <Suspense fallback=|| view! { <p aria-busy="true">"Reading logs…"</p> }>
            {move || initial.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(first) => {
                    let services: BTreeSet<String> = first.iter().map(|l| l.service.clone()).collect();
                    let first = StoredValue::new(first);
                    let lines = move || {
                        let q = search.get().to_lowercase();
                        let hidden = hidden.get();
                        let keep = |l: &LogLine| !hidden.contains(&l.service) && (q.is_empty() || l.line.to_lowercase().contains(&q) || l.service.contains(&q));
                        let mut out: Vec<LogLine> = first.with_value(|f| f.iter().filter(|l| keep(l)).cloned().collect());
                        out.extend(live.get().into_iter().filter(|l| keep(l)));
                        let n = out.len();
                        out.into_iter().skip(n.saturating_sub(KEEP)).collect::<Vec<_>>()
                    };
                    view! {
                        <div class="filters">
                            <label>"Search " <input type="search" placeholder="text or service" aria-label="Search logs"
                                on:input=move |ev| search.set(event_target_value(&ev)) prop:value=move || search.get()/></label>
                            <span class="muted">{move || if connected.get() { "following live" } else { "" }}</span>
                        </div>
                        <fieldset class="service-filter">
                            <legend>"Services"</legend>
                            {services.into_iter().map(|s| {
                                let s2 = s.clone();
                                let s3 = s.clone();
                                view! {
                                    <label><input type="checkbox" prop:checked=move || !hidden.get().contains(&s2)
                                        on:change=move |_| hidden.update(|h| if !h.remove(&s3) { h.insert(s3.clone()); })/>
                                        {s}</label>
                                }
                            }).collect_view()}
                        </fieldset>
                        <pre class="logs merged" role="log" aria-label="Merged logs" tabindex="0" data-testid="merged-logs">
                            {move || lines().into_iter().map(|l| view! {
                                <div class="logline" data-service=l.service.clone()><span class="svc">{l.service.clone()}</span>" "<span class="ts">{l.ts}</span>" "{l.line}</div>
                            }).collect_view()}
                        </pre>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}
