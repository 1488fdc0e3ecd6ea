//! The Phase 3 verification suite: named checks against the running stack, each bounded in
//! time, each with the seed report's claim beside what was measured. Checks run
//! concurrently; each result is reported the moment it is known; one failing check never
//! stops the others. Used by the Verify page and by `bss-control verify [--json]`.
use std::{collections::{BTreeMap, BTreeSet}, future::Future, pin::Pin, sync::Arc, time::Duration};

use app::{
    api::{CheckResult, Principal, Role, VerifyRun, VerifyView},
    backend::VerifyApi,
    error::AppError,
};
use futures_util::future::join_all;
use rdkafka::message::Message;
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};
use tokio::time::Instant;

use crate::{
    alerts::Alerts,
    config::{EndpointsConfig, PostgresConfig},
    gateway::Gateway,
    prometheus::Prometheus,
    runtime::{follow::TaskAddresses, supervisor::Supervisor, swarm::SwarmStack},
    state::{require, Act, Finished, Services},
    streams::{events, Streams},
};

pub enum Outcome {
    Pass(String),
    Fail(String),
    Skip(String),
}
use Outcome::*;

/// Connections the read-pool check opens: enough that a live standby cannot be missed by
/// chance while another client shares the round-robin.
const POOL_READS: usize = 12;

type Fut<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

pub struct Check<'a> {
    pub id: &'static str,
    pub group: &'static str,
    pub name: &'static str,
    pub claim: &'static str,
    pub method: String,
    pub timeout: Duration,
    pub run: Fut<'a>,
}

/// Connection options from a `[postgres]` URL (validated when the config was loaded).
fn pg(url: &str) -> PgConnectOptions {
    url.parse::<PgConnectOptions>().unwrap_or_else(|_| PgConnectOptions::new()).disable_statement_logging()
}

/// [`pg`], with a stack service's name for host resolved to the node its task runs on (swarm
/// mode: e.g. HAProxy's read pool, which Swarm may move). Other hosts are left to the system.
fn pg_following(url: &str, tasks: Option<&TaskAddresses>) -> Result<PgConnectOptions, Outcome> {
    let o = pg(url);
    match tasks.and_then(|t| t.lookup(o.get_host())) {
        None => Ok(o),
        Some(ips) => match ips.first() {
            Some(ip) => Ok(o.host(&ip.to_string())),
            None => Err(Fail(format!("{} has no running task on the swarm", o.get_host()))),
        },
    }
}

/// Where the stack's health comes from: the engine's supervisor (containers and their
/// health checks), or Swarm's task list (a task reaches `running` once its health check
/// passes).
pub enum StackHealth {
    Engine(Result<Arc<Supervisor>, String>),
    Swarm(Arc<SwarmStack>),
}

/// `scheme://user:secret@host:port/path` → `host:port`, for the method column.
fn host_port(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |x| x.1);
    let rest = rest.rsplit_once('@').map_or(rest, |x| x.1);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

/// Creates the checks' scratch table once. Two checks run at the same time on a new
/// database, and PostgreSQL's `CREATE TABLE IF NOT EXISTS` is not safe against itself (the
/// loser fails on `pg_type_typname_nsp_index`, as a clean-clone run showed): the creation
/// is serialised by a transaction-scoped advisory lock.
async fn create_verify_table(c: &mut sqlx::PgConnection) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    let mut tx = c.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('bss_verify'))").execute(&mut *tx).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS bss_verify (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())").execute(&mut *tx).await?;
    tx.commit().await
}

/// An error with its causes, `outer: inner: …` (reqwest's own text says only "error sending
/// request", not whether the connection was refused or the handshake timed out).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !s.contains(&c_text) {
            s.push_str(": ");
            s.push_str(&c_text);
        }
        cause = c.source();
    }
    s
}

fn fail_on<T>(r: Result<T, impl std::fmt::Display>, what: &str) -> Result<T, Outcome> {
    r.map_err(|e| Fail(format!("{what}: {e}")))
}

macro_rules! check {
    ($body:expr) => {
        Box::pin(async move {
            let r: Result<Outcome, Outcome> = async { $body }.await;
            r.unwrap_or_else(|e| e)
        })
    };
}

/// What the suite checks: one handle per service and the addresses from the config, not
/// the whole control plane.
pub struct Targets<'a> {
    pub stack: StackHealth,
    /// Swarm mode: where each stack service's tasks run (for the read pool's address).
    pub tasks: Option<Arc<TaskAddresses>>,
    /// The readers' HTTP client (on a swarm it resolves stack services to their tasks).
    pub http: reqwest::Client,
    pub gateway: &'a Gateway,
    pub streams: &'a Streams,
    pub alerts: &'a Alerts,
    pub prometheus: &'a Prometheus,
    pub endpoints: &'a EndpointsConfig,
    pub postgres: &'a PostgresConfig,
    /// How long the replication-lag check samples (`verify.lag_window`; the seed claims < 1 s).
    pub lag_window: Duration,
    /// Where the container-facing listener is (`server.stack_listen`), and the engine that
    /// names the host-gateway address for `auto`.
    pub stack_listen: crate::config::StackListen,
    pub runtime: &'a crate::runtime::Runtime,
    /// The stack's certificates (mutual TLS to the listener).
    pub pki: crate::pki::Pki,
}

impl<'a> Targets<'a> {
    pub fn of(svc: &'a Services) -> Self {
        let tasks = svc.swarm.is_ok().then(|| svc.tasks.clone());
        Self {
            stack: match &svc.swarm {
                Ok(swarm) => StackHealth::Swarm(swarm.clone()),
                Err(_) => StackHealth::Engine(svc.stack.clone()),
            },
            http: svc.http.clone(),
            tasks,
            gateway: &svc.gateway,
            streams: &svc.streams,
            alerts: &svc.alerts,
            prometheus: &svc.prometheus,
            endpoints: &svc.config.endpoints,
            postgres: &svc.config.postgres,
            lag_window: humantime::parse_duration(&svc.config.verify.lag_window).unwrap_or(Duration::from_secs(30)),
            stack_listen: svc.config.server.stack_listen(),
            runtime: &svc.runtime,
            pki: crate::pki::Pki::for_config(&svc.config),
        }
    }
}

/// Every check of the suite, ready to run.
pub fn suite<'a>(svc: &'a Targets<'a>) -> Vec<Check<'a>> {
    let lag = svc.lag_window;
    let (ep, pgc) = (svc.endpoints, svc.postgres);
    vec![
        Check {
            id: "stack.healthy",
            group: "Containers",
            name: "Every container healthy",
            claim: "all Phase 3 services up",
            method: match svc.stack {
                StackHealth::Engine(_) => "Docker engine: state + health check of every service of the compose model",
                StackHealth::Swarm(_) => "Swarm's task list: every service's current task running (past its health check), a one-shot job complete",
            }
            .into(),
            timeout: Duration::from_secs(15),
            run: check!({
                let sup = match &svc.stack {
                    StackHealth::Engine(sup) => sup.clone().map_err(Fail)?,
                    StackHealth::Swarm(swarm) => return Ok(swarm_health(&fail_on(swarm.services().await, "swarm")?)),
                };
                let st = fail_on(sup.status().await, "docker")?;
                let bad: Vec<String> = st.iter().filter(|s| s.level() != "ok").map(|s| format!("{} {}/{}", s.service, s.state, s.health)).collect();
                let ok = st.len() - bad.len();
                if bad.is_empty() {
                    Ok(Pass(format!("{ok} of {} healthy", st.len())))
                } else {
                    Ok(Fail(format!("{ok} of {} healthy; not: {}", st.len(), bad.join(", "))))
                }
            }),
        },
        Check {
            id: "envoy.ready",
            group: "Envoy",
            name: "Envoy admin ready",
            claim: "gateway on 15006, admin on 15000",
            method: format!("GET {}/ready", host_port(&ep.envoy_admin)),
            timeout: Duration::from_secs(10),
            run: check!({
                let v = svc.gateway.view().await;
                match v.envoy_ready.as_deref() {
                    Some("LIVE") => Ok(Pass("LIVE".into())),
                    other => Ok(Fail(format!("{other:?} {}", v.errors.join("; ")))),
                }
            }),
        },
        Check {
            id: "envoy.mtls",
            group: "Envoy",
            name: "Mutual TLS to the upstream",
            claim: "mTLS ready",
            method: "the container-facing listener: GET /healthz with the stack CA's probe certificate, with none, with a self-made one, and in plain HTTP; Envoy's control_plane TLS handshakes (GET /stats) and host health".into(),
            timeout: Duration::from_secs(if svc.gateway.scraped() { 80 } else { 60 }),
            run: check!({
                if svc.stack_listen == crate::config::StackListen::Off {
                    return Ok(Fail("server.stack_listen is off: Envoy has no upstream to talk TLS to".into()));
                }
                let addr = crate::web::stack_address(&svc.stack_listen, svc.runtime).await.ok_or_else(|| Fail("the engine names no host-gateway address".into()))?;
                let pki = &svc.pki;
                let t = Duration::from_secs(5);
                let url = format!("https://{}:{}/healthz", crate::pki::SERVER_NAME, addr.port());
                let probe = fail_on(pki.http_client(Some(crate::pki::PROBE), addr, t), "certificates")?;
                // A handshake can miss its 5 s on a machine under load (the Swarm bed beside the
                // alert-rule drills): the probe is retried for 15 s, and a retry is reported.
                let (started, mut missed) = (Instant::now(), vec![]);
                let with = loop {
                    match probe.get(&url).send().await {
                        Ok(r) => break r.status(),
                        Err(e) if started.elapsed() < Duration::from_secs(15) => {
                            missed.push(error_chain(&e));
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        Err(e) => {
                            missed.push(error_chain(&e));
                            return Ok(Fail(format!("with the probe certificate, {} attempts over {} s: {}", missed.len(), started.elapsed().as_secs(), missed.join("; "))));
                        }
                    }
                };
                let retried = match missed.len() {
                    0 => String::new(),
                    n => format!(" after {n} failed attempt{} ({})", if n == 1 { "" } else { "s" }, missed.join("; ")),
                };
                if !with.is_success() {
                    return Ok(Fail(format!("with the probe certificate: HTTP {with}")));
                }
                let none = fail_on(pki.http_client(None, addr, t), "certificates")?;
                let stranger = fail_on(pki.stranger_client_config().and_then(|c| pki.http_client_with(c, addr, t)), "certificates")?;
                let plain = reqwest::Client::builder().timeout(t).build().map_err(|e| Fail(e.to_string()))?;
                let mut let_in = vec![];
                for (who, client, u) in [("no certificate", &none, url.clone()), ("a self-made certificate", &stranger, url.clone()), ("plain HTTP", &plain, format!("http://{addr}/healthz"))] {
                    if let Ok(r) = client.get(&u).send().await {
                        let_in.push(format!("{who}: HTTP {}", r.status()));
                    }
                }
                if !let_in.is_empty() {
                    return Ok(Fail(format!("the listener answered {}", let_in.join(", "))));
                }
                // Envoy's side: its health checks and requests go through the same TLS, so
                // the cluster counts handshakes and its host is healthy (checked every 5 s).
                // On a swarm these come from Prometheus, which scrapes Envoy every 15 s.
                let deadline = Instant::now() + Duration::from_secs(if svc.gateway.scraped() { 40 } else { 20 });
                loop {
                    let handshakes = fail_on(svc.gateway.counter("cluster.control_plane.ssl.handshake").await, "envoy stats")?;
                    let healthy = svc.gateway.view().await.healthy("control_plane");
                    if handshakes > 0 && healthy {
                        return Ok(Pass(format!("probe certificate: HTTP {with}{retried}; refused: no certificate, a self-made certificate, plain HTTP; Envoy: {handshakes} TLS handshakes, upstream healthy")));
                    }
                    if Instant::now() > deadline {
                        return Ok(Fail(format!("Envoy: {handshakes} TLS handshakes to control_plane, upstream {}", if healthy { "healthy" } else { "not healthy" })));
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }),
        },
        Check {
            id: "envoy.circuit_breakers",
            group: "Envoy",
            name: "Circuit-breaker thresholds",
            claim: "max_connections 100, max_pending 100, max_retries 3",
            method: format!("GET /clusters?format=json{}, DEFAULT priority thresholds of control_plane", inside_note(svc)),
            timeout: Duration::from_secs(if svc.gateway.scraped() { 60 } else { 10 }),
            run: check!({
                let (clusters, errors) = match &svc.stack {
                    StackHealth::Swarm(swarm) => {
                        let body = envoy_admin_inside(swarm, svc.endpoints, "/clusters?format=json").await?;
                        let v: serde_json::Value = fail_on(serde_json::from_str(&body), "Envoy's /clusters")?;
                        (crate::gateway::clusters(&v, &[]), vec![])
                    }
                    StackHealth::Engine(_) => {
                        let v = svc.gateway.view().await;
                        (v.clusters, v.errors)
                    }
                };
                let c = clusters.iter().find(|c| c.name == "control_plane").ok_or_else(|| Fail(format!("no control_plane cluster {}", errors.join("; "))))?;
                let get = |k: &str| c.breakers.iter().find(|b| b.0 == k).map(|b| b.1);
                let m = format!(
                    "max_connections {:?}, max_pending {:?}, max_retries {:?}",
                    get("max_connections"),
                    get("max_pending_requests"),
                    get("max_retries")
                )
                .replace("Some(", "")
                .replace(')', "");
                let ok = (get("max_connections"), get("max_pending_requests"), get("max_retries")) == (Some(100), Some(100), Some(3));
                Ok(if ok { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "envoy.rate_limit",
            group: "Envoy",
            name: "Rate limit answers 429 after the burst",
            claim: "100 req/min, burst 10",
            method: format!("20 concurrent GETs to {}/ratelimit-probe; Envoy's rate_limited counter", host_port(&ep.envoy_proxy)),
            timeout: Duration::from_secs(15),
            run: check!({
                let b = fail_on(svc.gateway.burst(20).await, "burst")?;
                let counter = if svc.gateway.scraped() {
                    format!("Envoy's counter {} as Prometheus last scraped it (every 15 s)", b.limited_counter_after)
                } else {
                    format!("counter +{}", b.limited_counter_after - b.limited_counter_before)
                };
                let m = format!("{} passed, {} limited (429) in {} ms, at most {} allowed; {counter}", b.passed, b.limited, b.span_ms, b.most_allowed());
                Ok(match b.judged() {
                    Ok(()) => Pass(m),
                    Err(why) => Fail(format!("{why}; {m}")),
                })
            }),
        },
        Check {
            id: "envoy.retry_policy",
            group: "Envoy",
            name: "Retry policy configured",
            claim: "retry on 5xx,reset,connect-failure, 3 retries",
            method: format!("GET /config_dump (read-only){}: the route's retry_policy", inside_note(svc)),
            timeout: Duration::from_secs(if svc.gateway.scraped() { 60 } else { 10 }),
            run: check!({
                let dump = match &svc.stack {
                    StackHealth::Swarm(swarm) => envoy_admin_inside(swarm, svc.endpoints, "/config_dump").await?,
                    StackHealth::Engine(_) => fail_on(svc.gateway.config_dump().await, "config_dump")?,
                };
                let on = dump.contains("\"retry_on\": \"5xx,reset,connect-failure\"");
                let n = dump.contains("\"num_retries\": 3");
                let m = format!("retry_on 5xx,reset,connect-failure: {on}, num_retries 3: {n}");
                Ok(if on && n { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "kafka.brokers",
            group: "Kafka",
            name: "3 brokers reachable",
            claim: "3 brokers (9092–9094)",
            method: "metadata request to the bootstrap servers".into(),
            timeout: Duration::from_secs(15),
            run: check!({
                let n = fail_on(crate::streams::broker_count(svc.streams.brokers()).await, "kafka")?;
                Ok(if n == 3 { Pass(format!("{n} brokers")) } else { Fail(format!("{n} brokers")) })
            }),
        },
        Check {
            id: "kafka.topics",
            group: "Kafka",
            name: "The 4 BSS topics exist",
            claim: "customer, order, analytics, dlq topics",
            method: "topic metadata: partitions and high watermarks".into(),
            timeout: Duration::from_secs(15),
            run: check!({
                let brokers = svc.streams.brokers().to_string();
                let rows = fail_on(
                    tokio::task::spawn_blocking(move || crate::streams::topics::read(&brokers, &[])).await.map_err(|e| e.to_string()).and_then(|r| r.map_err(|e| e.to_string())),
                    "topics",
                )?;
                let have: BTreeSet<&str> = rows.iter().map(|r| r.topic.as_str()).collect();
                let want = [events::CUSTOMER_TOPIC, events::ORDER_TOPIC, events::ANALYTICS_TOPIC, events::DLQ_TOPIC];
                let missing: Vec<&str> = want.iter().copied().filter(|t| !have.contains(t)).collect();
                Ok(if missing.is_empty() {
                    Pass(format!("4 of 4 ({} partitions)", rows.len()))
                } else {
                    Fail(format!("{} of 4; missing {}", 4 - missing.len(), missing.join(", ")))
                })
            }),
        },
        Check {
            id: "kafka.processors",
            group: "Kafka",
            name: "An event comes out of each processor",
            claim: "bss-customer-analytics and bss-order-processor process events",
            method: "produce one customer and one order CloudEvent; wait for outputs caused by them on bss.analytics.events".into(),
            timeout: Duration::from_secs(45 + crate::demo::READY_WITHIN.as_secs()),
            run: check!({
                let states = svc.streams.not_running();
                if !states.is_empty() {
                    return Ok(Fail(states.join(", ")));
                }
                if let Err(e) = svc.streams.wait_ready(crate::demo::READY_WITHIN).await {
                    return Ok(Fail(e.to_string()));
                }
                let run = format!("verify-{}", events::now_ms());
                let found = fail_on(follow_outputs(&svc.streams, &run).await, "kafka")?;
                Ok(if found.len() == 2 { Pass(format!("outputs from {}", found.join(" and "))) } else { Fail(format!("outputs only from [{}]", found.join(", "))) })
            }),
        },
        Check {
            id: "pg.primary_writes",
            group: "PostgreSQL",
            name: "Primary accepts writes",
            claim: "primary on 5432",
            method: format!("INSERT on {}, read back", host_port(&pgc.primary)),
            timeout: Duration::from_secs(10),
            run: check!({
                let mut c = fail_on(pg(&svc.postgres.primary).connect().await, "connect to the primary")?;
                fail_on(create_verify_table(&mut c).await, "create")?;
                let id: i64 = fail_on(sqlx::query_scalar("INSERT INTO bss_verify DEFAULT VALUES RETURNING id").fetch_one(&mut c).await, "insert")?;
                Ok(Pass(format!("row {id} written")))
            }),
        },
        Check {
            id: "pg.replicas_streaming",
            group: "PostgreSQL",
            name: "2 replicas streaming with active slots",
            claim: "2 hot-standby streaming replicas with replication slots",
            method: "pg_stat_replication (state = streaming) and pg_replication_slots (active) on the primary".into(),
            timeout: Duration::from_secs(10),
            run: check!({
                let mut c = fail_on(pg(&svc.postgres.primary).connect().await, "connect to the primary")?;
                let streaming: i64 = fail_on(sqlx::query_scalar("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").fetch_one(&mut c).await, "query")?;
                let slots: i64 = fail_on(sqlx::query_scalar("SELECT count(*) FROM pg_replication_slots WHERE active").fetch_one(&mut c).await, "query")?;
                let m = format!("{streaming} streaming, {slots} active slots");
                Ok(if streaming == 2 && slots == 2 { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "pg.replication_lag",
            group: "PostgreSQL",
            name: "Replication lag under load",
            claim: "replication lag < 1 s",
            method: "max of pg_stat_replication.replay_lag sampled every 250 ms while writing a row every 50 ms".into(),
            timeout: lag + Duration::from_secs(15),
            run: check!({
                let mut w = fail_on(pg(&svc.postgres.primary).connect().await, "connect to the primary")?;
                let mut r = fail_on(pg(&svc.postgres.primary).connect().await, "connect to the primary")?;
                fail_on(create_verify_table(&mut w).await, "create")?;
                let end = Instant::now() + lag;
                let (mut max, mut samples) = (0.0_f64, 0);
                let mut tick = tokio::time::interval(Duration::from_millis(50));
                let mut n = 0u64;
                while Instant::now() < end {
                    tick.tick().await;
                    fail_on(sqlx::query("INSERT INTO bss_verify DEFAULT VALUES").execute(&mut w).await, "insert")?;
                    n += 1;
                    if n % 5 == 0 {
                        let v: Option<f64> = fail_on(
                            sqlx::query_scalar("SELECT max(EXTRACT(EPOCH FROM replay_lag))::float8 FROM pg_stat_replication").fetch_one(&mut r).await,
                            "query",
                        )?;
                        max = max.max(v.unwrap_or(0.0));
                        samples += 1;
                    }
                }
                let m = format!("max {:.3} s over {} s ({samples} samples, {n} writes)", max, lag.as_secs());
                Ok(if samples > 0 && max < 1.0 { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "haproxy.standby_reads",
            group: "PostgreSQL",
            name: "HAProxy serves reads only from standbys, round-robin",
            claim: "read pool on 5435, round-robin, 5 s health checks",
            method: format!("{POOL_READS} new connections to {}: pg_is_in_recovery() and the server address; HAProxy's stats for each server's status and sessions", host_port(&pgc.read_pool)),
            timeout: Duration::from_secs(20),
            run: check!({
                // HAProxy's own view, before and after: which servers it has UP and how many
                // of the connections each took (another client of the pool shares the
                // rotation, so the counts say what the addresses alone cannot).
                let pool = |rows: Vec<app::api::HaproxyRow>| -> BTreeMap<String, (String, u64)> {
                    crate::gateway::read_pool_servers(rows).map(|r| (r.server, (r.status, r.total))).collect()
                };
                let before = pool(svc.gateway.haproxy().await.unwrap_or_default());
                let mut servers = BTreeSet::new();
                for _ in 0..POOL_READS {
                    let mut c = fail_on(pg_following(&svc.postgres.read_pool, svc.tasks.as_deref())?.connect().await, "connect to the read pool")?;
                    let (standby, addr): (bool, String) = fail_on(sqlx::query_as("SELECT pg_is_in_recovery(), host(inet_server_addr())").fetch_one(&mut c).await, "query")?;
                    if !standby {
                        return Ok(Fail(format!("a read went to the primary ({addr})")));
                    }
                    servers.insert(addr);
                    let _ = c.close().await;
                }
                let after = pool(svc.gateway.haproxy().await.unwrap_or_default());
                let view: Vec<String> = after
                    .iter()
                    .map(|(name, (status, total))| format!("{name} {status} +{}", total.saturating_sub(before.get(name).map_or(*total, |b| b.1))))
                    .collect();
                let m = format!("{POOL_READS} of {POOL_READS} on standbys, {} distinct servers (HAProxy: {})", servers.len(), if view.is_empty() { "stats unreadable".into() } else { view.join(", ") });
                Ok(if servers.len() == 2 { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "alertmanager.routes",
            group: "AlertManager",
            name: "Routes and receivers",
            claim: "4 routes, 5 receivers (email + Slack)",
            method: format!("GET {}/api/v2/status: the running config's route tree", host_port(&ep.alertmanager)),
            timeout: Duration::from_secs(10),
            run: check!({
                let c = fail_on(svc.alerts.config().await, "alertmanager")?;
                let kinds: BTreeSet<String> = c.receivers.iter().flat_map(|r| r.kinds.clone()).collect();
                let m = format!("{} routes, {} receivers ({})", c.root.routes.len(), c.receivers.len(), kinds.into_iter().collect::<Vec<_>>().join(" + "));
                Ok(if c.root.routes.len() == 4 && c.receivers.len() == 5 { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "alertmanager.test_alert",
            group: "AlertManager",
            name: "A test alert reaches the expected receivers",
            claim: "alerts routed to email + Slack receivers",
            method: "POST an alert team=database severity=critical; wait for the local sink to receive it for each receiver the route tester predicts".into(),
            timeout: Duration::from_secs(60),
            run: check!({
                let cfg = fail_on(svc.alerts.config().await, "alertmanager")?;
                let labels = crate::alerts::route::parse_labels("team=database, severity=critical").expect("static labels");
                let expected = cfg.test(&labels).receivers;
                let name = fail_on(svc.alerts.fire_test_alert(labels).await, "post alert")?;
                loop {
                    let got = fail_on(svc.alerts.deliveries(&cfg, std::slice::from_ref(&name)).await, "sink")?;
                    let reached: Vec<&String> = expected.iter().filter(|rx| got.iter().any(|d| &&d.receiver == rx && d.alerts.contains(&name))).collect();
                    if reached.len() == expected.len() {
                        return Ok(Pass(format!("{name} delivered to {}", expected.join(", "))));
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }),
        },
        Check {
            id: "prometheus.targets",
            group: "Prometheus",
            name: "Scrape targets up",
            claim: "22 Prometheus targets",
            method: format!("GET {}/api/v1/targets (waiting, within the timeout, for targets not scraped yet)", host_port(&ep.prometheus)),
            timeout: Duration::from_secs(40),
            run: check!({
                // A freshly provisioned stack has targets in health "unknown" until their
                // first scrape (every 15 s), and the control plane's own target may show the
                // scrape from before its listener started (the CLI serves it for the run):
                // one more scrape is awaited for each. None is excused.
                let settle_by = tokio::time::Instant::now() + Duration::from_secs(32);
                let mut t = fail_on(svc.prometheus.targets().await, "prometheus")?;
                while t.iter().any(|t| t.health != "up") && tokio::time::Instant::now() < settle_by {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    t = fail_on(svc.prometheus.targets().await, "prometheus")?;
                }
                let up = t.iter().filter(|t| t.health == "up").count();
                let down: Vec<String> = t.iter().filter(|t| t.health != "up").map(|t| format!("{} {} ({})", t.job, t.health, t.error)).collect();
                let m = format!(
                    "{up} of {} up; this stack configures {} targets, not the seed's 22 (one per service it runs){}",
                    t.len(),
                    t.len(),
                    if down.is_empty() { String::new() } else { format!("; down: {}", down.join(", ")) }
                );
                Ok(if down.is_empty() && up > 0 { Pass(m) } else { Fail(m) })
            }),
        },
        Check {
            id: "prometheus.series",
            group: "Prometheus",
            name: "Prometheus stores the exporters' series",
            claim: "PostgreSQL, Kafka and host metrics in Prometheus",
            method: format!(
                "GET {}/api/v1/query: count(pg_up == 1) (one exporter per PostgreSQL node), count(kafka_server_replicamanager_partitioncount) (one per broker), count(node_cpu_seconds_total); waiting up to 25 s (past one scrape) for all of them",
                host_port(&ep.prometheus)
            ),
            timeout: Duration::from_secs(40),
            run: check!({
                let count = |q: &'static str| async move {
                    Ok::<_, Outcome>(fail_on(svc.prometheus.query(q).await, "prometheus")?.first().map_or(0.0, |s| s.value))
                };
                // A fresh stack scrapes every 15 s: series appear one target at a time.
                let settle_by = tokio::time::Instant::now() + Duration::from_secs(25);
                loop {
                    let (pg_up, pg, brokers, cpu) = (
                        count("count(pg_up == 1)").await?,
                        count("count(pg_up)").await?,
                        count("count(kafka_server_replicamanager_partitioncount)").await?,
                        count("count(node_cpu_seconds_total)").await?,
                    );
                    // Judged on a fresh scrape: a node that just came back (a restarted
                    // replica) still reads pg_up = 0 from the scrape before (a clean-clone
                    // run failed the seed's script on exactly that, right after the verify
                    // test restarted a replica).
                    let ok = pg_up >= 3.0 && brokers >= 3.0 && cpu > 0.0;
                    if ok || tokio::time::Instant::now() > settle_by {
                        let m = format!("pg_up = 1 on {pg_up} of {pg} PostgreSQL nodes, {brokers} of 3 brokers' metrics, {cpu} node CPU series");
                        return Ok(if ok { Pass(m) } else { Fail(m) });
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }),
        },
        Check {
            id: "exporters",
            group: "Prometheus",
            name: "Node and postgres exporters answer",
            claim: "node exporter 9100, postgres exporter 9187",
            method: "GET /metrics on both; pg_up must be 1".into(),
            timeout: Duration::from_secs(10),
            run: check!({
                let http = &svc.http;
                let node = fail_on(fail_on(http.get(format!("{}/metrics", svc.endpoints.node_exporter)).send().await, "node exporter")?.text().await, "node exporter")?;
                let pgx = fail_on(fail_on(http.get(format!("{}/metrics", svc.endpoints.postgres_exporter)).send().await, "postgres exporter")?.text().await, "postgres exporter")?;
                let pg_up = pgx.lines().any(|l| l.starts_with("pg_up ") && l.trim().ends_with(" 1"));
                let m = format!("node exporter {} series, postgres exporter pg_up={}", node.lines().filter(|l| !l.starts_with('#')).count(), u8::from(pg_up));
                Ok(if node.contains("node_cpu_seconds_total") && pg_up { Pass(m) } else { Fail(m) })
            }),
        },
        bench_claim("bench.gateway", "Gateway throughput and latency", "100,000+ req/s, p99 < 5 ms", &["seed gateway claim: envoy-direct", "seed gateway claim: api-envoy"]),
        bench_claim("bench.reads", "Read scaling with replicas", "3x read performance", &["seed read claim"]),
        bench_claim("bench.idle", "The stack's CPU at rest, and one hop through it", "(none; goal ≤ 10 % of one core)", &["stack idle CPU", "single hop"]),
        bench_claim("bench.streams", "Processors' p99 and throughput", "(none; goals p99 < 50 ms, ≥ 0.80 of the raw pipe)", &["streams: ", "control-plane memory"]),
    ]
}

/// The compose service whose image reads inside the overlay (it has Python).
const OVERLAY_READER: &str = "bss-sink";

/// What only Envoy's admin API answers (thresholds, the running config), on a swarm where
/// it is never published: read from inside the overlay by a one-shot job
/// ([`SwarmStack::read_inside`]), at the admin port of `[endpoints] envoy_admin`.
async fn envoy_admin_inside(swarm: &SwarmStack, ep: &EndpointsConfig, path: &str) -> Result<String, Outcome> {
    let port = reqwest::Url::parse(&ep.envoy_admin).ok().and_then(|u| u.port_or_known_default()).unwrap_or(15000);
    let mut bodies = fail_on(swarm.read_inside(OVERLAY_READER, "envoy", port, &[path]).await, "Envoy's admin, read inside the overlay")?;
    Ok(bodies.remove(0))
}

fn inside_note(svc: &Targets<'_>) -> &'static str {
    match svc.stack {
        StackHealth::Swarm(_) => " from inside the overlay (a one-shot job on the stack's network: a swarm never publishes Envoy's admin)",
        StackHealth::Engine(_) => "",
    }
}

/// The stack's health from Swarm's view: every service's current task running (a task
/// with a health check is `starting` until it passes), a one-shot job complete; where
/// each runs.
fn swarm_health(services: &[app::api::ServiceView]) -> Outcome {
    let mut bad = vec![];
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for s in services {
        let want = if s.oneshot { "complete" } else { "running" };
        match s.current_task() {
            Some(t) if t.state == want => *per_node.entry(t.node.as_str()).or_default() += 1,
            Some(t) => bad.push(format!("{} {} on {}{}", s.service, t.state, t.node, t.error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default())),
            None if s.replicas == Some(0) => bad.push(format!("{} scaled to 0", s.service)),
            None => bad.push(format!("{} has no task", s.service)),
        }
    }
    if services.is_empty() {
        return Fail("no service of the stack on the swarm (bss-control up)".into());
    }
    let ok = services.len() - bad.len();
    let nodes = per_node.iter().map(|(n, c)| format!("{n}: {c}")).collect::<Vec<_>>().join(", ");
    if bad.is_empty() {
        Pass(format!("{ok} of {} services running ({nodes})", services.len()))
    } else {
        Fail(format!("{ok} of {} services running; not: {}", services.len(), bad.join(", ")))
    }
}

/// A performance claim is measured by `make bench` (a load run, not a health check): the
/// suite shows the last run's figures beside the claim, with their date, and never judges
/// them — `skip`, with "met" / "not met" in the text, or "not measured" before any run.
fn bench_claim<'a>(id: &'static str, name: &'static str, claim: &'static str, prefixes: &'static [&'static str]) -> Check<'a> {
    Check {
        id,
        group: "Performance (make bench)",
        name,
        claim,
        method: format!("the last `make bench` run ({})", crate::goals::last_run_path().display()),
        timeout: Duration::from_secs(5),
        run: check!({
            let Some((date, goals)) = crate::goals::last_run() else {
                return Ok(Skip("not measured: run `make bench`".into()));
            };
            let shown: Vec<String> = goals
                .iter()
                .filter(|g| prefixes.iter().any(|p| g.what.starts_with(p)))
                .map(|g| match g.is_figure() {
                    true => format!("{}: {}", g.what, g.measured),
                    false => format!("{}: {} (goal {}, {})", g.what, g.measured, g.goal, if g.met { "met" } else { "not met" }),
                })
                .collect();
            if shown.is_empty() {
                return Ok(Skip(format!("not measured in the last run ({date})")));
            }
            Ok(Skip(format!("{} — make bench, {date}", shown.join("; "))))
        }),
    }
}

/// Produces one customer and one order event (`run` in their ids) and returns the names of
/// the processors whose output, caused by them, appeared on the analytics topic.
async fn follow_outputs(streams: &Streams, run: &str) -> Result<Vec<String>, crate::streams::StreamsError> {
    let c = crate::streams::observer(streams.brokers(), &[events::ANALYTICS_TOPIC], &format!("bss-verify-{run}")).await?;
    streams.send_samples(run, 2, 0).await?;
    let mut found = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(25);
    while found.len() < 2 && Instant::now() < deadline {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(1), c.recv()).await {
            if let Ok(ev) = events::CloudEvent::parse(m.payload().unwrap_or_default()) {
                if ev.extensions.get("causationid").and_then(|v| v.as_str()).is_some_and(|id| id.starts_with(run)) {
                    found.insert(ev.source.trim_start_matches("/bss/").to_string());
                }
            }
        }
    }
    Ok(found.into_iter().collect())
}

/// Runs the suite; `on_step` gets each result as soon as it is known.
pub async fn run(targets: &Targets<'_>, on_step: Arc<dyn Fn(CheckResult) + Send + Sync>) -> Vec<CheckResult> {
    let checks = suite(targets);
    let futs = checks.into_iter().map(|c| {
        let on_step = on_step.clone();
        async move {
            let t0 = Instant::now();
            let (status, measured) = match tokio::time::timeout(c.timeout, c.run).await {
                Ok(Pass(m)) => ("pass", m),
                Ok(Fail(m)) => ("fail", m),
                Ok(Skip(m)) => ("skip", m),
                Err(_) => ("fail", format!("no result within {} s", c.timeout.as_secs())),
            };
            let r = CheckResult {
                id: c.id.into(),
                group: c.group.into(),
                name: c.name.into(),
                status: status.into(),
                measured,
                claim: c.claim.into(),
                method: c.method,
                ms: t0.elapsed().as_millis() as u64,
            };
            on_step(r.clone());
            r
        }
    });
    join_all(futs).await
}

/// "12 passed, 1 failed, 0 skipped".
pub fn summary(checks: &[CheckResult]) -> String {
    let n = |s: &str| checks.iter().filter(|c| c.status == s).count();
    format!("{} passed, {} failed, {} skipped", n("pass"), n("fail"), n("skip"))
}

/// A plain-text table for the CLI.
pub fn table(checks: &[CheckResult]) -> String {
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{:4}  {:<48} {:<44} claim: {}\n", c.status.to_uppercase(), c.name, c.measured, c.claim));
    }
    out.push_str(&summary(checks));
    out
}

/// The verification run in progress or last finished in this process (the page shows it
/// live; finished runs are also in the store).
#[derive(Default)]
pub struct Runner {
    current: Arc<std::sync::Mutex<Option<VerifyRun>>>,
}

impl Services {
    /// Runs the verification suite to the end and stores it; `actor` for the record. Also
    /// what `bss-control verify` calls.
    pub async fn run_verify(self: &Arc<Self>, actor: &str) -> VerifyRun {
        let targets = Targets::of(self);
        let total = suite(&targets).len();
        let started_at = crate::clock::now_rfc3339();
        *self.verify.current.lock().unwrap() =
            Some(VerifyRun { id: None, started_at: started_at.clone(), actor: actor.into(), status: "running".into(), total, checks: vec![] });
        let (slot, me) = (self.verify.current.clone(), Arc::downgrade(self));
        let on_step: Arc<dyn Fn(CheckResult) + Send + Sync> = Arc::new(move |c: CheckResult| {
            if let Some(me) = me.upgrade() {
                me.emit("verify", if c.status == "fail" { "failed" } else { "action" }, format!("verify: {} — {}: {}", c.name, c.status, c.measured));
            }
            if let Some(r) = slot.lock().unwrap().as_mut() {
                r.checks.push(c);
            }
        });
        let checks = run(&targets, on_step).await;
        let status = if checks.iter().any(|c| c.status == "fail") { "failed" } else { "passed" };
        let summary = summary(&checks);
        let mut run = VerifyRun { id: None, started_at: started_at.clone(), actor: actor.into(), status: status.into(), total, checks };
        match self.store.save_run("verify", &started_at, actor, status, &summary, &serde_json::to_value(&run).unwrap_or_default()).await {
            Ok(id) => run.id = Some(id),
            Err(e) => tracing::error!(error = %e, "could not store the verification run"),
        }
        *self.verify.current.lock().unwrap() = Some(run.clone());
        self.emit("verify", if status == "passed" { "action" } else { "failed" }, format!("verify {status}: {summary}"));
        run
    }
}

/// What the Verify page asks: the runs, and starting one.
#[async_trait::async_trait]
impl VerifyApi for Services {
    async fn verify_view(&self, who: &Principal) -> Result<VerifyView, AppError> {
        require(who, Role::Viewer, "reading verification runs")?;
        let stored = self.store.runs("verify", 20).await?;
        let parse = |json: &str| serde_json::from_str::<VerifyRun>(json).ok();
        let current = self.verify.current.lock().unwrap().clone().or_else(|| stored.first().and_then(|r| parse(&r.5)));
        let previous = stored.iter().find(|r| Some(r.0) != current.as_ref().and_then(|c| c.id)).and_then(|r| parse(&r.5));
        Ok(VerifyView { current, previous, history: crate::store::summaries(&stored) })
    }

    async fn start_verify(&self, who: &Principal) -> Result<String, AppError> {
        let act = Act { role: Role::Operator, what: "running the verification suite", lock: "verify", verb: "verify", audit: "verify.start", target: "verify" };
        self.guarded(who, act, |guard| async move {
            let actor = who.user.clone();
            self.run_in_background(guard, "verify.finished", |me| async move {
                let run = me.run_verify(&actor).await;
                Finished { summary: summary(&run.checks), actor, target: run.status }
            })?;
            Ok("verification started".into())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_port_drops_scheme_credentials_and_path() {
        assert_eq!(super::host_port("postgres://u:p@db:5432/bss"), "db:5432");
        assert_eq!(super::host_port("http://127.0.0.1:8084/stats;csv"), "127.0.0.1:8084");
        assert_eq!(super::host_port("http://am:9093"), "am:9093");
    }

    #[test]
    fn an_error_is_told_with_its_causes_once_each() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::new(std::io::ErrorKind::TimedOut, "operation timed out"));
        assert_eq!(super::error_chain(&e), "error sending request: operation timed out");
        assert_eq!(super::error_chain(&e.0), "operation timed out");
    }
}
