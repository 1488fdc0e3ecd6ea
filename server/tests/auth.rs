//! The shared (sign-in) mode, through the real router: every server function is refused
//! without a session, mutating ones are refused for a viewer and accepted for an operator,
//! every attempt is audited, cross-site posts are refused, sessions expire.
//! The server functions are enumerated from the registry, so a new one cannot be missed.
use std::{net::SocketAddr, sync::Arc};

use app::api::{Role, SERVER_FNS_ADMIN, SERVER_FNS_MUTATING, SERVER_FNS_READ};
use axum::{
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{header, Method, Request, StatusCode},
    Router,
};
use server::{config::Config, runtime::Runtime, state::Services, store::Store};
use tower::ServiceExt;

const PW: &str = "correct horse battery staple";
const HOST: &str = "127.0.0.1:3000";

async fn setup(auth: bool) -> (tempfile::TempDir, Arc<Services>, Router) {
    setup_with(auth, |_| {}).await
}

async fn setup_with(auth: bool, adjust: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Arc<Services>, Router) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.store.path = dir.path().join("state.db");
    config.auth.enabled = Some(auth);
    config.stack.compose = vec![std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../dev/compose.yml")];
    config.stack.project = format!("bssauth{}", std::process::id());
    adjust(&mut config);
    let store = Store::open(&config.store.path).await.unwrap();
    let runtime = Runtime::new(std::env::var("DOCKER_HOST").ok().as_deref());
    let services = Services::new(config, runtime, store);
    services.auth.add_user("vera", Role::Viewer, PW).await.unwrap();
    services.auth.add_user("otto", Role::Operator, PW).await.unwrap();
    services.auth.add_user("ada", Role::Admin, PW).await.unwrap();
    let app = server::web::router(services.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    (dir, services, app)
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).to_string())
}

async fn login(app: &Router, name: &str) -> String {
    let req = Request::post("/auth/login")
        .header(header::HOST, HOST)
        .header(header::ORIGIN, format!("http://{HOST}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name={name}&password={}", PW.replace(' ', "+"))))
        .unwrap();
    let (status, headers, _) = send(app, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "login of {name}");
    let c = headers.get(header::SET_COOKIE).expect("session cookie").to_str().unwrap().to_string();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    c.split(';').next().unwrap().to_string()
}

fn call(path: &str, body: &str, cookie: Option<&str>, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, c);
    }
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// Registered server functions as (name, path), with the name recovered from the path.
fn server_fns() -> Vec<(&'static str, String)> {
    let known: Vec<&'static str> = SERVER_FNS_READ.iter().chain(SERVER_FNS_MUTATING).chain(SERVER_FNS_ADMIN).copied().collect();
    let mut out = vec![];
    for (path, _method) in leptos::server_fn::axum::server_fn_paths() {
        let last = path.rsplit('/').next().unwrap();
        let name = known
            .iter()
            .filter(|k| last.starts_with(**k))
            .max_by_key(|k| k.len())
            .unwrap_or_else(|| panic!("server function {path} is not classified in app::api::SERVER_FNS_*"));
        out.push((*name, path.to_string()));
    }
    out
}

fn body_for(name: &str) -> &'static str {
    match name {
        "get_service_logs" => "service=haproxy",
        "run_stack_action" => "verb=Restart&service=no-such-service",
        "run_node_action" => "node=no-such-service&verb=Drain",
        "set_replay_paused" => "replica=no-such-service&paused=true",
        "processor_action" => "processor=no-such-service&verb=start",
        "set_guarantee" => "processor=no-such-service&guarantee=exactly_once",
        "send_sample_events" => "events=0&malformed_every=0",
        "fire_test_alert" => "labels=no-such-service",
        "test_route" => "labels=a%3Db",
        "create_silence" => "matchers=a%3Db&duration=no-such-service&comment=",
        "expire_silence" => "id=no-such-service",
        "burst_test" => "requests=0",
        "start_demo" => "events=0&rate=0&malformed_every=0",
        "start_drill" => "name=no-such-service",
        "add_user" => "name=no-such-service&role=viewer&password=short",
        "update_user" => "name=no-such-service&verb=disable&value=",
        "revoke_session" => "id=no-such-service",
        _ => "",
    }
}

/// What an operator's call of a mutating function fails on, after passing the role check
/// (the bodies above are all invalid, so nothing happens).
fn operator_error(name: &str) -> &'static str {
    match name {
        "send_sample_events" => "between 1 and",
        "burst_test" => "a burst is 1 to",
        "start_demo" => "events must be between",
        "cancel_demo" => "no demo is running",
        "cancel_drill" => "no drill is running",
        // The test holds the verify lock, so a real run cannot start.
        "start_verify" => "in progress by",
        "add_user" => "at least 12 characters",
        _ => "no-such-service",
    }
}

#[tokio::test]
async fn every_server_function_is_refused_without_a_session() {
    let (_d, _s, app) = setup(true).await;
    // Building the router registers the app's server functions.
    let fns = server_fns();
    assert!(fns.len() >= SERVER_FNS_READ.len() + SERVER_FNS_MUTATING.len() + SERVER_FNS_ADMIN.len(), "registered: {fns:?}");
    for (name, path) in &fns {
        let (status, _, _) = send(&app, call(path, body_for(name), None, None)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name} without a session");
    }
    for path in ["/sse/stack", "/audit.jsonl"] {
        let (status, _, _) = send(&app, Request::get(path).header(header::HOST, HOST).body(Body::empty()).unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Pages send a browser to the sign-in page; the sign-in page itself is public.
    let (status, headers, _) = send(&app, Request::get("/services").header(header::HOST, HOST).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login");
}

#[tokio::test]
async fn mutating_functions_are_refused_for_a_viewer_accepted_for_an_operator_and_audited() {
    let (_d, services, app) = setup(true).await;
    let vera = login(&app, "vera").await;
    let otto = login(&app, "otto").await;
    let _no_verify_run = services.locks.acquire("verify", "verify", "the test").unwrap();
    for (name, path) in server_fns() {
        let origin = Some("http://127.0.0.1:3000");
        let (status, _, body) = send(&app, call(&path, body_for(name), Some(&vera), origin)).await;
        if SERVER_FNS_ADMIN.contains(&name) {
            // User administration: refused for a viewer and an operator, passed for an admin
            // (then refused as bad input or an unknown user).
            assert!(body.contains(r#""kind":"forbidden""#), "{name} as viewer: {status} {body}");
            let (_, _, body) = send(&app, call(&path, body_for(name), Some(&otto), origin)).await;
            assert!(body.contains(r#""kind":"forbidden""#), "{name} as operator: {body}");
            let ada = login(&app, "ada").await;
            let (status, _, body) = send(&app, call(&path, body_for(name), Some(&ada), origin)).await;
            assert!(status != StatusCode::UNAUTHORIZED && !body.contains(r#""kind":"forbidden""#), "{name} as admin: {status} {body}");
            if name != "get_users" {
                assert!(body.contains(operator_error(name)), "{name} as admin: {body}");
            }
        } else if SERVER_FNS_MUTATING.contains(&name) {
            assert!(body.contains(r#""kind":"forbidden""#), "{name} as viewer: {status} {body}");
            // Passes the role check for an operator (then fails on the unknown service).
            let (_, _, body) = send(&app, call(&path, body_for(name), Some(&otto), origin)).await;
            assert!(!body.contains("forbidden") && body.contains(operator_error(name)), "{name} as operator: {body}");
            // The error says what kind it is: a held lock is "busy", the rest bad input.
            let kind = match name {
                "start_verify" => "busy",
                // The test's server drives one engine: no swarm to act on.
                "run_node_action" => "unavailable",
                "run_stack_action" | "set_replay_paused" | "processor_action" | "set_guarantee" | "start_drill" => "not_found",
                _ => "invalid",
            };
            assert!(body.contains(&format!(r#""kind":"{kind}"#)), "{name} as operator: {body}");
        } else {
            // Readers may read everything: no role refusal (the call itself may fail, e.g.
            // logs of a container that does not exist, and the audit log may quote refusals).
            assert!(status != StatusCode::UNAUTHORIZED && !body.contains(r#""kind":"forbidden""#), "{name} as viewer: {status} {body}");
        }
    }
    let audit = services.store.audit_filtered(None, Some("service.restart"), 10).await.unwrap();
    let by = |u: &str| audit.iter().find(|e| e.actor == u).unwrap_or_else(|| panic!("no audit entry by {u}: {audit:?}")).clone();
    assert!(by("vera").result.contains("forbidden"));
    assert!(by("otto").result.contains("no-such-service"));
    assert_eq!(by("otto").target, "no-such-service");
}

#[tokio::test]
async fn cross_site_posts_are_refused_even_with_a_valid_session() {
    let (_d, _s, app) = setup(true).await;
    let otto = login(&app, "otto").await;
    let path = server_fns().into_iter().find(|(n, _)| *n == "run_stack_action").unwrap().1;
    let (status, _, body) = send(&app, call(&path, body_for("run_stack_action"), Some(&otto), Some("http://evil.example"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let mut req = call("/auth/logout", "", Some(&otto), None);
    req.headers_mut().insert("sec-fetch-site", "cross-site".parse().unwrap());
    assert_eq!(send(&app, req).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn expired_and_logged_out_sessions_are_refused() {
    let (_d, services, app) = setup(true).await;
    let whoami = server_fns().into_iter().find(|(n, _)| *n == "whoami").unwrap().1;
    let vera = login(&app, "vera").await;
    let (status, _, body) = send(&app, call(&whoami, "", Some(&vera), None)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("vera") && body.contains("viewer"), "{body}");
    services.auth.expire_sessions_of("vera").await.unwrap();
    assert_eq!(send(&app, call(&whoami, "", Some(&vera), None)).await.0, StatusCode::UNAUTHORIZED);

    let otto = login(&app, "otto").await;
    let (status, _, _) = send(&app, call("/auth/logout", "", Some(&otto), Some("http://127.0.0.1:3000"))).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(send(&app, call(&whoami, "", Some(&otto), None)).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_password_is_refused_and_audited() {
    let (_d, services, app) = setup(true).await;
    let req = Request::post("/auth/login")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("name=otto&password=nope"))
        .unwrap();
    let (status, headers, _) = send(&app, req).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/login?error=credentials", "a code in the URL, not text");
    assert!(headers.get(header::SET_COOKIE).is_none());
    let a = services.store.audit_filtered(Some("otto"), Some("auth.login"), 5).await.unwrap();
    assert!(a[0].result.starts_with("error"), "{a:?}");
    // The page words each code itself; text put in the URL by a link is not shown.
    let page = |q: &str| Request::get(format!("/login?{q}")).header(header::HOST, HOST).body(Body::empty()).unwrap();
    let (_, _, body) = send(&app, page("error=credentials")).await;
    assert!(body.contains("wrong user name or password"), "{body}");
    let (_, _, body) = send(&app, page("error=locked&retry=42")).await;
    assert!(body.contains("try again in 42 s"));
    let (_, _, body) = send(&app, page("error=Your+session+expired%2C+call+555-0100")).await;
    assert!(!body.contains("555-0100") && !body.contains("role=\"alert\""), "URL text reached the page");
}

#[tokio::test]
async fn pages_carry_security_headers_and_local_mode_is_the_local_admin() {
    let (_d, _s, app) = setup(false).await;
    let (status, headers, body) = send(&app, Request::get("/login").header(header::HOST, HOST).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("'nonce-"), "{csp}");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert!(body.contains("Local mode"), "banner on every page in local mode");
    // The header's nonce is the one that signs the page's inline scripts, on a page and on
    // the not-found page alike (else the browser blocks them and nothing hydrates); every
    // answer gets its own.
    let nonce_of = |csp: &str| csp.split("'nonce-").nth(1).and_then(|r| r.split('\'').next()).unwrap().to_string();
    let first = nonce_of(csp);
    assert!(body.contains(&format!("nonce=\"{first}\"")), "the page's scripts carry another nonce than its CSP");
    for path in ["/login", "/no-such-page"] {
        let (_, headers, body) = send(&app, Request::get(path).header(header::HOST, HOST).body(Body::empty()).unwrap()).await;
        let n = nonce_of(headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap());
        assert_ne!(n, first, "{path}: a nonce used twice");
        assert!(body.contains(&format!("nonce=\"{n}\"")), "{path}: the scripts' nonce differs from the CSP's");
    }
    let whoami = server_fns().into_iter().find(|(n, _)| *n == "whoami").unwrap().1;
    let (_, _, body) = send(&app, call(&whoami, "", None, None)).await;
    assert!(body.contains("\"local_mode\":true") && body.contains("admin"), "{body}");
}

/// Graceful shutdown must not wait for browsers: both SSE streams end when the server's
/// shutdown token is cancelled (before, /sse/stack lived as long as the supervisor).
#[tokio::test]
async fn sse_streams_end_at_shutdown() {
    let (_d, services, app) = setup(false).await;
    let mut bodies = vec![];
    for path in ["/sse/stack", "/sse/logs"] {
        let res = app.clone().oneshot(Request::get(path).header(header::HOST, HOST).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{path}");
        bodies.push((path, res.into_body()));
    }
    services.shutdown.cancel();
    for (path, body) in bodies {
        let ended = tokio::time::timeout(std::time::Duration::from_secs(10), axum::body::to_bytes(body, 1 << 20)).await;
        assert!(ended.is_ok(), "{path} outlived the shutdown");
    }
}

/// DNS rebinding: a page served as `rebind.example` that re-resolves to 127.0.0.1 sends
/// requests whose Host and Origin both name it, so the same-origin rule alone passes them.
/// Local mode answers only to loopback names: 421 for reads, exports, streams and actions.
#[tokio::test]
async fn a_rebound_host_name_cannot_drive_a_local_mode_panel() {
    let (_d, services, app) = setup(false).await;
    let evil = "rebind.example:3000";
    let get = |path: &str, host: &str| Request::get(path).header(header::HOST, host).body(Body::empty()).unwrap();
    for path in ["/audit.jsonl", "/sse/logs", "/services", "/api/customers"] {
        assert_eq!(send(&app, get(path, evil)).await.0, StatusCode::MISDIRECTED_REQUEST, "{path}");
    }
    // A health probe asks by any name or address (a container's HEALTHCHECK, a balancer).
    assert_eq!(send(&app, get("/healthz", evil)).await.0, StatusCode::OK);
    let path = server_fns().into_iter().find(|(n, _)| *n == "run_stack_action").unwrap().1;
    let mut req = call(&path, "verb=Down&service=", None, Some("http://rebind.example:3000"));
    req.headers_mut().insert(header::HOST, evil.parse().unwrap());
    let (status, _, body) = send(&app, req).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{body}");
    assert!(services.locks.running().is_empty(), "nothing started");
    // The loopback names still work.
    assert_eq!(send(&app, get("/audit.jsonl", "localhost:3000")).await.0, StatusCode::OK);
    assert_eq!(send(&app, get("/audit.jsonl", HOST)).await.0, StatusCode::OK);
}

/// Parallel guesses cannot beat the lockout (the attempt counts before the password is
/// checked), and an oversized user name is neither hashed nor written to the audit log.
#[tokio::test]
async fn parallel_guesses_hit_the_lockout_and_junk_names_stay_out_of_the_audit_log() {
    let (_d, services, app) = setup(true).await;
    let guess = |name: String| {
        let app = app.clone();
        async move {
            let req = Request::post("/auth/login")
                .header(header::HOST, HOST)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("name={name}&password=wrong-guess-123")))
                .unwrap();
            let (_, headers, _) = send(&app, req).await;
            headers[header::LOCATION].to_str().unwrap().to_string()
        }
    };
    let answers = futures_util::future::join_all((0..40).map(|_| guess("otto".into()))).await;
    let limited = answers.iter().filter(|l| l.contains("error=locked")).count();
    assert!(limited >= 35, "at most 5 of 40 parallel guesses may reach the password check: {limited} limited");
    // The right password is refused too while locked out.
    let req = Request::post("/auth/login")
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!("name=otto&password={}", PW.replace(' ', "+"))))
        .unwrap();
    assert!(send(&app, req).await.1[header::LOCATION].to_str().unwrap().contains("error=locked"));

    let junk = "x".repeat(100_000);
    guess(junk.clone()).await;
    let rows = services.store.audit_filtered(None, Some("auth.login"), 100).await.unwrap();
    assert!(rows.iter().all(|r| r.actor.len() <= 64 || r.actor.starts_with("(not a user name")), "junk reached the audit log");
    assert!(rows.iter().any(|r| r.actor == "(not a user name, 100000 bytes)"));
}

/// 300 parallel bad sign-ins (the guessing attack: one name, one address, each a spawned
/// request) while `/healthz` is asked every 10 ms: every probe is answered with 200 (a
/// liveness check, bounded at 5 s each; speed is `make bench`'s business) and the p50/p99
/// are printed for the record; the lockout turns away all but 5 guesses before any hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_300_bad_sign_ins_run() {
    let (_d, _services, app) = setup(true).await;
    let attack: Vec<_> = (0..300)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let req = Request::post("/auth/login")
                    .header(header::HOST, HOST)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body(Body::from(format!("name=otto&password=wrong-guess-{i}")))
                    .unwrap();
                send(&app, req).await.1[header::LOCATION].to_str().unwrap().to_string()
            })
        })
        .collect();
    let mut lat = vec![];
    while lat.len() < 20 || !attack.iter().all(|h| h.is_finished()) {
        let t = std::time::Instant::now();
        let req = Request::get("/healthz").header(header::HOST, HOST).body(Body::empty()).unwrap();
        let (status, _, _) = tokio::time::timeout(std::time::Duration::from_secs(5), send(&app, req)).await.expect("/healthz answered within 5 s");
        assert_eq!(status, StatusCode::OK);
        lat.push(t.elapsed().as_micros() as u64);
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let mut locked = 0;
    for h in attack {
        let loc = h.await.unwrap();
        assert!(loc.contains("error=credentials") || loc.contains("error=locked"), "{loc}");
        locked += usize::from(loc.contains("error=locked"));
    }
    assert!(locked >= 295, "at most 5 of 300 guesses may reach the password check: {locked} locked out");
    lat.sort_unstable();
    let q = |p: f64| lat[((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1] as f64 / 1000.0;
    println!("/healthz during 300 parallel bad sign-ins: {} probes, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {locked} of 300 guesses locked out", lat.len(), q(0.5), q(0.99), q(1.0));
}

/// Live streams are capped per user (16): the 17th gets 429, and a closed one frees its
/// place (the slot lives as long as the stream).
#[tokio::test]
async fn live_streams_are_capped_per_user_and_freed_when_closed() {
    let (_d, _services, app) = setup(false).await;
    let open = || async {
        let res = app.clone().oneshot(Request::get("/sse/stack").header(header::HOST, HOST).body(Body::empty()).unwrap()).await.unwrap();
        (res.status(), res.into_body())
    };
    let mut bodies = vec![];
    for i in 0..16 {
        let (status, body) = open().await;
        assert_eq!(status, StatusCode::OK, "stream {i}");
        bodies.push(body);
    }
    assert_eq!(open().await.0, StatusCode::TOO_MANY_REQUESTS);
    drop(bodies.pop());
    assert_eq!(open().await.0, StatusCode::OK, "a closed stream frees its place");
}

/// The audit log fails closed: when it cannot be written, a mutating action is refused
/// before it runs (here: starting a processor), and the refusal says why.
#[tokio::test]
async fn an_action_is_refused_when_the_audit_log_cannot_be_written() {
    let (_d, services, app) = setup(true).await;
    let otto = login(&app, "otto").await;
    let path = server_fns().into_iter().find(|(n, _)| *n == "processor_action").expect("processor_action is registered").1;
    let start = |who: &str| call(&path, "processor=bss-order-processor&verb=start", Some(who), Some("http://127.0.0.1:3000"));
    sqlx::query("CREATE TRIGGER audit_full BEFORE INSERT ON audit_log BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
        .execute(services.store.pool())
        .await
        .unwrap();
    let (_, _, body) = send(&app, start(&otto)).await;
    assert!(body.contains(r#""kind":"unavailable""#) && body.contains("audit log cannot be written"), "{body}");
    let state = |s: &Services| s.streams.view().processors.iter().find(|p| p.name == "bss-order-processor").unwrap().state.clone();
    assert_eq!(state(&services), "stopped", "the action ran without its audit record");

    // Writable again: the same call runs, with its "started" and result records.
    sqlx::query("DROP TRIGGER audit_full").execute(services.store.pool()).await.unwrap();
    let (_, _, body) = send(&app, start(&otto)).await;
    assert!(body.contains("start done"), "{body}");
    assert_ne!(state(&services), "stopped");
    let rows = services.store.audit_filtered(Some("otto"), Some("processor.start"), 10).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.result.as_str()).collect::<Vec<_>>(), ["ok", "started"], "{rows:?}");
    services.streams.stop_all().await;
}

/// `/audit.jsonl` is the whole log, oldest first, streamed a page (500 rows) at a time:
/// several pages of rows all arrive, in order, and the filters hold.
#[tokio::test]
async fn the_audit_export_streams_the_whole_log_in_order() {
    let (_d, services, app) = setup(true).await;
    let vera = login(&app, "vera").await;
    for i in 0..1_234 {
        services.store.audit(if i % 2 == 0 { "ann" } else { "bob" }, "test.export", &format!("row {i}"), "ok", serde_json::json!({})).await.unwrap();
    }
    let get = |path: &str| Request::get(path).header(header::HOST, HOST).header(header::COOKIE, vera.as_str()).body(Body::empty()).unwrap();
    let (status, headers, body) = send(&app, get("/audit.jsonl?action=test.export")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "application/x-ndjson");
    let rows: Vec<app::api::AuditEntry> = body.lines().map(|l| serde_json::from_str(l).expect("one JSON entry per line")).collect();
    assert_eq!(rows.len(), 1_234);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id), "oldest first");
    assert_eq!((rows[0].target.as_str(), rows[1_233].target.as_str()), ("row 0", "row 1233"));
    let (_, _, ann) = send(&app, get("/audit.jsonl?action=test.export&actor=ann")).await;
    assert_eq!(ann.lines().count(), 617);
    // Signed out: nothing.
    let anon = Request::get("/audit.jsonl").header(header::HOST, HOST).body(Body::empty()).unwrap();
    assert_eq!(send(&app, anon).await.0, StatusCode::UNAUTHORIZED);
}

/// An open live stream ends when its session does (here: the user signs out in another
/// tab), instead of streaming on to a signed-out browser.
#[tokio::test]
async fn live_streams_end_when_their_session_ends() {
    let (_d, _services, app) = setup(true).await;
    let otto = login(&app, "otto").await;
    let res = app.clone().oneshot(Request::get("/sse/stack").header(header::HOST, HOST).header(header::COOKIE, otto.as_str()).body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    use futures_util::StreamExt;
    let mut body = res.into_body().into_data_stream();
    async fn drain(body: &mut axum::body::BodyDataStream) {
        while body.next().await.is_some() {}
    }
    // Still open while the session lives (past one re-check).
    let open = tokio::time::timeout(std::time::Duration::from_secs(7), drain(&mut body)).await;
    assert!(open.is_err(), "the stream ended while its session was valid");
    let out = Request::post("/auth/logout").header(header::HOST, HOST).header(header::ORIGIN, format!("http://{HOST}")).header(header::COOKIE, otto.as_str()).body(Body::empty()).unwrap();
    send(&app, out).await;
    let ended = tokio::time::timeout(std::time::Duration::from_secs(12), drain(&mut body)).await;
    assert!(ended.is_ok(), "the stream outlived the sign-out");
}

/// Behind a trusted reverse proxy the lockout keys on the client it names in
/// `X-Forwarded-For` (one client locked out does not lock out everyone behind the proxy);
/// from an untrusted peer the header is ignored (it cannot be used to escape a lockout).
#[tokio::test]
async fn the_lockout_keys_on_the_client_a_trusted_proxy_names() {
    let attempt = |app: Router, xff: &'static str, password: &'static str| async move {
        let req = Request::post("/auth/login")
            .header(header::HOST, HOST)
            .header("x-forwarded-for", xff)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("name=otto&password={}", password.replace(' ', "+"))))
            .unwrap();
        let (_, headers, _) = send(&app, req).await;
        headers[header::LOCATION].to_str().unwrap().to_string()
    };
    // The test's peer is 127.0.0.1 (MockConnectInfo): trusted here.
    let (_d, _s, app) = setup_with(true, |c| c.server.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    for _ in 0..6 {
        attempt(app.clone(), "203.0.113.5", "wrong-guess-123").await;
    }
    assert!(attempt(app.clone(), "203.0.113.5", PW).await.contains("error=locked"), "the guessing client is locked out");
    assert_eq!(attempt(app.clone(), "203.0.113.9", PW).await, "/", "another client behind the same proxy signs in");

    // Untrusted peer: a new X-Forwarded-For per attempt does not reset the lockout.
    let (_d, _s, app) = setup(true).await;
    for xff in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4", "203.0.113.5", "203.0.113.6"] {
        attempt(app.clone(), xff, "wrong-guess-123").await;
    }
    assert!(attempt(app.clone(), "203.0.113.7", PW).await.contains("error=locked"), "a forged header escaped the lockout");
}

/// User administration from the Users page, through the real router as an admin: add,
/// change role, end a session, disable and enable, reset a password; the last admin cannot
/// be demoted; every change audited, never with a password.
#[tokio::test]
async fn an_admin_administers_users_and_every_change_is_audited() {
    let (_d, services, app) = setup(true).await;
    let ada = login(&app, "ada").await;
    let fns = server_fns();
    let path = |n: &str| fns.iter().find(|(name, _)| *name == n).unwrap().1.clone();
    let origin = Some("http://127.0.0.1:3000");
    let act = |n: &'static str, body: String, who: String| {
        let (app, p) = (app.clone(), path(n));
        async move { send(&app, call(&p, &body, Some(&who), origin)).await.2 }
    };
    let try_login = |pw: &'static str| {
        let app = app.clone();
        async move {
            let req = Request::post("/auth/login")
                .header(header::HOST, HOST)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!("name=una&password={}", pw.replace(' ', "+"))))
                .unwrap();
            let (_, headers, _) = send(&app, req).await;
            let cookie = headers.get(header::SET_COOKIE).map(|c| c.to_str().unwrap().split(';').next().unwrap().to_string());
            (headers[header::LOCATION].to_str().unwrap().to_string(), cookie)
        }
    };
    let whoami = |cookie: String| {
        let p = path("whoami");
        let app = app.clone();
        async move { send(&app, call(&p, "", Some(&cookie), origin)).await }
    };

    let r = act("add_user", format!("name=una&role=viewer&password={}", PW.replace(' ', "+")), ada.clone()).await;
    assert!(r.contains("user una added as viewer"), "{r}");
    let (_, una) = try_login(PW).await;
    let una = una.expect("una signs in");
    let users: Vec<app::api::UserRow> = serde_json::from_str(&act("get_users", String::new(), ada.clone()).await).unwrap();
    let row = users.iter().find(|u| u.name == "una").unwrap();
    assert_eq!((row.role, row.disabled, row.sessions.len()), (Role::Viewer, false, 1));

    let r = act("update_user", "name=una&verb=role&value=operator".into(), ada.clone()).await;
    assert!(r.contains("una is now operator"), "{r}");
    assert!(whoami(una.clone()).await.2.contains("\"role\":\"operator\""), "the new role applies to the open session");

    let r = act("revoke_session", format!("id={}", row.sessions[0].id), ada.clone()).await;
    assert!(r.contains("of una ended"), "{r}");
    assert_eq!(whoami(una.clone()).await.0, StatusCode::UNAUTHORIZED, "the ended session still works");

    let (_, una) = try_login(PW).await;
    let r = act("update_user", "name=una&verb=disable&value=".into(), ada.clone()).await;
    assert!(r.contains("una disabled"), "{r}");
    assert_eq!(whoami(una.unwrap()).await.0, StatusCode::UNAUTHORIZED, "disabling ends the sessions");
    assert_eq!(try_login(PW).await.0, "/login?error=credentials", "a disabled user cannot sign in");
    act("update_user", "name=una&verb=enable&value=".into(), ada.clone()).await;
    let (_, una) = try_login(PW).await;
    assert!(una.is_some(), "enabled again");

    let r = act("update_user", "name=una&verb=password&value=another+long+passphrase".into(), ada.clone()).await;
    assert!(r.contains("password of una reset"), "{r}");
    assert_eq!(whoami(una.unwrap()).await.0, StatusCode::UNAUTHORIZED, "a reset ends the sessions");
    assert_eq!(try_login(PW).await.0, "/login?error=credentials");
    assert!(try_login("another long passphrase").await.1.is_some());

    // The only admin cannot demote or disable herself; bad input changes nothing.
    let r = act("update_user", "name=ada&verb=role&value=viewer".into(), ada.clone()).await;
    assert!(r.contains("last active admin"), "{r}");
    let r = act("update_user", "name=ada&verb=disable&value=".into(), ada.clone()).await;
    assert!(r.contains("last active admin"), "{r}");
    let r = act("update_user", "name=una&verb=role&value=root".into(), ada.clone()).await;
    assert!(r.contains("\"kind\":\"invalid\""), "{r}");
    assert!(act("revoke_session", "id=zz".into(), ada.clone()).await.contains("\"kind\":\"not_found\""));
    assert!(whoami(ada.clone()).await.2.contains("\"role\":\"admin\""));

    let audit = services.store.audit_filtered(Some("ada"), Some("user."), 100).await.unwrap();
    for action in ["user.add", "user.role", "user.session_end", "user.disable", "user.enable", "user.password"] {
        assert!(audit.iter().any(|e| e.action == action && e.result == "ok"), "{action} not audited: {audit:?}");
    }
    let all = serde_json::to_string(&services.store.audit_filtered(None, None, 1000).await.unwrap()).unwrap();
    assert!(!all.contains("another long passphrase") && !all.contains("another+long"), "a password reached the audit log");
}

/// The `envoy-upstream-fail` drill's fault, on the container-facing listener itself: the
/// BSS API answers the drill's 503 while it is in (after the sign-in gate: a caller without
/// a session still gets 401), `/healthz` keeps answering 200 (Envoy keeps the host), and a
/// process that does not serve the listener refuses to apply it.
#[tokio::test]
async fn the_upstream_fault_fails_the_api_and_not_the_health_check() {
    let (_d, services, app) = setup(true).await;
    let up = &services.gateway.upstream;
    assert!(up.fail().unwrap_err().to_string().contains("does not serve the container-facing listener"));
    assert!(!up.failing());
    let as_peer = |peer| {
        server::web::stack_router(services.clone(), "127.0.0.1".parse().unwrap())
            .layer(MockConnectInfo(server::web::StackPeer { addr: SocketAddr::from(([172, 17, 0, 5], 40000)), peer }))
    };
    let stack = as_peer(server::pki::Peer::Envoy);
    let otto = login(&app, "otto").await;
    let get = |path: &str, cookie: Option<&str>| {
        let mut b = Request::get(path).header(header::HOST, "host.docker.internal:3001");
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, c);
        }
        b.body(Body::empty()).unwrap()
    };
    let drill = "fault drill (envoy-upstream-fail)";
    // No stack here: the API answers 503 of its own (no database), never the drill's.
    assert!(!send(&stack, get("/api/customers?limit=1", Some(&otto))).await.2.contains(drill));

    up.set_serving(true);
    up.fail().unwrap();
    let (status, _, body) = send(&stack, get("/api/customers?limit=1", Some(&otto))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains(drill), "{body}");
    assert_eq!(send(&stack, get("/api/orders/7", Some(&otto))).await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(send(&stack, get("/api/customers", None)).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(send(&stack, get("/healthz", None)).await.0, StatusCode::OK);
    // The panel's own listener is not Envoy's upstream: its API is untouched.
    let panel = Request::get("/api/customers?limit=1").header(header::HOST, HOST).header(header::COOKIE, &otto).body(Body::empty()).unwrap();
    assert!(!send(&app, panel).await.2.contains(drill));

    up.heal();
    assert!(!send(&stack, get("/api/customers?limit=1", Some(&otto))).await.2.contains(drill));

    // Who may call what is the client certificate's: Prometheus' scrapes and checks health,
    // and nothing else, whatever session it carries; a request with no peer is refused.
    let prometheus = as_peer(server::pki::Peer::Prometheus);
    assert_eq!(send(&prometheus, get("/healthz", None)).await.0, StatusCode::OK);
    let (status, _, body) = send(&prometheus, get("/api/customers?limit=1", Some(&otto))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("Prometheus"), "{body}");
    let anonymous = server::web::stack_router(services.clone(), "127.0.0.1".parse().unwrap());
    assert_eq!(send(&anonymous, get("/healthz", None)).await.0, StatusCode::FORBIDDEN);
}
