//! Roles, the signed-in caller, the audit log, and the list of server functions the auth test enumerates.
use serde::{Deserialize, Serialize};


/// Roles, ordered: each includes what the ones before it may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who is making a request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// Auth is off (loopback-only local mode): everyone is this local admin.
    pub local_mode: bool,
}

impl Principal {
    pub fn may(&self, role: Role) -> bool {
        self.role >= role
    }
}

/// Every server function, classified. A test enumerates the registered server functions
/// and fails on any that is missing here, so a new endpoint cannot skip the role check.
pub const SERVER_FNS_READ: &[&str] =
    &["fetch_engine_status", "get_stack_overview", "get_service_logs", "get_merged_logs", "whoami", "get_audit", "get_db_view", "get_streams_view", "get_alerts_view", "test_route", "get_gateway_view", "get_verify_view", "get_demo_view", "get_drills_view", "get_history", "get_cluster_view"];
pub const SERVER_FNS_MUTATING: &[&str] = &["run_stack_action", "set_replay_paused", "processor_action", "set_guarantee", "send_sample_events", "fire_test_alert", "create_silence", "expire_silence", "burst_test", "start_verify", "start_demo", "cancel_demo", "start_drill", "cancel_drill", "run_node_action"];
/// Admin only (user administration), reads and changes alike.
pub const SERVER_FNS_ADMIN: &[&str] = &["get_users", "add_user", "update_user", "revoke_session"];

/// One user as the admin's Users page lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRow {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: String,
    pub sessions: Vec<SessionRow>,
}

/// An open session (the id is a prefix of the token's hash: it names the session without
/// being usable as one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub id: String,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: i64,
}

/// One audit log row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub result: String,
    pub detail: String,
}
