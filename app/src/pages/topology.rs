//! Topology: the Phase 3 services and how they talk, coloured by live health, laid out as
//! the seed's architecture reads: clients → Envoy → the control plane (BSS API and the
//! stream processors) → the Kafka brokers; the control plane → PostgreSQL primary (writes)
//! and HAProxy → replicas (reads), WAL from the primary to the replicas; Prometheus, the
//! exporters and AlertManager along the bottom. Arrows are traffic; start-order
//! dependencies are on the Services page (drawn here, they ran through nodes). Every node
//! is drawn and named in every state (not created, starting, healthy, failing); a service
//! the layout does not know goes in the last row.
//! Each node links to the page about it; the target of a running drill is drawn as
//! faulted and links to the drill.
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
    ("prometheus", "postgres-exporter-replica-1", "scrape"),
    ("prometheus", "postgres-exporter-replica-2", "scrape"),
    ("prometheus", "envoy", "scrape"),
    ("prometheus", "haproxy", "scrape"),
    ("prometheus", "bss-control", "scrape"),
    ("prometheus", "alertmanager", "alerts"),
    ("alertmanager", "bss-sink", "notify"),
];

/// Grid cell (column, row) of each known node: the seed's architecture, left to right.
const LAYOUT: &[(&str, (u32, u32))] = &[
    ("client", (0, 2)),
    ("envoy", (1, 2)),
    ("bss-control", (2, 2)),
    ("kafka-1", (4, 0)),
    ("kafka-2", (4, 1)),
    ("kafka-3", (4, 2)),
    ("kafka-init", (5, 1)),
    ("postgres-primary", (3, 3)),
    ("haproxy", (3, 5)),
    ("postgres-replica-1", (4, 3)),
    ("postgres-replica-2", (4, 5)),
    ("prometheus", (2, 6)),
    ("node-exporter", (1, 6)),
    ("postgres-exporter", (2, 7)),
    ("postgres-exporter-replica-1", (1, 7)),
    ("postgres-exporter-replica-2", (3, 7)),
    ("alertmanager", (3, 6)),
    ("bss-sink", (4, 6)),
];

/// Where each node goes: its cell in [`LAYOUT`], or the next free cell of the row below the
/// layout for a service it does not know. Returns (positions, columns, rows).
pub fn place<'a>(names: impl IntoIterator<Item = &'a str>) -> (HashMap<String, (u32, u32)>, u32, u32) {
    let known: HashMap<&str, (u32, u32)> = LAYOUT.iter().copied().collect();
    let extra_row = LAYOUT.iter().map(|(_, (_, r))| r).max().unwrap_or(&0) + 1;
    let mut pos = HashMap::new();
    let mut next = 0;
    for n in names {
        let cell = known.get(n).copied().unwrap_or_else(|| {
            next += 1;
            (next - 1, extra_row)
        });
        pos.insert(n.to_string(), cell);
    }
    let cols = pos.values().map(|c| c.0 + 1).max().unwrap_or(1);
    let rows = pos.values().map(|c| c.1 + 1).max().unwrap_or(1);
    (pos, cols, rows)
}

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
    let overview = crate::live::resource(move || tick.get(), |_| get_stack_overview());
    // A running drill's target is drawn as faulted and links to the drill (drills report
    // on the same feed, so the tick follows them too).
    let drills = crate::live::resource(move || tick.get(), |_| crate::pages::drills::get_drills_view());
    // Envoy's view of its upstream (the control plane's container-facing listener, mutual
    // TLS): the envoy → bss-control arrow is drawn healthy, failing or unknown by it.
    let gateway = crate::live::resource(move || tick.get(), |_| crate::pages::gateway::get_gateway_view());
    view! {
        <h1>"Topology"</h1>
        <p class="muted">"Arrows: traffic (start order: see Services). Colours: "
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
                    for s in &o.services {
                        let state = match (&s.node, s.state.as_str()) {
                            (_, "missing") => "not created".to_string(),
                            // The swarm backend: where it runs (Cluster groups by host).
                            (Some(host), _) => format!("{} · on {host}", if s.health == "none" { &s.state } else { &s.health }),
                            (None, _) => format!("{} · {}", s.state, s.health),
                        };
                        nodes.push((s.service.clone(), state, s.level()));
                    }
                    let (cells, cols, rows) = place(nodes.iter().map(|n| n.0.as_str()));
                    let pos: HashMap<String, (f64, f64)> =
                        cells.into_iter().map(|(n, (c, r))| (n, (10.0 + c as f64 * COL_W, 10.0 + r as f64 * ROW_H))).collect();
                    let width = 20.0 + cols as f64 * COL_W;
                    let height = 20.0 + rows as f64 * ROW_H;
                    let centre = |p: (f64, f64)| (p.0 + NODE_W / 2.0, p.1 + NODE_H / 2.0);
                    let upstream = gateway.get().and_then(Result::ok).map(|g| upstream_level(&g));
                    let flows = FLOWS.iter().filter_map(|(a, b, label)| {
                        let (pa, pb) = (centre(*pos.get(*a)?), centre(*pos.get(*b)?));
                        let (class, title) = match (*a, *b, &upstream) {
                            ("envoy", "bss-control", Some((level, said))) => (format!("flow {level}"), format!("{a} → {b}: {label}, mutual TLS; Envoy's upstream {said}")),
                            _ => ("flow".to_string(), format!("{a} → {b}: {label}")),
                        };
                        Some(view! {
                            <g class=class data-from=*a data-to=*b>
                                <line x1=pa.0 y1=pa.1 x2=pb.0 y2=pb.1 marker-end="url(#flow)"/>
                                <title>{title}</title>
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
                                <marker id="flow" class="flowhead" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/></marker>
                            </defs>
                            {flows}
                            {boxes}
                        </svg>
                    }.into_any()
                }
            })}
        </Suspense>
    }
}

/// Envoy's `control_plane` cluster as a level (`ok` when a host is healthy) and words.
fn upstream_level(g: &crate::api::GatewayView) -> (&'static str, String) {
    let hosts: Vec<&(String, String)> = g.hosts_of("control_plane").collect();
    match hosts.iter().find(|h| h.1 == "HEALTHY") {
        Some(h) => ("ok", format!("healthy ({})", h.0)),
        None if hosts.is_empty() => ("idle", "not known (Envoy does not answer)".into()),
        None => ("bad", format!("not healthy: {}", hosts.iter().map(|h| h.1.as_str()).collect::<Vec<_>>().join(", "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether segments p1–p2 and p3–p4 cross (strictly: sharing an end is not a crossing).
    fn cross(a: (f64, f64), b: (f64, f64), c: (f64, f64), d: (f64, f64)) -> bool {
        let o = |p: (f64, f64), q: (f64, f64), r: (f64, f64)| (q.0 - p.0) * (r.1 - p.1) - (q.1 - p.1) * (r.0 - p.0);
        let (d1, d2, d3, d4) = (o(c, d, a), o(c, d, b), o(a, b, c), o(a, b, d));
        ((d1 > 0.0 && d2 < 0.0) || (d1 < 0.0 && d2 > 0.0)) && ((d3 > 0.0 && d4 < 0.0) || (d3 < 0.0 && d4 > 0.0))
    }

    #[test]
    fn the_traffic_lines_barely_cross_and_every_node_has_its_own_cell() {
        let names: Vec<&str> = LAYOUT.iter().map(|(n, _)| *n).collect();
        let (pos, _, _) = place(names.iter().copied());
        let mut cells: Vec<_> = pos.values().collect();
        cells.sort();
        cells.dedup();
        assert_eq!(cells.len(), names.len(), "two nodes share a cell");
        let at = |n: &str| pos.get(n).map(|&(c, r)| (c as f64 * COL_W + NODE_W / 2.0, r as f64 * ROW_H + NODE_H / 2.0)).unwrap();
        let lines: Vec<_> = FLOWS.iter().map(|(a, b, _)| (*a, *b, at(a), at(b))).collect();
        let mut crossings = vec![];
        for (i, x) in lines.iter().enumerate() {
            for y in &lines[i + 1..] {
                if cross(x.2, x.3, y.2, y.3) {
                    crossings.push(format!("{}→{} × {}→{}", x.0, x.1, y.0, y.1));
                }
            }
        }
        // No line runs through a node it does not join (sampled along the line).
        for (a, b, pa, pb) in &lines {
            for (n, &(c, r)) in &pos {
                if n == a || n == b {
                    continue;
                }
                let (x0, y0) = (c as f64 * COL_W, r as f64 * ROW_H);
                let hit = (0..=200).map(|i| i as f64 / 200.0).any(|t| {
                    let (x, y) = (pa.0 + (pb.0 - pa.0) * t, pa.1 + (pb.1 - pa.1) * t);
                    x > x0 && x < x0 + NODE_W && y > y0 && y < y0 + NODE_H
                });
                assert!(!hit, "{a}→{b} runs through {n}");
            }
        }
        // The primary's WAL and HAProxy's reads to the two replicas: one crossing is
        // inherent to two sources feeding the same two targets.
        assert!(crossings.len() <= 2, "{crossings:?}");
    }

    #[test]
    fn an_unknown_service_goes_in_a_row_of_its_own() {
        let (pos, _, rows) = place(["envoy", "redis", "zookeeper"]);
        assert_eq!(pos["envoy"], (1, 2));
        assert_eq!((pos["redis"], pos["zookeeper"]), ((0, 8), (1, 8)));
        assert_eq!(rows, 9);
    }
}
