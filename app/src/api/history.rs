//! Longer history for the charts, read from Prometheus (range queries) rather than the
//! control plane's 15-minute in-memory rings.
use serde::{Deserialize, Serialize};

/// The windows a history chart offers: (name, seconds).
pub const HISTORY_WINDOWS: &[(&str, u64)] = &[("15m", 900), ("1h", 3_600), ("6h", 21_600), ("24h", 86_400)];

/// One chart's series over a window, as Prometheus stored them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    pub chart: String,
    pub window: String,
    /// The PromQL behind the chart, as sent (its range already filled in).
    pub query: String,
    /// Prometheus' own graph page for that query and window.
    pub graph_url: String,
    pub step_s: u64,
    pub names: Vec<String>,
    /// (unix ms, one value per name); `None` where a series has no sample at that step.
    /// Not NaN: JSON has no NaN (serde writes `null`, which an `f64` cannot read back), so
    /// a gap in the server's answer broke the page's hydration.
    pub points: Vec<(u64, Vec<Option<f64>>)>,
}
