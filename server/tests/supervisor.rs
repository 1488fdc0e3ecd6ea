//! The supervisor against the real Docker engine (DOCKER_HOST), with a tiny image built on
//! the spot from Debian's busybox-static (no registry needed). Each test uses its own
//! project name, so tests never see each other's containers.
use std::{process::Command, sync::Arc, time::Duration};

use server::runtime::{compose::ComposeFile, supervisor::Supervisor};

const IMAGE: &str = "bss-test/busybox:1";

fn docker(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker").args(args).output().expect("docker CLI");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// FROM scratch + busybox-static, imported once per engine.
fn ensure_image() {
    if docker(&["image", "inspect", IMAGE]).0 {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox-static is installed by the toolchain");
    for applet in ["sh", "sleep", "true", "false", "touch", "test", "cat"] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
    }
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("tar -C {} -c . | docker import --change 'CMD [\"/bin/sh\"]' - {IMAGE}", dir.path().display()))
        .status()
        .unwrap();
    assert!(status.success(), "docker import failed");
}

fn compose(image: &str) -> ComposeFile {
    let y = format!(
        r#"
services:
  base:
    image: {image}
    command: ["sleep", "600"]
    init: true
    restart: unless-stopped
    # Unhealthy for the first probes, then healthy: dependents must wait for it.
    healthcheck: {{ test: ["CMD-SHELL", "test -f /tmp/ready || (touch /tmp/ready; false)"], interval: 1s, retries: 30 }}
    networks: [net]
  setup:
    image: {image}
    command: ["true"]
    restart: "no"
    depends_on: {{ base: {{ condition: service_healthy }} }}
    networks: [net]
  app:
    image: {image}
    command: ["sleep", "600"]
    init: true
    restart: unless-stopped
    depends_on:
      base: {{ condition: service_healthy }}
      setup: {{ condition: service_completed_successfully }}
    networks: [net]
networks: {{ net: }}
"#
    );
    ComposeFile::from_str(&y, "test").unwrap()
}

fn supervisor(project: &str, file: ComposeFile) -> Arc<Supervisor> {
    let docker = bollard::Docker::connect_with_local_defaults().unwrap();
    // `up` makes the stack's certificates beside the base directory: a scratch one, never
    // the source tree (a run once left a CA and keys in server/pki).
    let base = std::env::temp_dir().join(format!("bss-supervisor-tests-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    Supervisor::new(docker, project, file, base)
}

fn project(tag: &str) -> String {
    format!("bsstest{}{}", tag, std::process::id())
}

/// Removes whatever a test left behind, even when it failed half-way.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for c in project_containers(&self.0) {
            docker(&["rm", "-f", &c]);
        }
        docker(&["network", "rm", &format!("{}_net", self.0)]);
    }
}

fn project_containers(project: &str) -> Vec<String> {
    let (_, out) = docker(&["ps", "-a", "--filter", &format!("label=io.bss-control.project={project}"), "--format", "{{.Names}}"]);
    out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

#[tokio::test]
async fn up_orders_by_health_is_idempotent_heals_and_tears_down() {
    ensure_image();
    let p = project("up");
    let _cleanup = Cleanup(p.clone());
    let sup = supervisor(&p, compose(IMAGE));
    let mut events = sup.subscribe();

    sup.up().await.expect("stack comes up");
    let st = sup.status().await.unwrap();
    let by = |n: &str| st.iter().find(|s| s.service == n).unwrap().clone();
    assert_eq!((by("base").state.as_str(), by("base").health.as_str()), ("running", "healthy"));
    assert_eq!((by("setup").state.as_str(), by("setup").exit_code), ("exited", Some(0)));
    assert_eq!(by("app").state, "running");

    // Dependency order, as the events saw it.
    let mut starts = vec![];
    while let Ok(ev) = events.try_recv() {
        if ev.kind == "starting" {
            starts.push(ev.service);
        }
    }
    assert_eq!(starts, vec!["base", "setup", "app"]);

    // Idempotent: a second `up` creates and starts nothing.
    sup.up().await.unwrap();
    while let Ok(ev) = events.try_recv() {
        assert!(ev.kind != "creating" && ev.kind != "starting", "second up acted: {ev:?}");
    }

    // Heal: a removed container comes back; a finished one-shot is left alone.
    assert!(docker(&["rm", "-f", &format!("{p}-app")]).0);
    let acted = sup.heal_once().await.unwrap();
    assert_eq!(acted, vec!["app".to_string()]);
    assert_eq!(sup.status_of("app").await.unwrap().state, "running");

    // A crash (the main process dies) is restarted by the restart policy and counted.
    // PID 1 is the init (tini), which passes SIGTERM to `sleep` and exits with it.
    // (the exec itself may report failure: its container dies under it)
    docker(&["exec", &format!("{p}-app"), "sh", "-c", "kill -TERM 1"]);
    let mut restarted = false;
    for _ in 0..40 {
        let s = sup.status_of("app").await.unwrap();
        if s.restart_count >= 1 && s.state == "running" {
            restarted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(restarted, "crashed app was not restarted: {:?}", sup.status_of("app").await.unwrap());

    // An operator's stop is respected by the healer until the operator starts it again.
    sup.stop("app").await.unwrap();
    assert!(sup.heal_once().await.unwrap().is_empty());
    assert_eq!(sup.status_of("app").await.unwrap().state, "exited");
    sup.start("app").await.unwrap();
    assert_eq!(sup.status_of("app").await.unwrap().state, "running");

    let logs = sup.logs("base", 10).await.unwrap();
    assert!(logs.len() <= 10);

    // Torn down by another instance (another control plane, the CLI): the healer of this
    // one must not bring the stack back container by container.
    let other = supervisor(&p, compose(IMAGE));
    other.down(true).await.unwrap();
    assert!(sup.heal_once().await.unwrap().is_empty(), "healer fought a teardown");
    assert!(project_containers(&p).is_empty());
    sup.down(true).await.unwrap();
    assert!(project_containers(&p).is_empty());
    assert!(!docker(&["network", "inspect", &format!("{p}_net")]).0, "network left behind");
}

#[tokio::test]
async fn missing_image_fails_before_anything_is_created() {
    ensure_image();
    let p = project("noimg");
    let _cleanup = Cleanup(p.clone());
    // `app` names an image that does not exist; `base` (earlier in order) is fine — but
    // the image check for `app` must not leave a half-started stack behind silently.
    let mut f = compose(IMAGE);
    f.services.get_mut("base").unwrap().image = "bss-test/does-not-exist:0".into();
    let sup = supervisor(&p, f);
    let err = sup.up().await.unwrap_err().to_string();
    assert!(err.contains("bss-test/does-not-exist:0") && err.contains("dev/images/build.sh"), "{err}");
    assert!(project_containers(&p).is_empty(), "containers created despite the error");
    sup.down(true).await.unwrap();
}

#[tokio::test]
async fn unknown_service_is_refused() {
    let sup = supervisor(&project("unk"), compose(IMAGE));
    assert!(sup.restart("nope").await.unwrap_err().to_string().contains("nope"));
}

/// The healer running every 100 ms while `up` creates the stack (base takes a few health
/// probes, so its dependents are still missing for seconds): the healer must stand aside,
/// not create the same containers (409 Conflict failed `up` from the UI in an e2e run).
#[tokio::test]
async fn the_healer_stands_aside_while_up_converges() {
    ensure_image();
    let p = project("race");
    let _cleanup = Cleanup(p.clone());
    let sup = supervisor(&p, compose(IMAGE));
    let mut events = sup.subscribe();
    let cancel = tokio_util::sync::CancellationToken::new();
    // The project's network exists already (as right after `up` created it), so the
    // healer does not stand down for want of it.
    assert!(docker(&["network", "create", "--label", &format!("io.bss-control.project={p}"), &format!("{p}_net")]).0);
    let healer = tokio::spawn(sup.clone().run(cancel.clone(), Duration::from_millis(100)));
    // `up` arms the healer (desired up) before it creates the containers.
    sup.up().await.expect("up while the healer runs");
    cancel.cancel();
    healer.await.unwrap();
    let mut conflicts = vec![];
    loop {
        let ev = match events.try_recv() {
            Ok(ev) => ev,
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => panic!("missed {n} events: the check would be blind"),
            Err(_) => break,
        };
        if ev.kind == "healed" || ev.message.contains("409") || ev.message.contains("Conflict") {
            conflicts.push(format!("{} {} {}", ev.service, ev.kind, ev.message));
        }
    }
    assert!(conflicts.is_empty(), "the healer acted during up: {conflicts:?}");
}

/// Two supervisors bringing the same project up at once (two panels, or the CLI beside the
/// server): this engine accepts two networks of one name, after which every container
/// create fails on "network … is ambiguous". Here the duplicate exists before either starts
/// (made the way a lost race makes it), and both `up`s run together: both must succeed, on
/// one network, with one container per service.
#[tokio::test]
async fn concurrent_ups_converge_on_one_network_and_one_container_each() {
    ensure_image();
    let p = project("twice");
    let _cleanup = Cleanup(p.clone());
    let engine = bollard::Docker::connect_with_local_defaults().unwrap();
    let net = format!("{p}_net");
    for _ in 0..2 {
        let labels = std::collections::HashMap::from([("io.bss-control.project".to_string(), p.clone())]);
        engine
            .create_network(bollard::models::NetworkCreateRequest { name: net.clone(), driver: Some("bridge".into()), labels: Some(labels), ..Default::default() })
            .await
            .expect("the engine takes a second network of the same name");
    }
    let named = |n: &str| {
        let (_, out) = docker(&["network", "ls", "--filter", &format!("name={n}"), "--format", "{{.Name}}"]);
        out.lines().filter(|l| *l == n).count()
    };
    assert_eq!(named(&net), 2, "the duplicate this test is about was not made");
    let (a, b) = (supervisor(&p, compose(IMAGE)), supervisor(&p, compose(IMAGE)));
    let (ra, rb) = tokio::join!(a.up(), b.up());
    ra.expect("first up");
    rb.expect("second up");
    assert_eq!(named(&net), 1, "networks named {net} after both ups");
    let mut names = project_containers(&p);
    names.sort();
    assert_eq!(names, vec![format!("{p}-app"), format!("{p}-base"), format!("{p}-setup")], "one container per service");
    for c in [format!("{p}-app"), format!("{p}-base")] {
        assert_eq!(docker(&["inspect", "-f", "{{.State.Status}}", &c]).1, "running", "{c}");
    }
    a.down(true).await.unwrap();
    assert!(project_containers(&p).is_empty());
}

/// A dependent starts once its dependency passes its own health test, run by the
/// supervisor, not one engine interval later (this engine runs a container's first health
/// check only `interval` after its start); `up` still returns only once the engine itself
/// calls the dependency healthy.
#[tokio::test]
async fn a_dependent_starts_when_its_dependency_passes_its_health_test_not_an_interval_later() {
    ensure_image();
    let p = project("probe");
    let _cleanup = Cleanup(p.clone());
    let y = format!(
        r#"
services:
  slowcheck:
    image: {IMAGE}
    command: ["sleep", "600"]
    init: true
    restart: unless-stopped
    healthcheck: {{ test: ["CMD-SHELL", "true"], interval: 20s }}
    networks: [net]
  dependent:
    image: {IMAGE}
    command: ["sleep", "600"]
    init: true
    restart: unless-stopped
    depends_on: {{ slowcheck: {{ condition: service_healthy }} }}
    networks: [net]
networks: {{ net: }}
"#
    );
    let sup = supervisor(&p, ComposeFile::from_str(&y, "test").unwrap());
    let up = tokio::spawn({
        let sup = sup.clone();
        async move { sup.up().await }
    });
    // The dependent runs while the engine still calls its dependency "starting".
    let mut seen = None;
    for _ in 0..150 {
        let d = sup.status_of("dependent").await.unwrap();
        if d.state == "running" {
            seen = Some(sup.status_of("slowcheck").await.unwrap().health);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("starting"), "the dependent did not start before the engine's first health check");
    up.await.unwrap().expect("stack comes up");
    assert_eq!(sup.status_of("slowcheck").await.unwrap().health, "healthy", "up returned before the engine called it healthy");
    sup.down(true).await.unwrap();
}
