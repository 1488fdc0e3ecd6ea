//! The verification suite and the Kafka demo against the real stack, through the same
//! `Services` the web UI and the CLI use. `#[ignore]`d by default; run by `make test`.
mod common;

use std::{process::Command, sync::Arc};

use server::{config::Config, runtime::Runtime, state::Services, store::Store};

fn docker(args: &[&str]) {
    assert!(Command::new("docker").args(args).status().unwrap().success(), "docker {args:?}");
}

async fn services(dir: &std::path::Path) -> Arc<Services> {
    let root = common::repo_root();
    let mut config = Config::default();
    config.stack.compose = vec![root.join("dev/compose.yml"), root.join("dev/compose.offline.yml")];
    config.store.path = dir.join("state.db");
    // The replication-lag check samples for 3 s instead of 30 (the page's default).
    config.verify.lag_window = "3s".into();
    let store = Store::open(&config.store.path).await.unwrap();
    let svc = Services::new(config, Runtime::new(std::env::var("DOCKER_HOST").ok().as_deref()), store);
    for n in svc.streams.names() {
        svc.streams.start(&n).unwrap();
    }
    svc
}

#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn verify_passes_on_a_healthy_stack_and_names_the_failing_check() {
    common::stack_supervisor().up().await.expect("stack up");
    let dir = tempfile::tempdir().unwrap();
    let svc = services(dir.path()).await;
    // This process serves the container-facing listener, Prometheus' `bss-control` target,
    // as `serve` does: the targets check then counts that target too.
    tokio::spawn(server::web::serve_stack_listener(svc.clone()));
    wait_until!("the container-facing listener bound", 30, svc.gateway.upstream.serving());

    let run = svc.run_verify("test").await;
    println!("{}", server::verify::table(&run.checks));
    let targets = run.checks.iter().find(|c| c.id == "prometheus.targets").expect("the targets check");
    assert!(targets.status == "pass" && !targets.measured.contains("down"), "{targets:?}");
    assert_eq!(run.checks.len(), run.total);
    assert!(run.checks.len() >= 15);
    let failed: Vec<_> = run.checks.iter().filter(|c| c.status == "fail").collect();
    // Skips are the `make bench` rows (a load run is not a health check): only those.
    assert!(run.checks.iter().filter(|c| c.status == "skip").all(|c| c.id.starts_with("bench.")), "{:#?}", run.checks);
    assert!(failed.is_empty(), "failing on a healthy stack: {failed:#?}");
    assert_eq!(run.status, "passed");
    assert!(run.id.is_some(), "stored");

    // One replica stopped: "2 replicas streaming" fails with the measured 1, others go on.
    docker(&["stop", "bss-postgres-replica-2"]);
    let run = svc.run_verify("test").await;
    docker(&["start", "bss-postgres-replica-2"]);
    println!("{}", server::verify::table(&run.checks));
    let check = |id: &str| run.checks.iter().find(|c| c.id == id).unwrap_or_else(|| panic!("no check {id}"));
    assert_eq!(check("pg.replicas_streaming").status, "fail");
    assert!(check("pg.replicas_streaming").measured.starts_with("1 streaming"), "{:?}", check("pg.replicas_streaming"));
    assert_eq!(check("stack.healthy").status, "fail");
    assert_eq!(check("envoy.ready").status, "pass", "one failure does not stop the rest");
    assert_eq!(check("kafka.topics").status, "pass");
    assert_eq!(run.status, "failed");
    let stored = svc.store.runs("verify", 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].3, "failed");

    // Back to streaming before the next test uses the stack.
    let mut c = common::pg_primary().await;
    wait_until!("replica 2 streaming again", 90, {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetch_one(&mut c).await.unwrap() == 2
    });
    // …and healthy, and back in HAProxy's read pool: the next step verifies the whole stack.
    let sup = svc.supervisor().unwrap();
    wait_until!("replica 2 healthy again", 90, sup.status_of("postgres-replica-2").await.is_ok_and(|s| s.level() == "ok"));
    wait_until!("replica 2 UP in HAProxy", 60, common::haproxy_replicas_up(&svc.gateway).await == 2);
    svc.streams.stop_all().await;
}

#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn demo_counts_add_up_with_malformed_events() {
    common::stack_supervisor().up().await.expect("stack up");
    let dir = tempfile::tempdir().unwrap();
    let svc = services(dir.path()).await;
    assert!(server::demo::validate(0, 10, 0).is_err() && server::demo::validate(10, 0, 0).is_err() && server::demo::validate(10, 10, 1).is_err());
    let state = Arc::new(std::sync::Mutex::new(server::demo::new_run("test", 1200, 2000, 20)));
    let r = svc.run_demo(state, Default::default()).await;
    println!("demo: {} — {}", server::demo::summary(&r), r.message);
    assert_eq!(r.status, "passed", "{r:?}");
    assert_eq!(r.produced, 1200);
    assert_eq!(r.dlq, 60, "every 20th of 1200 is malformed");
    assert_eq!(r.processed + r.dlq, r.produced);
    assert_eq!(r.lost, 0);
    assert!(r.p99_ms > 0.0 && r.throughput > 0.0);
    assert!(!r.progress.is_empty());
    svc.streams.stop_all().await;
}
