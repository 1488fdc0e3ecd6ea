//! The seam between the UI's server functions and the server's service modules.
//!
//! The server crate owns Docker, Kafka, PostgreSQL… and implements this trait; server
//! functions fetch it from the Leptos context. Every method takes the caller's
//! [`Principal`] and checks the role itself: server functions are public HTTP endpoints,
//! so the check lives behind the seam, not in the UI.
use std::sync::Arc;

use crate::api::{
    AlertsView, AuditEntry, BurstResult, DbView, DemoView, EngineStatus, VerifyView, GatewayView, LogLine, Principal, RouteTestResult, StackOverview, StackVerb,
    StreamsView,
};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn engine_status(&self, who: &Principal) -> Result<EngineStatus, String>;
    async fn stack_overview(&self, who: &Principal) -> Result<StackOverview, String>;
    /// Runs (or, for `up`/`down`, starts) an action; `Err` is a message for the user.
    async fn stack_action(&self, who: &Principal, verb: StackVerb, service: Option<String>) -> Result<String, String>;
    async fn service_logs(&self, who: &Principal, service: &str, tail: usize) -> Result<Vec<String>, String>;
    /// The last lines of every service, merged in time order.
    async fn merged_logs(&self, who: &Principal, tail: usize) -> Result<Vec<LogLine>, String>;
    /// The read/write router: replica admission, routing counters, lag history.
    async fn db_view(&self, who: &Principal) -> Result<DbView, String>;
    /// Pauses or resumes WAL replay on a replica (operator).
    async fn set_replay_paused(&self, who: &Principal, replica: &str, paused: bool) -> Result<String, String>;
    /// The stream processors: state, counters, 15 min of rates and latencies, topic table.
    async fn streams_view(&self, who: &Principal) -> Result<StreamsView, String>;
    /// `start`, `stop` or `restart` a processor (operator).
    async fn processor_action(&self, who: &Principal, processor: &str, verb: &str) -> Result<String, String>;
    /// Produces sample customer/order CloudEvents, some malformed on purpose (operator).
    async fn send_sample_events(&self, who: &Principal, events: u64, malformed_every: u64) -> Result<String, String>;
    /// AlertManager's route tree, alerts, silences, deliveries; Prometheus targets and rules.
    async fn alerts_view(&self, who: &Principal) -> Result<AlertsView, String>;
    /// Which receivers get an alert with these labels (`a=b, c=d`), per the running config.
    async fn test_route(&self, who: &Principal, labels: &str) -> Result<RouteTestResult, String>;
    /// Posts a test alert with these labels (operator). Returns its name.
    async fn fire_test_alert(&self, who: &Principal, labels: &str) -> Result<String, String>;
    /// Creates a silence (operator): matchers `a="b", c=~"d"`, a duration like `1h`.
    async fn create_silence(&self, who: &Principal, matchers: &str, duration: &str, comment: &str) -> Result<String, String>;
    async fn expire_silence(&self, who: &Principal, id: &str) -> Result<String, String>;
    /// Envoy clusters, breakers, counters and rates; HAProxy backends.
    async fn gateway_view(&self, who: &Principal) -> Result<GatewayView, String>;
    /// Sends a bounded burst through Envoy and counts passed vs rate-limited (operator).
    async fn burst_test(&self, who: &Principal, requests: u32) -> Result<BurstResult, String>;
    /// The current (or last) verification run, the one before it, and the history.
    async fn verify_view(&self, who: &Principal) -> Result<VerifyView, String>;
    /// Starts the verification suite in the background (operator); a second start while
    /// one runs says so and leaves it running.
    async fn start_verify(&self, who: &Principal) -> Result<String, String>;
    async fn demo_view(&self, who: &Principal) -> Result<DemoView, String>;
    /// Starts the Kafka demo (operator): `events` at `rate`/s, one malformed every `malformed_every`.
    async fn start_demo(&self, who: &Principal, events: u64, rate: u64, malformed_every: u64) -> Result<String, String>;
    async fn cancel_demo(&self, who: &Principal) -> Result<String, String>;
    async fn audit_log(&self, who: &Principal, actor: Option<String>, action: Option<String>, limit: i64) -> Result<Vec<AuditEntry>, String>;
}

pub type SharedBackend = Arc<dyn Backend>;

use leptos::prelude::{use_context, ServerFnError};

/// The backend provided to this request by the server.
pub fn backend() -> Result<SharedBackend, ServerFnError> {
    use_context::<SharedBackend>().ok_or_else(|| ServerFnError::new("backend missing from context"))
}

/// The signed-in caller, as resolved by the server's auth layer for this request.
pub fn principal() -> Result<Principal, ServerFnError> {
    use_context::<http::request::Parts>()
        .and_then(|p| p.extensions.get::<Principal>().cloned())
        .ok_or_else(|| ServerFnError::new("sign in required"))
}

/// Both, for the common case.
pub fn caller() -> Result<(SharedBackend, Principal), ServerFnError> {
    Ok((backend()?, principal()?))
}
