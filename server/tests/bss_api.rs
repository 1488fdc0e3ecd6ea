//! The BSS API (`/api/customers`, `/api/orders`) through the real HTTP router, the
//! read/write router and the stack's PostgreSQL and Kafka: writes on the primary with the
//! CloudEvent published through the outbox, read-your-writes from a replica, bad input
//! refused with nothing written, an Idempotency-Key retry answered with the first row, and
//! a write made while the event bus is down kept with its event, delivered once the bus is
//! back. `#[ignore]`d; run by `make test`.
mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

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
    let root = common::repo_root();
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
    let metrics = server::metrics::render(|r| server::metrics::register_outbox(r, &_svc2.outbox));
    let oldest = metrics.lines().find_map(|l| l.strip_prefix("bss_outbox_oldest_pending_seconds ")).and_then(|v| v.parse::<f64>().ok());
    assert!(oldest.is_some_and(|s| s > 0.0), "{metrics}");
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

/// Outbox rows (pending or not) whose event mentions `marker`.
async fn outbox_rows(marker: &str) -> (i64, i64) {
    let mut c = common::pg_primary().await;
    sqlx::query_as("SELECT count(*), count(*) FILTER (WHERE published_at IS NULL) FROM outbox WHERE convert_from(payload, 'UTF8') LIKE '%' || $1 || '%'")
        .bind(marker)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

/// CloudEvent ids on the customer topic whose payload mentions `marker`, read until `want`
/// distinct ones arrived (or `secs`), then 3 s more for any extra.
async fn events_with(obs: &rdkafka::consumer::StreamConsumer, marker: &str, want: usize, secs: u64) -> Vec<String> {
    let mut ids = vec![];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        let now = tokio::time::Instant::now();
        if now > deadline || quiet_until.is_some_and(|q| now > q) {
            return ids;
        }
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(500), obs.recv()).await {
            let payload = m.payload().unwrap_or_default();
            if String::from_utf8_lossy(payload).contains(marker) {
                ids.push(server::streams::events::CloudEvent::parse(payload).unwrap().id);
            }
        }
        if quiet_until.is_none() && ids.iter().collect::<std::collections::HashSet<_>>().len() >= want {
            quiet_until = Some(tokio::time::Instant::now() + Duration::from_secs(3));
        }
    }
}

/// The outbox's promises under failure: 500 creates while the bus is down all commit and
/// later publish exactly 500 events (no more); a write whose commit fails after the insert
/// publishes nothing; one Idempotency-Key, one row and one event.
#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn the_outbox_publishes_each_committed_write_once_and_nothing_else() {
    common::stack_supervisor().up().await.expect("stack up");
    let run = format!("ob{}", server::streams::events::now_ms());
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A control plane whose bus is unreachable (its relay would fail; it is not run), and
    // one that reaches it.
    let (_down, app_down) = make_app(d1.path(), Some("127.0.0.1:1")).await;
    let (up, app_up) = make_app(d2.path(), None).await;
    let obs = server::streams::observer(&up.config.streams.brokers, &[server::streams::events::CUSTOMER_TOPIC], &format!("{run}-obs")).await.unwrap();

    let marker = format!("@{run}.outage.example");
    for i in 0..500 {
        let body = serde_json::json!({"name": format!("Outage {i}"), "email": format!("c{i}{marker}"), "plan": "mobile-s"});
        let (st, _, c) = send(&app_down, Method::POST, "/api/customers", Some(body), None).await;
        assert_eq!(st, StatusCode::CREATED, "{c}");
    }
    assert_eq!(outbox_rows(&marker).await, (500, 500), "500 writes committed, their events waiting");
    // The bus is back: the relay of the control plane that reaches it drains the backlog.
    wait_until!("the backlog published", 120, {
        let _ = up.outbox.relay_once(&up.db, &up.streams).await;
        outbox_rows(&marker).await.1 == 0
    });
    let ids = events_with(&obs, &marker, 500, 60).await;
    let distinct: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!((ids.len(), distinct.len()), (500, 500), "each write's event once, and nothing else");

    // A commit that fails after the insert (a deferred constraint): no row, no event.
    let mut c = common::pg_primary().await;
    for sql in [
        "CREATE OR REPLACE FUNCTION bss_test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = 'refuse-at-commit' THEN RAISE EXCEPTION 'refused at commit'; END IF; RETURN NEW; END $$",
        "DROP TRIGGER IF EXISTS bss_test_refuse_at_commit ON customers",
        "CREATE CONSTRAINT TRIGGER bss_test_refuse_at_commit AFTER INSERT ON customers DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION bss_test_refuse_at_commit()",
    ] {
        sqlx::query(sql).execute(&mut c).await.unwrap();
    }
    let doomed = format!("doomed{marker}");
    let (st, _, e) = send(&app_up, Method::POST, "/api/customers", Some(serde_json::json!({"name": "refuse-at-commit", "email": doomed, "plan": "x"})), None).await;
    sqlx::query("DROP TRIGGER bss_test_refuse_at_commit ON customers").execute(&mut c).await.unwrap();
    assert!(st.is_server_error(), "a failed commit is not a success: {st} {e}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM customers WHERE email = $1").bind(&doomed).fetch_one(&mut c).await.unwrap();
    assert_eq!((rows, outbox_rows(&doomed).await.0), (0, 0), "nothing of the failed write remains");
    let _ = up.outbox.relay_once(&up.db, &up.streams).await;
    assert!(events_with(&obs, &doomed, 1, 8).await.is_empty(), "an event went out for a write that did not commit");

    // One Idempotency-Key: one row, one event.
    let once = format!("once{marker}");
    let key = format!("{run}-key");
    for _ in 0..3 {
        let body = serde_json::json!({"name": "Once", "email": once, "plan": "x"});
        let (st, _, c) = send_with(&app_up, Method::POST, "/api/customers", Some(body), &[("idempotency-key", Some(&key))]).await;
        assert!(st == StatusCode::CREATED || st == StatusCode::OK, "{st} {c}");
    }
    let _ = up.outbox.relay_once(&up.db, &up.streams).await;
    assert_eq!(outbox_rows(&once).await.0, 1);
    assert_eq!(events_with(&obs, &once, 1, 30).await.len(), 1);
}
