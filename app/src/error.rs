//! The one error that crosses the seam between the UI and the server's modules.
//!
//! Server functions return it as their error type, so a page can tell "forbidden" from
//! "busy" from "bad input" from "service down" (and show each the way it deserves), and the
//! server's HTTP routes map it to a status code. Messages are written for the person who
//! pressed the button: what was refused and why, never a stack trace or a connection string.
use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", content = "message", rename_all = "snake_case")]
pub enum AppError {
    /// No session (shared mode).
    #[error("sign in required")]
    Unauthenticated,
    /// Signed in, but the role may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Another action holds the target ("X is in progress by Y since T").
    #[error("{0}")]
    Busy(String),
    /// The request itself is wrong (a form field, a name, a verb).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// A service the action needs does not answer (the stack is down, a broker is gone).
    #[error("{0}")]
    Unavailable(String),
    /// A fault of the control plane itself; the details are in its log.
    #[error("internal error: {0}")]
    Internal(String),
    /// The call never got an answer from the server function (network, encoding).
    #[error("request failed: {0}")]
    Request(String),
}

impl AppError {
    /// The HTTP status a route answers with.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthenticated => 401,
            AppError::Forbidden(_) => 403,
            AppError::Busy(_) => 409,
            AppError::Invalid(_) => 400,
            AppError::NotFound(_) => 404,
            AppError::Unavailable(_) => 503,
            AppError::Internal(_) => 500,
            AppError::Request(_) => 502,
        }
    }

    /// A short name for the kind, for CSS classes, logs and the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::Busy(_) => "busy",
            AppError::Invalid(_) => "invalid",
            AppError::NotFound(_) => "not_found",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
            AppError::Request(_) => "request",
        }
    }

    /// Whether the same action may succeed later without changing the request.
    pub fn is_retryable(&self) -> bool {
        matches!(self, AppError::Busy(_) | AppError::Unavailable(_) | AppError::Request(_))
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(e: ServerFnErrorErr) -> Self {
        match e {
            ServerFnErrorErr::ServerError(m) => AppError::Internal(m),
            ServerFnErrorErr::Args(m) | ServerFnErrorErr::MissingArg(m) => AppError::Invalid(m),
            other => AppError::Request(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_survive_the_wire_and_map_to_statuses() {
        for (e, status) in [
            (AppError::Forbidden("x".into()), 403),
            (AppError::Busy("stack up is in progress by alice".into()), 409),
            (AppError::Invalid("bad".into()), 400),
            (AppError::Unavailable("no engine".into()), 503),
            (AppError::Unauthenticated, 401),
        ] {
            let back = AppError::de(e.ser());
            assert_eq!(back, e);
            assert_eq!(back.status(), status);
        }
        // A body that is not ours is still an error the page can show, not a panic.
        assert!(matches!(AppError::de("<html>".into()), AppError::Request(_)));
    }
}

impl AppError {
    /// How an action's result line shows a refusal ("Refused: kafka-1 restart is in
    /// progress by olga since 3 s ago").
    pub fn refusal(&self) -> String {
        format!("Refused: {self}")
    }
}

/// An action's result line: its message, or why it was refused.
pub fn outcome(r: Result<String, AppError>) -> String {
    r.unwrap_or_else(|e| e.refusal())
}

/// A read that failed, as every page shows it: an alert with the error's kind for styling
/// and tests.
pub fn error_view(e: &AppError) -> leptos::prelude::AnyView {
    use leptos::prelude::*;
    view! { <p class="error" role="alert" data-kind=e.kind()>{e.to_string()}</p> }.into_any()
}
