//! Shared by the tests that run against the provisioned Phase 3 stack.
#![allow(dead_code)]
use std::{path::PathBuf, sync::Arc};

use server::runtime::{compose::ComposeFile, supervisor::Supervisor};

pub const PROJECT: &str = "bss";

/// The repository, read when the test runs: a path compiled in (`env!`) would point at
/// whichever checkout first built the shared, per-machine target directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).parent().unwrap().to_path_buf()
}

/// The supervisor for dev/compose.yml + dev/compose.offline.yml, as `make test` runs it.
pub fn stack_supervisor() -> Arc<Supervisor> {
    let root = repo_root();
    let (file, base) = ComposeFile::load(&[root.join("dev/compose.yml"), root.join("dev/compose.offline.yml")])
        .expect("compose files parse");
    Supervisor::new(bollard::Docker::connect_with_local_defaults().unwrap(), PROJECT, file, base)
}

/// Polls `$cond` (an expression that may `.await`) every 300 ms until true or `$secs` pass.
#[macro_export]
macro_rules! wait_until {
    ($what:expr, $secs:expr, $cond:expr) => {{
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs($secs);
        loop {
            if $cond {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "timed out after {} s waiting for {}", $secs, $what);
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        }
    }};
}

/// A connection to the stack's primary (the config's default: dev/compose.yml on loopback).
pub async fn pg_primary() -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(&server::config::Config::default().postgres.primary).await.expect("primary")
}

/// Standbys HAProxy's read pool has UP right now (0 when its stats cannot be read).
pub async fn haproxy_replicas_up(gw: &server::gateway::Gateway) -> usize {
    gw.haproxy().await.map(|rows| server::gateway::read_pool_servers(rows).filter(|r| r.status == "UP").count()).unwrap_or(0)
}

/// A child process (a control plane the test started) that is killed when the test ends,
/// panics included: a failed crash test once left its `bss-control serve` running, which
/// held half of the processors' partitions in their consumer groups for the next runs.
pub struct KillOnDrop(pub std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The control plane's services on the stack, as `serve` would build them for a store in
/// `dir`: processors not started, the container-facing listener on the host-gateway
/// address (callers spawn `server::web::serve_stack_listener` to serve it).
pub async fn container_facing_services(dir: &std::path::Path) -> Arc<server::state::Services> {
    let root = repo_root();
    let mut config = server::config::Config::default();
    config.stack.compose = vec![root.join("dev/compose.yml"), root.join("dev/compose.offline.yml")];
    config.store.path = dir.join("state.db");
    config.streams.autostart = false;
    config.server.stack_listen = "auto".into();
    let store = server::store::Store::open(&config.store.path).await.unwrap();
    server::state::Services::new(config, server::runtime::Runtime::new(std::env::var("DOCKER_HOST").ok().as_deref()), store)
}

/// Waits up to `secs` until AlertManager has delivered the alert named by `labels`'
/// `alertname` to every receiver the route tester predicts for `labels`, in notifications
/// sent at or after `since_ms` (an earlier test may have fired the same rule). Returns the
/// receivers.
pub async fn await_predicted_delivery(labels: &str, since_ms: u64, secs: u64) -> Vec<String> {
    use server::alerts::{route::parse_labels, Alerts};
    let alerts = Alerts::new(Default::default());
    let cfg = alerts.config().await.unwrap();
    let labels = parse_labels(labels).unwrap();
    let name = labels.get("alertname").expect("labels name the alert").clone();
    let expected = cfg.test(&labels).receivers;
    assert!(!expected.is_empty(), "no receiver for {labels:?}");
    wait_until!(format!("{name} delivered to {expected:?}"), secs, {
        let got = alerts.deliveries(&cfg, std::slice::from_ref(&name)).await.unwrap();
        expected.iter().all(|rx| got.iter().any(|d| &d.receiver == rx && d.alerts.contains(&name) && d.at_ms >= since_ms))
    });
    expected
}

/// A create-topics result, where "already exists" counts as created: test topics carry the
/// run's millisecond stamp, so no one else made them, but librdkafka resends the request
/// when the cluster's controller moves under load and the first attempt may have landed
/// (CI saw `TopicAlreadyExists` for a topic a run named a moment before).
pub fn topic_created(r: &Result<String, (String, rdkafka::types::RDKafkaErrorCode)>) -> Result<(), String> {
    match r {
        Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
        Err((name, e)) => Err(format!("topic {name} not created: {e}")),
    }
}

/// The server's own log lines (`RUST_LOG`, default the streams' info) in the test's
/// captured output: libtest prints it only for a test that fails, which is when the
/// processors' restarts and their reasons are what tells what happened.
pub fn log_to_test_output() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "server::streams=info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}
