//! The BSS API (`/api/customers`, `/api/orders`) through the real HTTP router, the
//! read/write router and the stack's PostgreSQL and Kafka: writes on the primary with the
//! CloudEvent published through the outbox, read-your-writes from a replica, bad input
//! refused with nothing written, an Idempotency-Key retry answered with the first row, and
//! a write made while the event bus is down kept with its event, delivered once the bus is
//! back. `#[ignore]`d; run by `make test`.
mod common;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use axum::{
    body::Body,
    extract::connect_info::MockConnectInfo,
    http::{header, Method, Request, StatusCode},
    Router,
};
use rdkafka::message::Message;
use server::{config::Config, runtime::Runtime, state::Services, store::Store};
use tower::ServiceExt;

async fn make_app(dir: &std::path::Path, brokers: Option<&str>) -> (Arc<Services>, Router) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut config = Config::default();
    config.stack.compose = vec![root.join("dev/compose.yml"), root.join("dev/compose.offline.yml")];
    config.store.path = dir.join("state.db");
    if let Some(b) = brokers {
        config.streams.brokers = b.into();
    }
    let store = Store::open(&config.store.path).await.unwrap();
    let svc = Services::new(config, Runtime::new(std::env::var("DOCKER_HOST").ok().as_deref()), store);
    let app = server::web::router(svc.clone()).layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    (svc, app)
}

async fn send(app: &Router, method: Method, path: &str, body: Option<serde_json::Value>, after: Option<&str>) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    send_with(app, method, path, body, &[("x-bss-read-after", after)]).await
}

async fn send_with(
    app: &Router,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
    headers: &[(&str, Option<&str>)],
) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
    let mut b = Request::builder().method(method).uri(path).header(header::HOST, "127.0.0.1:3000").header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        if let Some(v) = v {
            b = b.header(*k, *v);
        }
    }
    let req = b.body(body.map(|v| Body::from(v.to_string())).unwrap_or_else(Body::empty)).unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.unwrap();
    (status, headers, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
}

async fn count(table: &str) -> i64 {
    let mut c = common::pg_primary().await;
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table}")).fetch_one(&mut c).await.unwrap()
}

#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn bss_api_through_the_router() {
    common::stack_supervisor().up().await.expect("stack up");
    let dir = tempfile::tempdir().unwrap();
    let (svc, app) = make_app(dir.path(), None).await;
    // The outbox relay, as `serve` runs it.
    let relay = tokio_util::sync::CancellationToken::new();
    let relay_task = tokio::spawn(svc.outbox.clone().run(svc.db.clone(), svc.streams.clone(), relay.clone()));
    wait_until!("replicas admitted", 30, {
        svc.db.check_once().await;
        svc.db.status().replicas.iter().all(|r| r.admission == app::api::Admission::In)
    });
    let obs = server::streams::observer(&svc.config.streams.brokers, &[server::streams::events::CUSTOMER_TOPIC, server::streams::events::ORDER_TOPIC], "bss-api-test")
        .await
        .unwrap();

    // Create → 201 with the LSN; read it back at once from a replica (read-your-writes).
    let (st, h, c) = send(&app, Method::POST, "/api/customers", Some(serde_json::json!({"name": "Ada", "email": "ada@example.com", "plan": "mobile-m"})), None).await;
    assert_eq!(st, StatusCode::CREATED, "{c}");
    let id = c["id"].as_i64().unwrap();
    let lsn = h["x-bss-lsn"].to_str().unwrap().to_string();
    let (st, h, got) = send(&app, Method::GET, &format!("/api/customers/{id}"), None, Some(&lsn)).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(got, c, "read-your-writes returns the row just written");
    println!("customer {id} read back from {}", h["x-bss-backend"].to_str().unwrap());

    let (st, h, o) = send(&app, Method::POST, "/api/orders", Some(serde_json::json!({"customer_id": id, "items": [{"sku": "SIM-5G", "qty": 2, "unit_price": 9.99}, {"sku": "ROAM", "qty": 1, "unit_price": 5}]})), None).await;
    assert_eq!(st, StatusCode::CREATED, "{o}");
    assert_eq!(o["total"], 24.98);
    let (st, _, list) = send(&app, Method::GET, &format!("/api/orders?customer_id={id}"), None, Some(h["x-bss-lsn"].to_str().unwrap())).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);

    // Reads without a token go to the replicas.
    let mut backends = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (st, h, _) = send(&app, Method::GET, "/api/customers?limit=5", None, None).await;
        assert_eq!(st, StatusCode::OK);
        backends.insert(h["x-bss-backend"].to_str().unwrap().to_string());
    }
    assert!(backends.iter().all(|b| b.starts_with("postgres-replica")), "{backends:?}");

    // Both writes published their CloudEvents.
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), obs.recv()).await {
            let ev = server::streams::events::CloudEvent::parse(m.payload().unwrap()).unwrap();
            if ev.id == format!("api-customer-{id}") || ev.id == format!("api-order-{}", o["id"]) {
                seen.insert(ev.ty);
            }
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["bss.customer.created", "bss.order.placed"]);

    // Bad input: a clear 422, nothing written.
    let before = (count("customers").await, count("orders").await);
    let (st, _, e) = send(&app, Method::POST, "/api/customers", Some(serde_json::json!({"name": "Bob", "email": "not-an-address", "plan": "x"})), None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(e["error"].as_str().unwrap().contains("not-an-address"), "{e}");
    let (st, _, e) = send(&app, Method::POST, "/api/orders", Some(serde_json::json!({"customer_id": id, "items": [{"sku": "X", "qty": 0, "unit_price": 1}]})), None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    let (st, _, e) = send(&app, Method::POST, "/api/orders", Some(serde_json::json!({"customer_id": -5, "items": [{"sku": "X", "qty": 1, "unit_price": 1}]})), None).await;
    assert!(st == StatusCode::UNPROCESSABLE_ENTITY && e["error"].as_str().unwrap().contains("does not exist"), "{e}");
    let (st, _, _) = send(&app, Method::POST, "/api/customers", Some(serde_json::json!({"name": "Bob", "extra": 1})), None).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    let (st, _, _) = send(&app, Method::GET, "/api/customers/999999999", None, None).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _, _) = send(&app, Method::GET, "/api/customers/1", None, Some("garbage")).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY);
    // An LSN no write returned (far ahead of the primary) is refused at once instead of
    // making the read poll the replicas for 2 s.
    let t = std::time::Instant::now();
    let (st, _, e) = send(&app, Method::GET, &format!("/api/customers/{id}"), None, Some("FFFF/0")).await;
    assert!(st == StatusCode::UNPROCESSABLE_ENTITY && e["error"].as_str().unwrap().contains("ahead of the primary"), "{st} {e}");
    assert!(t.elapsed() < Duration::from_millis(1500), "refused without waiting: {:?}", t.elapsed());
    assert_eq!((count("customers").await, count("orders").await), before);

    // A retried POST with the same Idempotency-Key gets the first row (200, replayed), and
    // nothing is written twice; the key cannot be reused for an order.
    let key = format!("retry-{}", server::clock::now_ms());
    let ida = serde_json::json!({"name": "Ida", "email": "ida@example.com", "plan": "x"});
    let (st, _, first) = send_with(&app, Method::POST, "/api/customers", Some(ida.clone()), &[("idempotency-key", Some(&key))]).await;
    assert_eq!(st, StatusCode::CREATED, "{first}");
    let n = count("customers").await;
    let (st, h, again) = send_with(&app, Method::POST, "/api/customers", Some(ida), &[("idempotency-key", Some(&key))]).await;
    assert_eq!(st, StatusCode::OK, "{again}");
    assert_eq!(again, first);
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(count("customers").await, n, "a retry wrote a second row");
    let order = serde_json::json!({"customer_id": id, "items": [{"sku": "X", "qty": 1, "unit_price": 1}]});
    let (st, _, e) = send_with(&app, Method::POST, "/api/orders", Some(order), &[("idempotency-key", Some(&key))]).await;
    assert!(st == StatusCode::UNPROCESSABLE_ENTITY && e["error"].as_str().unwrap().contains("was used for a customer"), "{st} {e}");

    // The event bus down (a control plane whose brokers do not answer, its relay not yet
    // run): the write commits with its event in the outbox, nothing is lost.
    relay.cancel();
    relay_task.await.unwrap();
    let dir2 = tempfile::tempdir().unwrap();
    let (_svc2, app2) = make_app(dir2.path(), Some("127.0.0.1:1")).await;
    let (st, _, eve) = send(&app2, Method::POST, "/api/customers", Some(serde_json::json!({"name": "Eve", "email": "eve@example.com", "plan": "x"})), None).await;
    assert_eq!(st, StatusCode::CREATED, "{eve}");
    let eve_event = format!("api-customer-{}", eve["id"]);
    let pending = || async {
        let mut c = common::pg_primary().await;
        sqlx::query_scalar::<_, bool>("SELECT published_at IS NULL FROM outbox WHERE convert_from(payload, 'UTF8') LIKE '%' || $1 || '\"%'")
            .bind(&eve_event)
            .fetch_one(&mut c)
            .await
            .unwrap()
    };
    assert!(pending().await, "the event waits in the outbox");
    // The backlog the Database page and /metrics show: at least Eve's event, with an age.
    let backlog = _svc2.outbox.backlog(&_svc2.db).await.expect("backlog");
    assert!(backlog.pending >= 1 && backlog.oldest.is_some(), "{backlog:?}");
    let metrics = server::metrics::render_outbox(&_svc2.outbox);
    assert!(metrics.lines().any(|l| l.starts_with("bss_outbox_oldest_pending_seconds ") && !l.ends_with(" 0")), "{metrics}");
    // The bus is back (the relay of a control plane that reaches it): delivered, marked.
    let published = svc.outbox.relay_once(&svc.db, &svc.streams).await.expect("relay");
    assert!(published >= 1);
    assert!(!pending().await, "the relay marked it published");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut delivered = false;
    while !delivered && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), obs.recv()).await {
            delivered = server::streams::events::CloudEvent::parse(m.payload().unwrap()).is_ok_and(|ev| ev.id == eve_event);
        }
    }
    assert!(delivered, "{eve_event} never reached Kafka");
}
