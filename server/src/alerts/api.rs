//! What the Alerts page asks of AlertManager and Prometheus (joined here: each has its own
//! module).
use app::{
    api::{AlertsView, Principal, Role, RouteTestResult},
    backend::AlertsApi,
    error::AppError,
};

use super::{route::parse_labels, AlertsError};
use crate::state::{require, Act, Services};

impl From<AlertsError> for AppError {
    fn from(e: AlertsError) -> Self {
        match e {
            AlertsError::Invalid(m) => AppError::Invalid(m),
            AlertsError::Unavailable(m) => AppError::Unavailable(m),
        }
    }
}

/// The lock every AlertManager change takes (one at a time).
const AM: &str = "alertmanager";

#[async_trait::async_trait]
impl AlertsApi for Services {
    async fn alerts_view(&self, who: &Principal) -> Result<AlertsView, AppError> {
        require(who, Role::Viewer, "reading alerts")?;
        let (mut view, targets, rules) = tokio::join!(self.alerts.view(), self.prometheus.targets(), self.prometheus.rules());
        match targets {
            Ok(t) => view.targets = t,
            Err(e) => view.errors.push(format!("Prometheus targets: {e}")),
        }
        match rules {
            Ok(r) => view.rules = r,
            Err(e) => view.errors.push(format!("Prometheus rules: {e}")),
        }
        Ok(view)
    }

    async fn test_route(&self, who: &Principal, labels: &str) -> Result<RouteTestResult, AppError> {
        require(who, Role::Viewer, "testing routes")?;
        let labels = parse_labels(labels).map_err(|e| AppError::Invalid(e.to_string()))?;
        Ok(self.alerts.config().await?.test(&labels))
    }

    async fn fire_test_alert(&self, who: &Principal, labels: &str) -> Result<String, AppError> {
        let act = Act { role: Role::Operator, what: "firing a test alert", lock: AM, verb: "test alert", audit: "alerts.test_alert", target: labels };
        self.guarded(who, act, |_guard| async move {
            let labels = parse_labels(labels).map_err(|e| AppError::Invalid(e.to_string()))?;
            let expected = self.alerts.config().await?.test(&labels).receivers;
            let name = self.alerts.fire_test_alert(labels).await?;
            Ok(format!("{name} posted; AlertManager should deliver it to {}", expected.join(", ")))
        })
        .await
    }

    async fn create_silence(&self, who: &Principal, matchers: &str, duration: &str, comment: &str) -> Result<String, AppError> {
        let act = Act { role: Role::Operator, what: "creating a silence", lock: AM, verb: "silence", audit: "alerts.silence_create", target: matchers };
        self.guarded(who, act, |_guard| async move {
            let ms: Vec<String> = matchers.split(',').map(str::trim).filter(|m| !m.is_empty()).map(String::from).collect();
            let d = humantime::parse_duration(duration.trim()).map_err(|e| AppError::Invalid(format!("duration {duration:?}: {e}")))?;
            let id = self.alerts.create_silence(&ms, d, &who.user, comment).await?;
            Ok(format!("silence {id} created for {duration}"))
        })
        .await
    }

    async fn expire_silence(&self, who: &Principal, id: &str) -> Result<String, AppError> {
        let act = Act { role: Role::Operator, what: "expiring a silence", lock: AM, verb: "expire silence", audit: "alerts.silence_expire", target: id };
        self.guarded(who, act, |_guard| async move {
            self.alerts.expire_silence(id).await?;
            Ok(format!("silence {id} expired"))
        })
        .await
    }
}
