//! The seed's traffic path, end to end on the real stack: a client on loopback → Envoy's
//! proxy (15006: rate limit, retries, circuit breakers) → the control plane's
//! container-facing listener (host-gateway:3001) → the read/write router and PostgreSQL,
//! with each write's CloudEvent published to Kafka through the outbox. Also: the
//! container-facing listener serves the API and nothing of the panel, Envoy's upstream is
//! healthy, Prometheus scrapes the control plane there, a burst gets 429, and a dead
//! upstream makes Envoy retry (its counter moves). `#[ignore]`d; run by `make test`.
mod common;

use std::time::Duration;

use rdkafka::message::Message;
use server::state::Services;

const PROXY: &str = "http://127.0.0.1:15006";

/// Envoy's view of its `control_plane` upstream: (address, health).
async fn upstream(svc: &Services) -> Vec<(String, String)> {
    svc.gateway.view().await.hosts_of("control_plane").cloned().collect()
}

#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn the_bss_api_through_envoy() {
    common::stack_supervisor().up().await.expect("stack up");
    let dir = tempfile::tempdir().unwrap();
    let svc = common::container_facing_services(dir.path()).await;
    svc.spawn_background();
    let listener = tokio::spawn(server::web::serve_stack_listener(svc.clone()));
    let gw = svc.runtime.host_gateway().await.expect("the engine names its host-gateway address");
    // Mutual TLS: the stack's certificates (made by `up`); the listener is reached by the
    // name its certificate carries.
    let pki = server::pki::Pki::for_config(&svc.config);
    let at = std::net::SocketAddr::new(gw, 3001);
    let direct = format!("https://{}:3001", server::pki::SERVER_NAME);
    let probe = pki.http_client(Some(server::pki::PROBE), at, Duration::from_secs(20)).unwrap();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    wait_until!("the container-facing listener answers", 30, probe.get(format!("{direct}/healthz")).send().await.is_ok_and(|r| r.status().is_success()));

    // Only the API side of the product is served there: no pages, server functions or exports.
    for path in ["/", "/login", "/api/whoami", "/audit.jsonl", "/sse/stack"] {
        let r = probe.get(format!("{direct}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path} must not be served to containers");
    }
    // A name the stack does not use (a DNS-rebinding page) is refused.
    let r = probe.get(format!("{direct}/api/customers")).header("host", "rebind.example:3001").send().await.unwrap();
    assert_eq!(r.status(), 421);
    // No certificate, one made by someone else, or plain HTTP: no answer at all (the
    // handshake is refused). Prometheus' certificate scrapes and may not call the API.
    let none = pki.http_client(None, at, Duration::from_secs(5)).unwrap();
    let stranger = pki.http_client_with(pki.stranger_client_config().unwrap(), at, Duration::from_secs(5)).unwrap();
    for (who, client, url) in [("none", &none, format!("{direct}/healthz")), ("stranger", &stranger, format!("{direct}/healthz")), ("plain", &http, format!("http://{at}/healthz"))] {
        let r = client.get(&url).send().await;
        assert!(r.is_err(), "{who}: the listener answered {:?}", r.map(|r| r.status()));
    }
    let prometheus = pki.http_client(Some(server::pki::PROMETHEUS), at, Duration::from_secs(5)).unwrap();
    assert_eq!(prometheus.get(format!("{direct}/metrics")).send().await.unwrap().status(), 200);
    assert_eq!(prometheus.get(format!("{direct}/api/customers?limit=1")).send().await.unwrap().status(), 403);

    // Envoy health-checks its upstream every 5 s: healthy within a few rounds.
    wait_until!("Envoy's control_plane upstream healthy", 60, upstream(&svc).await.iter().any(|(_, h)| h == "HEALTHY"));
    println!("Envoy upstream: {:?}", upstream(&svc).await);

    wait_until!("replicas admitted", 30, {
        svc.db.check_once().await;
        svc.db.status().replicas.iter().all(|r| r.admission == app::api::Admission::In)
    });
    let obs = server::streams::observer(&svc.config.streams.brokers, &[server::streams::events::CUSTOMER_TOPIC, server::streams::events::ORDER_TOPIC], "traffic-test")
        .await
        .unwrap();

    // Write through Envoy: the row on the primary, its LSN back; read it back through Envoy
    // from a replica (read-your-writes).
    let r = http
        .post(format!("{PROXY}/api/customers"))
        .json(&serde_json::json!({"name": "Envoy Client", "email": "envoy@example.com", "plan": "mobile-l"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
    let lsn = r.headers()["x-bss-lsn"].to_str().unwrap().to_string();
    let c: serde_json::Value = r.json().await.unwrap();
    let id = c["id"].as_i64().unwrap();
    let r = http.get(format!("{PROXY}/api/customers/{id}")).header("x-bss-read-after", &lsn).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let backend = r.headers()["x-bss-backend"].to_str().unwrap().to_string();
    assert_eq!(r.json::<serde_json::Value>().await.unwrap(), c);
    let mut conn = common::pg_primary().await;
    let on_primary: i64 = sqlx::query_scalar("SELECT count(*) FROM customers WHERE id = $1").bind(id).fetch_one(&mut conn).await.unwrap();
    assert_eq!(on_primary, 1);
    let r = http
        .post(format!("{PROXY}/api/orders"))
        .json(&serde_json::json!({"customer_id": id, "items": [{"sku": "SIM-5G", "qty": 1, "unit_price": 9.99}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let order: serde_json::Value = r.json().await.unwrap();
    println!("customer {id} and order {} written through Envoy; read back from {backend}", order["id"]);

    // Both CloudEvents reach Kafka (the outbox relay runs in spawn_background).
    let want = [format!("api-customer-{id}"), format!("api-order-{}", order["id"])];
    let mut seen = std::collections::BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), obs.recv()).await {
            if let Ok(ev) = server::streams::events::CloudEvent::parse(m.payload().unwrap_or_default()) {
                if want.contains(&ev.id) {
                    seen.insert(ev.ty);
                }
            }
        }
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["bss.customer.created", "bss.order.placed"]);

    // Prometheus scrapes the control plane on the same listener.
    wait_until!("Prometheus has the bss-control target up", 60, svc.prometheus.targets().await.is_ok_and(|t| t.iter().any(|t| t.job == "bss-control" && t.health == "up")));

    // The rate limit (burst 10) holds in front of the API: 30 at once, most refused.
    let reqs = (0..30).map(|_| {
        let http = http.clone();
        async move { http.get(format!("{PROXY}/api/customers?limit=1")).send().await.map(|r| r.status().as_u16()) }
    });
    let codes: Vec<u16> = futures_util::future::join_all(reqs).await.into_iter().map(|c| c.unwrap_or(0)).collect();
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(limited >= 15 && codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
    println!("burst of 30 through Envoy: {} passed, {limited} limited", codes.iter().filter(|c| **c == 200).count());

    // The upstream gone: Envoy retries (connect-failure, ×3) before it answers 503.
    svc.shutdown.cancel();
    let _ = listener.await;
    tokio::time::sleep(Duration::from_millis(700)).await; // one token back in the bucket
    let before = svc.gateway.counter("cluster.control_plane.upstream_rq_retry").await.unwrap();
    let r = http.get(format!("{PROXY}/api/customers?limit=1")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let after = svc.gateway.counter("cluster.control_plane.upstream_rq_retry").await.unwrap();
    assert!(after > before, "Envoy's retry counter did not move ({before} → {after})");
    println!("upstream down: 503 after {} retries", after - before);
}
