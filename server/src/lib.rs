//! bss-control server: the service modules behind the UI and the CLI.
//!
//! One owner per outside system (see README "Architecture"): `runtime` owns the Docker
//! engine, `store` the product's SQLite state. The web layer (`web`) and the CLI (`main`)
//! are thin and call these modules.

/// A message-only error type for a pure parser: `$name(pub String)`, shown as its message,
/// built from a `String` or `&str` (so `?` works on message results inside the parser).
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, thiserror::Error)]
        #[error("{0}")]
        pub struct $name(pub String);

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.into())
            }
        }
    };
}

pub mod actions;
pub mod alerts;
pub mod auth;
pub mod bss;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod drills;
pub mod gateway;
pub mod goals;
pub mod metrics;
pub mod openapi;
pub mod outbox;
pub mod pki;
pub mod prometheus;
pub mod runtime;
pub mod state;
pub mod store;
pub mod streams;
pub mod verify;
pub mod web;
