//! Alerts and gateway against the stack's real AlertManager, Prometheus, Envoy and HAProxy:
//! the route tester agrees with `amtool config routes test` (run inside the AlertManager
//! container on the same config), a test alert reaches the expected receivers' sink, a
//! silence suppresses one, Envoy's rate limit answers 429 after the burst and its counter
//! moves. `#[ignore]`d by default; run by `make test` with `--ignored`.
mod common;

use std::{collections::BTreeMap, process::Command, time::Duration};

use server::{
    alerts::{route::parse_labels, Alerts},
    gateway::Gateway,
    prometheus::{Prometheus, PrometheusError},
};

fn amtool(labels: &str) -> Vec<String> {
    let mut args = vec!["exec", "bss-alertmanager", "amtool", "config", "routes", "test", "--config.file=/etc/alertmanager/alertmanager.yml"];
    let parts: Vec<String> = labels.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    args.extend(parts.iter().map(String::as_str));
    let out = Command::new("docker").args(&args).output().expect("docker exec amtool");
    assert!(out.status.success(), "amtool {labels}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().split(',').map(String::from).collect()
}

#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn alerts_and_gateway_on_the_real_services() {
    let sup = common::stack_supervisor();
    sup.up().await.expect("stack up");
    let alerts = Alerts::new(Default::default());
    let cfg = alerts.config().await.expect("AlertManager config");
    assert_eq!(cfg.root.routes.len(), 4, "4 routes");
    assert_eq!(cfg.receivers.len(), 5, "5 receivers");

    // The route tester agrees with amtool on the running config.
    let table = [
        "team=database, severity=critical",
        "team=database, severity=warning",
        "team=database",
        "team=streaming, severity=critical",
        "team=streaming, severity=warning",
        "team=streaming, severity=info",
        "severity=critical",
        "severity=warning",
        "severity=info",
        "alertname=Foo",
        "team=billing, severity=critical",
        "team=DATABASE, severity=Warning",
    ];
    for labels in table {
        let ours = cfg.test(&parse_labels(labels).unwrap()).receivers;
        assert_eq!(ours, amtool(labels), "labels {labels}");
    }
    println!("route tester = amtool on {} label sets", table.len());

    // A test alert reaches every receiver the tester predicts, through the local sink.
    let labels: BTreeMap<String, String> = parse_labels("team=streaming, severity=warning").unwrap();
    let expected = cfg.test(&labels).receivers;
    let name = alerts.fire_test_alert(labels).await.expect("alert posted");
    wait_until!(format!("{name} delivered to {expected:?}"), 90, {
        let got = alerts.deliveries(&cfg, &[name.clone()]).await.unwrap();
        expected.iter().all(|rx| got.iter().any(|d| &d.receiver == rx && d.alerts.contains(&name)))
    });

    // A silence suppresses the next one: AlertManager marks it suppressed and nothing is sent.
    let mut labels = parse_labels("severity=critical").unwrap();
    let silenced = format!("BssSilenced{}", server::streams::events::now_ms());
    labels.insert("alertname".into(), silenced.clone());
    let id = alerts.create_silence(&[format!("alertname=\"{silenced}\"")], Duration::from_secs(600), "test", "suppress").await.unwrap();
    alerts.fire_test_alert(labels).await.unwrap();
    wait_until!("the alert listed as suppressed", 30, {
        let groups = alerts.groups().await.unwrap();
        groups.iter().flat_map(|g| &g.alerts).any(|a| a.labels.iter().any(|l| l.1 == silenced) && a.state == "suppressed" && a.silenced_by.contains(&id))
    });
    // critical-pager waits 5 s before its first notification: give it three times that.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let got = alerts.deliveries(&cfg, &[silenced.clone()]).await.unwrap();
    assert!(got.iter().all(|d| !d.alerts.contains(&silenced)), "a silenced alert was delivered: {got:?}");
    alerts.expire_silence(&id).await.unwrap();
    assert!(alerts.silences().await.unwrap().iter().any(|s| s.id == id && s.state == "expired"));
    assert!(alerts.create_silence(&[], Duration::from_secs(60), "t", "").await.unwrap_err().to_string().contains("matcher"));

    // Prometheus: targets listed with their health; instant queries answer per series, and
    // a query Prometheus refuses says so (not "unavailable").
    let prom = Prometheus::new(&server::config::EndpointsConfig::default().prometheus);
    let targets = prom.targets().await.unwrap();
    assert!(targets.iter().filter(|t| t.health == "up").count() >= 5, "{targets:?}");
    let up = prom.query("up").await.unwrap();
    assert_eq!(up.len(), targets.len(), "one `up` series per target: {up:?}");
    assert!(up.iter().any(|s| s.value == 1.0 && s.labels.iter().any(|(k, v)| k == "job" && v == "prometheus")), "{up:?}");
    let rules = prom.rules().await.unwrap();
    assert!(rules.iter().any(|r| r.name == "BssOutboxBacklogOld" && r.severity == "warning"), "the outbox rule is loaded: {rules:?}");
    let refused = prom.query("sum(").await.unwrap_err();
    assert!(matches!(refused, PrometheusError::Query { .. }), "{refused}");
    assert!(Prometheus::new("http://127.0.0.1:1").targets().await.is_err_and(|e| matches!(e, PrometheusError::Unavailable { .. })));

    // Envoy: a burst of 30 gets 429s after the 10-token bucket, and Envoy's counter agrees.
    let gw = Gateway::new(Default::default());
    let b = gw.burst(30).await.expect("burst");
    assert_eq!(b.other, 0, "{b:?}");
    b.judged().unwrap_or_else(|e| panic!("{e}: {b:?}"));
    assert!(b.limited >= 30 - b.most_allowed(), "{b:?}");
    assert_eq!(b.limited_counter_after - b.limited_counter_before, b.limited as u64, "{b:?}");
    assert!(gw.burst(0).await.is_err() && gw.burst(10_000).await.is_err());
    let v = gw.view().await;
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    assert_eq!(v.envoy_ready.as_deref(), Some("LIVE"));
    let cp = v.clusters.iter().find(|c| c.name == "control_plane").expect("control_plane cluster");
    let max = |k: &str| cp.breakers.iter().find(|b| b.0 == k).map(|b| b.1);
    assert_eq!((max("max_connections"), max("max_pending_requests"), max("max_retries")), (Some(100), Some(100), Some(3)));
    // HAProxy: both replicas in the read pool, UP.
    for r in ["postgres-replica-1", "postgres-replica-2"] {
        assert!(v.haproxy.iter().any(|h| h.server == r && h.status == "UP"), "{r}: {:?}", v.haproxy);
    }
    println!("burst: {b:?}");

    // The same figures as a swarm reads them, where neither admin endpoint is published:
    // through Prometheus's scrape of Envoy's /stats/prometheus and HAProxy's /metrics.
    let scraped = Gateway::new(Default::default()).scraped_through(prom.clone());
    assert!(scraped.scraped());
    wait_until!("Prometheus's scrape of Envoy shows the burst's 429s", 45, {
        let s = scraped.stats().await.unwrap_or_default();
        s.iter().find(|x| x.0 == server::gateway::RATE_LIMITED).is_some_and(|x| x.1 >= b.limited_counter_after)
    });
    let sv = scraped.view().await;
    assert_eq!(sv.errors, vec![server::gateway::ADMIN_NOT_PUBLISHED.to_string()], "only the note that the admin API is not read");
    assert_eq!(sv.envoy_ready.as_deref(), Some("LIVE"));
    let hosts = |v: &app::api::GatewayView| v.clusters.iter().find(|c| c.name == "control_plane").map(|c| c.hosts.len());
    assert_eq!(hosts(&sv), hosts(&v), "control_plane's hosts, scraped and from the admin API");
    assert_eq!(sv.counters.len(), v.counters.len(), "every counter of the page, scraped: {:?}", sv.counters);
    for r in ["postgres-replica-1", "postgres-replica-2"] {
        assert!(sv.haproxy.iter().any(|h| h.proxy == "pg_replicas" && h.server == r && h.status == "UP"), "{r}: {:?}", sv.haproxy);
    }
    assert!(scraped.config_dump().await.unwrap_err().to_string().contains("not published on a swarm"));
    println!("scraped: Envoy {:?}, HAProxy {:?}", sv.envoy_ready, sv.haproxy);
}

/// A processor stopped while its input keeps arriving: the control plane's lag metric,
/// scraped by Prometheus from the container-facing listener, makes `KafkaConsumerLagHigh`
/// fire, and AlertManager delivers it to every receiver the route tester predicts for its
/// labels. Then the processor drains the backlog.
#[tokio::test]
#[ignore = "needs the stack; run by `make test`"]
async fn a_stopped_processor_fires_the_lag_alert_through_the_predicted_route() {
    common::stack_supervisor().up().await.expect("stack up");
    let dir = tempfile::tempdir().unwrap();
    let svc = common::container_facing_services(dir.path()).await;
    svc.spawn_background();
    let _listener = tokio::spawn(server::web::serve_stack_listener(svc.clone()));
    let prom = Prometheus::new(&server::config::EndpointsConfig::default().prometheus);
    wait_until!("Prometheus scrapes the control plane", 90, {
        prom.targets().await.is_ok_and(|t| t.iter().any(|t| t.job == "bss-control" && t.health == "up"))
    });
    let rules = prom.rules().await.unwrap();
    assert!(rules.iter().any(|r| r.name == "KafkaConsumerLagHigh"), "the lag rule is loaded: {rules:?}");

    // Each processor's group commits once (so its lag is known), then stops.
    let names = svc.streams.names();
    for n in &names {
        svc.streams.start(n).unwrap();
    }
    svc.streams.send_samples(&format!("lag-{}", server::streams::events::now_ms()), 20, 0).await.unwrap();
    wait_until!("both groups caught up", 120, svc.streams.view().processors.iter().all(|p| p.state == "running" && p.lag == Some(0)));
    for n in &names {
        svc.streams.stop(n).await.unwrap();
    }
    // 3 000 events: 1 500 for each processor's input, over the rule's 1 000.
    let (t0, since) = (std::time::Instant::now(), server::streams::events::now_ms());
    svc.streams.send_samples(&format!("lag-{since}"), 3000, 0).await.unwrap();
    wait_until!("the control plane sees the lag", 30, svc.streams.view().processors.iter().all(|p| p.lag.unwrap_or(0) >= 1000));
    wait_until!("KafkaConsumerLagHigh firing in Prometheus", 240, {
        prom.query("ALERTS{alertname=\"KafkaConsumerLagHigh\",alertstate=\"firing\"}").await.is_ok_and(|s| !s.is_empty())
    });
    println!("KafkaConsumerLagHigh firing {:.0} s after the backlog appeared", t0.elapsed().as_secs_f64());

    // The same backlog as history (the Streams page's Prometheus chart): one series per
    // processor, at or over 1 000 at the latest step.
    let h = prom.history("consumer-lag", "15m", server::streams::events::now_ms() / 1000).await.unwrap();
    let mut want = names.clone();
    want.sort();
    assert_eq!(h.names, want, "{h:?}");
    assert!(h.query.contains("bss_stream_consumer_lag") && h.graph_url.contains("g0.expr="), "{h:?}");
    let last = &h.points.last().expect("points").1;
    assert!(last.iter().all(|v| v.is_some_and(|v| v >= 1000.0)), "latest step {last:?}");
    // And where it sits: per input partition, adding up to the same backlog per processor.
    let h = prom.history("consumer-lag-partition", "15m", server::streams::events::now_ms() / 1000).await.unwrap();
    let last = &h.points.last().expect("points").1;
    for n in &names {
        let prefix = format!("{n} partition ");
        let parts: Vec<f64> = h.names.iter().zip(last).filter(|(s, _)| s.starts_with(&prefix)).map(|(_, v)| v.unwrap_or(0.0)).collect();
        assert!(parts.len() > 1 && parts.iter().sum::<f64>() >= 1000.0, "{n}: per partition {parts:?} of {h:?}");
    }

    // Delivered where the route tester says, for the alert's own labels.
    let rule = rules.iter().find(|r| r.name == "KafkaConsumerLagHigh").unwrap();
    let labels = format!("alertname=KafkaConsumerLagHigh, severity={}, team=streaming, processor={}", rule.severity, names[0]);
    let expected = common::await_predicted_delivery(&labels, since, 180).await;
    println!("KafkaConsumerLagHigh delivered to {expected:?} {:.0} s after the backlog appeared", t0.elapsed().as_secs_f64());

    // Started again, the processors drain the backlog.
    for n in &names {
        svc.streams.start(n).unwrap();
    }
    wait_until!("the backlog drained", 180, svc.streams.view().processors.iter().all(|p| p.lag == Some(0)));
    svc.streams.stop_all().await;
}
