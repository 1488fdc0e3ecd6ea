//! The alert rules fire on the real signals (`dev/prometheus/rules/bss-phase3.yml`): real
//! faults on the real stack, each rule seen `firing` in Prometheus' `ALERTS` with the labels
//! its route needs. (The lag rule has its own test in `alerts.rs`, the broker rules in
//! `drills.rs`, the drill rule in the AlertManager drill.)
//!
//! One test, two phases, so that the rules' `for:` holds overlap instead of adding up:
//! - A (≈ 3 min): replica-1 stopped (no healer runs here), the processors stopped
//!   with records waiting, replica-2's replay paused under writes, and Envoy's upstream
//!   answering 503 under one request a second → `PostgresReplicaNotStreaming`,
//!   `PostgresReplicationLagHigh`, `PostgresNodeDown`, `HAProxyReadPoolServerDown`,
//!   `BssProcessorStopped`, `EnvoyUpstream5xxRateHigh`, `EnvoyDownstream5xxRateHigh`.
//! - B (≈ 2.5 min): the control plane's listener stopped (replica-1 still down) →
//!   `InstanceDown` (job bss-control), `EnvoyUpstreamUnhealthy`, and by then, 5 min after
//!   the replica stopped, `PostgresReplicationSlotInactive`.
//! - C (≈ 2.5 min): a control plane whose bus does not answer serves the listener and takes
//!   a write → `BssOutboxBacklogOld`.
//!
//! `#[ignore]`d; run by `make test`.
mod common;

use std::time::{Duration, Instant};

use server::prometheus::Prometheus;

/// Alerts Prometheus holds now: (labels, state, activeAt in unix seconds).
async fn alerts(prom: &Prometheus) -> Vec<(serde_json::Map<String, serde_json::Value>, String, f64)> {
    let Ok(r) = reqwest::get(format!("{}/api/v1/alerts", prom.url())).await else { return vec![] };
    let Ok(v) = r.json::<serde_json::Value>().await else { return vec![] };
    v.pointer("/data/alerts")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
        .map(|a| {
            let at = a["activeAt"].as_str().and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok());
            (a["labels"].as_object().cloned().unwrap_or_default(), a["state"].as_str().unwrap_or_default().to_string(), at.map_or(0.0, |t| t.unix_timestamp() as f64))
        })
        .collect()
}

/// One rule's alert as the test expects it: its name and the labels its route needs.
struct Expect {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

impl Expect {
    fn matches(&self, labels: &serde_json::Map<String, serde_json::Value>) -> bool {
        labels.get("alertname").and_then(|v| v.as_str()) == Some(self.name) && self.labels.iter().all(|(k, v)| labels.get(*k).and_then(|x| x.as_str()) == Some(v))
    }
}

/// Waits until each expected alert fires, and says how: became active after `since` (unix
/// s), or was active already from an earlier fault of the same kind (an earlier test's
/// real 5xx in Envoy's 5-minute window) and fires while this fault holds it.
async fn await_firing(prom: &Prometheus, expect: &[Expect], since: f64, secs: u64, phase: &str) -> Vec<String> {
    let t0 = Instant::now();
    let before = alerts(prom).await;
    let mut said = vec![];
    let mut seen: Vec<&str> = vec![];
    while seen.len() < expect.len() && t0.elapsed() < Duration::from_secs(secs) {
        let now = alerts(prom).await;
        let pending: Vec<&Expect> = expect.iter().filter(|e| !seen.contains(&e.name)).collect();
        for e in pending {
            if let Some((_, _, at)) = now.iter().find(|(l, st, _)| st == "firing" && e.matches(l)) {
                let how = if *at >= since - 1.0 {
                    format!("{} firing {:.0} s into phase {phase} (active {:.0} s after the fault)", e.name, t0.elapsed().as_secs_f64(), at - since)
                } else if before.iter().any(|(l, _, _)| e.matches(l)) {
                    format!("{} firing in phase {phase}, active since before it (an earlier fault of the same kind)", e.name)
                } else {
                    continue;
                };
                println!("{how}");
                said.push(how);
                seen.push(e.name);
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let missing: Vec<_> = expect.iter().filter(|e| !seen.contains(&e.name)).map(|e| e.name).collect();
    assert!(missing.is_empty(), "phase {phase}: not firing within {secs} s: {missing:?} (seen: {said:?})");
    said
}

fn unix_now() -> f64 {
    server::clock::now_ms() as f64 / 1000.0
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
        svc.gateway.view().await.healthy("control_plane")
    });

    // The replica back, whatever happens below (a panic included).
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            let _ = std::process::Command::new("docker").args(["start", "bss-postgres-replica-1"]).output();
        }
    }
    let _restore = Restore;

    // --- Phase A ----------------------------------------------------------------------
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

    // Stopped behind the supervisor's back (no healer runs here), so its exporter stays up
    // and reports it unreachable: the supervisor's own `stop` takes dependents down too.
    let stopped = std::process::Command::new("docker").args(["stop", "bss-postgres-replica-1"]).output().unwrap();
    assert!(stopped.status.success(), "{stopped:?}");
    let (replica_stopped, fault_at) = (Instant::now(), unix_now());
    // Replica-2's replay paused under a write a second: its replay lag grows (PostgreSQL
    // reports a stuck apply position with increasing lag).
    let replica_2 = svc.config.postgres.replicas.iter().find(|r| r.name == "postgres-replica-2").expect("replica-2 in the config").url.clone();
    let mut standby = <sqlx::PgConnection as sqlx::Connection>::connect(&replica_2).await.unwrap();
    sqlx::query("SELECT pg_wal_replay_pause()").execute(&mut standby).await.unwrap();
    struct Resume(String);
    impl Drop for Resume {
        fn drop(&mut self) {
            let url = self.0.clone();
            let _ = std::thread::spawn(move || {
                tokio::runtime::Runtime::new().unwrap().block_on(async move {
                    if let Ok(mut c) = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
                        let _ = sqlx::query("SELECT pg_wal_replay_resume()").execute(&mut c).await;
                    }
                })
            })
            .join();
        }
    }
    let resume = Resume(replica_2);
    let writes = tokio::spawn(async move {
        let mut primary = common::pg_primary().await;
        sqlx::query("CREATE TABLE IF NOT EXISTS rules_lag (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())").execute(&mut primary).await.unwrap();
        loop {
            let _ = sqlx::query("INSERT INTO rules_lag DEFAULT VALUES").execute(&mut primary).await;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
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
        Expect { name: "PostgresReplicaNotStreaming", labels: &[("team", "database")] },
        Expect { name: "PostgresReplicationLagHigh", labels: &[("application_name", "postgres-replica-2")] },
        Expect { name: "PostgresNodeDown", labels: &[("pg_server", "postgres-replica-1")] },
        Expect { name: "HAProxyReadPoolServerDown", labels: &[("server", "postgres-replica-1")] },
        Expect { name: "BssProcessorStopped", labels: &[("team", "streaming")] },
        Expect { name: "EnvoyUpstream5xxRateHigh", labels: &[("envoy_cluster_name", "control_plane")] },
        Expect { name: "EnvoyDownstream5xxRateHigh", labels: &[("team", "platform")] },
    ];
    await_firing(&prom, &phase_a, fault_at, 270, "A").await;
    traffic.abort();
    writes.abort();
    drop(resume);
    svc.gateway.upstream.heal();

    // --- Phase B ----------------------------------------------------------------------
    svc.shutdown.cancel();
    let _ = listener.await;
    assert!(!svc.gateway.upstream.serving());
    let phase_b = [
        Expect { name: "InstanceDown", labels: &[("job", "bss-control")] },
        Expect { name: "EnvoyUpstreamUnhealthy", labels: &[("envoy_cluster_name", "control_plane")] },
    ];
    await_firing(&prom, &phase_b, unix_now(), 240, "B").await;
    // The slot rule holds 5 min from the replica's stop.
    let left = Duration::from_secs(420).saturating_sub(replica_stopped.elapsed());
    await_firing(&prom, &[Expect { name: "PostgresReplicationSlotInactive", labels: &[("team", "database")] }], fault_at, left.as_secs().max(30), "B").await;
    sampler.cancel();
    drop(_restore);

    // --- Phase C ----------------------------------------------------------------------
    // A control plane whose bus does not answer serves the listener again: a customer
    // written through it commits with its CloudEvent in the outbox, the relay fails, the
    // event ages → `BssOutboxBacklogOld` (over 60 s, held 1 min).
    let dir_c = tempfile::tempdir().unwrap();
    let mut config = svc.config.clone();
    config.store.path = dir_c.path().join("state.db");
    config.streams.brokers = "127.0.0.1:1".into();
    let store = server::store::Store::open(&config.store.path).await.unwrap();
    let svc_c = server::state::Services::new(config, server::runtime::Runtime::new(std::env::var("DOCKER_HOST").ok().as_deref()), store);
    tokio::spawn(svc_c.db.clone().run(svc_c.shutdown.clone()));
    tokio::spawn(svc_c.outbox.clone().run(svc_c.db.clone(), svc_c.streams.clone(), svc_c.shutdown.clone()));
    tokio::spawn(server::web::serve_stack_listener(svc_c.clone()));
    let gw = svc_c.runtime.host_gateway().await.expect("the engine names its host-gateway address");
    let probe = server::pki::Pki::for_config(&svc_c.config).http_client(Some(server::pki::PROBE), std::net::SocketAddr::new(gw, 3001), Duration::from_secs(10)).unwrap();
    let url = format!("https://{}:3001/api/customers", server::pki::SERVER_NAME);
    wait_until!("a customer written with the bus down", 60, {
        probe
            .post(&url)
            .json(&serde_json::json!({"name": "Outbox Alert", "email": "outbox-alert@example.com", "plan": "mobile-s"}))
            .send()
            .await
            .is_ok_and(|r| r.status() == 201)
    });
    await_firing(&prom, &[Expect { name: "BssOutboxBacklogOld", labels: &[("team", "streaming")] }], unix_now(), 240, "C").await;
    svc_c.shutdown.cancel();
    // The bus back for a control plane that reaches it: the waiting event is published.
    wait_until!("the outbox drained", 60, {
        let _ = svc.outbox.relay_once(&svc.db, &svc.streams).await;
        svc.outbox.backlog(&svc.db).await.is_ok_and(|b| b.pending == 0)
    });

    wait_until!("replica-1 healthy again", 120, sup.status_of("postgres-replica-1").await.is_ok_and(|s| s.level() == "ok"));
}
