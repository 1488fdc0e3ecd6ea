use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    SsrMode, StaticSegment,
};

use crate::pages;

/// The HTML document around the app (server side only renders this).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The inline hydration script carries a per-request nonce; the CSP names it, so no
    // other inline script can run.
    #[cfg(feature = "ssr")]
    if let (Some(nonce), Some(res)) = (leptos::nonce::use_nonce(), use_context::<leptos_axum::ResponseOptions>()) {
        let csp = format!(
            "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        );
        if let Ok(v) = http::HeaderValue::from_str(&csp) {
            res.insert_header(http::header::CONTENT_SECURITY_POLICY, v);
        }
    }
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // Inline, so the browser does not ask for /favicon.ico (a 404 in every console).
                <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%231f6feb'/%3E%3C/svg%3E"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// Navigation entries: (path, label). One place, used by the nav bar and the tests.
pub const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/topology", "Topology"),
    ("/services", "Services"),
    ("/logs", "Logs"),
    ("/streams", "Streams"),
    ("/database", "Database"),
    ("/alerts", "Alerts"),
    ("/gateway", "Gateway"),
    ("/verify", "Verify"),
    ("/demo", "Demo"),
    ("/drills", "Drills"),
    ("/audit", "Audit"),
];

/// Entries only an admin can use, shown to admins only (the server refuses the rest anyway).
pub const ADMIN_NAV: &[(&str, &str)] = &[("/users", "Users")];

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects run only in the browser: this marks the page once hydration has happened,
    // which is what the end-to-end tests wait for.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let who = Resource::new(|| (), |_| pages::auth::whoami());
    view! {
        <Stylesheet id="leptos" href="/pkg/bss-control.css"/>
        <Title text="bss-control"/>
        <Router>
            <header class="topbar">
                <a class="brand" href="/">"bss-control"</a>
                <span class="subtitle">"BSS Phase 3 control plane"</span>
                <span class="spacer"></span>
                <pages::auth::WhoAmI/>
            </header>
            <div class="layout" data-hydrated=move || hydrated.get().then_some("true")>
                <nav class="sidenav" aria-label="Main">
                    <ul>
                        {NAV
                            .iter()
                            .map(|(path, label)| {
                                view! {
                                    <li>
                                        <A href=*path exact=true>{*label}</A>
                                    </li>
                                }
                            })
                            .collect_view()}
                        <Suspense fallback=|| ()>
                            {move || who.get().and_then(Result::ok).filter(|p| p.may(crate::api::Role::Admin)).map(|_| {
                                ADMIN_NAV.iter().map(|(path, label)| view! { <li><A href=*path exact=true>{*label}</A></li> }).collect_view()
                            })}
                        </Suspense>
                    </ul>
                </nav>
                <main id="content">
                    // A page that fails in a way it did not handle itself shows what failed
                    // here instead of a blank area; the navigation keeps working.
                    <ErrorBoundary fallback=|errors| view! {
                        <section class="card" role="alert" data-testid="page-error">
                            <h2>"This page could not be shown"</h2>
                            <ul>{move || errors.get().into_iter().map(|(_, e)| view! { <li>{e.to_string()}</li> }).collect_view()}</ul>
                        </section>
                    }>
                    // Async SSR: resource data is in the HTML, so pages read without JS.
                    <Routes fallback=|| view! { <h1>"Not found"</h1> }>
                        <Route path=StaticSegment("") view=pages::overview::Overview ssr=SsrMode::Async/>
                        <Route path=StaticSegment("topology") view=pages::topology::Topology ssr=SsrMode::Async/>
                        <Route path=StaticSegment("services") view=pages::services::Services ssr=SsrMode::Async/>
                        <Route path=StaticSegment("login") view=pages::auth::Login/>
                        <Route path=StaticSegment("logs") view=pages::logs::Logs ssr=SsrMode::Async/>
                        <Route path=StaticSegment("audit") view=pages::auth::Audit ssr=SsrMode::Async/>
                        <Route path=StaticSegment("streams") view=pages::streams::Streams ssr=SsrMode::Async/>
                        <Route path=StaticSegment("database") view=pages::database::Database ssr=SsrMode::Async/>
                        <Route path=StaticSegment("alerts") view=pages::alerts::Alerts ssr=SsrMode::Async/>
                        <Route path=StaticSegment("gateway") view=pages::gateway::Gateway ssr=SsrMode::Async/>
                        <Route path=StaticSegment("verify") view=pages::verify::Verify ssr=SsrMode::Async/>
                        <Route path=StaticSegment("demo") view=pages::demo::Demo ssr=SsrMode::Async/>
                        <Route path=StaticSegment("drills") view=pages::drills::Drills ssr=SsrMode::Async/>
                        <Route path=StaticSegment("users") view=pages::users::Users ssr=SsrMode::Async/>
                    </Routes>
                    </ErrorBoundary>
                </main>
            </div>
        </Router>
    }
}
