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
    // `leptos::mount::hydrate_lazy`, plus a mark once the whole page is hydrated. Pages are
    // lazily loaded routes, so hydration finishes only after the page's code has arrived;
    // an effect in the shell ran before that, and a click in that gap (a test's, a fast
    // user's) met server HTML with no handler. `body[data-hydrated]` is set after it.
    _ = any_spawner::Executor::init_wasm_bindgen();
    leptos::task::spawn_local(async {
        let body = leptos::tachys::dom::body();
        leptos::mount::hydrate_from_async(body.clone(), App).await.forget();
        _ = body.set_attribute("data-hydrated", "true");
    });
}
