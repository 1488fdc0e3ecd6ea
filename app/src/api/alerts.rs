//! AlertManager (routes, alerts, silences, deliveries) and Prometheus (targets, rules).
use serde::{Deserialize, Serialize};


/// One AlertManager route, with inherited settings resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteNode {
    /// `root`, `root.0`, `root.0.1`…
    pub path: String,
    pub receiver: String,
    /// The receiver's integrations: `email`, `slack`, `webhook`…
    pub kinds: Vec<String>,
    pub matchers: Vec<String>,
    pub cont: bool,
    pub group_by: Vec<String>,
    pub group_wait: String,
    pub group_interval: String,
    pub repeat_interval: String,
    pub children: Vec<RouteNode>,
}

/// Which receivers get an alert with given labels, in AlertManager's order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTestResult {
    pub receivers: Vec<String>,
    /// The matched route's path, per receiver.
    pub paths: Vec<String>,
    pub group_by: Vec<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRow {
    pub labels: Vec<(String, String)>,
    pub state: String,
    pub starts_at: String,
    pub summary: String,
    pub silenced_by: Vec<String>,
}

/// Active alerts as AlertManager groups them (per receiver and group-by labels).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertGroupView {
    pub receiver: String,
    pub labels: Vec<(String, String)>,
    pub alerts: Vec<AlertRow>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SilenceView {
    pub id: String,
    pub matchers: Vec<String>,
    pub created_by: String,
    pub comment: String,
    pub starts_at: String,
    pub ends_at: String,
    /// `active`, `pending` or `expired`.
    pub state: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScrapeTarget {
    pub job: String,
    pub instance: String,
    pub health: String,
    pub last_scrape: String,
    pub error: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    pub name: String,
    pub state: String,
    pub severity: String,
    pub active: usize,
}

/// A notification the local sink received (what AlertManager actually delivered).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub at_ms: u64,
    /// `email` or `slack`.
    pub kind: String,
    /// Address or webhook path.
    pub target: String,
    /// The receiver that target belongs to, from the config.
    pub receiver: String,
    /// Alert names found in the body.
    pub alerts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertsView {
    pub tree: Option<RouteNode>,
    pub receivers: Vec<(String, Vec<String>)>,
    pub groups: Vec<AlertGroupView>,
    pub silences: Vec<SilenceView>,
    pub targets: Vec<ScrapeTarget>,
    pub rules: Vec<RuleView>,
    pub deliveries: Vec<Delivery>,
    /// What could not be read (service down…), one line each.
    pub errors: Vec<String>,
}
