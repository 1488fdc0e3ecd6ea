//! Process metrics in the Prometheus text format, served on `/metrics`.
//! Hand-rolled on atomics: a handful of series does not need a metrics framework.
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    http_by_class: [AtomicU64; 5],
    engine_up: AtomicU64,
    engine_checks: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            http_by_class: Default::default(),
            engine_up: AtomicU64::new(0),
            engine_checks: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    pub fn observe_http(&self, status: u16) {
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.http_by_class[class].fetch_add(1, Ordering::Relaxed);
    }

    pub fn observe_engine(&self, up: bool) {
        self.engine_up.store(up as u64, Ordering::Relaxed);
        self.engine_checks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP bss_control_build_info Build information.\n# TYPE bss_control_build_info gauge\n");
        out.push_str(&format!("bss_control_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION")));
        out.push_str("# HELP bss_control_uptime_seconds Seconds since the process started.\n# TYPE bss_control_uptime_seconds gauge\n");
        out.push_str(&format!("bss_control_uptime_seconds {:.3}\n", self.started.elapsed().as_secs_f64()));
        out.push_str("# HELP bss_control_http_responses_total HTTP responses by status class.\n# TYPE bss_control_http_responses_total counter\n");
        for (i, c) in self.http_by_class.iter().enumerate() {
            out.push_str(&format!("bss_control_http_responses_total{{class=\"{}xx\"}} {}\n", i + 1, c.load(Ordering::Relaxed)));
        }
        out.push_str("# HELP bss_control_docker_engine_up Whether the last Docker engine check answered.\n# TYPE bss_control_docker_engine_up gauge\n");
        out.push_str(&format!("bss_control_docker_engine_up {}\n", self.engine_up.load(Ordering::Relaxed)));
        out.push_str("# HELP bss_control_docker_engine_checks_total Docker engine checks made.\n# TYPE bss_control_docker_engine_checks_total counter\n");
        out.push_str(&format!("bss_control_docker_engine_checks_total {}\n", self.engine_checks.load(Ordering::Relaxed)));
        out
    }
}

/// One `# HELP`/`# TYPE` header and its rows.
fn family(out: &mut String, name: &str, help: &str, kind: &str, rows: Vec<(String, String)>) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    for (labels, v) in rows {
        out.push_str(&format!("{name}{labels} {v}\n"));
    }
}

/// The BSS API's outbox: rows waiting for the bus, rows published, whether the relay fails.
pub fn render_outbox(o: &crate::outbox::Outbox) -> String {
    use std::sync::atomic::Ordering;
    let mut out = String::new();
    let one = |v: String| vec![(String::new(), v)];
    family(&mut out, "bss_outbox_pending", "CloudEvents committed with their rows, not yet acknowledged by Kafka", "gauge", one(o.pending.load(Ordering::Relaxed).to_string()));
    let oldest = o.oldest_ms.load(Ordering::Relaxed) as f64 / 1000.0;
    family(&mut out, "bss_outbox_oldest_pending_seconds", "Age of the oldest CloudEvent waiting in the outbox (0: none)", "gauge", one(oldest.to_string()));
    family(&mut out, "bss_outbox_published_total", "CloudEvents the relay published", "counter", one(o.published.load(Ordering::Relaxed).to_string()));
    let failing = o.last_error.lock().unwrap().is_some() as u8;
    family(&mut out, "bss_outbox_relay_failing", "1 while the relay's last pass failed", "gauge", one(failing.to_string()));
    out
}

/// The stream processors: counters, state, last second's rates and latencies, lag.
pub fn render_streams(v: &app::api::StreamsView) -> String {
    let mut out = String::new();
    let last = v.history.last();
    let per = |f: &dyn Fn(usize, &app::api::ProcessorView) -> String| {
        v.processors.iter().enumerate().map(|(i, p)| (format!("{{processor=\"{}\"}}", p.name), f(i, p))).collect::<Vec<_>>()
    };
    let point = |i: usize| last.and_then(|l| l.procs.get(i)).cloned().unwrap_or_default();
    family(&mut out, "bss_stream_consumed_total", "Records consumed from the input topic.", "counter", per(&|_, p| p.consumed.to_string()));
    family(&mut out, "bss_stream_produced_total", "Output records acknowledged by the brokers.", "counter", per(&|_, p| p.produced.to_string()));
    family(&mut out, "bss_stream_dlq_total", "Records sent to the dead-letter topic.", "counter", per(&|_, p| p.dlq.to_string()));
    family(&mut out, "bss_stream_running", "1 while the processor runs.", "gauge", per(&|_, p| u8::from(p.state == "running").to_string()));
    family(&mut out, "bss_stream_restarts_total", "Restarts after failures.", "counter", per(&|_, p| p.restarts.to_string()));
    family(&mut out, "bss_stream_consumer_lag", "Input records not yet committed by the processor's group.", "gauge", per(&|_, p| p.lag.unwrap_or(0).to_string()));
    family(&mut out, "bss_stream_latency_p99_seconds", "End-to-end latency p99 over the last second.", "gauge", per(&|i, _| format!("{:.4}", point(i).p99_ms / 1000.0)));
    family(&mut out, "bss_stream_latency_p50_seconds", "End-to-end latency p50 over the last second.", "gauge", per(&|i, _| format!("{:.4}", point(i).p50_ms / 1000.0)));
    out
}

/// The read/write router's state: replication lag, admission and routing counters.
pub fn render_db(s: &app::api::DbStatus) -> String {
    let mut out = String::new();
    let per = |f: &dyn Fn(&app::api::ReplicaStatus) -> String| {
        s.replicas.iter().map(|r| (format!("{{replica=\"{}\"}}", r.name), f(r))).collect::<Vec<_>>()
    };
    family(&mut out, "bss_db_replication_lag_bytes", "Bytes of WAL the replica has not replayed.", "gauge", per(&|r| r.lag_bytes.to_string()));
    family(&mut out, "bss_db_replication_lag_seconds", "Seconds the replica's replay is behind.", "gauge", per(&|r| format!("{:.3}", r.lag_secs)));
    family(
        &mut out,
        "bss_db_replica_admitted",
        "1 when the router sends reads to the replica.",
        "gauge",
        per(&|r| u8::from(r.admission == app::api::Admission::In).to_string()),
    );
    family(&mut out, "bss_db_replica_reads_total", "Reads served by the replica.", "counter", per(&|r| r.reads.to_string()));
    family(&mut out, "bss_db_primary_up", "1 when the primary answered the last check.", "gauge", vec![(String::new(), u8::from(s.primary_up).to_string())]);
    family(&mut out, "bss_db_writes_total", "Writes routed to the primary.", "counter", vec![(String::new(), s.writes.to_string())]);
    family(&mut out, "bss_db_read_fallbacks_total", "Reads sent to the primary because no replica was usable.", "counter", vec![(String::new(), s.fallbacks.to_string())]);
    out
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
                lag_bytes: 4096,
                lag_secs: 2.5,
                reads: 7,
            }],
        };
        let text = render_db(&s);
        assert!(text.contains("bss_db_replication_lag_bytes{replica=\"postgres-replica-1\"} 4096\n"), "{text}");
        assert!(text.contains("bss_db_replica_admitted{replica=\"postgres-replica-1\"} 0\n"), "{text}");
        assert!(text.contains("bss_db_read_fallbacks_total 1\n"), "{text}");
    }

    #[test]
    fn counts_by_status_class() {
        let m = Metrics::default();
        m.observe_http(200);
        m.observe_http(204);
        m.observe_http(503);
        let text = m.render();
        assert!(text.contains("bss_control_http_responses_total{class=\"2xx\"} 2\n"), "{text}");
        assert!(text.contains("bss_control_http_responses_total{class=\"5xx\"} 1\n"), "{text}");
    }
}
