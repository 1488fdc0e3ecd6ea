//! The control plane's container image, run as a team would run the shared panel: built
//! offline (`dev/images/build.sh bss-control`, from the stack's Debian base, this test's
//! binary and the release site), started in shared mode with its state on a volume and the
//! Docker socket mounted knowingly. Checks: its HEALTHCHECK turns healthy (time printed),
//! it runs as an unprivileged user, the first admin is made with `docker exec … user add`,
//! sign-in under the panel's public name gives a `Secure`, `HttpOnly` session cookie, a
//! cross-site write is refused while the same-origin operator action runs and is audited
//! under the user's name, and users and the audit log survive a container restart.
//! `#[ignore]`d: needs the Docker engine, the offline base image and the release site; run by
//! `make test` after the browser bundle is built.
mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

const NAME: &str = "bss-control-image-test";
const VOLUME: &str = "bss-control-image-test-state";
const LISTEN: &str = "127.0.0.1:3210";
const PUBLIC: &str = "bss-panel.test";
const PASSWORD: &str = "image test password 1";

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)).trim().to_string())
}

struct Cleanup;
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = docker(&["rm", "-f", NAME]);
        let _ = docker(&["volume", "rm", "-f", VOLUME]);
    }
}

fn health() -> String {
    docker(&["inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}", NAME]).1
}

async fn wait_healthy(what: &str) -> f64 {
    let t0 = Instant::now();
    loop {
        let h = health();
        if h == "healthy" {
            return t0.elapsed().as_secs_f64();
        }
        assert!(t0.elapsed() < Duration::from_secs(120) && h != "unhealthy", "{what}: health {h} after {:?}; logs:\n{}", t0.elapsed(), docker(&["logs", "--tail", "40", NAME]).1);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The path of a registered server function (`/api/<name><hash>`).
fn server_fn(name: &str) -> String {
    assert!(app::api::SERVER_FNS_MUTATING.contains(&name), "{name} is a mutating server function");
    leptos::server_fn::axum::server_fn_paths()
        .map(|(p, _)| p.to_string())
        .find(|p| p.rsplit('/').next().is_some_and(|last| last.strip_prefix(name).is_some_and(|h| h.chars().all(|c| c.is_ascii_digit()))))
        .unwrap_or_else(|| panic!("no server function {name}"))
}

async fn sign_in(http: &reqwest::Client) -> String {
    let r = http
        .post(format!("http://{LISTEN}/auth/login"))
        .header("host", PUBLIC)
        .header("origin", format!("https://{PUBLIC}"))
        .form(&[("name", "otto"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "sign-in");
    let c = r.headers().get("set-cookie").expect("a session cookie").to_str().unwrap().to_string();
    assert!(c.contains("Secure") && c.contains("HttpOnly") && c.contains("SameSite=Strict"), "{c}");
    c.split(';').next().unwrap().to_string()
}

#[tokio::test]
#[ignore = "needs the Docker engine, the offline base image and the release site; run by `make test`"]
async fn the_panel_image_runs_shared_mode_as_a_team_deploys_it() {
    let root = common::repo_root();
    let _cleanup = Cleanup;
    let _ = docker(&["rm", "-f", NAME]);
    let _ = docker(&["volume", "rm", "-f", VOLUME]);

    // Built from this test's binary and the release site.
    let t0 = Instant::now();
    let out = Command::new(root.join("dev/images/build.sh"))
        .arg("bss-control")
        .env("BSS_IMAGE_BIN", env!("CARGO_BIN_EXE_bss-control"))
        .env("BSS_IMAGE_SITE", root.join("target/site"))
        .output()
        .unwrap();
    assert!(out.status.success(), "image build failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let tag = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().trim().to_string();
    assert!(tag.starts_with("bss-local/bss-control:"), "{tag}");
    let size: f64 = docker(&["image", "inspect", "-f", "{{.Size}}", &tag]).1.parse().unwrap();
    let base: f64 = docker(&["image", "inspect", "-f", "{{.Size}}", "bss-local/base:latest"]).1.parse().unwrap();
    println!("image {tag}: {:.0} MB ({:.0} MB over the shared Debian base), built in {:.1} s", size / 1e6, (size - base) / 1e6, t0.elapsed().as_secs_f64());

    // The engine's socket, mounted knowingly, with its group.
    let host = std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into());
    let sock = host.strip_prefix("unix://").expect("a unix socket engine").to_string();
    let gid = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(&sock).unwrap().gid().to_string()
    };
    let dev = root.join("dev").display().to_string();
    let compose = format!("{dev}/compose.yml,{dev}/compose.offline.yml");
    let (ok, said) = docker(&[
        "run", "-d", "--name", NAME, "--network", "host", "--group-add", &gid,
        "-v", &format!("{sock}:/var/run/docker.sock"),
        "-v", &format!("{VOLUME}:/var/lib/bss-control"),
        // The compose file's relative bind mounts are host paths: the same path inside.
        "-v", &format!("{dev}:{dev}:ro"),
        "-e", &format!("BSS_LISTEN={LISTEN}"), "-e", "BSS_AUTH=on",
        "-e", &format!("BSS_ALLOWED_HOSTS={PUBLIC}"), "-e", "BSS_TRUSTED_PROXIES=127.0.0.1",
        "-e", "BSS_STREAMS_AUTOSTART=off", "-e", "BSS_STACK_LISTEN=off",
        "-e", &format!("BSS_COMPOSE={compose}"), "-e", "DOCKER_HOST=unix:///var/run/docker.sock",
        &tag,
    ]);
    assert!(ok, "docker run: {said}");
    let secs = wait_healthy("first start").await;
    println!("started to healthy (its HEALTHCHECK on /healthz) in {secs:.1} s");

    // Unprivileged, state on the volume.
    let uid = docker(&["exec", NAME, "id", "-u"]).1;
    assert!(uid != "0" && !uid.is_empty(), "runs as uid {uid}");
    let (ok, said) = docker(&["exec", NAME, "stat", "-c", "%U %a", "/var/lib/bss-control/state.db"]);
    assert!(ok && said.starts_with("bss "), "{said}");

    // The first admin and an operator, the way the README says (password on stdin).
    for (name, role) in [("ada", "admin"), ("otto", "operator")] {
        let mut child = Command::new("docker")
            .args(["exec", "-i", NAME, "bss-control", "user", "add", "--name", name, "--role", role])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        assert!(child.wait().unwrap().success(), "user add {name}");
    }

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(20)).build().unwrap();
    // Shared mode: nothing without a session.
    let r = http.get(format!("http://{LISTEN}/audit.jsonl")).header("host", PUBLIC).send().await.unwrap();
    assert!(matches!(r.status().as_u16(), 401 | 303), "{}", r.status());
    let cookie = sign_in(&http).await;

    // One operator action, same-origin; the same request from another site is refused.
    let action = server_fn("processor_action");
    let call = |origin: &str| {
        http.post(format!("http://{LISTEN}{action}"))
            .header("host", PUBLIC)
            .header("origin", origin.to_string())
            .header("cookie", &cookie)
            .header("accept", "application/json")
            .form(&[("processor", "bss-order-processor"), ("verb", "start")])
    };
    let r = call("https://evil.example").send().await.unwrap();
    assert_eq!(r.status(), 403, "a cross-site write is refused");
    let r = call(&format!("https://{PUBLIC}")).send().await.unwrap();
    let status = r.status();
    assert!(status.is_success(), "operator action: {status} {}", r.text().await.unwrap_or_default());
    let audit = http.get(format!("http://{LISTEN}/audit.jsonl")).header("host", PUBLIC).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(audit.lines().any(|l| l.contains("\"otto\"") && l.contains("bss-order-processor")), "the action is audited under otto:\n{audit}");

    // State survives a restart of the container.
    assert!(docker(&["restart", NAME]).0);
    wait_healthy("after restart").await;
    let cookie = sign_in(&http).await;
    let audit = http.get(format!("http://{LISTEN}/audit.jsonl")).header("host", PUBLIC).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(audit.lines().any(|l| l.contains("\"otto\"") && l.contains("bss-order-processor")), "the audit log survived the restart");
}
