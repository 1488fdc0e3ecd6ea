//! Fuzzing, bounded, of every parser that takes outside input: CloudEvent decoding and both
//! processors' handling of whatever a decoded event carries, the compose model (and its
//! ports and durations), AlertManager's route tree and matchers, the route tester's label
//! input, LSNs (also `X-BSS-Read-After`), and the sign-in form through the real router.
//! proptest generates inputs (arbitrary bytes and strings, and structured ones near the
//! valid shape, where bugs hide); the property is always "a clear error or a value that
//! holds its invariants, never a panic". Cases per target: `BSS_FUZZ_CASES` (default 3000);
//! each target prints how many it ran. A failure prints the minimal input: keep it here as
//! a regression case.
use std::collections::BTreeMap;

use proptest::{prelude::*, test_runner::Config as PtConfig};
use serde_json::{json, Value};
use server::{
    alerts::route,
    db::routing::Lsn,
    runtime::compose::{parse_duration_ns, parse_port, ComposeFile},
    streams::events::{CloudEvent, CustomerAnalytics, OrderProcessor, Outcome},
};

fn cases() -> u32 {
    std::env::var("BSS_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

fn config() -> PtConfig {
    PtConfig { cases: cases(), failure_persistence: None, ..PtConfig::default() }
}

fn ran(target: &str) {
    println!("fuzz {target}: {} cases", cases());
}

/// JSON values of any shape, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// CloudEvents near the valid shape: right envelope (mostly), the processors' types, and
/// data whose fields are the expected names with values of any type.
fn near_event() -> impl Strategy<Value = Vec<u8>> {
    let ty = prop_oneof![
        Just("bss.customer.created".to_string()),
        Just("bss.customer.plan_changed".to_string()),
        Just("bss.order.placed".to_string()),
        Just("bss.order.paid".to_string()),
        Just("bss.order.cancelled".to_string()),
        ".{0,20}",
    ];
    let field = prop_oneof![Just("customer_id"), Just("order_id"), Just("items"), Just("qty"), Just("unit_price"), Just("plan"), Just("total")];
    let data = prop::collection::btree_map(field, any_json(), 0..6);
    let items = prop::collection::vec(prop::collection::btree_map(prop_oneof![Just("qty"), Just("unit_price"), Just("sku")], any_json(), 0..3), 0..3);
    (prop_oneof![Just("1.0".to_string()), ".{0,4}"], ".{0,8}", ".{0,8}", ty, data, items, any_json(), any::<bool>()).prop_map(
        |(spec, id, source, ty, data, items, time, with_items)| {
            let mut d: serde_json::Map<String, Value> = data.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            if with_items {
                d.insert("items".into(), Value::from(items.into_iter().map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())).collect::<Vec<_>>()));
            }
            serde_json::to_vec(&json!({"specversion": spec, "id": id, "source": source, "type": ty, "time": time, "data": d})).unwrap()
        },
    )
}

/// Decoding then both processors: an event is accepted only with its required attributes,
/// and a processor either emits an output that is itself a valid CloudEvent caused by the
/// input, or rejects with a reason; nothing panics.
fn decode_and_process(bytes: &[u8]) -> Result<(), TestCaseError> {
    let Ok(ev) = CloudEvent::parse(bytes) else { return Ok(()) };
    prop_assert_eq!(ev.specversion.as_str(), "1.0");
    prop_assert!(!ev.id.is_empty() && !ev.source.is_empty() && !ev.ty.is_empty());
    let mut customers = CustomerAnalytics::new(60_000);
    let mut orders = OrderProcessor::default();
    for outcome in [customers.process(&ev, 1_700_000_000_000), orders.process(&ev, 1_700_000_000_000)] {
        match outcome {
            Outcome::Emit(out) => {
                let again = CloudEvent::parse(&out.to_bytes());
                prop_assert!(again.is_ok(), "an output does not decode: {:?}", again.err());
                prop_assert_eq!(out.extensions.get("causationid").and_then(Value::as_str), Some(ev.id.as_str()));
            }
            Outcome::Reject(why) => prop_assert!(!why.is_empty()),
        }
    }
    Ok(())
}

#[test]
fn cloudevents_and_processors() {
    proptest!(config(), |(bytes in prop::collection::vec(any::<u8>(), 0..256))| { decode_and_process(&bytes)?; });
    proptest!(config(), |(bytes in near_event())| { decode_and_process(&bytes)?; });
    ran("cloudevents_and_processors (bytes + near-valid events)");
}

/// YAML near a compose file: known keys with values of any shape.
fn near_compose() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("image"), Just("ports"), Just("depends_on"), Just("healthcheck"), Just("volumes"), Just("restart"),
        Just("ulimits"), Just("networks"), Just("environment"), Just("cap_add"), Just("command"), Just("privileged"),
    ];
    let svc = prop::collection::btree_map(key, any_json(), 0..6);
    prop::collection::btree_map("[a-z]{1,6}", svc, 0..4)
        .prop_map(|services| serde_yaml::to_string(&json!({ "services": services, "networks": {"bss": null}, "volumes": {"data": null} })).unwrap())
}

#[test]
fn compose_model() {
    proptest!(config(), |(text in ".{0,200}")| { let _ = ComposeFile::from_str(&text, "fuzz.yml"); });
    proptest!(config(), |(text in near_compose())| {
        if let Ok(f) = ComposeFile::from_str(&text, "fuzz.yml") {
            // Accepted files keep the promises the supervisor relies on.
            for (name, s) in &f.services {
                prop_assert!(!s.image.trim().is_empty(), "{name}: empty image accepted");
                for p in &s.ports {
                    prop_assert!(parse_port(p).is_ok(), "{name}: port {p:?} accepted");
                }
                prop_assert!(s.cap_add.iter().all(|c| c == "NET_ADMIN" || c == "CAP_NET_ADMIN"), "{name}: {:?}", s.cap_add);
            }
            prop_assert!(f.start_order().is_ok());
        }
    });
    proptest!(config(), |(p in ".{0,40}", d in ".{0,12}")| {
        if let Ok(b) = parse_port(&p) {
            prop_assert!(p.starts_with("127.0.0.1:"), "{p:?} binds beyond loopback: {b:?}");
        }
        if let Ok(ns) = parse_duration_ns(&d) {
            prop_assert!(ns >= 0, "{d:?} → {ns}");
        }
    });
    ran("compose_model (text + near-valid files + ports/durations)");
}

#[test]
fn alert_routes_and_labels() {
    proptest!(config(), |(m in ".{0,40}")| { let _ = route::Matcher::parse(&m); });
    proptest!(config(), |(s in "[a-z_=!~\",{} .*a-z0-9]{0,60}")| {
        if let Ok(labels) = route::parse_labels(&s) {
            for k in labels.keys() {
                prop_assert!(!k.is_empty(), "empty label name accepted from {s:?}");
            }
        }
    });
    proptest!(config(), |(text in ".{0,200}")| { let _ = route::Config::parse(&text); });
    let tree = std::fs::read_to_string(std::path::Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").expect("run by cargo test")).join("../dev/alertmanager/alertmanager.yml")).unwrap();
    let cfg = route::Config::parse(&tree).unwrap();
    proptest!(config(), |(labels in prop::collection::btree_map("[a-z]{1,10}", ".{0,10}", 0..6))| {
        let labels: BTreeMap<String, String> = labels;
        let r = cfg.test(&labels);
        // Every alert reaches at least one receiver (the root's default at worst).
        prop_assert!(!r.receivers.is_empty(), "{labels:?}");
    });
    ran("alert_routes_and_labels (matchers + label input + configs + the dev tree)");
}

#[test]
fn lsns() {
    proptest!(config(), |(s in ".{0,24}")| { let _ = Lsn::parse(&s); });
    proptest!(config(), |(hi in any::<u32>(), lo in any::<u32>())| {
        let text = format!("{hi:X}/{lo:X}");
        let l = Lsn::parse(&text);
        prop_assert_eq!(l, Some(Lsn((u64::from(hi) << 32) | u64::from(lo))));
        prop_assert_eq!(l.unwrap().to_string(), text);
    });
    ran("lsns (text + round trip)");
}

/// The sign-in form through the real router, shared mode: any body, any content type, is
/// answered with a redirect or a 4xx, never a 5xx, and never signs anyone in.
#[test]
fn sign_in_form() {
    use axum::{body::Body, extract::connect_info::MockConnectInfo, http::Request};
    use tower::ServiceExt;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = rt.block_on(async {
        let mut config = server::config::Config::default();
        config.store.path = dir.path().join("state.db");
        config.auth.enabled = Some(true);
        // Argon2 per case would make this a password-hashing benchmark: few cases suffice
        // for the parser, and the lockout is what protects the real form.
        config.stack.project = format!("bssfuzz{}", std::process::id());
        let store = server::store::Store::open(&config.store.path).await.unwrap();
        let svc = server::state::Services::new(config, server::runtime::Runtime::new(None), store);
        svc.auth.add_user("ada", app::api::Role::Admin, "correct horse battery staple").await.unwrap();
        server::web::router(svc).layer(MockConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 40000))))
    });
    let n = (cases() / 30).max(20);
    let cfg = PtConfig { cases: n, failure_persistence: None, ..PtConfig::default() };
    proptest!(cfg, |(body in prop::collection::vec(any::<u8>(), 0..200), form in "(name|password|x)=[^&]{0,40}(&(name|password)=[^&]{0,300}){0,2}", ct in prop_oneof![Just("application/x-www-form-urlencoded"), Just("text/plain"), Just("")])| {
        for b in [body.clone(), form.clone().into_bytes()] {
            let req = Request::post("/auth/login")
                .header("host", "127.0.0.1:3000")
                .header("origin", "http://127.0.0.1:3000")
                .header("content-type", ct)
                .body(Body::from(b))
                .unwrap();
            let res = rt.block_on(app.clone().oneshot(req)).unwrap();
            let status = res.status();
            prop_assert!(!status.is_server_error(), "{status} for {form:?}");
            let signed_in = res.headers().get("set-cookie").and_then(|c| c.to_str().ok()).is_some_and(|c| c.contains("bss_session=") && !c.contains("Max-Age=0"));
            prop_assert!(!signed_in, "signed in by {form:?}");
        }
    });
    println!("fuzz sign_in_form: {} cases (2 requests each)", n);
}
