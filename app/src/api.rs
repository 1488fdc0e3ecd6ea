//! Types that cross the wire between server functions and the browser.
use serde::{Deserialize, Serialize};

/// What the control plane knows about the Docker engine it drives.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// Where the product looked (DOCKER_HOST or the default socket).
    pub endpoint: String,
    /// `None` when the engine answered; the reason otherwise, fit to show a person.
    pub error: Option<String>,
    pub version: Option<String>,
    pub api_version: Option<String>,
    pub os: Option<String>,
    pub kernel: Option<String>,
    pub containers_running: u64,
    pub containers_total: u64,
    pub images: u64,
    /// Server clock when this snapshot was read (RFC 3339), so a refresh is visible.
    pub fetched_at: String,
}

impl EngineStatus {
    pub fn reachable(&self) -> bool {
        self.error.is_none()
    }
}
