//! bss-control UI: Leptos components and the server functions they call.
//!
//! Compiled twice: with `ssr` into the server binary (server functions run there and reach
//! the backend through the [`backend::Backend`] trait the server implements), and with
//! `hydrate` to wasm for the browser.
// Leptos views are nested types; the Streams page's processor table outgrew the default
// query depth of the release (non-erased) build.
#![recursion_limit = "256"]
pub mod api;
pub mod error;
pub mod live;
#[cfg(feature = "ssr")]
pub mod backend;
pub mod pages;
mod shell;

pub use shell::{shell, App};

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
}
