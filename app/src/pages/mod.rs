pub mod alerts;
pub mod auth;
pub mod chart;
pub mod database;
pub mod gateway;
pub mod logs;
pub mod overview;
pub mod services;
pub mod streams;
pub mod topology;

use leptos::prelude::*;

/// A page whose module has not landed yet: says what will be there.
#[component]
pub fn Placeholder(title: &'static str, what: &'static str) -> impl IntoView {
    view! {
        <h1>{title}</h1>
        <p class="placeholder">{what}</p>
        <p class="muted">"Not built yet."</p>
    }
}
