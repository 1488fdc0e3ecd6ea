//! `AppState`: one handle per module, shared by axum handlers, server functions and CLI.
use std::sync::Arc;

use app::{api::EngineStatus, backend::Backend};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use crate::{config::Config, metrics::Metrics, runtime::Runtime, store::Store};

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub services: Arc<Services>,
}

/// The service modules. Implements the UI's [`Backend`] seam.
pub struct Services {
    pub config: Config,
    pub runtime: Runtime,
    pub store: Store,
    pub metrics: Metrics,
}

#[async_trait::async_trait]
impl Backend for Services {
    async fn engine_status(&self) -> EngineStatus {
        let s = self.runtime.engine_status().await;
        self.metrics.observe_engine(s.reachable());
        s
    }
}
