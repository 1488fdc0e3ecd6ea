//! Prometheus, read through its HTTP API on loopback: scrape targets, alerting rules and
//! instant queries. The Alerts page shows targets and rules; the verification suite checks
//! targets and asks Prometheus for the exporters' series.
use app::api::{RuleView, ScrapeTarget};
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
    let value = |pair: &Value| -> Result<f64, String> {
        let s = pair.get(1).and_then(Value::as_str).ok_or_else(|| format!("no value in {pair}"))?;
        // Prometheus writes "NaN", "+Inf", "-Inf" as Go does.
        match s {
            "+Inf" => Ok(f64::INFINITY),
            "-Inf" => Ok(f64::NEG_INFINITY),
            _ => s.parse::<f64>().map_err(|e| format!("value {s:?}: {e}")),
        }
    };
    match v.pointer("/data/resultType").and_then(Value::as_str) {
        Some("vector") => v
            .pointer("/data/result")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|r| {
                let labels = r["metric"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default();
                Ok(Sample { labels, value: value(&r["value"])? })
            })
            .collect(),
        Some("scalar") => Ok(vec![Sample { labels: vec![], value: value(&v["data"]["result"])? }]),
        other => Err(format!("result type {other:?} is not an instant vector or scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
