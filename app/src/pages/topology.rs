//! Topology: the Phase 3 services and how they talk, coloured by live health. Columns
//! follow the start order (dependencies to the left); solid arrows are traffic (client →
//! Envoy → control plane; processors ↔ Kafka; router → primary / HAProxy → replicas;
//! Prometheus → targets → AlertManager), dashed ones are start-order dependencies. Each
//! node links to the page about it; the target of a running drill is drawn as faulted and
//! links to the drill.
use std::collections::HashMap;

use leptos::prelude::*;

use crate::{live::use_stack_feed, pages::services::get_stack_overview};

const COL_W: f64 = 200.0;
const ROW_H: f64 = 64.0;
const NODE_W: f64 = 165.0;
const NODE_H: f64 = 44.0;

/// Traffic between Phase 3 parts, by compose service name ("client" and "bss-control" are
/// the outside world and this control plane).
const FLOWS: &[(&str, &str, &str)] = &[
    ("client", "envoy", "HTTP"),
    ("envoy", "bss-control", "API"),
    ("bss-control", "kafka-1", "processors"),
    ("bss-control", "kafka-2", "processors"),
    ("bss-control", "kafka-3", "processors"),
    ("bss-control", "postgres-primary", "writes"),
    ("bss-control", "haproxy", "reads"),
    ("haproxy", "postgres-replica-1", "reads"),
    ("haproxy", "postgres-replica-2", "reads"),
    ("postgres-primary", "postgres-replica-1", "WAL"),
    ("postgres-primary", "postgres-replica-2", "WAL"),
    ("prometheus", "node-exporter", "scrape"),
    ("prometheus", "postgres-exporter", "scrape"),
    ("prometheus", "envoy", "scrape"),
    ("prometheus", "haproxy", "scrape"),
    ("prometheus", "bss-control", "scrape"),
    ("prometheus", "alertmanager", "alerts"),
    ("alertmanager", "bss-sink", "notify"),
];

/// The page about a service.
pub fn page_of(service: &str) -> &'static str {
    match service {
        s if s.starts_with("kafka") => "/streams",
        s if s.starts_with("postgres-replica") || s == "postgres-primary" => "/database",
        "envoy" | "haproxy" => "/gateway",
        "alertmanager" | "prometheus" | "bss-sink" => "/alerts",
        "client" | "bss-control" => "/",
        _ => "/services",
    }
}

#[component]
pub fn Topology() -> impl IntoView {
    let feed = use_stack_feed();
    let tick = feed.tick;
    let overview = Resource::new(move || tick.get(), |_| get_stack_overview());
    // A running drill's target is drawn as faulted and links to the drill (drills report
    // on the same feed, so the tick follows them too).
    let drills = Resource::new(move || tick.get(), |_| crate::pages::drills::get_drills_view());
    view! {
        <h1>"Topology"</h1>
        <p class="muted">"Solid arrows: traffic. Dashed: start order. Colours: "
            <span class="badge ok">"healthy"</span> " " <span class="badge warn">"starting"</span> " "
            <span class="badge bad">"failing"</span> " " <span class="badge idle">"not created"</span>
            ". Click a node for its page."</p>
        <Suspense fallback=|| view! { <p aria-busy="true">"Reading the stack…"</p> }>
            {move || overview.get().map(|r| match r {
                Err(e) => crate::error::error_view(&e),
                Ok(o) if o.error.is_some() => view! { <p class="error" role="alert">{o.error.clone()}</p> }.into_any(),
                Ok(o) => {
                    // (node, drill) under a running drill; a processor is part of this control plane.
                    let faulted = drills.get().and_then(Result::ok).and_then(|v| {
                        let run = v.current.filter(|c| c.status == "running")?;
                        let d = v.drills.into_iter().find(|d| d.name == run.drill)?;
                        let node = if o.services.iter().any(|s| s.service == d.service) { d.service } else { "bss-control".to_string() };
                        Some((node, run.drill))
                    });
                    // (name, state line, level) for every node; the two outside nodes first.
                    let mut nodes: Vec<(String, String, &'static str)> = vec![
                        ("client".into(), "browsers, apps".into(), "idle"),
                        ("bss-control".into(), "this control plane".into(), "ok"),
                    ];
                    let mut pos: HashMap<String, (f64, f64)> = HashMap::new();
                    pos.insert("client".into(), (10.0, 10.0));
                    pos.insert("bss-control".into(), (10.0, 10.0 + 2.0 * ROW_H));
                    for (c, wave) in o.waves.iter().enumerate() {
                        for (r, s) in wave.iter().enumerate() {
                            pos.insert(s.clone(), (10.0 + (c + 1) as f64 * COL_W, 10.0 + r as f64 * ROW_H));
                        }
                    }
                    for s in &o.services {
                        nodes.push((s.service.clone(), format!("{} · {}", s.state, s.health), s.level()));
                    }
                    let width = 20.0 + (o.waves.len() + 1) as f64 * COL_W;
                    let height = 20.0 + o.waves.iter().map(Vec::len).max().unwrap_or(1).max(3) as f64 * ROW_H;
                    let centre = |p: (f64, f64)| (p.0 + NODE_W / 2.0, p.1 + NODE_H / 2.0);
                    let deps = o.services.iter().flat_map(|s| {
                        s.depends_on.iter().filter_map(|d| Some((pos.get(d).copied()?, pos.get(&s.service).copied()?))).collect::<Vec<_>>()
                    }).map(|(a, b)| view! {
                        <line x1=a.0 + NODE_W y1=a.1 + NODE_H / 2.0 x2=b.0 y2=b.1 + NODE_H / 2.0 class="edge dep" marker-end="url(#arrow)"/>
                    }).collect_view();
                    let flows = FLOWS.iter().filter_map(|(a, b, label)| {
                        let (pa, pb) = (centre(*pos.get(*a)?), centre(*pos.get(*b)?));
                        Some(view! {
                            <g class="flow" data-from=*a data-to=*b>
                                <line x1=pa.0 y1=pa.1 x2=pb.0 y2=pb.1 marker-end="url(#flow)"/>
                                <title>{format!("{a} → {b}: {label}")}</title>
                            </g>
                        })
                    }).collect_view();
                    let banner = faulted.clone().map(|(node, drill)| view! {
                        <p class="banner" role="status" data-testid="topology-drill">
                            "Drill " <a href="/drills">{drill.clone()}</a> " running: " {node} " is faulted on purpose"
                        </p>
                    });
                    let boxes = nodes.into_iter().filter_map(|(name, state, level)| pos.get(&name).map(|&(x, y)| (name, state, level, x, y))).map(|(name, state, level, x, y)| {
                        let drill = faulted.as_ref().filter(|f| f.0 == name).map(|f| f.1.clone());
                        let (class, href, state) = match &drill {
                            Some(d) => (format!("node faulted {level}"), "/drills", format!("drill {d}: {state}")),
                            None => (format!("node {level}"), page_of(&name), state),
                        };
                        let label = format!("{name}: {state}");
                        view! {
                        <a href=href>
                            <g class=class data-service=name.clone() role="img" aria-label=label>
                                <rect x=x y=y width=NODE_W height=NODE_H rx="6"/>
                                <text x=x + 8.0 y=y + 18.0 class="name">{name.clone()}</text>
                                <text x=x + 8.0 y=y + 35.0 class="state">{state}</text>
                            </g>
                        </a>
                    }}).collect_view();
                    view! {
                        {banner}
                        <svg class="topology" viewBox=format!("0 0 {width} {height}") width=width height=height data-testid="topology">
                            <defs>
                                <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker>
                                <marker id="flow" class="flowhead" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker>
                            </defs>
                            {deps}
                            {flows}
                            {boxes}
                        </svg>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}
