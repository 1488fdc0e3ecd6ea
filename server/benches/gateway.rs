//! `make bench` part 5: the seed's gateway claim ("100,000+ req/s, p99 < 5 ms") measured on
//! this machine. A closed-loop load generator (keep-alive connections, each sends its next
//! request when the last one is answered) drives, for a fixed time each and alternating:
//!   envoy-direct — Envoy's bench listener (127.0.0.1:15007, declared in dev/envoy) answering
//!                  itself: Envoy's own ceiling here, no upstream;
//!   api-direct   — the BSS API read `GET /api/customers/{id}` on the control plane's
//!                  container-facing listener, no Envoy: the baseline;
//!   api-envoy    — the same read through Envoy's bench listener (same cluster, breakers,
//!                  health checks and retries as 15006, without its 100/min rate limit).
//! The generator, Envoy, the control plane and PostgreSQL share this host's cores, so the
//! figures are this machine's, printed beside the claim; nothing is asserted. Needs the
//! stack up (bench.sh).
use std::time::{Duration, Instant};

use server::{config::Config, runtime::Runtime, state::Services, store::Store};

const BENCH: &str = "http://127.0.0.1:15007";
const CLIENTS: usize = 32;
const SECONDS: u64 = 8;
const ROUNDS: usize = 3;

struct Load {
    requests: usize,
    errors: usize,
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// `CLIENTS` connections, each one request at a time, for `SECONDS`.
/// Drives `url` with `CLIENTS` keep-alive clients on one pool: the direct listener's with
/// the probe certificate (mutual TLS, as Envoy talks to it), the others plain.
async fn drive(url: &str, direct: &reqwest::Client) -> Load {
    let http = if url.starts_with("https://") {
        direct.clone()
    } else {
        reqwest::Client::builder().pool_max_idle_per_host(CLIENTS).timeout(Duration::from_secs(10)).build().unwrap()
    };
    let end = Instant::now() + Duration::from_secs(SECONDS);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, url) = (http.clone(), url.to_string());
            tokio::spawn(async move {
                let (mut lat, mut errors) = (Vec::with_capacity(100_000), 0usize);
                while Instant::now() < end {
                    let s = Instant::now();
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            lat.push(s.elapsed());
                        }
                        _ => errors += 1,
                    }
                }
                (lat, errors)
            })
        })
        .collect();
    let (mut all, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let took = t0.elapsed().as_secs_f64();
    all.sort();
    let pct = |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0);
    Load { requests: all.len(), errors, rate: all.len() as f64 / took, p50_ms: pct(0.50), p99_ms: pct(0.99) }
}

fn median_by(v: &mut [Load], key: fn(&Load) -> f64) -> f64 {
    let mut xs: Vec<f64> = v.iter().map(key).collect();
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    let root = std::path::Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo bench")).parent().unwrap().to_path_buf();
    config.stack.compose = vec![root.join("dev/compose.yml"), root.join("dev/compose.offline.yml")];
    config.store.path = dir.path().join("state.db");
    config.streams.autostart = false;
    config.server.stack_listen = "auto".into();
    let store = Store::open(&config.store.path).await.unwrap();
    let svc = Services::new(config, Runtime::new(std::env::var("DOCKER_HOST").ok().as_deref()), store);
    svc.spawn_background();
    tokio::spawn(server::web::serve_stack_listener(svc.clone()));
    let gw = svc.runtime.host_gateway().await.expect("the engine names its host-gateway address");
    let http = reqwest::Client::new();
    let pki = server::pki::Pki::for_config(&svc.config);
    pki.ensure().expect("the stack's certificates");
    let direct = pki.http_client(Some(server::pki::PROBE), std::net::SocketAddr::new(gw, 3001), Duration::from_secs(10)).unwrap();

    // One customer to read, written through Envoy (so the upstream is known to work).
    let deadline = Instant::now() + Duration::from_secs(90);
    let id = loop {
        let r = http
            .post(format!("{BENCH}/api/customers"))
            .json(&serde_json::json!({"name": "Bench Reader", "email": "bench@example.com", "plan": "mobile-l"}))
            .send()
            .await;
        if let Ok(r) = r {
            if r.status().as_u16() == 201 {
                break r.json::<serde_json::Value>().await.unwrap()["id"].as_i64().unwrap();
            }
        }
        assert!(Instant::now() < deadline, "the BSS API did not answer through Envoy's bench listener within 90 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Replicas admitted and the row replicated, so reads are served where they would be.
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && !svc.db.status().replicas.iter().all(|r| r.admission == app::api::Admission::In) {
        svc.db.check_once().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let targets = [
        ("envoy-direct", format!("{BENCH}/bench/direct")),
        ("api-direct", format!("https://{}:3001/api/customers/{id}", server::pki::SERVER_NAME)),
        ("api-envoy", format!("{BENCH}/api/customers/{id}")),
    ];
    let mut results: Vec<Vec<Load>> = targets.iter().map(|_| vec![]).collect();
    for _ in 0..ROUNDS {
        for (i, (_, url)) in targets.iter().enumerate() {
            results[i].push(drive(url, &direct).await);
        }
    }
    println!("gateway bench: {CLIENTS} keep-alive clients, closed loop, {SECONDS} s × {ROUNDS} alternating rounds, medians (the seed claims 100,000+ req/s, p99 < 5 ms)");
    let mut rates = vec![];
    for ((name, url), r) in targets.iter().zip(results.iter_mut()) {
        let (rate, p50, p99) = (median_by(r, |l| l.rate), median_by(r, |l| l.p50_ms), median_by(r, |l| l.p99_ms));
        let errors: usize = r.iter().map(|l| l.errors).sum();
        let requests: usize = r.iter().map(|l| l.requests).sum();
        rates.push(rate);
        if *name != "api-direct" {
            server::goals::report(&format!("seed gateway claim: {name} rate"), &format!("{rate:.0} req/s"), "≥ 100 000 req/s (seed)", rate >= 100_000.0);
            server::goals::report(&format!("seed gateway claim: {name} p99"), &format!("{p99:.2} ms"), "< 5 ms (seed)", p99 < 5.0);
        }
        println!(
            "  {name:<13} {rate:>8.0} req/s  p50 {p50:>6.2} ms  p99 {p99:>6.2} ms  ({requests} answered, {errors} failed)  rate {}, p99 {}   {url}",
            if rate >= 100_000.0 { "met" } else { "not met" },
            if p99 < 5.0 { "met" } else { "not met" }
        );
    }
    println!("  Envoy in the path costs {:.2}× the direct API's rate (api-envoy / api-direct)", rates[2] / rates[1]);
}
