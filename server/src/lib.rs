//! bss-control server: the service modules behind the UI and the CLI.
//!
//! One owner per outside system (see README "Architecture"): `runtime` owns the Docker
//! engine, `store` the product's SQLite state. The web layer (`web`) and the CLI (`main`)
//! are thin and call these modules.
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
pub mod metrics;
pub mod outbox;
pub mod prometheus;
pub mod runtime;
pub mod state;
pub mod store;
pub mod streams;
pub mod verify;
pub mod web;
