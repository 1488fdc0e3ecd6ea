//! The event contracts a producer can read: one JSON Schema (draft 2020-12) document with a
//! schema per topic — the CloudEvents 1.0 envelope and, per event type, the `data` fields
//! the processors require — served at `/api/events.schema.json` and linked from the Streams
//! page. Built from the same constants the processors check (event types, topics), and held
//! to the code by tests: every example in it is accepted by its processor, and removing any
//! field it marks required is rejected with a reason that names the field.
use serde_json::{json, Value};

use super::events::{ANALYTICS_TOPIC, CUSTOMER_TOPIC, CUSTOMER_TYPES, DLQ_TOPIC, ORDER_TOPIC, ORDER_TYPES};

const ID: &str = "/api/events.schema.json";

/// The CloudEvents 1.0 attributes every input must carry (what `CloudEvent::parse` checks).
fn envelope(types: &[&str], data: Value) -> Value {
    json!({
        "type": "object",
        "required": ["specversion", "id", "source", "type"],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {"type": "string", "minLength": 1, "description": "unique per event; redeliveries keep it"},
            "source": {"type": "string", "minLength": 1, "examples": ["/bss/crm", "/bss/orders"]},
            "type": {"enum": types},
            "time": {"type": "string", "format": "date-time", "description": "event time (RFC 3339); the processors' latency and windows use it"},
            "subject": {"type": "string", "description": "the record key (customer or order id)"},
            "datacontenttype": {"const": "application/json"},
            "data": data
        }
    })
}

/// `data` of the customer events: `customer_id` always, `plan` on `plan_changed`.
fn customer_data() -> Value {
    json!({
        "type": "object",
        "required": ["customer_id"],
        "properties": {
            "customer_id": {"type": "string", "minLength": 1},
            "name": {"type": "string"},
            "plan": {"type": "string", "description": "required by bss.customer.plan_changed"}
        }
    })
}

/// `data` of the order events: `order_id` always; `items` (qty > 0, unit_price ≥ 0) on
/// `placed`, which opens the order; the later types move it (paid, fulfilled, cancelled).
fn order_data() -> Value {
    json!({
        "type": "object",
        "required": ["order_id"],
        "properties": {
            "order_id": {"type": "string", "minLength": 1},
            "customer_id": {"type": "string"},
            "currency": {"type": "string", "default": "EUR"},
            "items": {
                "type": "array", "minItems": 1,
                "description": "required by bss.order.placed",
                "items": {
                    "type": "object",
                    "required": ["qty", "unit_price"],
                    "properties": {
                        "sku": {"type": "string"},
                        "qty": {"type": "integer", "minimum": 1},
                        "unit_price": {"type": "number", "minimum": 0}
                    }
                }
            }
        }
    })
}

/// One valid input per event type of `topic`, in the order of its types.
pub fn examples(topic: &str) -> Vec<Value> {
    let time = "2026-11-30T12:00:00.000Z";
    match topic {
        CUSTOMER_TOPIC => CUSTOMER_TYPES
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                json!({"specversion": "1.0", "id": format!("crm-{i}"), "source": "/bss/crm", "type": ty, "time": time, "subject": "cust-42",
                       "datacontenttype": "application/json", "data": {"customer_id": "cust-42", "name": "Ada", "plan": "mobile-l"}})
            })
            .collect(),
        ORDER_TOPIC => ORDER_TYPES
            .iter()
            .enumerate()
            .map(|(i, ty)| {
                json!({"specversion": "1.0", "id": format!("ord-{i}"), "source": "/bss/orders", "type": ty, "time": time, "subject": "ord-7",
                       "datacontenttype": "application/json",
                       "data": {"order_id": "ord-7", "customer_id": "cust-42", "currency": "EUR", "items": [{"sku": "SIM-5G", "qty": 2, "unit_price": 9.99}]}})
            })
            .collect(),
        _ => vec![],
    }
}

/// The whole document.
pub fn document() -> Value {
    let mut customer = envelope(CUSTOMER_TYPES, customer_data());
    customer["title"] = json!(CUSTOMER_TOPIC);
    customer["description"] = json!("Input of bss-customer-analytics. Invalid events go to bss.dlq.events with the reason in the `error` header.");
    customer["examples"] = json!(examples(CUSTOMER_TOPIC));
    let mut order = envelope(ORDER_TYPES, order_data());
    order["title"] = json!(ORDER_TOPIC);
    order["description"] = json!("Input of bss-order-processor. A state change the order cannot make (e.g. paid before placed) goes to the DLQ too.");
    order["examples"] = json!(examples(ORDER_TOPIC));
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": ID,
        "title": "bss-control event contracts",
        "description": "CloudEvents 1.0 (structured JSON, content type application/cloudevents+json) on the Phase 3 topics. Record keys: the customer id or order id.",
        "$defs": {
            CUSTOMER_TOPIC: customer,
            ORDER_TOPIC: order,
            ANALYTICS_TOPIC: {
                "title": ANALYTICS_TOPIC,
                "description": "Output of both processors: source /bss/<processor>, id <processor>:<input id> (a redelivered input gives the same id: consumers dedupe on it), extensions causationid, causationtime, processedat, processingms.",
                "type": "object",
                "required": ["specversion", "id", "source", "type", "causationid"],
                "properties": {"specversion": {"const": "1.0"}, "id": {"type": "string"}, "source": {"type": "string", "pattern": "^/bss/"},
                               "type": {"type": "string"}, "causationid": {"type": "string"}, "processingms": {"type": "integer", "minimum": 0}}
            },
            DLQ_TOPIC: {
                "title": DLQ_TOPIC,
                "description": "Inputs a processor could not use, byte for byte, with headers: error (the reason, naming the field and the rule), processor, source topic, partition and offset."
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::streams::events::{CloudEvent, CustomerAnalytics, OrderProcessor, Outcome};

    /// Runs `ev` through a fresh processor of its topic, after the events that must come
    /// before it (an order is placed before it is paid).
    fn process(topic: &str, ev: &Value) -> Outcome {
        let parse = |v: &Value| CloudEvent::parse(v.to_string().as_bytes()).expect("a CloudEvent");
        match topic {
            CUSTOMER_TOPIC => CustomerAnalytics::new(60_000).process(&parse(ev), 0),
            _ => {
                let mut p = OrderProcessor::default();
                let before: &[&str] = match ev["type"].as_str() {
                    Some("bss.order.paid" | "bss.order.cancelled") => &["bss.order.placed"],
                    Some("bss.order.fulfilled") => &["bss.order.placed", "bss.order.paid"],
                    _ => &[],
                };
                for ty in before {
                    let prior = examples(ORDER_TOPIC).into_iter().find(|e| e["type"] == *ty).unwrap();
                    assert!(matches!(p.process(&parse(&prior), 0), Outcome::Emit(_)), "{ty}");
                }
                p.process(&parse(ev), 0)
            }
        }
    }

    #[test]
    fn every_example_is_accepted_by_its_processor_and_every_type_has_one() {
        let doc = document();
        for (topic, types) in [(CUSTOMER_TOPIC, CUSTOMER_TYPES), (ORDER_TOPIC, ORDER_TYPES)] {
            let ex = doc["$defs"][topic]["examples"].as_array().unwrap();
            assert_eq!(ex.len(), types.len(), "{topic}");
            for e in ex {
                assert!(matches!(process(topic, e), Outcome::Emit(_)), "{topic}: {e} rejected");
            }
            assert_eq!(doc["$defs"][topic]["properties"]["type"]["enum"], json!(types));
        }
    }

    #[test]
    fn removing_a_required_data_field_is_rejected_naming_it() {
        let doc = document();
        for topic in [CUSTOMER_TOPIC, ORDER_TOPIC] {
            let required = doc["$defs"][topic]["properties"]["data"]["required"].as_array().unwrap().clone();
            assert!(!required.is_empty());
            for e in examples(topic) {
                for field in &required {
                    let field = field.as_str().unwrap();
                    let mut bad = e.clone();
                    bad["data"].as_object_mut().unwrap().remove(field);
                    match process(topic, &bad) {
                        Outcome::Reject(why) => assert!(why.contains(field), "{topic} {}: {why:?} does not name {field}", e["type"]),
                        Outcome::Emit(_) => panic!("{topic} {}: accepted without {field}", e["type"]),
                    }
                }
            }
        }
        // The per-type rules the document states in words.
        let mut e = examples(CUSTOMER_TOPIC).into_iter().find(|e| e["type"] == "bss.customer.plan_changed").unwrap();
        e["data"].as_object_mut().unwrap().remove("plan");
        assert!(matches!(process(CUSTOMER_TOPIC, &e), Outcome::Reject(why) if why.contains("plan")));
        for (field, value) in [("qty", json!(0)), ("unit_price", json!(-1.0))] {
            let mut e = examples(ORDER_TOPIC).remove(0);
            e["data"]["items"][0][field] = value;
            assert!(matches!(process(ORDER_TOPIC, &e), Outcome::Reject(why) if why.contains(field)), "{field}");
        }
        let mut e = examples(ORDER_TOPIC).remove(0);
        e["data"]["items"] = json!([]);
        assert!(matches!(process(ORDER_TOPIC, &e), Outcome::Reject(why) if why.contains("items")));
    }

    #[test]
    fn the_envelope_rules_are_what_parse_checks() {
        let doc = document();
        let required = doc["$defs"][CUSTOMER_TOPIC]["required"].as_array().unwrap().clone();
        for attr in required {
            let attr = attr.as_str().unwrap();
            let mut e = examples(CUSTOMER_TOPIC).remove(0);
            e.as_object_mut().unwrap().remove(attr);
            let err = CloudEvent::parse(e.to_string().as_bytes()).unwrap_err().to_string();
            assert!(err.contains(attr), "{err}");
        }
    }
}
