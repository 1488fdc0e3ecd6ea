//! AlertManager, read through its HTTP API on loopback (the browser never talks to it): the
//! route tree and a route tester (`route`), active alert groups, silences (create /
//! expire), a test alert and where it was delivered (the local sink). Prometheus has its
//! own module (`crate::prometheus`); the Alerts page joins both in `api`.
pub mod api;
pub mod route;

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use app::api::{AlertGroupView, AlertRow, AlertsView, Delivery, SilenceView};
use serde_json::{json, Value};

/// Where the stack publishes them (`[endpoints]` in the config).
#[derive(Clone, Debug)]
pub struct Endpoints {
    pub alertmanager: String,
    pub sink: String,
}

impl Endpoints {
    pub fn new(e: &crate::config::EndpointsConfig) -> Self {
        let trim = |u: &str| u.trim_end_matches('/').to_string();
        Self { alertmanager: trim(&e.alertmanager), sink: trim(&e.sink) }
    }
}

impl Default for Endpoints {
    /// The dev stack's, from the config's defaults.
    fn default() -> Self {
        Self::new(&Default::default())
    }
}

/// Why an AlertManager action failed: the request was wrong, or AlertManager did not take it.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unavailable(String),
}

pub struct Alerts {
    http: reqwest::Client,
    ep: Endpoints,
    /// Names of test alerts fired by this process (to find them in delivered bodies).
    fired: Mutex<Vec<String>>,
}

pub fn http_client() -> reqwest::Client {
    crate::runtime::follow::http_client(None)
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, AlertsError> {
    let fail = |m: String| AlertsError::Unavailable(format!("GET {url}: {m}"));
    let r = http.get(url).send().await.map_err(|e| fail(e.to_string()))?;
    let status = r.status();
    if !status.is_success() {
        return Err(fail(format!("HTTP {status}: {}", r.text().await.unwrap_or_default().trim())));
    }
    r.json().await.map_err(|e| fail(e.to_string()))
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn label_pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()).unwrap_or_default()
}

impl Alerts {
    pub fn new(ep: Endpoints) -> Self {
        Self { http: http_client(), ep, fired: Mutex::new(vec![]) }
    }

    /// With this HTTP client instead (swarm mode: one that follows the stack's tasks).
    pub fn with_http(self, http: reqwest::Client) -> Self {
        Self { http, ..self }
    }

    /// The running configuration, as AlertManager reports it.
    pub async fn config(&self) -> Result<route::Config, AlertsError> {
        let v = get_json(&self.http, &format!("{}/api/v2/status", self.ep.alertmanager)).await?;
        let yaml = v
            .pointer("/config/original")
            .and_then(Value::as_str)
            .ok_or_else(|| AlertsError::Unavailable("AlertManager status has no config.original".into()))?;
        route::Config::parse(yaml).map_err(|e| AlertsError::Unavailable(format!("AlertManager's running config: {e}")))
    }

    pub async fn groups(&self) -> Result<Vec<AlertGroupView>, AlertsError> {
        let v = get_json(&self.http, &format!("{}/api/v2/alerts/groups", self.ep.alertmanager)).await?;
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|g| AlertGroupView {
                receiver: g.pointer("/receiver/name").and_then(Value::as_str).unwrap_or_default().into(),
                labels: label_pairs(&g["labels"]),
                alerts: g["alerts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| AlertRow {
                        labels: label_pairs(&a["labels"]),
                        state: a.pointer("/status/state").and_then(Value::as_str).unwrap_or_default().into(),
                        starts_at: s(a, "startsAt"),
                        summary: a.pointer("/annotations/summary").and_then(Value::as_str).unwrap_or_default().into(),
                        silenced_by: a.pointer("/status/silencedBy").and_then(Value::as_array).into_iter().flatten().filter_map(|x| x.as_str().map(String::from)).collect(),
                    })
                    .collect(),
            })
            .collect())
    }

    pub async fn silences(&self) -> Result<Vec<SilenceView>, AlertsError> {
        let v = get_json(&self.http, &format!("{}/api/v2/silences", self.ep.alertmanager)).await?;
        let mut out: Vec<SilenceView> = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|x| SilenceView {
                id: s(x, "id"),
                matchers: x["matchers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        let eq = m["isEqual"].as_bool().unwrap_or(true);
                        let op = match (m["isRegex"].as_bool().unwrap_or(false), eq) {
                            (false, true) => "=",
                            (false, false) => "!=",
                            (true, true) => "=~",
                            (true, false) => "!~",
                        };
                        format!("{}{op}{:?}", s(m, "name"), s(m, "value"))
                    })
                    .collect(),
                created_by: s(x, "createdBy"),
                comment: s(x, "comment"),
                starts_at: s(x, "startsAt"),
                ends_at: s(x, "endsAt"),
                state: x.pointer("/status/state").and_then(Value::as_str).unwrap_or_default().into(),
            })
            .collect();
        // Active first, then pending, expired last; newest first within each.
        let rank = |st: &str| match st {
            "active" => 0,
            "pending" => 1,
            _ => 2,
        };
        out.sort_by(|a, b| (rank(&a.state), &b.starts_at).cmp(&(rank(&b.state), &a.starts_at)));
        Ok(out)
    }

    /// Creates a silence; `matchers` in the `name="value"` / `name=~"re"` forms. Returns its id.
    pub async fn create_silence(&self, matchers: &[String], duration: Duration, by: &str, comment: &str) -> Result<String, AlertsError> {
        if matchers.is_empty() {
            return Err(AlertsError::Invalid("a silence needs at least one matcher".into()));
        }
        if duration.is_zero() || duration > Duration::from_secs(30 * 86_400) {
            return Err(AlertsError::Invalid("a silence lasts between 1 s and 30 days".into()));
        }
        let ms = matchers
            .iter()
            .map(|m| {
                let m = route::Matcher::parse(m)?;
                let (is_regex, is_equal) = match m.op {
                    route::Op::Eq => (false, true),
                    route::Op::Ne => (false, false),
                    route::Op::Re => (true, true),
                    route::Op::NotRe => (true, false),
                };
                Ok(json!({"name": m.name, "value": m.value, "isRegex": is_regex, "isEqual": is_equal}))
            })
            .collect::<Result<Vec<_>, route::ParseError>>()
            .map_err(|e| AlertsError::Invalid(e.to_string()))?;
        let now = std::time::SystemTime::now();
        let body = json!({
            "matchers": ms,
            "startsAt": humantime::format_rfc3339_millis(now).to_string(),
            "endsAt": humantime::format_rfc3339_millis(now + duration).to_string(),
            "createdBy": by,
            "comment": if comment.trim().is_empty() { "created from bss-control" } else { comment },
        });
        let url = format!("{}/api/v2/silences", self.ep.alertmanager);
        let r = self.http.post(&url).json(&body).send().await.map_err(|e| AlertsError::Unavailable(format!("POST {url}: {e}")))?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if status.is_client_error() {
            return Err(AlertsError::Invalid(format!("AlertManager refused the silence: HTTP {status} {v}")));
        }
        if !status.is_success() {
            return Err(AlertsError::Unavailable(format!("AlertManager refused the silence: HTTP {status} {v}")));
        }
        Ok(s(&v, "silenceID"))
    }

    pub async fn expire_silence(&self, id: &str) -> Result<(), AlertsError> {
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(AlertsError::Invalid(format!("{id:?} is not a silence id")));
        }
        let url = format!("{}/api/v2/silence/{id}", self.ep.alertmanager);
        let r = self.http.delete(&url).send().await.map_err(|e| AlertsError::Unavailable(format!("DELETE {url}: {e}")))?;
        let status = r.status();
        if !status.is_success() {
            let msg = format!("AlertManager refused: HTTP {status} {}", r.text().await.unwrap_or_default().trim());
            return Err(if status.is_client_error() { AlertsError::Invalid(msg) } else { AlertsError::Unavailable(msg) });
        }
        Ok(())
    }

    /// Posts a test alert with `labels` (plus a unique `alertname` unless given) that resolves
    /// by itself after 5 minutes. Returns the alert name.
    pub async fn fire_test_alert(&self, mut labels: BTreeMap<String, String>) -> Result<String, AlertsError> {
        let name = labels
            .entry("alertname".into())
            .or_insert_with(|| format!("BssControlTestAlert{}", crate::clock::now_ms()))
            .clone();
        labels.entry("source".into()).or_insert_with(|| "bss-control".into());
        let now = std::time::SystemTime::now();
        let body = json!([{
            "labels": labels,
            "annotations": {"summary": format!("Test alert {name} from bss-control")},
            "startsAt": humantime::format_rfc3339_millis(now).to_string(),
            "endsAt": humantime::format_rfc3339_millis(now + Duration::from_secs(300)).to_string(),
        }]);
        let url = format!("{}/api/v2/alerts", self.ep.alertmanager);
        let r = self.http.post(&url).json(&body).send().await.map_err(|e| AlertsError::Unavailable(format!("POST {url}: {e}")))?;
        let status = r.status();
        if !status.is_success() {
            let msg = format!("AlertManager refused the alert: HTTP {status} {}", r.text().await.unwrap_or_default().trim());
            return Err(if status.is_client_error() { AlertsError::Invalid(msg) } else { AlertsError::Unavailable(msg) });
        }
        let mut f = self.fired.lock().unwrap();
        f.push(name.clone());
        if f.len() > 50 {
            f.remove(0);
        }
        Ok(name)
    }

    /// What the local sink received, each attributed to the receiver whose target it is.
    pub async fn deliveries(&self, cfg: &route::Config, names: &[String]) -> Result<Vec<Delivery>, AlertsError> {
        let v = get_json(&self.http, &format!("{}/messages", self.ep.sink)).await?;
        let mut names: Vec<String> = names.to_vec();
        names.extend(self.fired.lock().unwrap().iter().cloned());
        Ok(v.as_array()
            .into_iter()
            .flatten()
            .map(|m| {
                let body = s(m, "body");
                let (kind, target) = if s(m, "kind") == "smtp" {
                    ("email", s(m, "target").replace(['<', '>'], ""))
                } else {
                    // Slack-style webhook: the channel is in the JSON body.
                    let channel = serde_json::from_str::<Value>(&body).ok().map(|b| s(&b, "channel")).unwrap_or_default();
                    ("slack", if channel.is_empty() { s(m, "target") } else { channel })
                };
                let receiver = cfg
                    .receivers
                    .iter()
                    .find(|r| r.targets.iter().any(|t| target.split(',').any(|x| x.trim() == t)))
                    .map(|r| r.name.clone())
                    .unwrap_or_default();
                Delivery {
                    at_ms: (m["at"].as_f64().unwrap_or(0.0) * 1000.0) as u64,
                    kind: kind.into(),
                    target,
                    receiver,
                    alerts: names.iter().filter(|n| body.contains(n.as_str())).cloned().collect(),
                }
            })
            .collect())
    }

    /// Everything the Alerts page shows; a part that cannot be read becomes an error line.
    pub async fn view(&self) -> AlertsView {
        let (cfg, groups, silences) = tokio::join!(self.config(), self.groups(), self.silences());
        let mut errors = vec![];
        fn ok<T>(r: Result<T, impl std::fmt::Display>, what: &str, errors: &mut Vec<String>) -> Option<T> {
            r.map_err(|e| errors.push(format!("{what}: {e}"))).ok()
        }
        let cfg = ok(cfg, "AlertManager config", &mut errors);
        let groups = ok(groups, "active alerts", &mut errors).unwrap_or_default();
        let silences = ok(silences, "silences", &mut errors).unwrap_or_default();
        let mut deliveries = vec![];
        if let Some(cfg) = &cfg {
            let names: Vec<String> = groups
                .iter()
                .flat_map(|g| g.alerts.iter())
                .filter_map(|a| a.labels.iter().find(|l| l.0 == "alertname").map(|l| l.1.clone()))
                .collect();
            match self.deliveries(cfg, &names).await {
                Ok(d) => deliveries = d.into_iter().rev().take(50).collect(),
                Err(e) => errors.push(format!("notification sink: {e}")),
            }
        }
        AlertsView {
            tree: cfg.as_ref().map(route::Config::tree),
            receivers: cfg.as_ref().map(|c| c.receivers.iter().map(|r| (r.name.clone(), r.kinds.clone())).collect()).unwrap_or_default(),
            groups,
            silences,
            targets: vec![],
            rules: vec![],
            deliveries,
            errors,
        }
    }
}
