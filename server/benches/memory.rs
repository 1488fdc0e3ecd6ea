//! `make bench` part 8: the control plane's memory while the Kafka demo runs at 10 000
//! events/s. The release `bss-control serve` (its own store, sign-in off on loopback, the
//! stack's brokers), idle first, then the demo started through its server function as the
//! Demo page starts it; the process's resident set (`/proc/PID/status` VmRSS) sampled every
//! 100 ms until the run ends, and its high-water mark (VmHWM). Needs the stack up.
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const EVENTS: u64 = 100_000;
const RATE: u64 = 10_000;
const GOAL_MB: f64 = 150.0;

/// A field of /proc/PID/status in MB (the kernel gives kB).
fn status_mb(pid: u32, field: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The path of the server function whose name starts `name` (paths carry a hash suffix).
fn server_fn(name: &str) -> String {
    leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p.to_string())
        .filter(|p| p.rsplit('/').next().is_some_and(|last| last.starts_with(name)))
        .min_by_key(|p| p.len())
        .unwrap_or_else(|| panic!("no server function {name}"))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bss-control"))
        .arg("serve")
        .env("BSS_LISTEN", format!("127.0.0.1:{port}"))
        .env("BSS_STORE_PATH", dir.path().join("state.db"))
        .env("BSS_STACK_LISTEN", "off")
        .env("BSS_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("bss-control serve");
    let pid = child.id();
    let http = reqwest::Client::new();
    let up = Instant::now();
    while !http.get(format!("{base}/healthz")).send().await.is_ok_and(|r| r.status().is_success()) {
        assert!(up.elapsed() < Duration::from_secs(60), "bss-control serve did not answer within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Settled: processors started, samplers running, nothing flowing.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let idle = status_mb(pid, "VmRSS:").unwrap();
    let call = |name: &str, body: String| {
        http.post(format!("{base}{}", server_fn(name)))
            .header("Origin", &base)
            .header("Accept", "application/json")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let r = call("start_demo", format!("events={EVENTS}&rate={RATE}&malformed_every=0")).await.unwrap();
    assert!(r.status().is_success(), "start_demo: {} {}", r.status(), r.text().await.unwrap_or_default());
    let t0 = Instant::now();
    let (mut peak, mut last_poll, mut run) = (idle, Instant::now(), serde_json::Value::Null);
    loop {
        if let Some(mb) = status_mb(pid, "VmRSS:") {
            peak = peak.max(mb);
        }
        if last_poll.elapsed() > Duration::from_secs(1) {
            last_poll = Instant::now();
            if let Ok(v) = call("get_demo_view", String::new()).await.unwrap().json::<serde_json::Value>().await {
                run = v["current"].clone();
                if run["status"].as_str().is_some_and(|s| s != "running") {
                    break;
                }
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(180), "the demo did not end within 180 s: {run}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hwm = status_mb(pid, "VmHWM:").unwrap_or(peak);
    let _ = child.kill();
    let _ = child.wait();
    println!("control plane (release bss-control serve, pid {pid}): idle {idle:.0} MB resident");
    println!(
        "  demo {} events at {} ev/s: {} — produced {}, processed {}, lost {}, {:.0} ev/s, p99 {:.0} ms",
        run["events"], run["rate"], run["status"], run["produced"], run["processed"], run["lost"],
        run["throughput"].as_f64().unwrap_or(0.0), run["p99_ms"].as_f64().unwrap_or(0.0)
    );
    println!("  resident while it ran: peak {peak:.0} MB (sampled every 100 ms), high-water mark {hwm:.0} MB");
    let ran = run["status"] == "passed";
    server::goals::report(
        &format!("control-plane memory: peak RSS while the demo runs at {RATE} ev/s"),
        &if ran { format!("{hwm:.0} MB") } else { format!("demo {}", run["status"]) },
        &format!("≤ {GOAL_MB:.0} MB"),
        ran && hwm <= GOAL_MB,
    );
}
