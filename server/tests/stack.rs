//! The whole Phase 3 stack, provisioned by the supervisor from dev/compose.yml +
//! dev/compose.offline.yml on the real engine, then checked through each service's own
//! protocol. Needs the offline images (dev/images/build.sh) and the fixed ports free, so it
//! is `#[ignore]`d by default; `make test` runs it with `--ignored` after building them.
mod common;

use std::{process::Command, time::Duration};

use common::PROJECT;
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection, PgConnection, Row};

async fn pg(port: u16) -> PgConnection {
    let opts = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .password("bss-dev-postgres")
        .database("bss")
        .disable_statement_logging();
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect_with(&opts))
        .await
        .expect("connect timeout")
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"))
}

async fn streaming_replicas(primary: &mut PgConnection) -> Vec<String> {
    sqlx::query("SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' ORDER BY 1")
        .fetch_all(primary)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect()
}

#[tokio::test]
#[ignore = "needs the offline images and the stack's ports; run by `make test`"]
async fn phase3_stack_provisions_heals_and_tears_down() {
    let sup = common::stack_supervisor();
    sup.up().await.expect("stack comes up");

    // Every service healthy (one-shots finished with 0).
    for s in sup.status().await.unwrap() {
        assert_eq!(s.level(), "ok", "{} is {} / {} (exit {:?})", s.service, s.state, s.health, s.exit_code);
    }

    // Replication: two streaming standbys with slots, and a write reaches both.
    let mut primary = pg(5432).await;
    wait_until!("2 streaming replicas", 60, streaming_replicas(&mut primary).await.len() == 2);
    let slots: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE active")
        .fetch_one(&mut primary)
        .await
        .unwrap();
    assert_eq!(slots, 2, "both replication slots active");
    let marker = format!("m{}", std::process::id());
    sqlx::query("CREATE TABLE IF NOT EXISTS stack_test (marker text)").execute(&mut primary).await.unwrap();
    sqlx::query("INSERT INTO stack_test VALUES ($1)").bind(&marker).execute(&mut primary).await.unwrap();
    for port in [5433, 5434] {
        let mut r = pg(port).await;
        let in_recovery: bool = sqlx::query_scalar("SELECT pg_is_in_recovery()").fetch_one(&mut r).await.unwrap();
        assert!(in_recovery, "replica on {port} is a standby");
        wait_until!(
            format!("the write on replica {port}"),
            10,
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM stack_test WHERE marker = $1")
                .bind(&marker)
                .fetch_one(&mut r)
                .await
                .map(|n| n == 1)
                .unwrap_or(false)
        );
    }

    // HAProxy's read pool: only standbys, round-robin over both. A replica restarted just
    // before (by an earlier test) is back in the pool after HAProxy's next checks (5 s each).
    let gw = server::gateway::Gateway::new(Default::default());
    wait_until!("both replicas UP in HAProxy", 30, common::haproxy_replicas_up(&gw).await == 2);
    let mut servers = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let mut c = pg(5435).await;
        let row = sqlx::query("SELECT pg_is_in_recovery(), inet_server_addr()::text").fetch_one(&mut c).await.unwrap();
        assert!(row.get::<bool, _>(0), "HAProxy 5435 served a read from the primary");
        servers.insert(row.get::<String, _>(1));
    }
    assert_eq!(servers.len(), 2, "round-robin over both replicas: {servers:?}");

    // Envoy: the local rate limit answers 429 once the burst of 10 is spent.
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut codes = vec![];
    for _ in 0..20 {
        codes.push(http.get("http://127.0.0.1:15006/ratelimit-probe").send().await.unwrap().status().as_u16());
    }
    let first_429 = codes.iter().position(|&c| c == 429).unwrap_or_else(|| panic!("no 429 in {codes:?}"));
    assert!(first_429 <= 11, "429 should come after at most the burst (10): {codes:?}");
    let ready = http.get("http://127.0.0.1:15000/ready").send().await.unwrap().text().await.unwrap();
    assert_eq!(ready.trim(), "LIVE");

    // Kafka: the brokers list the four topics.
    let out = Command::new("docker")
        .args(["exec", "-e", "KAFKA_OPTS=", "bss-kafka-2", "/opt/kafka/bin/kafka-topics.sh", "--bootstrap-server", "kafka-1:19092,kafka-3:19092", "--list"])
        .output()
        .unwrap();
    let topics = String::from_utf8_lossy(&out.stdout);
    for t in ["bss.customer.events", "bss.order.events", "bss.analytics.events", "bss.dlq.events"] {
        assert!(topics.lines().any(|l| l.trim() == t), "topic {t} missing: {topics}");
    }

    // Prometheus: every target of the stack up (the control plane's own job is not running
    // in this test, so it is left out).
    let targets_down = |v: &serde_json::Value| -> (usize, Vec<String>) {
        let targets = v["data"]["activeTargets"].as_array().cloned().unwrap_or_default();
        let down = targets
            .iter()
            .filter(|t| t["labels"]["job"] != "bss-control" && t["health"] != "up")
            .map(|t| format!("{}={}", t["labels"]["job"], t["health"]))
            .collect();
        (targets.len(), down)
    };
    wait_until!("Prometheus targets up", 60, {
        let v: serde_json::Value = match http.get("http://127.0.0.1:9090/api/v1/targets").send().await {
            Ok(r) => r.json().await.unwrap_or_default(),
            Err(_) => serde_json::Value::Null,
        };
        let (n, down) = targets_down(&v);
        if !down.is_empty() {
            eprintln!("targets not up yet: {down:?}");
        }
        n >= 6 && down.is_empty()
    });

    // AlertManager: 4 routes, 5 receivers in the loaded config.
    let status: serde_json::Value = http.get("http://127.0.0.1:9093/api/v2/status").send().await.unwrap().json().await.unwrap();
    let cfg: serde_yaml::Value = serde_yaml::from_str(status["config"]["original"].as_str().unwrap()).unwrap();
    assert_eq!(cfg["route"]["routes"].as_sequence().map(Vec::len), Some(4));
    assert_eq!(cfg["receivers"].as_sequence().map(Vec::len), Some(5));

    // kill -9 a replica: the supervisor restarts it and it streams again.
    assert!(Command::new("docker").args(["kill", "-s", "KILL", "bss-postgres-replica-1"]).status().unwrap().success());
    let before = sup.status_of("postgres-replica-1").await.unwrap().restart_count;
    wait_until!("the healer to restart the killed replica", 60, {
        let _ = sup.heal_once().await;
        let s = sup.status_of("postgres-replica-1").await.unwrap();
        s.state == "running" && s.health == "healthy"
    });
    assert!(sup.status_of("postgres-replica-1").await.unwrap().restart_count > before, "restart counted");
    wait_until!(
        "replica-1 streaming again",
        60,
        streaming_replicas(&mut primary).await.iter().any(|n| n == "postgres-replica-1")
    );
    drop(primary);

    // Tear down leaves nothing running.
    sup.down(false).await.unwrap();
    let out = Command::new("docker")
        .args(["ps", "-a", "-q", "--filter", &format!("label=io.bss-control.project={PROJECT}")])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "containers left after down");
}
