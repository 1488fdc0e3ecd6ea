//! `make bench` part 4: does the panel stay responsive while it is being guessed at?
//! `/healthz` latency (p50, p99) of the real binary in shared mode (sign-in on), measured
//! idle and then while 300 bad sign-ins run in parallel (Argon2 runs on a bounded blocking
//! pool, never on the async workers). Same process, same run; the ratio of the p99s is
//! printed, nothing asserted. Needs no stack (the store is SQLite).
use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const PORT: u16 = 3948;
const PROBES: usize = 300;
const GUESSES: usize = 300;

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn probe(http: &reqwest::Client, base: &str, n: usize) -> Vec<f64> {
    let mut ms = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let r = http.get(format!("{base}/healthz")).send().await.expect("healthz");
        assert!(r.status().is_success());
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    ms
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    let bin = env!("CARGO_BIN_EXE_bss-control");
    let mut add = Command::new(bin)
        .args(["user", "add", "--name", "ada", "--role", "admin"])
        .env("BSS_STORE_PATH", &store)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    add.stdin.take().unwrap().write_all(b"a-long-enough-password-1\n").unwrap();
    assert!(add.wait().unwrap().success());
    let mut server = Command::new(bin)
        .arg("serve")
        .env("BSS_AUTH", "on")
        .env("BSS_LISTEN", format!("127.0.0.1:{PORT}"))
        .env("BSS_STORE_PATH", &store)
        .env("BSS_STREAMS_AUTOSTART", "off")
        .env("BSS_STACK_LISTEN", "off")
        .env("BSS_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{PORT}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for _ in 0..120 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let idle = probe(&http, &base, PROBES).await;

    // 300 bad sign-ins at once: half a real user with wrong passwords, half unknown names
    // (both cost one Argon2 verification: unknown names check a dummy hash).
    let t0 = Instant::now();
    let guesses: Vec<_> = (0..GUESSES)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            tokio::spawn(async move {
                let name = if i % 2 == 0 { "ada".to_string() } else { format!("nobody{i}") };
                let r = http
                    .post(format!("{base}/auth/login"))
                    .header("origin", &base)
                    .form(&[("name", name.as_str()), ("password", "wrong-guess")])
                    .send()
                    .await
                    .expect("login");
                assert_eq!(r.status(), 303);
                assert!(r.headers().get("set-cookie").is_none(), "a bad guess got a session");
            })
        })
        .collect();
    let loaded = probe(&http, &base, PROBES).await;
    for g in guesses {
        g.await.unwrap();
    }
    let guess_secs = t0.elapsed().as_secs_f64();
    let _ = server.kill();
    let _ = server.wait();

    let (i50, i99, l50, l99) = (pct(idle.clone(), 0.5), pct(idle, 0.99), pct(loaded.clone(), 0.5), pct(loaded, 0.99));
    println!("\n/healthz while idle:                    p50 {i50:.1} ms, p99 {i99:.1} ms ({PROBES} probes)");
    println!("/healthz during {GUESSES} parallel bad sign-ins: p50 {l50:.1} ms, p99 {l99:.1} ms (the sign-ins took {guess_secs:.1} s)");
    println!("p99 ratio loaded/idle: {:.2} (1.00 = the guessing does not reach the other requests)", l99 / i99);
    server::goals::report("/healthz p99 during 300 bad sign-ins / idle", &format!("{:.2}", l99 / i99), "≤ 2", l99 / i99 <= 2.0);
}
