//! The seam between the UI's server functions and the server's service modules.
//!
//! The server crate owns Docker, Kafka, PostgreSQL… and implements this trait; server
//! functions fetch it from the Leptos context. Every method takes the caller's
//! [`Principal`] and checks the role itself: server functions are public HTTP endpoints,
//! so the check lives behind the seam, not in the UI.
use std::sync::Arc;

use crate::api::{AuditEntry, DbView, EngineStatus, LogLine, Principal, StackOverview, StackVerb};

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
