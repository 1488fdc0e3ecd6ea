//! Types that cross the wire between server functions and the browser, one file per
//! module of the server (re-exported here, so `crate::api::X` names every one).
mod alerts;
mod auth;
mod cluster;
mod db;
mod drills;
mod gateway;
mod history;
mod runs;
mod stack;
mod streams;

pub use alerts::*;
pub use auth::*;
pub use cluster::*;
pub use db::*;
pub use drills::*;
pub use gateway::*;
pub use history::*;
pub use runs::*;
pub use stack::*;
pub use streams::*;
