//! The seam between the UI's server functions and the server's service modules.
//!
//! The server crate owns Docker, Kafka, PostgreSQL… and implements these traits; server
//! functions fetch the backend from the Leptos context. Every method takes the caller's
//! [`Principal`] and checks the role itself: server functions are public HTTP endpoints,
//! so the check lives behind the seam, not in the UI. Errors are [`AppError`]s, so a page
//! can tell a refusal from a busy target from a service that is down.
use std::sync::Arc;

use crate::api::Principal;
use crate::error::AppError;
pub use crate::pages::{
    alerts::AlertsApi, auth::AuditApi, cluster::ClusterApi, database::DbApi, demo::DemoApi, drills::DrillsApi, gateway::GatewayApi, history::HistoryApi, overview::EngineApi, services::StackApi,
    streams::StreamsApi, users::UsersApi, verify::VerifyApi,
};

/// Everything the pages ask of the server: one trait per page, each declared beside the
/// page's server functions and implemented beside the server module that owns the service.
pub trait Backend: EngineApi + StackApi + DbApi + StreamsApi + AlertsApi + GatewayApi + VerifyApi + DemoApi + DrillsApi + AuditApi + UsersApi + HistoryApi + ClusterApi + Send + Sync + 'static {}

impl<T> Backend for T where T: EngineApi + StackApi + DbApi + StreamsApi + AlertsApi + GatewayApi + VerifyApi + DemoApi + DrillsApi + AuditApi + UsersApi + HistoryApi + ClusterApi + Send + Sync + 'static {}

pub type SharedBackend = Arc<dyn Backend>;

use leptos::prelude::use_context;

/// The backend provided to this request by the server.
pub fn backend() -> Result<SharedBackend, AppError> {
    use_context::<SharedBackend>().ok_or_else(|| AppError::Internal("backend missing from context".into()))
}

/// The signed-in caller, as resolved by the server's auth layer for this request.
pub fn principal() -> Result<Principal, AppError> {
    use_context::<http::request::Parts>().and_then(|p| p.extensions.get::<Principal>().cloned()).ok_or(AppError::Unauthenticated)
}

/// Both, for the common case.
pub fn caller() -> Result<(SharedBackend, Principal), AppError> {
    Ok((backend()?, principal()?))
}
