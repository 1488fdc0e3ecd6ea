//! The control plane's own metrics on `/metrics`, in the OpenMetrics text format, through
//! the Prometheus project's Rust client (`prometheus-client`): its names, units (`# UNIT`,
//! `_seconds`, `_bytes`), `_total` counters and `HELP` lines.
//!
//! Two kinds: the process's own counters live in [`Metrics`] for the life of the process;
//! the services' state (processors, router, outbox, the container-facing listener) is read
//! from their views at each scrape, so `/metrics` shows exactly what the pages show.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, info::Info};
use prometheus_client::registry::{Registry, Unit};

type Labels = Vec<(&'static str, String)>;
type F64Gauge = Gauge<f64, AtomicU64>;

/// The content type of [`Metrics::exposition`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    http_responses: Family<Labels, Counter>,
    engine_up: Gauge,
    engine_checks: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self { started: Instant::now(), http_responses: Family::default(), engine_up: Gauge::default(), engine_checks: Counter::default() }
    }
}

impl Metrics {
    pub fn observe_http(&self, status: u16) {
        let class = format!("{}xx", (status / 100).clamp(1, 5));
        self.http_responses.get_or_create(&vec![("class", class)]).inc();
    }

    pub fn observe_engine(&self, up: bool) {
        self.engine_up.set(up as i64);
        self.engine_checks.inc();
    }

    /// The process's own series.
    pub fn register(&self, r: &mut Registry) {
        r.register("bss_control_build", "Build information", Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]));
        r.register_with_unit("bss_control_uptime", "Time since the process started", Unit::Seconds, gauge_f64(self.started.elapsed().as_secs_f64()));
        r.register("bss_control_http_responses", "HTTP responses by status class", self.http_responses.clone());
        r.register("bss_control_docker_engine_up", "Whether the last Docker engine check answered", self.engine_up.clone());
        r.register("bss_control_docker_engine_checks", "Docker engine checks made", self.engine_checks.clone());
    }

    /// Everything `/metrics` serves, read now.
    pub fn exposition(&self, s: &crate::state::Services) -> String {
        render(|r| {
            self.register(r);
            register_db(r, &s.db.status());
            register_streams(r, &s.streams.view());
            register_outbox(r, &s.outbox);
            register_stack_listener(r);
        })
    }
}

/// Encodes what `fill` registers.
pub fn render(fill: impl FnOnce(&mut Registry)) -> String {
    let mut r = Registry::default();
    fill(&mut r);
    let mut out = String::new();
    encode(&mut out, &r).expect("writing to a String does not fail");
    out
}

fn gauge(v: i64) -> Gauge {
    let g = Gauge::default();
    g.set(v);
    g
}

fn gauge_f64(v: f64) -> F64Gauge {
    let g = F64Gauge::default();
    g.set(v);
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// One series per label set, read from a snapshot.
fn gauges(rows: impl IntoIterator<Item = (Labels, f64)>) -> Family<Labels, F64Gauge> {
    let f = Family::<Labels, F64Gauge>::default();
    for (labels, v) in rows {
        f.get_or_create(&labels).set(v);
    }
    f
}

fn int_gauges(rows: impl IntoIterator<Item = (Labels, i64)>) -> Family<Labels, Gauge> {
    let f = Family::<Labels, Gauge>::default();
    for (labels, v) in rows {
        f.get_or_create(&labels).set(v);
    }
    f
}

fn counters(rows: impl IntoIterator<Item = (Labels, u64)>) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    for (labels, v) in rows {
        f.get_or_create(&labels).inc_by(v);
    }
    f
}

/// The BSS API's outbox: rows waiting for the bus, rows published, whether the relay fails.
pub fn register_outbox(r: &mut Registry, o: &crate::outbox::Outbox) {
    r.register("bss_outbox_pending", "CloudEvents committed with their rows, not yet acknowledged by Kafka", gauge(o.pending.load(Ordering::Relaxed) as i64));
    let oldest = o.oldest_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    r.register_with_unit("bss_outbox_oldest_pending", "Age of the oldest CloudEvent waiting in the outbox (0: none)", Unit::Seconds, gauge_f64(oldest));
    r.register("bss_outbox_published", "CloudEvents the relay published", counter(o.published.load(Ordering::Relaxed)));
    let failing = o.last_error.lock().unwrap().is_some() as i64;
    r.register("bss_outbox_relay_failing", "1 while the relay's last pass failed", gauge(failing));
}

/// The stream processors: counters, state, last second's latencies, lag per group and per
/// partition of the input topic.
pub fn register_streams(r: &mut Registry, v: &app::api::StreamsView) {
    let last = v.history.last();
    let point = |i: usize| last.and_then(|l| l.procs.get(i)).cloned().unwrap_or_default();
    let per = |f: &dyn Fn(usize, &app::api::ProcessorView) -> f64| {
        v.processors.iter().enumerate().map(|(i, p)| (vec![("processor", p.name.clone())], f(i, p))).collect::<Vec<_>>()
    };
    let count = |f: &dyn Fn(&app::api::ProcessorView) -> u64| counters(v.processors.iter().map(|p| (vec![("processor", p.name.clone())], f(p))));
    let gauge_of = |f: &dyn Fn(usize, &app::api::ProcessorView) -> f64| gauges(per(f));
    r.register("bss_stream_consumed", "Records consumed from the input topic", count(&|p| p.consumed));
    r.register("bss_stream_produced", "Output records acknowledged by the brokers", count(&|p| p.produced));
    r.register("bss_stream_dlq", "Records sent to the dead-letter topic", count(&|p| p.dlq));
    r.register("bss_stream_restarts", "Restarts after failures", count(&|p| p.restarts as u64));
    r.register("bss_stream_running", "1 while the processor runs", gauge_of(&|_, p| f64::from(u8::from(p.state == "running"))));
    // No series while the lag is unknown (no topic read answered lately): a 0 would say
    // "caught up" when nothing is known.
    let lags = v.processors.iter().filter_map(|p| Some((vec![("processor", p.name.clone())], p.lag? as f64)));
    r.register("bss_stream_consumer_lag", "Input records not yet committed by the processor's group", gauges(lags));
    // Latency only for a second that acknowledged something: an idle second has none.
    let latency = |f: fn(&app::api::ProcPoint) -> Option<f64>| {
        gauges(v.processors.iter().enumerate().filter_map(|(i, p)| Some((vec![("processor", p.name.clone())], f(&point(i))? / 1000.0))))
    };
    r.register_with_unit("bss_stream_latency_p99", "End-to-end latency p99 over the last second", Unit::Seconds, latency(|p| p.p99_ms));
    r.register_with_unit("bss_stream_latency_p50", "End-to-end latency p50 over the last second", Unit::Seconds, latency(|p| p.p50_ms));
    // Per partition: the same lag, where it sits (a stuck partition shows here, not in the sum).
    let groups: std::collections::HashMap<&str, &str> = v.processors.iter().map(|p| (p.group.as_str(), p.name.as_str())).collect();
    let rows = v.topics.iter().flat_map(|t| {
        t.groups.iter().filter_map(|(g, _, lag)| {
            let processor = groups.get(g.as_str())?;
            Some((
                vec![("processor", processor.to_string()), ("group", g.clone()), ("topic", t.topic.clone()), ("partition", t.partition.to_string())],
                (*lag)?,
            ))
        })
    });
    r.register("bss_stream_consumer_partition_lag", "Input records not yet committed by the processor's group, per partition", int_gauges(rows));
}

/// The read/write router's state: replication lag, admission and routing counters.
pub fn register_db(r: &mut Registry, s: &app::api::DbStatus) {
    let per = |f: &dyn Fn(&app::api::ReplicaStatus) -> f64| gauges(s.replicas.iter().map(|x| (vec![("replica", x.name.clone())], f(x))));
    // A replica whose lag the last check could not tell (down, not a standby, the primary's
    // position unknown) has no lag series: absent, not 0.
    let known = |f: &dyn Fn(&app::api::ReplicaStatus) -> Option<f64>| gauges(s.replicas.iter().filter_map(|x| Some((vec![("replica", x.name.clone())], f(x)?))));
    r.register_with_unit("bss_db_replication_lag", "WAL the replica has not replayed", Unit::Bytes, known(&|x| x.lag_bytes.map(|b| b as f64)));
    r.register_with_unit("bss_db_replication_lag", "How far the replica's replay is behind", Unit::Seconds, known(&|x| x.lag_secs));
    r.register("bss_db_replica_admitted", "1 when the router sends reads to the replica", per(&|x| f64::from(u8::from(x.admission == app::api::Admission::In))));
    r.register("bss_db_replica_reads", "Reads served by the replica", counters(s.replicas.iter().map(|x| (vec![("replica", x.name.clone())], x.reads))));
    r.register("bss_db_primary_up", "1 when the primary answered the last check", gauge(i64::from(s.primary_up)));
    r.register("bss_db_writes", "Writes routed to the primary", counter(s.writes));
    r.register("bss_db_read_fallbacks", "Reads sent to the primary because no replica was usable", counter(s.fallbacks));
}

/// The container-facing listener's mutual TLS: handshakes accepted and refused.
pub fn register_stack_listener(r: &mut Registry) {
    use crate::web::stack_tls_counts;
    let (ok, refused) = stack_tls_counts();
    let rows = [(vec![("result", "accepted".to_string())], ok), (vec![("result", "refused".to_string())], refused)];
    r.register("bss_stack_listener_tls_handshakes", "TLS handshakes on the container-facing listener (refused: no, a foreign or an outdated client certificate)", counters(rows));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn db_metrics_name_each_replica() {
        let s = app::api::DbStatus {
            primary_lsn: None,
            primary_up: true,
            writes: 3,
            primary_reads: 0,
            fallbacks: 1,
            retried_reads: 0,
            replicas: vec![app::api::ReplicaStatus {
                name: "postgres-replica-1".into(),
                admission: app::api::Admission::Out { reason: "lag".into(), since_ms: 0 },
                reachable: true,
                replay_paused: true,
                replay_lsn: None,
                lag_bytes: Some(4096),
                lag_secs: Some(2.5),
                reads: 7,
            }],
        };
        let mut down = s.clone();
        down.replicas[0].reachable = false;
        (down.replicas[0].lag_bytes, down.replicas[0].lag_secs) = (None, None);
        let text = render(|r| register_db(r, &down));
        assert!(!text.contains("bss_db_replication_lag_bytes{") && !text.contains("bss_db_replication_lag_seconds{"), "a replica that did not answer has no lag: {text}");
        assert!(text.contains("bss_db_replica_admitted{replica=\"postgres-replica-1\"} 0.0\n"), "{text}");
        let text = render(|r| register_db(r, &s));
        assert!(text.contains("# UNIT bss_db_replication_lag_bytes bytes\n"), "{text}");
        assert!(text.contains("bss_db_replication_lag_bytes{replica=\"postgres-replica-1\"} 4096.0\n"), "{text}");
        assert!(text.contains("bss_db_replication_lag_seconds{replica=\"postgres-replica-1\"} 2.5\n"), "{text}");
        assert!(text.contains("bss_db_replica_admitted{replica=\"postgres-replica-1\"} 0.0\n"), "{text}");
        assert!(text.contains("# TYPE bss_db_read_fallbacks counter\n"), "{text}");
        assert!(text.contains("bss_db_read_fallbacks_total 1\n"), "{text}");
        assert!(text.contains("# HELP bss_db_writes Writes routed to the primary.\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn counts_by_status_class() {
        let m = Metrics::default();
        m.observe_http(200);
        m.observe_http(204);
        m.observe_http(503);
        let text = render(|r| m.register(r));
        assert!(text.contains("bss_control_http_responses_total{class=\"2xx\"} 2\n"), "{text}");
        assert!(text.contains("bss_control_http_responses_total{class=\"5xx\"} 1\n"), "{text}");
        assert!(text.contains("bss_control_build_info{version=\""), "{text}");
        assert!(text.contains("# UNIT bss_control_uptime_seconds seconds\n"), "{text}");
    }

    #[test]
    fn lag_per_partition_of_each_processor() {
        let mut v = app::api::StreamsView::default();
        v.processors.push(app::api::ProcessorView { name: "bss-order-processor".into(), group: "g-orders".into(), lag: Some(7), ..Default::default() });
        for (partition, lag) in [(0, 3), (1, 4)] {
            v.topics.push(app::api::TopicPartitionRow {
                topic: "bss.order.events".into(),
                partition,
                leader: 1,
                low: 0,
                high: 10,
                groups: vec![("g-orders".into(), Some(10 - lag), Some(lag)), ("someone-else".into(), Some(0), Some(10))],
            });
        }
        let text = render(|r| register_streams(r, &v));
        assert!(text.contains("bss_stream_consumer_lag{processor=\"bss-order-processor\"} 7.0\n"), "{text}");
        assert!(
            text.contains("bss_stream_consumer_partition_lag{processor=\"bss-order-processor\",group=\"g-orders\",topic=\"bss.order.events\",partition=\"1\"} 4\n"),
            "{text}"
        );
        assert!(!text.contains("someone-else"), "only the processors' groups: {text}");

        // Lag unknown (no topic read answered lately): no series, not a 0.
        v.processors[0].lag = None;
        for t in &mut v.topics {
            t.groups[0].2 = None;
        }
        let text = render(|r| register_streams(r, &v));
        assert!(!text.contains("bss_stream_consumer_lag{"), "{text}");
        assert!(!text.contains("bss_stream_consumer_partition_lag{"), "{text}");
        assert!(text.contains("bss_stream_consumed_total{processor=\"bss-order-processor\"}"), "the rest is still there: {text}");
    }

    #[test]
    fn latency_only_for_a_second_that_acknowledged_something() {
        let mut v = app::api::StreamsView::default();
        v.processors.push(app::api::ProcessorView { name: "bss-order-processor".into(), ..Default::default() });
        let second = |p99: Option<f64>| app::api::StreamPoint { at_ms: 1, procs: vec![app::api::ProcPoint { p50_ms: p99.map(|v| v / 2.0), p99_ms: p99, ..Default::default() }] };
        v.history.push(second(Some(40.0)));
        let text = render(|r| register_streams(r, &v));
        assert!(text.contains("bss_stream_latency_p99_seconds{processor=\"bss-order-processor\"} 0.04\n"), "{text}");
        // Idle: no latency to tell, so no series (it was a 0 ms).
        v.history.push(second(None));
        let text = render(|r| register_streams(r, &v));
        assert!(!text.contains("bss_stream_latency_p99_seconds{") && !text.contains("bss_stream_latency_p50_seconds{"), "{text}");
    }
}
