//! Home page: the Docker engine the control plane drives, read live through bollard.
use leptos::prelude::*;

use crate::error::AppError;

use crate::api::EngineStatus;

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/runtime/api.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait EngineApi: Send + Sync {
    async fn engine_status(&self, who: &crate::api::Principal) -> Result<crate::api::EngineStatus, AppError>;
}

#[server]
pub async fn fetch_engine_status() -> Result<EngineStatus, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.engine_status(&who).await
}

#[component]
pub fn Overview() -> impl IntoView {
    let refreshes = RwSignal::new(0u32);
    let status = crate::live::resource(move || refreshes.get(), |_| fetch_engine_status());
    view! {
        <h1>"Overview"</h1>
        <section class="card" aria-labelledby="engine-h">
            <div class="card-head">
                <h2 id="engine-h">"Docker engine"</h2>
                <button on:click=move |_| refreshes.update(|n| *n += 1)>"Refresh"</button>
            </div>
            <Suspense fallback=|| view! { <p aria-busy="true">"Asking the engine…"</p> }>
                {move || status.get().map(|r| match r {
                    Ok(s) => view! { <EngineCard s/> }.into_any(),
                    Err(e) => view! {
                        <p class="error" role="alert">"Could not reach the control plane: " {e.to_string()}</p>
                    }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

#[component]
fn EngineCard(s: EngineStatus) -> impl IntoView {
    let reachable = s.reachable();
    view! {
        <Show when=move || reachable fallback={
            let s = s.clone();
            move || view! {
                <p class="error" role="alert" data-testid="engine-error">
                    "No Docker engine answers at " <code>{s.endpoint.clone()}</code> ": "
                    {s.error.clone().unwrap_or_default()}
                </p>
                <p class="muted">"Start one with " <code>"make run"</code> " or set DOCKER_HOST."</p>
            }
        }>
            <dl class="facts" data-testid="engine-facts">
                <dt>"Endpoint"</dt><dd>{s.endpoint.clone()}</dd>
                <dt>"Version"</dt><dd data-testid="engine-version">{s.version.clone()}</dd>
                <dt>"API version"</dt><dd data-testid="engine-api">{s.api_version.clone()}</dd>
                <dt>"OS / kernel"</dt><dd>{s.os.clone()} " / " {s.kernel.clone()}</dd>
                <dt>"Containers running"</dt><dd data-testid="engine-running">{s.containers_running} " of " {s.containers_total}</dd>
                <dt>"Images"</dt><dd>{s.images}</dd>
            </dl>
        </Show>
        <p class="muted">"Read at " <time data-testid="engine-fetched-at">{s.fetched_at.clone()}</time></p>
    }
}
