//! Against the real Docker engine the test setup provides (DOCKER_HOST): what the product
//! reports must equal what the engine's own CLI reports.
use std::process::Command;

use server::runtime::Runtime;

fn docker_cli(format: &str) -> String {
    let out = Command::new("docker").args(["version", "--format", format]).output().expect("docker CLI");
    assert!(out.status.success(), "docker CLI failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn engine_status_matches_the_engine() {
    let host = std::env::var("DOCKER_HOST").ok();
    let status = Runtime::new(host.as_deref()).engine_status().await;
    assert!(status.reachable(), "engine unreachable: {:?}", status.error);
    assert_eq!(status.version.as_deref(), Some(docker_cli("{{.Server.Version}}").as_str()));
    assert_eq!(status.api_version.as_deref(), Some(docker_cli("{{.Server.APIVersion}}").as_str()));
    assert!(status.containers_running <= status.containers_total);
}
