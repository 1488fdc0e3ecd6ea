//! Topology: every service as a node in dependency order (left to right), edges from a
//! dependency to its dependents, coloured by live health.
use std::collections::HashMap;

use leptos::prelude::*;

use crate::{live::use_stack_feed, pages::services::get_stack_overview};

const COL_W: f64 = 190.0;
const ROW_H: f64 = 64.0;
const NODE_W: f64 = 160.0;
const NODE_H: f64 = 44.0;

#[component]
pub fn Topology() -> impl IntoView {
    let feed = use_stack_feed();
    let tick = feed.tick;
    let overview = Resource::new(move || tick.get(), |_| get_stack_overview());
    view! {
        <h1>"Topology"</h1>
        <p class="muted">"Start order runs left to right; an arrow points from a dependency to what waits for it. Colours: "
            <span class="badge ok">"healthy"</span> " " <span class="badge warn">"starting"</span> " "
            <span class="badge bad">"failing"</span> " " <span class="badge idle">"not created"</span></p>
        <Suspense fallback=|| view! { <p aria-busy="true">"Reading the stack…"</p> }>
            {move || overview.get().map(|r| match r {
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
                Ok(o) if o.error.is_some() => view! { <p class="error" role="alert">{o.error.clone()}</p> }.into_any(),
                Ok(o) => {
                    let mut pos = HashMap::new();
                    for (c, wave) in o.waves.iter().enumerate() {
                        for (r, s) in wave.iter().enumerate() {
                            pos.insert(s.clone(), (10.0 + c as f64 * COL_W, 10.0 + r as f64 * ROW_H));
                        }
                    }
                    let width = 20.0 + o.waves.len() as f64 * COL_W;
                    let height = 20.0 + o.waves.iter().map(Vec::len).max().unwrap_or(1) as f64 * ROW_H;
                    let edges = o.services.iter().flat_map(|s| {
                        let to = pos.get(&s.service).copied();
                        s.depends_on.iter().filter_map(|d| pos.get(d).copied()).zip(std::iter::repeat(to)).collect::<Vec<_>>()
                    }).filter_map(|(from, to)| to.map(|to| (from, to))).map(|((x1, y1), (x2, y2))| view! {
                        <line x1=x1 + NODE_W y1=y1 + NODE_H / 2.0 x2=x2 y2=y2 + NODE_H / 2.0 class="edge" marker-end="url(#arrow)"/>
                    }).collect_view();
                    let nodes = o.services.iter().filter_map(|s| pos.get(&s.service).map(|&(x, y)| (s.clone(), x, y))).map(|(s, x, y)| view! {
                        <g class=format!("node {}", s.level()) data-service=s.service.clone() role="img"
                            aria-label=format!("{}: {} {}", s.service, s.state, s.health)>
                            <rect x=x y=y width=NODE_W height=NODE_H rx="6"/>
                            <text x=x + 8.0 y=y + 18.0 class="name">{s.service.clone()}</text>
                            <text x=x + 8.0 y=y + 35.0 class="state">{format!("{} · {}", s.state, s.health)}</text>
                        </g>
                    }).collect_view();
                    view! {
                        <svg class="topology" viewBox=format!("0 0 {width} {height}") width=width height=height data-testid="topology">
                            <defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker></defs>
                            {edges}
                            {nodes}
                        </svg>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}
