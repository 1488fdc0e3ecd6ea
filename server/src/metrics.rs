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

#[cfg(test)]
mod tests {
    use super::*;

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
