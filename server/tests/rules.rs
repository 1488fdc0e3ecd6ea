//! The alert rules fire on the real signals (`dev/prometheus/rules/bss-phase3.yml`): real
//! faults on the real stack, each rule seen `firing` in Prometheus' `ALERTS` with the labels
//! its route needs. (The lag rule has its own test in `alerts.rs`, the broker rules in
//! `drills.rs`, the drill rule in the AlertManager drill.)
//!
//! One test, two phases, so that the rules' `for:` holds overlap instead of adding up:
//! - A (≈ 3 min): replica-1 stopped (held: the healer leaves it), the processors stopped
//!   with records waiting, and Envoy's upstream answering 503 under one request a second →
//!   `PostgresReplicaNotStreaming`, `PostgresNodeDown`, `HAProxyReadPoolServerDown`,
//!   `BssProcessorStopped`, `EnvoyUpstream5xxRateHigh`, `EnvoyDownstream5xxRateHigh`.
//! - B (≈ 2.5 min): the control plane's listener stopped (replica-1 still down) →
//!   `InstanceDown` (job bss-control), `EnvoyUpstreamUnhealthy`, and by then, 5 min after
//!   the replica stopped, `PostgresReplicationSlotInactive`.
//!
//! `#[ignore]`d; run by `make test`.
mod common;

use std::time::{Duration, Instant};

use server::prometheus::Prometheus;

async fn firing(prom: &Prometheus, selector: &str) -> bool {
    prom.query(&format!("ALERTS{{alertstate=\"firing\",{selector}}}")).await.is_ok_and(|s| !s.is_empty())
}

#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn each_fault_fires_its_rule() {
    let sup = common::stack_supervisor();
    sup.up().await.expect("stack up");
    let dir = tempfile::tempdir().unwrap();
    let svc = common::container_facing_services(dir.path()).await;
    // The listener has its own shutdown here, so phase B can stop it while the rest runs.
    let listener = tokio::spawn(server::web::serve_stack_listener(svc.clone()));
    let prom = Prometheus::new(&svc.config.endpoints.prometheus);
    wait_until!("Prometheus scrapes the control plane", 90, {
        prom.targets().await.is_ok_and(|t| t.iter().any(|t| t.job == "bss-control" && t.health == "up"))
    });
    wait_until!("Envoy's upstream healthy", 60, {
        svc.gateway.view().await.clusters.iter().filter(|c| c.name == "control_plane").flat_map(|c| c.hosts.iter()).any(|h| h.1 == "HEALTHY")
    });

    struct Restore(std::sync::Arc<server::runtime::supervisor::Supervisor>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let sup = self.0.clone();
            // The replica back, whatever happened above (a panic included).
            let _ = std::thread::spawn(move || tokio::runtime::Runtime::new().unwrap().block_on(sup.start("postgres-replica-1"))).join();
        }
    }
    let _restore = Restore(sup.clone());

    // --- Phase A ----------------------------------------------------------------------
    let t0 = Instant::now();
    // The lag sampler (what /metrics reads), without the rest of the background work: no
    // healer here to start the replica this test stops.
    let sampler = tokio_util::sync::CancellationToken::new();
    tokio::spawn(svc.streams.clone().run_sampler(sampler.clone()));
    let names = svc.streams.names();
    for n in &names {
        svc.streams.start(n).unwrap();
    }
    svc.streams.send_samples(&format!("rules-{}", server::clock::now_ms()), 20, 0).await.unwrap();
    wait_until!("both groups caught up", 120, svc.streams.view().processors.iter().all(|p| p.state == "running" && p.lag == Some(0)));
    for n in &names {
        svc.streams.stop(n).await.unwrap();
    }
    svc.streams.send_samples(&format!("rules-waiting-{}", server::clock::now_ms()), 20, 0).await.unwrap();

    sup.stop("postgres-replica-1").await.expect("replica-1 stopped (held)");
    let replica_stopped = Instant::now();
    svc.gateway.upstream.fail().expect("this process serves Envoy's upstream");
    let traffic = tokio::spawn({
        let svc = svc.clone();
        async move {
            loop {
                svc.gateway.through_proxy("/api/customers?limit=1", None, Duration::from_secs(3)).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let phase_a = [
        ("PostgresReplicaNotStreaming", "alertname=\"PostgresReplicaNotStreaming\",team=\"database\""),
        ("PostgresNodeDown", "alertname=\"PostgresNodeDown\",pg_server=\"postgres-replica-1\""),
        ("HAProxyReadPoolServerDown", "alertname=\"HAProxyReadPoolServerDown\",server=\"postgres-replica-1\""),
        ("BssProcessorStopped", "alertname=\"BssProcessorStopped\",team=\"streaming\""),
        ("EnvoyUpstream5xxRateHigh", "alertname=\"EnvoyUpstream5xxRateHigh\",envoy_cluster_name=\"control_plane\""),
        ("EnvoyDownstream5xxRateHigh", "alertname=\"EnvoyDownstream5xxRateHigh\",team=\"platform\""),
    ];
    let mut seen = vec![];
    let deadline = Instant::now() + Duration::from_secs(270);
    while seen.len() < phase_a.len() && Instant::now() < deadline {
        for (name, selector) in phase_a {
            if !seen.iter().any(|(n, _)| *n == name) && firing(&prom, selector).await {
                println!("{name} firing {:.0} s into phase A", t0.elapsed().as_secs_f64());
                seen.push((name, t0.elapsed()));
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let missing: Vec<_> = phase_a.iter().filter(|(n, _)| !seen.iter().any(|(s, _)| s == n)).map(|(n, _)| *n).collect();
    assert!(missing.is_empty(), "not firing within 270 s: {missing:?} (seen {seen:?})");
    traffic.abort();
    svc.gateway.upstream.heal();

    // --- Phase B ----------------------------------------------------------------------
    let t1 = Instant::now();
    svc.shutdown.cancel();
    let _ = listener.await;
    assert!(!svc.gateway.upstream.serving());
    let phase_b = [
        ("InstanceDown", "alertname=\"InstanceDown\",job=\"bss-control\""),
        ("EnvoyUpstreamUnhealthy", "alertname=\"EnvoyUpstreamUnhealthy\",envoy_cluster_name=\"control_plane\""),
        ("PostgresReplicationSlotInactive", "alertname=\"PostgresReplicationSlotInactive\",team=\"database\""),
    ];
    let mut seen_b = vec![];
    // The slot rule holds 5 min from the replica's stop.
    let deadline = std::cmp::max(Instant::now() + Duration::from_secs(240), replica_stopped + Duration::from_secs(420));
    while seen_b.len() < phase_b.len() && Instant::now() < deadline {
        for (name, selector) in phase_b {
            if !seen_b.contains(&name) && firing(&prom, selector).await {
                println!("{name} firing {:.0} s into phase B ({:.0} s after the replica stopped)", t1.elapsed().as_secs_f64(), replica_stopped.elapsed().as_secs_f64());
                seen_b.push(name);
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let missing: Vec<_> = phase_b.iter().filter(|(n, _)| !seen_b.contains(n)).map(|(n, _)| *n).collect();
    assert!(missing.is_empty(), "not firing in phase B: {missing:?}");
    sampler.cancel();

    drop(_restore);
    wait_until!("replica-1 healthy again", 120, sup.status_of("postgres-replica-1").await.is_ok_and(|s| s.level() == "ok"));
}
