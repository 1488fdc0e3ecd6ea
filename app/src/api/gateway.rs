//! Envoy (clusters, breakers, counters) and HAProxy (backends); the burst test.
use serde::{Deserialize, Serialize};


#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvoyCluster {
    pub name: String,
    pub hosts: Vec<(String, String)>,
    /// (threshold name, configured max, remaining now)
    pub breakers: Vec<(String, u64, Option<u64>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaproxyRow {
    pub proxy: String,
    pub server: String,
    pub status: String,
    pub sessions: u64,
    pub total: u64,
    pub check: String,
}

/// One sample of Envoy's counters (for rates).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayPoint {
    pub at_ms: u64,
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub overflows: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayView {
    pub envoy_ready: Option<String>,
    pub clusters: Vec<EnvoyCluster>,
    /// Selected counters: name → value.
    pub counters: Vec<(String, u64)>,
    /// 1 s samples of the main counters (last 15 min).
    pub history: Vec<GatewayPoint>,
    pub haproxy: Vec<HaproxyRow>,
    pub errors: Vec<String>,
}

impl GatewayView {
    /// The hosts of Envoy's `cluster`, as (address, health) — `HEALTHY` when in rotation.
    pub fn hosts_of<'a>(&'a self, cluster: &'a str) -> impl Iterator<Item = &'a (String, String)> + 'a {
        self.clusters.iter().filter(move |c| c.name == cluster).flat_map(|c| c.hosts.iter())
    }

    /// Whether a host of Envoy's `cluster` is healthy.
    pub fn healthy(&self, cluster: &str) -> bool {
        self.hosts_of(cluster).any(|h| h.1 == "HEALTHY")
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BurstResult {
    pub sent: u32,
    pub passed: u32,
    pub limited: u32,
    pub other: u32,
    pub limited_counter_before: u64,
    pub limited_counter_after: u64,
    /// From the first request sent to the last answer.
    pub span_ms: u64,
}

/// Envoy's token bucket (dev/envoy/envoy.yaml): 10 tokens, one more every 0.6 s (100 a minute).
pub const BUCKET_TOKENS: u32 = 10;
pub const REFILL_MS: u64 = 600;

impl BurstResult {
    /// The most requests a correct limiter lets through in this burst: a full bucket plus
    /// every token that can land during its span (one more than whole refill intervals, as
    /// the first may land at once). A burst slow enough for this to reach `sent` tests nothing.
    pub fn most_allowed(&self) -> u32 {
        BUCKET_TOKENS + 1 + u32::try_from(self.span_ms / REFILL_MS).unwrap_or(u32::MAX - BUCKET_TOKENS - 1)
    }

    /// Whether Envoy limited this burst as configured; `Err` says how it did not.
    pub fn judged(&self) -> Result<(), String> {
        let most = self.most_allowed();
        if self.other > 0 {
            Err(format!("{} answers neither 200 nor 429", self.other))
        } else if most >= self.sent {
            Err(format!("the burst took {} ms: a correct limiter may pass all {} requests in that time, so it tests nothing", self.span_ms, self.sent))
        } else if self.passed > most {
            Err(format!(
                "{} passed, more than the {most} a {BUCKET_TOKENS}-token bucket refilled every {} s allows in {} ms",
                self.passed,
                REFILL_MS as f64 / 1000.0,
                self.span_ms
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::BurstResult;

    fn burst(sent: u32, passed: u32, other: u32, span_ms: u64) -> BurstResult {
        BurstResult { sent, passed, limited: sent - passed - other, other, limited_counter_before: 0, limited_counter_after: 0, span_ms }
    }

    #[test]
    fn a_burst_is_judged_by_the_tokens_its_span_allows() {
        // Fast: a full bucket and at most one refill.
        assert_eq!(burst(20, 11, 0, 150).most_allowed(), 11);
        assert!(burst(20, 11, 0, 150).judged().is_ok());
        assert!(burst(20, 12, 0, 150).judged().unwrap_err().contains("more than the 11"));
        // Slow (a loaded machine): three refills may land in 1.9 s.
        assert_eq!(burst(20, 13, 0, 1_900).most_allowed(), 14);
        assert!(burst(20, 13, 0, 1_900).judged().is_ok());
        assert!(burst(20, 15, 0, 1_900).judged().is_err());
        // No limiter at all is caught while the burst is fast enough to tell.
        assert!(burst(20, 20, 0, 300).judged().is_err());
        // Too slow to tell: a failure, never a pass.
        assert!(burst(20, 9, 0, 6_000).judged().unwrap_err().contains("tests nothing"));
        // Anything but 200 or 429.
        assert!(burst(20, 5, 1, 100).judged().unwrap_err().contains("neither 200 nor 429"));
        assert_eq!(burst(20, 0, 0, u64::MAX).most_allowed(), u32::MAX);
    }
}
