//! The control plane's container image, run as a team would run the shared panel: built
//! offline (`dev/images/build.sh bss-control`, from the stack's Debian base, this test's
//! binary and the release site), started in shared mode with its state on a volume and the
//! Docker socket mounted knowingly. Checks: its HEALTHCHECK turns healthy (time printed),
//! it runs as an unprivileged user, the first admin is made with `docker exec … user add`,
//! sign-in under the panel's public name gives a `Secure`, `HttpOnly` session cookie, a
//! cross-site write is refused while the same-origin operator action runs and is audited
//! under the user's name, and users and the audit log survive a container restart.
//! Then behind Debian's nginx terminating TLS, configured from the README's example
//! (`dev/deploy/nginx-bss-control.conf`): sign-in over HTTPS, the CSRF rule with the
//! proxy's `Host`, and the client's address believed from the configured proxy only.
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
        "-e", &format!("BSS_ALLOWED_HOSTS={PUBLIC}"), "-e", "BSS_TRUSTED_PROXIES=127.0.0.2",
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

    behind_tls(&root).await;
}

const TLS_PORT: u16 = 3443;
/// nginx reaches the panel from this address (`proxy_bind`), the only trusted proxy.
const PROXY_ADDR: &str = "127.0.0.2";

/// Debian's nginx from the README's example, on loopback, killed when dropped.
struct Nginx(std::process::Child, tempfile::TempDir);
impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM to the master, which takes its worker down with it (SIGKILL would leave
        // the worker holding the ports).
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let _ = self.0.wait();
    }
}

fn start_nginx(root: &std::path::Path) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", &format!("/CN={PUBLIC}")])
        .args(["-addext", &format!("subjectAltName=DNS:{PUBLIC}"), "-keyout", &format!("{d}/key.pem"), "-out", &format!("{d}/cert.pem")])
        .output()
        .expect("openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    // The example as shipped, with this test's addresses: each line must still be in it.
    let mut site = std::fs::read_to_string(root.join("dev/deploy/nginx-bss-control.conf")).unwrap();
    // The address nginx connects from, the panel's only trusted proxy: as shipped.
    assert!(site.contains(&format!("proxy_bind {PROXY_ADDR};")), "the example binds its upstream side to {PROXY_ADDR}");
    for (from, to) in [
        ("listen 443 ssl http2;", format!("listen 127.0.0.1:{TLS_PORT} ssl http2;")),
        ("listen 80;", "listen 127.0.0.1:3480;".to_string()),
        ("server 127.0.0.1:3000;", format!("server {LISTEN};")),
        ("server_name bss-panel.example.com;", format!("server_name {PUBLIC};")),
        ("/etc/ssl/bss-panel/", format!("{d}/")),
    ] {
        assert!(site.contains(from), "dev/deploy/nginx-bss-control.conf no longer has {from:?}");
        site = site.replace(from, &to);
    }
    std::fs::write(dir.path().join("site.conf"), site).unwrap();
    let root_user = String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0";
    let main = format!(
        "{}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fcgi;\n  \
         uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  include {d}/site.conf;\n}}\n",
        if root_user { "user root;\n" } else { "" }
    );
    std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
    let conf = format!("{d}/nginx.conf");
    let t = Command::new("nginx").args(["-p", &d, "-c", &conf, "-t"]).output().expect("nginx (Debian's, installed by dev/scripts/toolchain.sh)");
    assert!(t.status.success(), "nginx -t: {}", String::from_utf8_lossy(&t.stderr));
    for port in [TLS_PORT, 3480] {
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} is taken (an nginx left by an earlier run? `pkill nginx`)");
    }
    let child = Command::new("nginx").args(["-p", &d, "-c", &conf, "-g", "daemon off;"]).spawn().unwrap();
    let mut nginx = Nginx(child, dir);
    let t0 = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", TLS_PORT)).is_err() {
        assert!(nginx.0.try_wait().unwrap().is_none(), "nginx exited: {}", std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default());
        assert!(t0.elapsed() < Duration::from_secs(10), "nginx did not listen on {TLS_PORT}: {}", std::fs::read_to_string(format!("{d}/error.log")).unwrap_or_default());
        std::thread::sleep(Duration::from_millis(100));
    }
    nginx
}

/// One request with Debian's curl from client address `from`: (status, headers); the body
/// is appended to the headers when the status is 5xx (for the failure message).
fn curl(from: &str, cert: &std::path::Path, args: &[&str]) -> (u16, String) {
    let body = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-o", &body.path().display().to_string(), "-D", "-", "--max-time", "20", "--interface", from])
        .args(["--cacert", &cert.display().to_string(), "--resolve", &format!("{PUBLIC}:{TLS_PORT}:127.0.0.1"), "--resolve", &format!("{PUBLIC}:3480:127.0.0.1")])
        .args(args)
        .output()
        .expect("curl");
    let mut head = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "curl {args:?}: {}{head}", String::from_utf8_lossy(&out.stderr));
    let status = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok()).unwrap_or(0);
    if status >= 500 {
        head.push_str(&std::fs::read_to_string(body.path()).unwrap_or_default());
    }
    (status, head)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
}

async fn behind_tls(root: &std::path::Path) {
    let nginx = start_nginx(root);
    let cert = nginx.1.path().join("cert.pem");
    let base = format!("https://{PUBLIC}:{TLS_PORT}");
    let origin = format!("Origin: {base}");
    let login = |from: &str, who: &str, password: &str, extra: &[&str]| {
        let mut args = vec!["-X", "POST", "-H", origin.as_str(), "--data-urlencode"];
        let name = format!("name={who}");
        let pw = format!("password={password}");
        args.extend([name.as_str(), "--data-urlencode", pw.as_str()]);
        args.extend(extra);
        let url = format!("{base}/auth/login");
        args.push(&url);
        let (status, head) = curl(from, &cert, &args);
        assert_eq!(status, 303, "sign-in answers with a redirect:\n{head}");
        (header(&head, "location").unwrap_or_default().to_string(), header(&head, "set-cookie").map(str::to_string))
    };

    // Plain HTTP is sent to HTTPS.
    let (status, head) = curl("127.0.0.3", &cert, &[&format!("http://{PUBLIC}:3480/")]);
    assert_eq!((status, header(&head, "location")), (301, Some(format!("https://{PUBLIC}/").as_str())), "{head}");

    // Sign-in over HTTPS (curl verifies the certificate against the local CA's).
    let (to, cookie) = login("127.0.0.3", "otto", PASSWORD, &[]);
    let cookie = cookie.expect("a session cookie");
    assert_eq!(to, "/");
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let session = format!("Cookie: {}", cookie.split(';').next().unwrap());

    // The CSRF rule with the proxy's Host: another site's write is refused, the panel's own runs.
    let action = format!("{base}{}", server_fn("processor_action"));
    let act = |o: &str| {
        let o = format!("Origin: {o}");
        curl("127.0.0.3", &cert, &["-X", "POST", "-H", &o, "-H", &session, "-H", "Accept: application/json", "--data", "processor=bss-order-processor&verb=start", &action])
    };
    assert_eq!(act("https://evil.example").0, 403, "a cross-site write through the proxy is refused");
    let (ok, said) = act(&base);
    assert!((200..300).contains(&ok), "the same-origin write through the proxy: {said}");

    // The client's address comes from the trusted proxy: five wrong passwords from 127.0.0.3
    // lock ada out there (a forged X-Forwarded-For does not help: nginx sets the header),
    // while ada from 127.0.0.4, through the same proxy, signs in.
    for _ in 0..5 {
        assert_eq!(login("127.0.0.3", "ada", "wrong password", &[]).0, "/login?error=credentials");
    }
    let (to, _) = login("127.0.0.3", "ada", PASSWORD, &["-H", "X-Forwarded-For: 127.0.0.9"]);
    assert!(to.starts_with("/login?error=locked"), "locked out at 127.0.0.3 even with a forged X-Forwarded-For: {to}");
    let (to, cookie) = login("127.0.0.4", "ada", PASSWORD, &[]);
    assert!(to == "/" && cookie.is_some(), "another client address through the same proxy is not locked out: {to}");

    // Not from the trusted proxy: a direct client's X-Forwarded-For is its own claim, ignored.
    let direct = |xff: &str, password: &str| {
        let xff = format!("X-Forwarded-For: {xff}");
        let host = format!("Host: {PUBLIC}");
        let o = format!("Origin: https://{PUBLIC}");
        let (status, head) = curl(
            "127.0.0.5",
            &cert,
            &["-X", "POST", "-H", &host, "-H", &o, "-H", &xff, "--data-urlencode", "name=ada", "--data-urlencode", &format!("password={password}"), &format!("http://{LISTEN}/auth/login")],
        );
        assert_eq!(status, 303, "{head}");
        header(&head, "location").unwrap_or_default().to_string()
    };
    for i in 0..5 {
        assert_eq!(direct(&format!("127.0.1.{i}"), "wrong password"), "/login?error=credentials");
    }
    let to = direct("127.0.1.99", PASSWORD);
    assert!(to.starts_with("/login?error=locked"), "a direct client cannot pick its address with X-Forwarded-For: {to}");
    println!("behind nginx (TLS): sign-in, Secure cookie, CSRF with the proxy's Host, client addresses from the trusted proxy only: ok");
}
