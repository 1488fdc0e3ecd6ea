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
}
