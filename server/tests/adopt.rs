//! A stack started with Debian's `docker-compose` (v1) from the same files and project name
//! is taken over by `bss-control up`: no container is recreated, every service is reported
//! through compose's containers (state, health, logs), an operator restart and the healer
//! act on them, the Services page names them, and `down` removes them.
//! `#[ignore]`d: needs the Docker engine, the offline images and docker-compose; run by
//! `make test`.
mod common;

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    time::Duration,
};

use common::PROJECT;

fn compose(args: &[&str]) -> String {
    let root = common::repo_root();
    let out = Command::new("docker-compose")
        .current_dir(&root)
        .args(["-p", PROJECT, "-f", "dev/compose.yml", "-f", "dev/compose.offline.yml"])
        .args(args)
        .output()
        .expect("docker-compose (Debian's, installed by dev/scripts/toolchain.sh)");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "docker-compose {args:?}:\n{said}");
    said
}

/// service → (container id, name) of every container compose made for the project.
fn compose_containers() -> BTreeMap<String, (String, String)> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--filter", &format!("label=com.docker.compose.project={PROJECT}")])
        .args(["--format", "{{.Label \"com.docker.compose.service\"}} {{.ID}} {{.Names}}"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut p = l.split_whitespace();
            Some((p.next()?.to_string(), (p.next()?.to_string(), p.next()?.to_string())))
        })
        .collect()
}

fn inspect(name: &str, format: &str) -> String {
    let out = Command::new("docker").args(["inspect", "-f", format, name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
#[ignore = "needs the Docker engine, the offline images and docker-compose; run by `make test`"]
async fn a_stack_started_with_docker_compose_is_adopted_without_recreating_anything() {
    let sup = common::stack_supervisor();
    sup.down(false).await.expect("a clean start: no stack");

    // As the README tells a docker compose user: the stack's certificates first (Envoy and
    // Prometheus mount them), as `bss-control pki` makes them.
    server::pki::Pki::beside(&common::repo_root().join("dev")).ensure().expect("the stack's certificates");
    compose(&["up", "-d"]);
    let before = compose_containers();
    let services: Vec<String> = sup.compose().services.keys().cloned().collect();
    for s in &services {
        assert!(before.contains_key(s), "docker-compose made no container for {s}: {before:?}");
    }

    // Taken over: `up` converges (waits for every service's health) through compose's
    // containers and creates none of its own.
    let t0 = std::time::Instant::now();
    sup.up().await.expect("bss-control up over the compose-made stack");
    println!("up over docker-compose's stack: {:.1} s", t0.elapsed().as_secs_f64());
    assert_eq!(compose_containers(), before, "no container was recreated or replaced");
    for s in &services {
        let ours = server::runtime::spec::container_name(PROJECT, s);
        assert!(inspect(&ours, "{{.Id}}").is_empty(), "a container of ours ({ours}) appeared beside compose's");
    }
    for st in sup.status().await.unwrap() {
        assert_eq!(st.container, before[&st.service].1, "{} is reported through compose's container", st.service);
        let ok = if st.oneshot { st.state == "exited" && st.exit_code == Some(0) } else { st.state == "running" && matches!(st.health.as_str(), "healthy" | "none") };
        assert!(ok, "{}: {} / {}", st.service, st.state, st.health);
    }
    let logs = sup.logs("postgres-primary", 20).await.unwrap();
    assert!(!logs.is_empty(), "the primary's logs come from compose's container");

    // An operator restart acts on compose's container (same container, started again).
    let (id, name) = before["alertmanager"].clone();
    let started = inspect(&name, "{{.State.StartedAt}}");
    sup.restart("alertmanager").await.unwrap();
    assert_eq!(inspect(&name, "{{.Id}}"), inspect(&id, "{{.Id}}"));
    assert_ne!(inspect(&name, "{{.State.StartedAt}}"), started, "restarted");

    // The healer brings back a compose-made container stopped behind its back.
    let (_, name) = before["prometheus"].clone();
    assert!(Command::new("docker").args(["stop", &name]).stdout(Stdio::null()).status().unwrap().success());
    wait_until!("prometheus healed", 30, {
        let _ = sup.heal_once().await;
        inspect(&name, "{{.State.Status}}") == "running"
    });
    assert_eq!(compose_containers(), before, "healed in place, not recreated");

    // The Services page names compose's containers.
    let dir = tempfile::tempdir().unwrap();
    let listen = "127.0.0.1:3231";
    let root = common::repo_root();
    let _serve = Command::new(env!("CARGO_BIN_EXE_bss-control"))
        .arg("serve")
        .current_dir(&root)
        .env("BSS_LISTEN", listen)
        .env("BSS_STORE_PATH", dir.path().join("state.db"))
        .env("BSS_STREAMS_AUTOSTART", "off")
        .env("BSS_STACK_LISTEN", "off")
        .env("BSS_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .map(common::KillOnDrop)
        .expect("bss-control serve");
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let page = loop {
        let page = match http.get(format!("http://{listen}/services")).send().await {
            Ok(r) if r.status().is_success() => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if page.contains("data-testid=\"container-name\"") {
            break page;
        }
        assert!(std::time::Instant::now() < deadline, "the Services page did not list the containers within 60 s:\n{page}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for (service, (_, name)) in &before {
        assert!(page.contains(&format!(">{name}<")), "the Services page names {name} for {service}");
    }

    // `down` removes what it adopted.
    sup.down(false).await.unwrap();
    assert!(compose_containers().is_empty(), "compose's containers removed by down: {:?}", compose_containers());
}
