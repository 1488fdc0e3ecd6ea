use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes, A},
    Lazy, SsrMode, StaticSegment,
};

use crate::pages;

/// The HTML document around the app (server side only renders this).
pub fn shell(options: LeptosOptions) -> impl IntoView {
    // The inline scripts carry the nonce of the page's CSP (chosen by the server before it
    // renders, `server/src/web.rs` `page_csp`).
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // Inline, so the browser does not ask for /favicon.ico (a 404 in every console).
                <link rel="icon" href="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E%3Crect width='16' height='16' rx='3' fill='%231f6feb'/%3E%3C/svg%3E"/>
                <AutoReload options=options.clone()/>
                // Before the module scripts: retries a dropped download of the bundle's parts.
                <script src="/fetch-retry.js"></script>
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
    ("/cluster", "Cluster"),
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


/// Every page is a lazily loaded route: the browser fetches a page's code (its views and
/// the decoding of its data) when it first shows that page, so the first load carries the
/// shell and one page, not all fourteen (`cargo leptos build --split`; the budget is checked
/// by `dev/scripts/check-wasm.mjs`). The server renders them as before.
macro_rules! page {
    ($route:ident, $component:path) => {
        pub struct $route;
        #[leptos_router::lazy_route]
        impl leptos_router::LazyRoute for $route {
            fn data() -> Self {
                Self
            }
            fn view(_this: Self) -> AnyView {
                view! { <$component/> }.into_any()
            }
        }
    };
}
    page!(OverviewPage, pages::overview::Overview);
    page!(TopologyPage, pages::topology::Topology);
    page!(ServicesPage, pages::services::Services);
    page!(ClusterPage, pages::cluster::Cluster);
    page!(LoginPage, pages::auth::Login);
    page!(LogsPage, pages::logs::Logs);
    page!(AuditPage, pages::auth::Audit);
    page!(StreamsPage, pages::streams::Streams);
    page!(DatabasePage, pages::database::Database);
    page!(AlertsPage, pages::alerts::Alerts);
    page!(GatewayPage, pages::gateway::Gateway);
    page!(VerifyPage, pages::verify::Verify);
    page!(DemoPage, pages::demo::Demo);
    page!(DrillsPage, pages::drills::Drills);
    page!(UsersPage, pages::users::Users);

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let who = crate::live::resource(|| (), |_| pages::auth::whoami());
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
            <div class="layout">
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
                        <Route path=StaticSegment("") view={Lazy::<OverviewPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("topology") view={Lazy::<TopologyPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("services") view={Lazy::<ServicesPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("cluster") view={Lazy::<ClusterPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("login") view={Lazy::<LoginPage>::new()}/>
                        <Route path=StaticSegment("logs") view={Lazy::<LogsPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("audit") view={Lazy::<AuditPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("streams") view={Lazy::<StreamsPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("database") view={Lazy::<DatabasePage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("alerts") view={Lazy::<AlertsPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("gateway") view={Lazy::<GatewayPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("verify") view={Lazy::<VerifyPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("demo") view={Lazy::<DemoPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("drills") view={Lazy::<DrillsPage>::new()} ssr=SsrMode::Async/>
                        <Route path=StaticSegment("users") view={Lazy::<UsersPage>::new()} ssr=SsrMode::Async/>
                    </Routes>
                    </ErrorBoundary>
                </main>
            </div>
        </Router>
    }
}
