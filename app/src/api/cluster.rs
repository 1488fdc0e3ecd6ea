//! The swarm the stack runs on (`runtime.backend = "swarm"`): its nodes and where each
//! service's task runs.
use serde::{Deserialize, Serialize};

use super::RunningAction;

/// One task of a service, where it runs and how it is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskView {
    /// Whether it runs the service's current spec (not one an update is replacing).
    pub current: bool,
    /// The node's hostname, or `unassigned` while no node can take it.
    pub node: String,
    pub state: String,
    pub desired: String,
    pub message: String,
    pub error: Option<String>,
    /// When the task reached its state (RFC 3339).
    pub since: Option<String>,
    /// The container's exit code, once it exited.
    pub exit_code: Option<i64>,
}

impl TaskView {
    /// `ok` / `warn` / `bad`, for colouring (a job's `complete` is its success).
    pub fn level(&self, oneshot: bool) -> &'static str {
        match self.state.as_str() {
            "running" => "ok",
            "complete" if oneshot => "ok",
            "new" | "pending" | "assigned" | "accepted" | "preparing" | "ready" | "starting" => "warn",
            _ => "bad",
        }
    }
}

/// A service of the stack in swarm terms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceView {
    pub service: String,
    pub oneshot: bool,
    /// The tasks Swarm wants running (or, for a job, completed), newest first.
    pub tasks: Vec<TaskView>,
    /// Replicas asked for (`None` for a job): 0 once an operator stopped it.
    pub replicas: Option<i64>,
    /// Tasks in Swarm's history that failed or were rejected (a restart each).
    pub failed: i64,
}

impl ServiceView {
    /// The task of the service's current spec (not one an update is replacing), newest.
    pub fn current_task(&self) -> Option<&TaskView> {
        self.tasks.iter().find(|t| t.current)
    }
}

/// A node of the swarm.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    pub hostname: String,
    pub addr: String,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
    /// `ready`, `down`, `disconnected` or `unknown`.
    pub state: String,
    pub leader: bool,
    /// A manager's reachability in the Raft quorum (`reachable`, `unreachable`); empty for
    /// a worker.
    pub reachability: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwarmStatus {
    pub nodes: Vec<NodeView>,
    pub services: Vec<ServiceView>,
}

/// What the Cluster page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterView {
    /// `engine` or `swarm` (`runtime.backend`).
    pub backend: String,
    /// The engine the control plane drives (a manager of the swarm).
    pub endpoint: String,
    pub project: String,
    /// Why there is no cluster to show: the engine backend, an engine that is not a swarm
    /// manager, a swarm that does not answer.
    pub error: Option<String>,
    pub swarm: Option<SwarmStatus>,
    pub running: Vec<RunningAction>,
}

/// What an operator may do to a node: take its tasks away, or let it take tasks again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeVerb {
    Drain,
    Activate,
}

impl NodeVerb {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeVerb::Drain => "drain",
            NodeVerb::Activate => "activate",
        }
    }

    /// The availability the node gets.
    pub fn availability(self) -> &'static str {
        match self {
            NodeVerb::Drain => "drain",
            NodeVerb::Activate => "active",
        }
    }
}
