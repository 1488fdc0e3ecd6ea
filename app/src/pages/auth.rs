//! Sign-in page, the caller's identity, and the Audit page.
use leptos::prelude::*;

use crate::error::AppError;
use leptos_router::hooks::use_query_map;

use crate::api::{AuditEntry, Principal};

/// What this page asks of the server (implemented beside the module that owns it,
/// `server/src/auth.rs`); server functions below are its only callers.
#[cfg(feature = "ssr")]
#[async_trait::async_trait]
pub trait AuditApi: Send + Sync {
    async fn audit_log(&self, who: &crate::api::Principal, actor: Option<String>, action: Option<String>, limit: i64) -> Result<Vec<crate::api::AuditEntry>, AppError>;
}

#[server]
pub async fn whoami() -> Result<Principal, AppError> {
    crate::backend::principal()
}

#[server]
pub async fn get_audit(actor: Option<String>, action: Option<String>) -> Result<Vec<AuditEntry>, AppError> {
    let (backend, who) = crate::backend::caller()?;
    backend.audit_log(&who, actor, action, 500).await
}

/// What the sign-in page says for the error code in its URL; anything else says nothing
/// (the URL is not trusted text).
pub fn login_message(code: &str, retry_secs: Option<u64>) -> Option<String> {
    match code {
        "credentials" => Some("wrong user name or password".into()),
        "locked" => Some(match retry_secs {
            Some(s) if s <= 86_400 => format!("too many failed sign-ins; try again in {s} s"),
            _ => "too many failed sign-ins; try again later".into(),
        }),
        "unavailable" => Some("sign-in is unavailable right now; try again, or ask an admin".into()),
        _ => None,
    }
}

/// A plain HTML form posting to `/auth/login`: works without JavaScript.
#[component]
pub fn Login() -> impl IntoView {
    let query = use_query_map();
    let error = move || query.with(|q| login_message(q.get("error").as_deref()?, q.get("retry").and_then(|r| r.parse().ok())));
    view! {
        <h1>"Sign in"</h1>
        <form method="post" action="/auth/login" class="card login">
            {move || error().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <label>"User name" <input name="name" autocomplete="username" required/></label>
            <label>"Password" <input name="password" type="password" autocomplete="current-password" required/></label>
            <button type="submit">"Sign in"</button>
        </form>
    }
}


/// Top-bar identity: user, role, sign-out; or the local-mode banner.
#[component]
pub fn WhoAmI() -> impl IntoView {
    let who = crate::live::resource(|| (), |_| whoami());
    view! {
        <Suspense fallback=|| ()>
            {move || who.get().map(|r| match r {
                Ok(p) if p.local_mode => view! {
                    <span class="banner" role="note" data-testid="local-mode">
                        "Local mode: sign-in is off because this server listens on loopback only"
                    </span>
                }.into_any(),
                Ok(p) => view! {
                    <span class="who" data-testid="who">{p.user.clone()} " · " {p.role.as_str()}</span>
                    <form method="post" action="/auth/logout" class="inline"><button class="secondary" type="submit">"Sign out"</button></form>
                }.into_any(),
                Err(_) => view! { <a href="/login">"Sign in"</a> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
pub fn Audit() -> impl IntoView {
    let query = use_query_map();
    let actor = move || query.with(|q| q.get("actor")).filter(|s| !s.is_empty());
    let action = move || query.with(|q| q.get("action")).filter(|s| !s.is_empty());
    let rows = crate::live::resource(move || (actor(), action()), |(a, b)| get_audit(a, b));
    let export = move || {
        let mut q = vec![];
        if let Some(a) = actor() { q.push(format!("actor={a}")); }
        if let Some(a) = action() { q.push(format!("action={a}")); }
        format!("/audit.jsonl{}{}", if q.is_empty() { "" } else { "?" }, q.join("&"))
    };
    view! {
        <h1>"Audit"</h1>
        <p class="muted">"Every action, who did it, when, on what, and how it ended. Append-only."</p>
        <form method="get" action="/audit" class="filters">
            <label>"Actor " <input name="actor" value=actor/></label>
            <label>"Action starts with " <input name="action" value=action/></label>
            <button type="submit">"Filter"</button>
            <a href=export download="audit.jsonl">"Export JSON lines"</a>
        </form>
        <Suspense fallback=|| view! { <p>"Loading…"</p> }>
            {move || rows.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(rows) => view! {
                    <table class="services" data-testid="audit" aria-label="Audit log">
                        <thead><tr><th>"When"</th><th>"Who"</th><th>"Action"</th><th>"Target"</th><th>"Result"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|e| view! {
                                <tr><td>{e.at}</td><td>{e.actor}</td><td>{e.action}</td><td>{e.target}</td><td>{e.result}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any(),
            })}
        </Suspense>
    }
}
