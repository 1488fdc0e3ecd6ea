//! The HTTP surface: Leptos SSR pages + server functions, `/healthz`, `/metrics`, static
//! files, and the layers every response goes through.
use std::sync::Arc;

use app::{backend::SharedBackend, shell, App};
use axum::{
    body::Body,
    extract::{Request, State},
    http::{header, HeaderValue},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use leptos::prelude::*;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use tower_http::{limit::RequestBodyLimitLayer, set_header::SetResponseHeaderLayer, trace::TraceLayer};

use crate::state::{AppState, Services};

/// Largest request body accepted (server function arguments and forms are small).
const BODY_LIMIT: usize = 256 * 1024;

pub fn leptos_options(services: &Services) -> LeptosOptions {
    LeptosOptions::builder()
        .output_name("bss-control")
        .site_root(services.config.server.site_root.to_string_lossy().to_string())
        .site_pkg_dir("pkg")
        .site_addr(services.config.server.listen)
        .build()
}

pub fn router(services: Arc<Services>) -> Router {
    let leptos_options = leptos_options(&services);
    let state = AppState { leptos_options: leptos_options.clone(), services: services.clone() };
    let routes = generate_route_list(App);
    let backend: SharedBackend = services.clone();
    let ctx_backend = backend.clone();
    let context = move || provide_context(ctx_backend.clone());

    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/sse/stack", get(stack_events))
        .route("/api/{*fn_name}", get(server_fn).post(server_fn))
        .leptos_routes_with_context(&state, routes, context, {
            let o = leptos_options.clone();
            move || shell(o.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(middleware::from_fn_with_state(state.clone(), count_responses))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn server_fn(State(state): State<AppState>, req: Request<Body>) -> impl IntoResponse {
    let backend: SharedBackend = state.services.clone();
    handle_server_fns_with_context(move || provide_context(backend.clone()), req).await
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    docker: bool,
    store: bool,
}

/// Liveness plus the state of the two things the shell needs: Docker and the store.
/// 200 while the process serves; the body says what is degraded.
async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let s = &state.services;
    let store = sqlx::query("SELECT 1").execute(s.store.pool()).await.is_ok();
    let docker = s.runtime.engine_status().await.reachable();
    Json(Health { status: if store { "ok" } else { "degraded" }, docker, store })
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        state.services.metrics.render(),
    )
        .into_response()
}

async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    state.services.metrics.observe_http(res.status().as_u16());
    res
}

/// The stack's live feed as server-sent events (`event: stack`, JSON data). Ends when the
/// server shuts down.
async fn stack_events(State(state): State<AppState>) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    let Some(rx) = state.services.subscribe() else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no stack supervisor").into_response();
    };
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx).filter_map(|ev| async move {
        // A slow client that lagged just misses events; the page refetches state anyway.
        let ev = ev.ok()?;
        Some(Ok::<_, std::convert::Infallible>(Event::default().event("stack").json_data(ev).ok()?))
    });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async { tokio::signal::ctrl_c().await.ok() };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining connections");
}
