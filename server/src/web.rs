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
use tower_http::{
    compression::{predicate::{DefaultPredicate, Predicate}, CompressionLayer},
    limit::RequestBodyLimitLayer,
    set_header::SetResponseHeaderLayer,
    trace::TraceLayer,
};

use crate::{
    auth::{same_origin, Auth, SESSION_COOKIE},
    state::{AppState, Services},
};

mod stack_tls;
pub use stack_tls::{StackPeer, TlsListener};

/// The container-facing listener's TLS handshakes since start: (accepted, refused).
pub fn stack_tls_counts() -> (u64, u64) {
    use std::sync::atomic::Ordering::Relaxed;
    (stack_tls::HANDSHAKES.load(Relaxed), stack_tls::REFUSED.load(Relaxed))
}

pub const CSP_DEFAULT: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

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
    let context = move || {
        provide_context(ctx_backend.clone());
        // The nonce `page_csp` put in this response's CSP signs the page's inline scripts.
        if let Some(nonce) = use_context::<axum::http::request::Parts>().and_then(|p| p.extensions.get::<PageNonce>().cloned()) {
            provide_context(nonce.0);
        }
    };
    let error_context = context.clone();

    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/sse/stack", get(stack_events))
        .route("/sse/logs", get(log_events))
        .route("/auth/login", axum::routing::post(login))
        .route("/auth/logout", axum::routing::post(logout))
        .route("/audit.jsonl", get(audit_export))
        .route("/api/openapi.json", get(crate::openapi::serve))
        .route("/api/events.schema.json", get(events_schema))
        .merge(crate::bss::routes())
        .route("/api/{*fn_name}", get(server_fn).post(server_fn))
        .leptos_routes_with_context(&state, routes, context, {
            let o = leptos_options.clone();
            move || shell(o.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(error_context, shell))
        .layer(middleware::from_fn_with_state(state.clone(), auth_gate))
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
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        // Pages get a per-request nonce for their inline hydration scripts; everything else
        // the strict default.
        .layer(middleware::from_fn(page_csp))
        .layer(SetResponseHeaderLayer::if_not_present(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP_DEFAULT)))
        .layer(CompressionLayer::new().gzip(true).compress_when(DefaultPredicate::new().and(static_asset)))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// A page's nonce, chosen before it renders.
#[derive(Clone)]
struct PageNonce(leptos::nonce::Nonce);

/// Every HTML answer carries a CSP whose nonce signs its inline scripts (the hydration script
/// and the resources' data). The nonce is chosen here and given to the renderer, instead of
/// the page adding the header while it renders: with lazily loaded routes that header was
/// now and then missing from a page's answer (seen in Playwright: the strict default was
/// sent, the browser blocked the inline scripts and the page never hydrated).
async fn page_csp(mut req: Request, next: Next) -> Response {
    let nonce = leptos::nonce::Nonce::new();
    req.extensions_mut().insert(PageNonce(nonce.clone()));
    let mut res = next.run(req).await;
    let html = res.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.starts_with("text/html"));
    if html {
        let csp = format!(
            "default-src 'self'; script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            &*nonce
        );
        if let Ok(v) = HeaderValue::from_str(&csp) {
            res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    res
}

/// The browser bundle is sent gzipped (the page's wasm is about a third of its size then);
/// pages, server-function answers and exports are not: a response that carries the CSRF
/// token beside text an attacker can choose, compressed, leaks the token (BREACH).
fn static_asset(_: axum::http::StatusCode, _: axum::http::Version, headers: &axum::http::HeaderMap, _: &axum::http::Extensions) -> bool {
    let ty = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    ["application/wasm", "text/javascript", "application/javascript", "text/css"].iter().any(|t| ty.starts_with(t))
}

/// Marks a request that came in on the container-facing listener (bound at this address).
#[derive(Clone, Copy)]
struct FromStack(std::net::IpAddr);

/// The container-facing listener's routes: the BSS API, `/healthz` and `/metrics`, nothing
/// else (no pages, server functions, streams or exports), behind the same gate as the
/// panel (host rule, CSRF rule, sessions in shared mode). Its host rule also admits
/// `host.docker.internal` and the address it is bound to: the names the stack uses.
pub fn stack_router(services: Arc<Services>, bound: std::net::IpAddr) -> Router {
    let state = AppState { leptos_options: leptos_options(&services), services };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::bss::routes())
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "not served on the container-facing listener") })
        .layer(middleware::from_fn_with_state(state.clone(), upstream_fault))
        .layer(middleware::from_fn(peer_may))
        .layer(middleware::from_fn_with_state(state.clone(), auth_gate))
        .layer(middleware::from_fn(move |mut req: Request, next: Next| async move {
            req.extensions_mut().insert(FromStack(bound));
            next.run(req).await
        }))
        .layer(middleware::from_fn_with_state(state.clone(), count_responses))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(SetResponseHeaderLayer::overriding(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// What each peer of the listener may call ([`crate::pki::Peer::may`]): Prometheus'
/// certificate scrapes, it does not write customers. A request with no peer (not from
/// [`TlsListener`]) is refused.
async fn peer_may(req: Request, next: Next) -> Response {
    use axum::extract::{connect_info::MockConnectInfo, ConnectInfo};
    let ext = req.extensions();
    let peer = ext.get::<ConnectInfo<StackPeer>>().map(|c| c.0.peer).or_else(|| ext.get::<MockConnectInfo<StackPeer>>().map(|c| c.0.peer));
    match peer {
        Some(p) if p.may(req.method(), req.uri().path()) => next.run(req).await,
        Some(p) => (axum::http::StatusCode::FORBIDDEN, format!("{p:?}'s certificate does not grant {} {}", req.method(), req.uri().path())).into_response(),
        None => (axum::http::StatusCode::FORBIDDEN, "no client certificate").into_response(),
    }
}

/// The `envoy-upstream-fail` drill's fault ([`crate::gateway::UpstreamFault`]): the BSS
/// API answers 503 while it is in; `/healthz` and `/metrics` do not change.
async fn upstream_fault(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if state.services.gateway.upstream.failing() && crate::bss::is_api_path(req.uri().path()) {
        let body = serde_json::json!({ "error": "the BSS API is failing on purpose: a fault drill (envoy-upstream-fail) is running" });
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    next.run(req).await
}

/// Serves [`stack_router`] where [`StackListen`](crate::config::StackListen) says, until
/// shutdown. `auto` waits for the engine to name its host-gateway address (checked every
/// 5 s). A failure to bind is logged and leaves the panel serving: the stack then sees its
/// upstream down, as it would with the listener off.
pub async fn serve_stack_listener(services: Arc<Services>) {
    let listen = services.config.server.stack_listen();
    if listen == crate::config::StackListen::Off {
        return;
    }
    let addr = loop {
        if let Some(addr) = stack_address(&listen, &services.runtime).await {
            break addr;
        }
        tokio::select! {
            _ = services.shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(5)) => {}
        }
    };
    // Mutual TLS: the stack's certificates, made here when `up` has not made them yet.
    let pki = crate::pki::Pki::for_config(&services.config);
    let tls = pki.ensure().and_then(|_| Ok((pki.server_config()?, pki.identities()?)));
    let (tls, ids) = match tls {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "container-facing listener not started: its certificates ({}) do not load", pki.dir().display());
            return;
        }
    };
    let listener = match tokio::net::TcpListener::bind(addr).await.and_then(|tcp| TlsListener::new(tcp, pki, tls, ids)) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "container-facing listener not started: the stack cannot reach the BSS API or /metrics");
            return;
        }
    };
    tracing::info!(%addr, "container-facing listener (mutual TLS; BSS API, /healthz, /metrics) for Envoy and Prometheus");
    let app = stack_router(services.clone(), addr.ip());
    let stop = services.shutdown.clone();
    services.gateway.upstream.set_serving(true);
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<StackPeer>())
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    services.gateway.upstream.set_serving(false);
    if let Err(e) = served {
        tracing::warn!(%addr, error = %e, "container-facing listener stopped");
    }
}

/// Where the container-facing listener is (or would be) bound: the configured address, or
/// the engine's host-gateway address for `auto`; `None` when off or the engine names none.
pub async fn stack_address(listen: &crate::config::StackListen, runtime: &crate::runtime::Runtime) -> Option<std::net::SocketAddr> {
    use crate::config::StackListen;
    match *listen {
        StackListen::Off => None,
        StackListen::Addr(a) => Some(a),
        StackListen::Auto(port) => runtime.host_gateway().await.map(|ip| std::net::SocketAddr::new(ip, port)),
    }
}

async fn server_fn(State(state): State<AppState>, req: Request<Body>) -> impl IntoResponse {
    let backend: SharedBackend = state.services.clone();
    handle_server_fns_with_context(move || provide_context(backend.clone()), req).await
}

#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`, or `degraded` when the store does not answer.
    #[schema(example = "ok")]
    status: &'static str,
    /// Whether the Docker engine answers.
    docker: bool,
    /// Whether the control plane's own store answers.
    store: bool,
}

/// The event contracts: a JSON Schema per topic (CloudEvents envelope, event types, the
/// data fields the processors require, examples). Public, like the OpenAPI description.
#[utoipa::path(get, path = "/api/events.schema.json", tag = "operations",
    responses((status = 200, description = "JSON Schema (draft 2020-12) of the events on each Phase 3 topic", body = Object, content_type = "application/schema+json")))]
pub async fn events_schema() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/schema+json")], crate::streams::contracts::document().to_string())
}

/// Liveness plus the state of the two things the shell needs: Docker and the store.
/// 200 while the process serves; the body says what is degraded.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving; the body says what is degraded", body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    let s = &state.services;
    let store = s.store.healthy().await;
    let docker = s.runtime.engine_status().await.reachable();
    Json(Health { status: if store { "ok" } else { "degraded" }, docker, store })
}

/// OpenMetrics text exposition: HTTP answers, the DB router, processors (lag per group and
/// partition), the outbox, the container-facing listener's TLS.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "OpenMetrics text format 1.0.0", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let body = state.services.metrics.exposition(&state.services);
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    state.services.metrics.observe_http(res.status().as_u16());
    res
}

/// The stack's live feed as server-sent events (`event: stack`, JSON data). Ends when the
/// server shuts down (cut at the shutdown token, not left to the broadcast) or the caller's
/// session ends.
async fn stack_events(State(state): State<AppState>, req: Request) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    let slot = match stream_slot(&state, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(rx) = state.services.subscribe() else {
        return (axum::http::StatusCode::SERVICE_UNAVAILABLE, "no stack supervisor").into_response();
    };
    let stream = tokio_stream::wrappers::BroadcastStream::new(rx)
        .filter_map(|ev| async move {
            // A slow client that lagged just misses events; the page refetches state anyway.
            let ev = ev.ok()?;
            Some(Ok::<_, std::convert::Infallible>(Event::default().event("stack").json_data(ev).ok()?))
        })
        .take_until(stream_end(&state, &req))
        // The slot lives as long as the stream.
        .map(move |e| {
            let _ = &slot;
            e
        });
    Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
}

/// How often an open stream re-checks its session in shared mode.
const SESSION_RECHECK: std::time::Duration = std::time::Duration::from_secs(5);

/// Resolves when a live stream must end: the server shuts down, or (shared mode) the
/// caller's session is gone (signed out, expired, user removed), checked every
/// [`SESSION_RECHECK`]. The browser's EventSource then reconnects and meets the sign-in.
fn stream_end(state: &AppState, req: &Request) -> impl std::future::Future<Output = ()> + Send + 'static {
    let shutdown = state.services.shutdown.clone();
    let services = state.services.clone();
    let token = services.auth.enabled.then(|| cookie(req, SESSION_COOKIE).map(String::from)).flatten();
    async move {
        let session_gone = async {
            let Some(token) = token else { return std::future::pending::<()>().await };
            loop {
                tokio::time::sleep(SESSION_RECHECK).await;
                if !matches!(services.auth.principal(&token).await, Ok(Some(_))) {
                    return;
                }
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = session_gone => {}
        }
    }
}

/// A place for one more live stream of the caller, or 429.
fn stream_slot(state: &AppState, req: &Request) -> Result<crate::actions::StreamSlot, Response> {
    let user = req.extensions().get::<app::api::Principal>().map(|p| p.user.clone()).unwrap_or_default();
    state.services.streams_open.acquire(&user).map_err(|e| (axum::http::StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response())
}

/// Every service's log lines, live, as server-sent events (`event: log`).
async fn log_events(State(state): State<AppState>, req: Request) -> Response {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use futures_util::StreamExt;
    let Some(who) = req.extensions().get::<app::api::Principal>().cloned() else {
        return (axum::http::StatusCode::UNAUTHORIZED, "sign in required").into_response();
    };
    let slot = match stream_slot(&state, &req) {
        Ok(s) => s,
        Err(r) => return r,
    };
    match state.services.follow_all_logs(&who) {
        Err(e) => error_response(e),
        Ok(rx) => {
            let stream = tokio_stream::wrappers::ReceiverStream::new(rx)
                .filter_map(|l| async move { Event::default().event("log").json_data(l).ok().map(Ok::<_, std::convert::Infallible>) })
                .take_until(stream_end(&state, &req))
                .map(move |e| {
                    let _ = &slot;
                    e
                });
            Sse::new(stream).keep_alive(KeepAlive::default()).into_response()
        }
    }
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

/// Paths anyone may reach: the sign-in page and form, health and metrics for scrapers,
/// and the static site (wasm, js, css).
fn is_public(path: &str) -> bool {
    matches!(path, "/login" | "/auth/login" | "/healthz" | "/metrics" | "/api/openapi.json" | "/api/events.schema.json" | "/robots.txt" | "/favicon.ico" | "/fetch-retry.js") || path.starts_with("/pkg/")
}

fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Resolves the caller for every request (a [`app::api::Principal`] in the request
/// extensions, which server functions read), enforces the CSRF rule on every
/// state-changing method, and refuses anything but the public paths without a session.
async fn auth_gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    use axum::http::{Method, StatusCode};
    let s = &state.services;
    let host = req.headers().get(header::HOST).and_then(|v| v.to_str().ok());
    let stack_name = req.extensions().get::<FromStack>().is_some_and(|FromStack(bound)| host.is_some_and(|h| stack_host(h, *bound)));
    // Health probes (a container's HEALTHCHECK, a load balancer) ask by address, not by the
    // panel's public name; /healthz tells nothing a rebinding page could use.
    let probe = req.uri().path() == "/healthz" && matches!(*req.method(), axum::http::Method::GET | axum::http::Method::HEAD);
    if !stack_name && !probe && !host_allowed(&s.config.server, s.auth.enabled, host) {
        tracing::warn!(host = host.unwrap_or("(none)"), path = %req.uri().path(), "request for a host name this panel does not answer to");
        let msg = format!(
            "this panel does not answer to the host name {:?} (allowed: loopback names in local mode, and server.allowed_hosts)",
            host.unwrap_or_default()
        );
        return (StatusCode::MISDIRECTED_REQUEST, msg).into_response();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        let h = |n: header::HeaderName| req.headers().get(n).and_then(|v| v.to_str().ok());
        let site = req.headers().get("sec-fetch-site").and_then(|v| v.to_str().ok());
        if !same_origin(h(header::HOST), h(header::ORIGIN), site) {
            tracing::warn!(path = %req.uri().path(), "cross-site request refused");
            return refusal(req.uri().path(), StatusCode::FORBIDDEN, "cross-site request refused");
        }
    }
    let principal = if !s.auth.enabled {
        Some(Auth::local_principal())
    } else {
        match cookie(&req, SESSION_COOKIE) {
            Some(token) => s.auth.principal(token).await.unwrap_or_else(|e| {
                tracing::error!(error = %e, "session lookup failed");
                None
            }),
            None => None,
        }
    };
    let path = req.uri().path().to_string();
    match principal {
        Some(p) => {
            req.extensions_mut().insert(p);
            next.run(req).await
        }
        None if is_public(&path) => next.run(req).await,
        None if req.method() == Method::GET && !path.starts_with("/api/") && !path.starts_with("/sse/") && !path.ends_with(".jsonl") => {
            axum::response::Redirect::to("/login").into_response()
        }
        None => refusal(&path, StatusCode::UNAUTHORIZED, "sign in required"),
    }
}

/// The gate's refusals: `{"error": ...}` JSON on the BSS API (as its own errors are, and as
/// its OpenAPI description says), plain text elsewhere.
fn refusal(path: &str, status: axum::http::StatusCode, msg: &str) -> Response {
    if crate::bss::is_api_path(path) {
        (status, Json(serde_json::json!({ "error": msg }))).into_response()
    } else {
        (status, msg.to_string()).into_response()
    }
}

/// The names the stack's containers use for the container-facing listener.
fn stack_host(host: &str, bound: std::net::IpAddr) -> bool {
    let name = host_name(host);
    let bound = match bound {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    name == "host.docker.internal" || name == bound
}

/// The name part of a `Host` header, lower-cased, without its port (`[v6]` kept bracketed).
fn host_name(host: &str) -> String {
    match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().map(|h| format!("[{h}]")).unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h).to_string(),
    }
    .to_ascii_lowercase()
}

/// The DNS-rebinding guard: whether a request naming `host` may be served. In local mode
/// (everyone is the local admin) only loopback names, the listen address and the
/// configured names; in shared mode the configured names, or any when none are configured.
pub fn host_allowed(cfg: &crate::config::ServerConfig, auth_enabled: bool, host: Option<&str>) -> bool {
    let Some(host) = host else { return auth_enabled && cfg.allowed_hosts.is_empty() };
    let name = host_name(host);
    if cfg.allowed_hosts.iter().any(|h| *h == name) {
        return true;
    }
    if auth_enabled {
        return cfg.allowed_hosts.is_empty();
    }
    let listen = match cfg.listen.ip() {
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]") || name == listen
}

#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct LoginForm {
    name: String,
    #[schema(format = Password)]
    password: String,
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
/// untrusted address in `X-Forwarded-For` (read from the right: each proxy appends the
/// address it received from, and only trusted ones can be believed).
pub fn client_ip(peer: std::net::IpAddr, headers: &axum::http::HeaderMap, trusted: &[std::net::IpAddr]) -> std::net::IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return ip,
            // Garbage (left of it is whatever the client wrote): the last vouched-for hop.
            Err(_) => return client,
        }
    }
    client
}

fn session_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// Plain HTTP on a loopback name is the only case without `Secure` (browsers treat it as
/// a secure context anyway); a shared panel is expected behind TLS.
fn wants_secure(req_host: Option<&str>) -> bool {
    let host = req_host.unwrap_or_default();
    let name = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    !matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// Signs in: a session cookie and a redirect to `/`, or a redirect back to `/login` with
/// an error code (`credentials`, `locked`, `unavailable`).
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "To `/` with `Set-Cookie`, or to `/login?error=<code>`", headers(("Location" = String))),
        (status = 400, description = "An unreadable body", content_type = "text/plain", body = String),
        (status = 403, description = "A cross-site request", content_type = "text/plain", body = String),
        (status = 413, description = "Body over 256 KiB", content_type = "text/plain", body = String),
        (status = 415, description = "Not a form", content_type = "text/plain", body = String),
        (status = 422, description = "Fields missing", content_type = "text/plain", body = String),
    ))]
pub async fn login(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(addr): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let s = &state.services;
    let secure = wants_secure(headers.get(header::HOST).and_then(|v| v.to_str().ok()));
    let client = client_ip(addr.ip(), &headers, &s.config.server.trusted_proxies);
    match s.auth.login(form.name.trim(), &form.password, Some(client)).await {
        Ok((token, p)) => {
            s.audit(&p.user, "auth.login", &p.user, &Ok::<&str, String>("ok")).await;
            let mut res = axum::response::Redirect::to("/").into_response();
            let c = session_cookie(&token, s.auth.session_ttl.as_secs(), secure);
            res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&c).unwrap());
            res
        }
        Err(e) => {
            // Only a name a user could have goes into the audit log (not whatever was typed:
            // an unauthenticated caller must not be able to fill the append-only log).
            let name = form.name.trim();
            let shown = if crate::auth::valid_name(name) { name.to_string() } else { format!("(not a user name, {} bytes)", name.len()) };
            s.audit(&shown, "auth.login", &shown, &Err::<(), _>(e.to_string())).await;
            // A code, never text: the sign-in page shows its own wording for each, so a link
            // to /login cannot put an attacker's words on this panel.
            let code = match e {
                crate::auth::AuthError::BadCredentials | crate::auth::AuthError::BadName => "credentials".to_string(),
                crate::auth::AuthError::RateLimited(secs) => format!("locked&retry={secs}"),
                _ => "unavailable".to_string(),
            };
            axum::response::Redirect::to(&format!("/login?error={code}")).into_response()
        }
    }
}

/// Ends the caller's session.
#[utoipa::path(post, path = "/auth/logout", tag = "auth",
    responses((status = 303, description = "To `/login`, the cookie cleared", headers(("Location" = String)))))]
pub async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let s = &state.services;
    if let Some(token) = cookie(&req, SESSION_COOKIE) {
        let who = req.extensions().get::<app::api::Principal>().map(|p| p.user.clone()).unwrap_or_default();
        let _ = s.auth.logout(token).await;
        s.audit(&who, "auth.logout", &who, &Ok::<&str, String>("ok")).await;
    }
    let mut res = axum::response::Redirect::to("/login").into_response();
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&session_cookie("", 0, false)).unwrap());
    res
}

#[derive(Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user's actions.
    actor: Option<String>,
    /// Only actions whose name starts with this (e.g. `stack.`).
    action: Option<String>,
}

/// The audit log as JSON lines (viewer and up), same filters as the Audit page.
/// Audit rows read per page of the streamed export.
const EXPORT_PAGE: i64 = 500;

#[utoipa::path(get, path = "/audit.jsonl", tag = "operations", params(AuditQuery),
    responses(
        (status = 200, description = "One JSON object per line, oldest first, the whole log", content_type = "application/x-ndjson", body = String),
        (status = 400, description = "An unreadable query", content_type = "text/plain", body = String),
        (status = 401, description = "No session", content_type = "text/plain", body = String),
    ),
    security(("session" = [])))]
pub async fn audit_export(
    State(state): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<AuditQuery>,
    req: Request,
) -> Response {
    let Some(who) = req.extensions().get::<app::api::Principal>().cloned() else {
        return (axum::http::StatusCode::UNAUTHORIZED, "sign in required").into_response();
    };
    if let Err(e) = crate::state::require(&who, app::api::Role::Viewer, "reading the audit log") {
        return error_response(e);
    }
    // The whole log, oldest first, streamed a page at a time: memory stays at one page
    // however long the log is, and nothing is cut off.
    let store = state.services.store.clone();
    let pages = futures_util::stream::unfold(Some(0i64), move |after| {
        let (store, q) = (store.clone(), q.clone());
        async move {
            let after = after?;
            match store.audit_after(after, q.actor.as_deref(), q.action.as_deref(), EXPORT_PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|r| r.id);
                    let chunk: String = rows.iter().filter_map(|r| serde_json::to_string(r).ok()).map(|l| l + "\n").collect();
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export stopped");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    ([(header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(pages)).into_response()
}

/// An [`AppError`](app::error::AppError) as an HTTP answer: its status, its message.
pub fn error_response(e: app::error::AppError) -> Response {
    let status = axum::http::StatusCode::from_u16(e.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, e.to_string()).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_address_comes_from_trusted_proxies_only() {
        use super::client_ip;
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let xff = |v: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", v.parse().unwrap());
            h
        };
        let proxy = [ip("10.0.0.2"), ip("10.0.0.3")];
        // Not from a proxy: the header is the client's own claim.
        assert_eq!(client_ip(ip("198.51.100.7"), &xff("203.0.113.5"), &proxy), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("10.0.0.2"), &xff("203.0.113.5"), &[]), ip("10.0.0.2"));
        // Through two trusted proxies: the nearest untrusted hop, not a spoofed left one.
        assert_eq!(client_ip(ip("10.0.0.2"), &xff("6.6.6.6, 203.0.113.5, 10.0.0.3"), &proxy), ip("203.0.113.5"));
        // Garbage to the right of the spoof does not let the spoof through.
        assert_eq!(client_ip(ip("10.0.0.2"), &xff("6.6.6.6, nonsense, 203.0.113.5"), &proxy), ip("203.0.113.5"));
        assert_eq!(client_ip(ip("10.0.0.2"), &xff("6.6.6.6, nonsense"), &proxy), ip("10.0.0.2"));
        assert_eq!(client_ip(ip("10.0.0.2"), &axum::http::HeaderMap::new(), &proxy), ip("10.0.0.2"));
    }

    use super::host_allowed;
    use crate::config::ServerConfig;

    #[test]
    fn local_mode_answers_only_to_loopback_names() {
        let cfg = ServerConfig::default();
        for ok in ["127.0.0.1:3000", "localhost:3000", "LOCALHOST", "[::1]:3000"] {
            assert!(host_allowed(&cfg, false, Some(ok)), "{ok}");
        }
        for bad in ["rebind.example:3000", "127.0.0.1.evil.example", "evil", "[::2]:3000", ""] {
            assert!(!host_allowed(&cfg, false, Some(bad)), "{bad}");
        }
        assert!(!host_allowed(&cfg, false, None));
    }

    #[test]
    fn shared_mode_answers_to_the_configured_names() {
        let mut cfg = ServerConfig::default();
        assert!(host_allowed(&cfg, true, Some("anything:3000")), "no names configured: the cookie protects");
        cfg.allowed_hosts = vec!["panel.example".into()];
        assert!(host_allowed(&cfg, true, Some("panel.example")));
        assert!(!host_allowed(&cfg, true, Some("rebind.example")));
    }
}
