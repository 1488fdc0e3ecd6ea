//! The Docker engine, the stack of compose services, its live events and logs.
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

/// One compose service as the supervisor sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    pub service: String,
    pub container: String,
    pub image: String,
    /// `missing`, `created`, `running`, `exited`, `restarting`, `paused`, `dead`.
    pub state: String,
    /// `healthy`, `unhealthy`, `starting`, or `none` without a health check.
    pub health: String,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    pub started_at: Option<String>,
    /// Seconds since start while running.
    pub uptime_secs: Option<u64>,
    pub ports: Vec<String>,
    pub depends_on: Vec<String>,
    /// A job that runs once (e.g. topic creation), not a long-running service.
    pub oneshot: bool,
    /// The swarm node its task runs on (swarm backend only).
    #[serde(default)]
    pub node: Option<String>,
}

impl ServiceStatus {
    /// `ok` / `warn` / `bad` / `idle`, for colouring.
    pub fn level(&self) -> &'static str {
        match (self.state.as_str(), self.health.as_str()) {
            ("running", "healthy" | "none") => "ok",
            ("exited", _) if self.oneshot && self.exit_code == Some(0) => "ok",
            ("running", "starting") | ("restarting", _) | ("created", _) => "warn",
            ("missing", _) => "idle",
            _ => "bad",
        }
    }
}

/// One thing that happened to the stack, for the live feed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackEvent {
    pub at_ms: u64,
    pub service: String,
    pub kind: String,
    pub message: String,
}

/// An action running on the stack or a service (one at a time per target).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunningAction {
    pub target: String,
    pub action: String,
    pub by: String,
    pub since_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackOverview {
    pub project: String,
    pub compose_files: Vec<String>,
    /// `None` when the stack is usable; otherwise why not (no engine, bad compose file).
    pub error: Option<String>,
    pub services: Vec<ServiceStatus>,
    /// Start order: each wave depends only on earlier waves.
    pub waves: Vec<Vec<String>>,
    pub running: Vec<RunningAction>,
    pub recent_events: Vec<StackEvent>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StackVerb {
    Up,
    Down,
    Start,
    Stop,
    Restart,
}

impl StackVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            StackVerb::Up => "up",
            StackVerb::Down => "down",
            StackVerb::Start => "start",
            StackVerb::Stop => "stop",
            StackVerb::Restart => "restart",
        }
    }
}

/// One log line of one service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub service: String,
    /// RFC 3339 from the engine (`timestamps=true`), empty if it had none.
    pub ts: String,
    pub line: String,
}

impl LogLine {
    /// Splits the engine's `TIMESTAMP line` form.
    pub fn parse(service: &str, raw: &str) -> LogLine {
        match raw.split_once(' ') {
            Some((ts, rest)) if ts.len() >= 20 && ts.as_bytes()[4] == b'-' && ts.contains('T') => {
                LogLine { service: service.into(), ts: ts.into(), line: rest.into() }
            }
            _ => LogLine { service: service.into(), ts: String::new(), line: raw.into() },
        }
    }
}

/// 75 → "1m 15s", 7300 → "2h 1m".
pub fn human_secs(s: u64) -> String {
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86399 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}
