//! Verify page: runs the Phase 3 verification suite; each check appears live as it
//! completes (the stack feed's server-sent events trigger the refetch), the seed's claim
//! beside what was measured, a diff against the previous run, and the run history.
use leptos::prelude::*;

use crate::error::AppError;

use crate::{
    api::{CheckResult, VerifyView},
    live::use_stack_feed,
};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/verify/api.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait VerifyApi: Send + Sync {
    /// The current (or last) verification run, the one before it, and the history.
    async fn verify_view(&self, who: &crate::api::Principal) -> Result<crate::api::VerifyView, AppError>;
    /// Starts the verification suite in the background (operator); a second start while
    /// one runs says so and leaves it running.
    async fn start_verify(&self, who: &crate::api::Principal) -> Result<String, AppError>;
}

#[server]
pub async fn get_verify_view() -> Result<VerifyView, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.verify_view(&who).await
}

#[server]
pub async fn start_verify() -> Result<String, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.start_verify(&who).await
}

/// Past runs, newest first (also on the Demo page).
#[component]
pub fn RunHistory(runs: Vec<crate::api::RunSummary>, testid: &'static str) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"History"</h2>
            <table class="services" data-testid=testid aria-label="History">
                <thead><tr><th>"Run"</th><th>"Started"</th><th>"By"</th><th>"Result"</th><th>"Summary"</th></tr></thead>
                <tbody>{runs.into_iter().map(|h| view! {
                    <tr><td>{format!("#{}", h.id)}</td><td>{h.started_at}</td><td>{h.actor}</td>
                        <td><span class=badge(&h.status)>{h.status.clone()}</span></td><td>{h.summary}</td></tr>
                }).collect_view()}</tbody>
            </table>
        </section>
    }
}

fn badge(status: &str) -> &'static str {
    match status {
        "pass" | "passed" => "badge ok",
        "fail" | "failed" => "badge bad",
        _ => "badge",
    }
}

/// "was fail" / "was 1 streaming…" when the previous run differs.
fn diff(c: &CheckResult, prev: Option<&CheckResult>) -> String {
    match prev {
        None => "new".into(),
        Some(p) if p.status != c.status => format!("was {}: {}", p.status, p.measured),
        Some(p) if p.measured != c.measured => format!("was: {}", p.measured),
        Some(_) => "same".into(),
    }
}

#[component]
pub fn Verify() -> impl IntoView {
    let feed = use_stack_feed();
    let tick = feed.tick;
    let data = crate::live::resource(move || tick.get(), |_| get_verify_view());
    let can = crate::live::use_is_operator();
    let start = ServerAction::<StartVerify>::new();

    view! {
        <h1>"Verify"</h1>
        <p class="muted">"The Phase 3 report's checks, run against this stack. Every claim of the report sits beside what was measured here; each check is bounded in time and a failing one does not stop the others."</p>
        <p>
            <button disabled=move || !can.get() || start.pending().get() on:click=move |_| { start.dispatch(StartVerify {}); }>"Run verification"</button>
            " " <span role="status" data-testid="verify-result">{move || start.value().get().map(crate::error::outcome)}</span>
        </p>
        <Transition fallback=|| view! { <p aria-busy="true">"Reading runs…"</p> }>
            {move || data.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(v) => {
                    let prev = v.previous.clone();
                    view! {
                        {v.current.clone().map(|run| {
                            let done = run.checks.len();
                            let passed = run.checks.iter().filter(|c| c.status == "pass").count();
                            let failed = run.checks.iter().filter(|c| c.status == "fail").count();
                            view! {
                                <section class="card">
                                    <h2>"Run " {run.id.map(|i| format!("#{i}")).unwrap_or_else(|| "in progress".into())}
                                        " " <span class=badge(&run.status) data-testid="run-status">{run.status.clone()}</span></h2>
                                    <p class="muted">"Started " {run.started_at.clone()} " by " {run.actor.clone()} " · "
                                        <span data-testid="run-progress">{format!("{done} of {} checks", run.total)}</span>
                                        " · " <b data-testid="run-summary">{format!("{passed} passed, {failed} failed")}</b></p>
                                    <progress max=run.total value=done></progress>
                                    <table class="services" data-testid="checks" aria-label="Checks">
                                        <thead><tr><th>"Check"</th><th>"Status"</th><th>"Measured here"</th><th>"Seed claims"</th><th>"vs previous run"</th><th>"Time"</th></tr></thead>
                                        <tbody>{run.checks.iter().map(|c| {
                                            let p = prev.as_ref().and_then(|p| p.checks.iter().find(|x| x.id == c.id));
                                            view! {
                                                <tr data-check=c.id.clone()>
                                                    <td><b>{c.name.clone()}</b><br/><span class="muted small">{c.group.clone()} " · " {c.method.clone()}</span></td>
                                                    <td><span class=badge(&c.status) data-testid="status">{c.status.clone()}</span></td>
                                                    <td data-testid="measured">{c.measured.clone()}</td>
                                                    <td class="muted">{c.claim.clone()}</td>
                                                    <td class="muted">{diff(c, p)}</td>
                                                    <td>{format!("{:.1} s", c.ms as f64 / 1000.0)}</td>
                                                </tr>
                                            }
                                        }).collect_view()}</tbody>
                                    </table>
                                </section>
                            }
                        })}
                        <RunHistory runs=v.history.clone() testid="history"/>
                    }.into_any()
                }
            })}
        </Transition>
    }
}
