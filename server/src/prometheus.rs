//! Prometheus, read through its HTTP API on loopback: scrape targets, alerting rules,
//! instant and range queries. The Alerts page shows targets and rules; the verification
//! suite checks targets and asks Prometheus for the exporters' series; the history charts
//! (Streams, Database, Gateway pages) draw the range queries of [`HISTORY_CHARTS`].
use app::api::{History, RuleView, ScrapeTarget, HISTORY_WINDOWS};
use serde_json::Value;

/// Why Prometheus could not answer: unreachable, an HTTP error, or a query it refused.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("GET {url}: {message}")]
    Unavailable { url: String, message: String },
    /// Prometheus answered `status: error` (a bad query, a timeout inside Prometheus).
    #[error("query {query:?}: {message}")]
    Query { query: String, message: String },
}

/// One series of an instant query's vector result.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `name` (`__name__` is the metric's name), if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone)]
pub struct Prometheus {
    http: reqwest::Client,
    url: String,
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

impl Prometheus {
    /// `url`: the base address (`[endpoints] prometheus`).
    pub fn new(url: &str) -> Self {
        Self { http: crate::alerts::http_client(), url: url.trim_end_matches('/').to_string() }
    }

    /// With this HTTP client instead (swarm mode: one that follows the stack's tasks).
    pub fn with_http(self, http: reqwest::Client) -> Self {
        Self { http, ..self }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    async fn get(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, PrometheusError> {
        let url = format!("{}{path}", self.url);
        let fail = |message: String| PrometheusError::Unavailable { url: url.clone(), message };
        let r = self.http.get(&url).query(params).send().await.map_err(|e| fail(e.to_string()))?;
        let status = r.status();
        let body: Value = r.json().await.map_err(|e| fail(format!("HTTP {status}: {e}")))?;
        // A refused query is HTTP 400 with a JSON body that says why.
        if body["status"] == "error" {
            let query = params.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
            return Err(PrometheusError::Query { query, message: text(&body, "/error") });
        }
        if !status.is_success() {
            return Err(fail(format!("HTTP {status}")));
        }
        Ok(body)
    }

    /// The active scrape targets, by job and instance.
    pub async fn targets(&self) -> Result<Vec<ScrapeTarget>, PrometheusError> {
        let v = self.get("/api/v1/targets", &[("state", "active")]).await?;
        Ok(parse_targets(&v))
    }

    /// The alerting rules with their state and number of active alerts.
    pub async fn rules(&self) -> Result<Vec<RuleView>, PrometheusError> {
        let v = self.get("/api/v1/rules", &[("type", "alert")]).await?;
        Ok(parse_rules(&v))
    }

    /// An instant query (PromQL); a vector result as samples, a scalar as one unlabelled sample.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, PrometheusError> {
        let v = self.get("/api/v1/query", &[("query", promql)]).await?;
        parse_query(&v).map_err(|message| PrometheusError::Query { query: promql.into(), message })
    }

    /// A range query (PromQL) from `start` to `end` (unix seconds) every `step_s`: one
    /// series per label set, each a list of (unix ms, value).
    pub async fn query_range(&self, promql: &str, start: u64, end: u64, step_s: u64) -> Result<Vec<RangeSeries>, PrometheusError> {
        let (start, end, step) = (start.to_string(), end.to_string(), step_s.to_string());
        let v = self.get("/api/v1/query_range", &[("query", promql), ("start", &start), ("end", &end), ("step", &step)]).await?;
        parse_matrix(&v).map_err(|message| PrometheusError::Query { query: promql.into(), message })
    }

    /// `chart` over `window` from the catalogue below, aligned for a chart: one row per
    /// step, `None` where a series has no sample at that step.
    pub async fn history(&self, chart: &str, window: &str, now_s: u64) -> Result<History, HistoryError> {
        let c = HISTORY_CHARTS.iter().find(|c| c.id == chart).ok_or_else(|| HistoryError::Unknown(format!("no history chart {chart:?}; known: {}", HISTORY_CHARTS.iter().map(|c| c.id).collect::<Vec<_>>().join(", "))))?;
        let secs = HISTORY_WINDOWS.iter().find(|(w, _)| *w == window).map(|(_, s)| *s).ok_or_else(|| {
            HistoryError::Unknown(format!("window {window:?} is not one of {}", HISTORY_WINDOWS.iter().map(|(w, _)| *w).collect::<Vec<_>>().join(", ")))
        })?;
        let step_s = step_for(secs);
        // Rates over at least one step (else a long window's points miss what lies between).
        let query = c.promql.replace("$range", &format!("{}s", step_s.max(60)));
        let series = self.query_range(&query, now_s.saturating_sub(secs), now_s, step_s).await.map_err(HistoryError::Prometheus)?;
        let (names, points) = align(&series, c.label);
        let graph_url = reqwest::Url::parse_with_params(&format!("{}/graph", self.url), &[("g0.expr", query.as_str()), ("g0.range_input", window), ("g0.tab", "0")])
            .map(String::from)
            .unwrap_or_default();
        Ok(History { chart: chart.into(), window: window.into(), query, graph_url, step_s, names, points })
    }
}

/// One series of a range query: its labels and (unix ms, value) samples.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(u64, f64)>,
}

/// Why a history chart could not be drawn: asked for something the catalogue does not
/// have (bad input), or Prometheus did not answer.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("{0}")]
    Unknown(String),
    #[error(transparent)]
    Prometheus(PrometheusError),
}

/// A chart of the catalogue: its id (what the browser names), the PromQL (`$range` is
/// the rate window), and the label that names each series.
pub struct HistoryChart {
    pub id: &'static str,
    pub promql: &'static str,
    pub label: &'static str,
}

/// Every history chart the pages draw. Fixed here: the browser chooses a chart, not a query.
pub const HISTORY_CHARTS: &[HistoryChart] = &[
    // The control plane's sampler: each processor group's committed offsets vs the input's end.
    HistoryChart { id: "consumer-lag", promql: "max by (processor) (bss_stream_consumer_lag)", label: "processor" },
    // The same lag where it sits: per processor and input partition (one stuck partition
    // shows here, not in the sum).
    HistoryChart {
        id: "consumer-lag-partition",
        promql: "max by (series) (label_join(bss_stream_consumer_partition_lag, \"series\", \" partition \", \"processor\", \"partition\"))",
        label: "series",
    },
    // The brokers' own count (JMX exporter agent), per broker.
    HistoryChart { id: "broker-messages-in", promql: "sum by (broker) (rate(kafka_server_brokertopicmetrics_messagesin_total[$range]))", label: "broker" },
    // pg_stat_replication on the primary (dev/postgres-exporter/queries.yml).
    HistoryChart { id: "replication-lag", promql: "max by (application_name) (pg_replication_standby_replay_lag_seconds)", label: "application_name" },
    // Requests through Envoy's listener (:15006) per response class.
    HistoryChart {
        id: "gateway-requests",
        promql: "sum by (envoy_response_code_class) (rate(envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix=\"ingress_http\"}[$range]))",
        label: "envoy_response_code_class",
    },
];

/// About 240 points per window, never finer than the scrape interval (15 s).
fn step_for(window_s: u64) -> u64 {
    (window_s / 240).max(15)
}

/// Range series → chart rows: series sorted by their naming label, one row per timestamp
/// seen in any series, `None` where a series has no (finite) sample then.
fn align(series: &[RangeSeries], label: &str) -> (Vec<String>, Vec<(u64, Vec<Option<f64>>)>) {
    let mut named: Vec<(String, &RangeSeries)> = series
        .iter()
        .map(|s| (s.labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()).unwrap_or_else(|| "(all)".into()), s))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut times: Vec<u64> = series.iter().flat_map(|s| s.samples.iter().map(|p| p.0)).collect();
    times.sort_unstable();
    times.dedup();
    let lookup: Vec<std::collections::HashMap<u64, f64>> = named.iter().map(|(_, s)| s.samples.iter().copied().collect()).collect();
    // NaN and ±Inf (a division by zero in PromQL) are not plottable numbers: gaps too.
    let points = times.into_iter().map(|t| (t, lookup.iter().map(|m| m.get(&t).copied().filter(|v| v.is_finite())).collect())).collect();
    (named.into_iter().map(|(n, _)| n).collect(), points)
}

/// `{"data":{"resultType":"matrix","result":[{"metric":{..},"values":[[ts,"1"],..]}]}}`.
fn parse_matrix(v: &Value) -> Result<Vec<RangeSeries>, String> {
    if v.pointer("/data/resultType").and_then(Value::as_str) != Some("matrix") {
        return Err(format!("result type {:?} is not a range matrix", v.pointer("/data/resultType")));
    }
    v.pointer("/data/result")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let labels = metric_labels(r);
            let samples = r["values"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| {
                    let t = pair.get(0).and_then(Value::as_f64).ok_or_else(|| format!("no time in {pair}"))?;
                    Ok(((t * 1000.0).round() as u64, number(pair)?))
                })
                .collect::<Result<_, String>>()?;
            Ok(RangeSeries { labels, samples })
        })
        .collect()
}

/// A result's `metric` object as (label, value) pairs.
fn metric_labels(r: &Value) -> Vec<(String, String)> {
    r["metric"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default()
}

/// The value of a `[time, "value"]` pair (Prometheus writes "NaN", "+Inf", "-Inf" as Go does).
fn number(pair: &Value) -> Result<f64, String> {
    let s = pair.get(1).and_then(Value::as_str).ok_or_else(|| format!("no value in {pair}"))?;
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|e| format!("value {s:?}: {e}")),
    }
}

fn parse_targets(v: &Value) -> Vec<ScrapeTarget> {
    let mut out: Vec<ScrapeTarget> = v
        .pointer("/data/activeTargets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| ScrapeTarget {
            job: text(t, "/labels/job"),
            instance: text(t, "/labels/instance"),
            health: text(t, "/health"),
            last_scrape: text(t, "/lastScrape"),
            error: text(t, "/lastError"),
        })
        .collect();
    out.sort_by(|a, b| (&a.job, &a.instance).cmp(&(&b.job, &b.instance)));
    out
}

fn parse_rules(v: &Value) -> Vec<RuleView> {
    v.pointer("/data/groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .map(|r| RuleView {
            name: text(&r, "/name"),
            state: text(&r, "/state"),
            severity: text(&r, "/labels/severity"),
            active: r["alerts"].as_array().map(Vec::len).unwrap_or(0),
        })
        .collect()
}

/// `{"data":{"resultType":"vector","result":[{"metric":{..},"value":[ts,"1"]}]}}`.
fn parse_query(v: &Value) -> Result<Vec<Sample>, String> {
    match v.pointer("/data/resultType").and_then(Value::as_str) {
        Some("vector") => v
            .pointer("/data/result")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let labels = metric_labels(r);
                Ok(Sample { labels, value: number(&r["value"])? })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample { labels: vec![], value: number(&v["data"]["result"])? }]),
        other => Err(format!("result type {other:?} is not an instant vector or scalar")),
    }
}

impl From<HistoryError> for app::error::AppError {
    fn from(e: HistoryError) -> Self {
        match e {
            HistoryError::Unknown(m) => Self::Invalid(m),
            HistoryError::Prometheus(e) => Self::Unavailable(format!("Prometheus: {e}")),
        }
    }
}

#[async_trait::async_trait]
impl app::backend::HistoryApi for crate::state::Services {
    async fn history(&self, who: &app::api::Principal, chart: &str, window: &str) -> Result<History, app::error::AppError> {
        crate::state::require(who, app::api::Role::Viewer, "reading history")?;
        Ok(self.prometheus.history(chart, window, crate::clock::now_ms() / 1000).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_matrix_becomes_series_and_rows_with_gaps() {
        let v = json!({"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"processor":"b"},"values":[[100,"1"],[115,"2"]]},
            {"metric":{"processor":"a"},"values":[[115,"5"],[130,"NaN"]]}]}});
        let s = parse_matrix(&v).unwrap();
        assert_eq!(s[0].samples, vec![(100_000, 1.0), (115_000, 2.0)]);
        let (names, rows) = align(&s, "processor");
        assert_eq!(names, vec!["a", "b"], "sorted by the naming label");
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), vec![100_000, 115_000, 130_000]);
        assert_eq!(rows[0].1, vec![None, Some(1.0)], "a has no sample at 100 s: a gap, not a zero");
        assert_eq!(rows[1].1, vec![Some(5.0), Some(2.0)]);
        assert_eq!(rows[2].1, vec![None, None], "NaN from Prometheus is a gap too");
        // What the browser receives reads back the same (NaN would have been `null`).
        let h = History { points: rows.clone(), ..Default::default() };
        let back: History = serde_json::from_str(&serde_json::to_string(&h).unwrap()).unwrap();
        assert_eq!(back.points, rows);
        let vector = json!({"status":"success","data":{"resultType":"vector","result":[]}});
        assert!(parse_matrix(&vector).unwrap_err().contains("not a range matrix"));
    }

    #[test]
    fn history_steps_are_about_240_points_and_never_under_the_scrape_interval() {
        assert_eq!(HISTORY_WINDOWS.iter().map(|(_, s)| step_for(*s)).collect::<Vec<_>>(), vec![15, 15, 90, 360]);
    }

    #[tokio::test]
    async fn an_unknown_chart_or_window_is_bad_input_and_asks_nothing() {
        // Nothing listens on port 9: a request would fail as Unavailable, not Unknown.
        let p = Prometheus::new("http://127.0.0.1:9");
        for (chart, window) in [("nope", "1h"), ("consumer-lag", "2d")] {
            let e = p.history(chart, window, 1_700_000_000).await.unwrap_err();
            assert!(matches!(e, HistoryError::Unknown(_)), "{chart} {window}: {e}");
        }
        assert!(matches!(p.history("consumer-lag", "1h", 1_700_000_000).await.unwrap_err(), HistoryError::Prometheus(_)));
    }

    #[test]
    fn a_vector_result_becomes_labelled_samples() {
        let v = json!({"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"pg_up","instance":"postgres-exporter:9187"},"value":[1700000000.1,"1"]},
            {"metric":{"__name__":"pg_up","instance":"other"},"value":[1700000000.1,"NaN"]}]}});
        let s = parse_query(&v).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].value, 1.0);
        assert!(s[0].labels.contains(&("instance".into(), "postgres-exporter:9187".into())));
        assert!(s[1].value.is_nan());
    }

    #[test]
    fn a_scalar_is_one_sample_and_a_matrix_is_refused() {
        let v = json!({"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"+Inf"]}});
        assert_eq!(parse_query(&v).unwrap()[0].value, f64::INFINITY);
        let m = json!({"status":"success","data":{"resultType":"matrix","result":[]}});
        assert!(parse_query(&m).unwrap_err().contains("matrix"));
        let bad = json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}});
        assert!(parse_query(&bad).unwrap_err().contains("\"x\""));
    }

    #[test]
    fn targets_are_sorted_and_rules_counted() {
        let t = json!({"data":{"activeTargets":[
            {"labels":{"job":"zeta","instance":"z:1"},"health":"up","lastScrape":"t","lastError":""},
            {"labels":{"job":"alpha","instance":"a:1"},"health":"down","lastScrape":"t","lastError":"refused"}]}});
        let t = parse_targets(&t);
        assert_eq!((t[0].job.as_str(), t[0].error.as_str()), ("alpha", "refused"));
        let r = json!({"data":{"groups":[{"rules":[{"name":"PgDown","state":"firing","labels":{"severity":"critical"},"alerts":[{},{}]}]}]}});
        let r = parse_rules(&r);
        assert_eq!((r[0].name.as_str(), r[0].severity.as_str(), r[0].active), ("PgDown", "critical", 2));
    }
}
