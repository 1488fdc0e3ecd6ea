//! The seam between the UI's server functions and the server's service modules.
//!
//! The server crate owns Docker, Kafka, PostgreSQL… and implements this trait; server
//! functions fetch it from the Leptos context. Keeping it a trait lets the app crate stay
//! free of client libraries and lets server functions be tested with a fake.
use std::sync::Arc;

use crate::api::{EngineStatus, StackOverview, StackVerb};

#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn engine_status(&self) -> EngineStatus;
    async fn stack_overview(&self) -> StackOverview;
    /// Runs (or, for `up`/`down`, starts) an action; `Err` is a message for the user.
    async fn stack_action(&self, actor: &str, verb: StackVerb, service: Option<String>) -> Result<String, String>;
    async fn service_logs(&self, service: &str, tail: usize) -> Result<Vec<String>, String>;
}

pub type SharedBackend = Arc<dyn Backend>;

/// The backend provided to this request by the server.
pub fn backend() -> Result<SharedBackend, leptos::prelude::ServerFnError> {
    leptos::prelude::use_context::<SharedBackend>()
        .ok_or_else(|| leptos::prelude::ServerFnError::new("backend missing from context"))
}
