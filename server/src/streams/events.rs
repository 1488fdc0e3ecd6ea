//! The BSS event schemas, in one place: CloudEvents 1.0 in structured JSON mode, and the two
//! processors' transforms as pure functions (no Kafka here, so they are unit-tested alone).
//!
//! Structured mode (the whole event is the record value, `content-type:
//! application/cloudevents+json`) rather than the `cloudevents-sdk` crate: its Kafka binding
//! pins rdkafka ^0.38 while we build 0.39, and the envelope is a small serde type.
use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const CUSTOMER_TOPIC: &str = "bss.customer.events";
pub const ORDER_TOPIC: &str = "bss.order.events";
pub const ANALYTICS_TOPIC: &str = "bss.analytics.events";
pub const DLQ_TOPIC: &str = "bss.dlq.events";
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// A CloudEvents 1.0 event. Unknown attributes (extensions) are kept in `extensions`.
/// Deserialised by hand (below): serde's `flatten` buffers every attribute of every
/// event in an intermediate map before the struct sees it, the largest cost of a
/// processor's parse.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    #[serde(default)]
    pub data: Value,
    #[serde(flatten)]
    pub extensions: BTreeMap<String, Value>,
}

impl<'de> Deserialize<'de> for CloudEvent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        /// An attribute's name: a known one without allocating, an extension's as a String.
        enum Attr {
            Specversion,
            Id,
            Source,
            Type,
            Time,
            Subject,
            Datacontenttype,
            Data,
            Extension(String),
        }
        impl<'de> Deserialize<'de> for Attr {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Name;
                impl Visitor<'_> for Name {
                    type Value = Attr;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an attribute name")
                    }
                    fn visit_str<E: Error>(self, v: &str) -> Result<Attr, E> {
                        Ok(match v {
                            "specversion" => Attr::Specversion,
                            "id" => Attr::Id,
                            "source" => Attr::Source,
                            "type" => Attr::Type,
                            "time" => Attr::Time,
                            "subject" => Attr::Subject,
                            "datacontenttype" => Attr::Datacontenttype,
                            "data" => Attr::Data,
                            other => Attr::Extension(other.to_string()),
                        })
                    }
                }
                d.deserialize_identifier(Name)
            }
        }
        struct Event;
        impl<'de> Visitor<'de> for Event {
            type Value = CloudEvent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a CloudEvent (a JSON object)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CloudEvent, A::Error> {
                fn once<T, E: Error>(slot: &mut Option<T>, v: T, name: &'static str) -> Result<(), E> {
                    match slot.replace(v) {
                        Some(_) => Err(E::duplicate_field(name)),
                        None => Ok(()),
                    }
                }
                let (mut specversion, mut id, mut source, mut ty) = (None, None, None, None);
                let (mut time, mut subject, mut datacontenttype, mut data) = (None, None, None, None);
                let mut extensions = BTreeMap::new();
                while let Some(attr) = map.next_key::<Attr>()? {
                    match attr {
                        Attr::Specversion => once(&mut specversion, map.next_value::<String>()?, "specversion")?,
                        Attr::Id => once(&mut id, map.next_value::<String>()?, "id")?,
                        Attr::Source => once(&mut source, map.next_value::<String>()?, "source")?,
                        Attr::Type => once(&mut ty, map.next_value::<String>()?, "type")?,
                        Attr::Time => once(&mut time, map.next_value::<Option<String>>()?, "time")?,
                        Attr::Subject => once(&mut subject, map.next_value::<Option<String>>()?, "subject")?,
                        Attr::Datacontenttype => once(&mut datacontenttype, map.next_value::<Option<String>>()?, "datacontenttype")?,
                        Attr::Data => once(&mut data, map.next_value::<Value>()?, "data")?,
                        Attr::Extension(name) => {
                            let v = map.next_value::<Value>()?;
                            if extensions.insert(name, v).is_some() {
                                return Err(A::Error::custom("duplicate extension attribute"));
                            }
                        }
                    }
                }
                Ok(CloudEvent {
                    specversion: specversion.ok_or_else(|| A::Error::missing_field("specversion"))?,
                    id: id.ok_or_else(|| A::Error::missing_field("id"))?,
                    source: source.ok_or_else(|| A::Error::missing_field("source"))?,
                    ty: ty.ok_or_else(|| A::Error::missing_field("type"))?,
                    time: time.flatten(),
                    subject: subject.flatten(),
                    datacontenttype: datacontenttype.flatten(),
                    data: data.unwrap_or(Value::Null),
                    extensions,
                })
            }
        }
        d.deserialize_map(Event)
    }
}

impl CloudEvent {
    pub fn new(source: &str, ty: &str, id: String, time_ms: u64, subject: Option<String>, data: Value) -> Self {
        CloudEvent {
            specversion: "1.0".into(),
            id,
            source: source.into(),
            ty: ty.into(),
            time: Some(rfc3339_ms(time_ms)),
            subject,
            datacontenttype: Some("application/json".into()),
            data,
            extensions: BTreeMap::new(),
        }
    }

    /// Parses and checks the required attributes; the error says what is wrong (it becomes
    /// the DLQ record's `error` header).
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidEvent> {
        // Fast path: straight into the struct (one pass); the slow path below only runs to
        // say precisely what is wrong with a bad record.
        if let Ok(ev) = serde_json::from_slice::<CloudEvent>(bytes) {
            let required = [&ev.specversion, &ev.id, &ev.source, &ev.ty];
            if ev.specversion == "1.0" && required.iter().all(|a| !a.is_empty()) {
                return Ok(ev);
            }
        }
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let obj = v.as_object().ok_or("not a JSON object")?;
        for attr in ["specversion", "id", "source", "type"] {
            match obj.get(attr) {
                Some(Value::String(s)) if !s.is_empty() => {}
                Some(_) => return Err(format!("CloudEvents attribute {attr:?} must be a non-empty string").into()),
                None => return Err(format!("missing CloudEvents attribute {attr:?}").into()),
            }
        }
        let ev: CloudEvent = serde_json::from_value(v).map_err(|e| format!("bad CloudEvent: {e}"))?;
        if ev.specversion != "1.0" {
            return Err(format!("unsupported specversion {:?} (want \"1.0\")", ev.specversion).into());
        }
        Ok(ev)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a CloudEvent always serialises")
    }

    /// Event time in unix ms, if the `time` attribute is present and RFC 3339.
    pub fn time_ms(&self) -> Option<u64> {
        rfc3339_to_ms(self.time.as_deref()?)
    }
}

/// An RFC 3339 time (`time`, `causationtime`, `processedat`) in unix ms.
pub fn rfc3339_to_ms(t: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(t).ok()?;
    t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_millis() as u64)
}

message_error!(
    /// Why bytes are not a usable CloudEvent (becomes the DLQ record's `error` header).
    InvalidEvent
);

pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms)).to_string()
}

pub use crate::clock::now_ms;

/// An output event: source and type of the processor, `causationid` / `causationtime` = the
/// input event's id and time, processing time as extensions. The id is derived from the input id, so a redelivered
/// input produces the same output id (consumers dedupe on it: at-least-once, not twice-counted).
pub fn output(processor: &str, ty: &str, input: &CloudEvent, now_ms: u64, data: Value) -> CloudEvent {
    let mut ev = CloudEvent::new(&format!("/bss/{processor}"), ty, format!("{processor}:{}", input.id), now_ms, input.subject.clone(), data);
    ev.extensions.insert("causationid".into(), Value::String(input.id.clone()));
    ev.extensions.insert("processedat".into(), Value::String(rfc3339_ms(now_ms)));
    if let Some(t) = input.time_ms() {
        ev.extensions.insert("processingms".into(), json!(now_ms.saturating_sub(t)));
    }
    if let Some(t) = &input.time {
        ev.extensions.insert("causationtime".into(), Value::String(t.clone()));
    }
    ev
}

/// What a processor does with one input.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    Emit(CloudEvent),
    /// Malformed or invalid: goes to the DLQ with this reason.
    Reject(String),
}

/// A transform's state as records of its compacted changelog: which keys a `process`
/// changed, and a key's current value.
pub trait Changelog {
    /// The changelog keys the last `process` of `input` changed.
    fn touched(&self, input: &CloudEvent, key: impl FnMut(&str));

    /// A key's current value (`None`: a tombstone, the state no longer holds it).
    fn value(&self, key: &str) -> Option<Vec<u8>>;

    /// The state the last `process` of `input` changed, as changelog records (key, value).
    /// Written to the changelog before the input's offset may be committed, so a restart
    /// restores exactly this.
    fn changes(&self, input: &CloudEvent) -> Vec<(String, Option<Vec<u8>>)> {
        let mut keys = vec![];
        self.touched(input, |k| keys.push(k.to_string()));
        keys.into_iter()
            .map(|k| {
                let v = self.value(&k);
                (k, v)
            })
            .collect()
    }
}

pub const CUSTOMER_TYPES: &[&str] =
    &["bss.customer.created", "bss.customer.updated", "bss.customer.deleted", "bss.customer.plan_changed"];
pub const ORDER_TYPES: &[&str] = &["bss.order.placed", "bss.order.paid", "bss.order.fulfilled", "bss.order.cancelled"];

/// `bss-customer-analytics`: per-customer event counters and event-type tallies over a
/// tumbling window. State is in memory; after a restart counters start again (the output
/// says which window and how many events of this customer this processor instance saw).
#[derive(Debug)]
pub struct CustomerAnalytics {
    window_ms: u64,
    window_start: u64,
    tallies: BTreeMap<String, u64>,
    per_customer: HashMap<String, u64>,
    /// Bounded: the oldest customers are forgotten first.
    order: VecDeque<String>,
    max_customers: usize,
}

impl CustomerAnalytics {
    pub const NAME: &'static str = "bss-customer-analytics";

    pub fn new(window_ms: u64) -> Self {
        Self { window_ms, window_start: 0, tallies: BTreeMap::new(), per_customer: HashMap::new(), order: VecDeque::new(), max_customers: 100_000 }
    }

    pub fn process(&mut self, input: &CloudEvent, now_ms: u64) -> Outcome {
        if !CUSTOMER_TYPES.contains(&input.ty.as_str()) {
            return Outcome::Reject(format!("unknown customer event type {:?}", input.ty));
        }
        let Some(customer) = input.data.get("customer_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Outcome::Reject("data.customer_id missing or not a string".into());
        };
        if input.ty == "bss.customer.plan_changed" && input.data.get("plan").and_then(Value::as_str).is_none() {
            return Outcome::Reject("plan_changed without data.plan".into());
        }
        let at = input.time_ms().unwrap_or(now_ms);
        let window = at - at % self.window_ms.max(1);
        if window > self.window_start {
            self.window_start = window;
            self.tallies.clear();
        }
        *self.tallies.entry(input.ty.clone()).or_default() += 1;
        let count = match self.per_customer.get_mut(customer) {
            Some(c) => {
                *c += 1;
                *c
            }
            None => {
                if self.order.len() == self.max_customers {
                    if let Some(old) = self.order.pop_front() {
                        self.per_customer.remove(&old);
                    }
                }
                self.order.push_back(customer.to_string());
                self.per_customer.insert(customer.to_string(), 1);
                1
            }
        };
        Outcome::Emit(output(
            Self::NAME,
            "bss.analytics.customer_activity",
            input,
            now_ms,
            json!({
                "customer_id": customer,
                "event_type": input.ty,
                "customer_event_count": count,
                "window_start": rfc3339_ms(self.window_start),
                "window_ms": self.window_ms,
                "window_tallies": self.tallies,
            }),
        ))
    }
}

/// The key of customer analytics' window record in its changelog (customer ids are keys
/// of their own; this one cannot collide with an id, which the CRM never starts with `~`).
const WINDOW_KEY: &str = "~window";

impl Changelog for CustomerAnalytics {
    /// The changelog keys the last `process` of `input` changed: the customer's and the
    /// window's.
    fn touched(&self, input: &CloudEvent, mut key: impl FnMut(&str)) {
        let Some(customer) = input.data.get("customer_id").and_then(Value::as_str) else { return };
        if self.per_customer.contains_key(customer) {
            key(customer);
            key(WINDOW_KEY);
        }
    }

    /// A changelog key's current value (`None`: a tombstone, the customer was forgotten).
    fn value(&self, key: &str) -> Option<Vec<u8>> {
        if key == WINDOW_KEY {
            return Some(json!({"start": self.window_start, "tallies": self.tallies}).to_string().into_bytes());
        }
        self.per_customer.get(key).map(|count| count.to_string().into_bytes())
    }
}

impl CustomerAnalytics {
    /// Applies one changelog record (restore at start, in log order); a tombstone (`None`)
    /// forgets the customer.
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(value) = value else {
            self.per_customer.remove(key);
            return;
        };
        let text = String::from_utf8_lossy(value);
        if key == WINDOW_KEY {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                self.window_start = v["start"].as_u64().unwrap_or(0);
                self.tallies = serde_json::from_value(v["tallies"].clone()).unwrap_or_default();
            }
        } else if let Ok(n) = text.parse::<u64>() {
            if !self.per_customer.contains_key(key) {
                if self.order.len() == self.max_customers {
                    if let Some(old) = self.order.pop_front() {
                        self.per_customer.remove(&old);
                    }
                }
                self.order.push_back(key.to_string());
            }
            self.per_customer.insert(key.to_string(), n);
        }
    }
}

/// Order lifecycle: placed → paid → fulfilled; placed|paid → cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderState {
    Placed,
    Paid,
    Fulfilled,
    Cancelled,
}

impl OrderState {
    fn of(ty: &str) -> Option<Self> {
        Some(match ty {
            "bss.order.placed" => Self::Placed,
            "bss.order.paid" => Self::Paid,
            "bss.order.fulfilled" => Self::Fulfilled,
            "bss.order.cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Fulfilled => "fulfilled",
            Self::Cancelled => "cancelled",
        }
    }

    fn named(s: &str) -> Option<Self> {
        [Self::Placed, Self::Paid, Self::Fulfilled, Self::Cancelled].into_iter().find(|st| st.name() == s)
    }

    /// `from == to` is allowed: a redelivered event (at-least-once) must not be rejected.
    fn allows(from: Self, to: Self) -> bool {
        use OrderState::*;
        from == to || matches!((from, to), (Placed, Paid) | (Paid, Fulfilled) | (Placed | Paid, Cancelled))
    }
}

/// `bss-order-processor`: validates orders, computes totals, tracks state transitions.
#[derive(Debug)]
pub struct OrderProcessor {
    /// Orders remembered at most (the oldest first out).
    max_orders: usize,
    states: HashMap<String, OrderState>,
    order: VecDeque<String>,
    /// The order the last `process` pushed out of `states` (oldest first past
    /// `MAX_ORDERS`): its changelog record becomes a tombstone, so compaction drops it and
    /// a restore replays at most `MAX_ORDERS` live orders instead of every order ever seen.
    evicted: Option<String>,
}

impl Default for OrderProcessor {
    fn default() -> Self {
        Self::with_capacity(Self::MAX_ORDERS)
    }
}

impl OrderProcessor {
    pub const NAME: &'static str = "bss-order-processor";
    const MAX_ORDERS: usize = 200_000;

    pub fn with_capacity(max_orders: usize) -> Self {
        Self { max_orders: max_orders.max(1), states: HashMap::new(), order: VecDeque::new(), evicted: None }
    }

    pub fn process(&mut self, input: &CloudEvent, now_ms: u64) -> Outcome {
        self.evicted = None;
        let Some(to) = OrderState::of(&input.ty) else {
            return Outcome::Reject(format!("unknown order event type {:?}", input.ty));
        };
        let d = &input.data;
        let Some(order_id) = d.get("order_id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
            return Outcome::Reject("data.order_id missing or not a string".into());
        };
        let mut total = None;
        if to == OrderState::Placed {
            let Some(items) = d.get("items").and_then(Value::as_array).filter(|i| !i.is_empty()) else {
                return Outcome::Reject("order.placed needs a non-empty data.items".into());
            };
            let mut sum = 0.0;
            for (i, it) in items.iter().enumerate() {
                let qty = it.get("qty").and_then(Value::as_u64).filter(|q| *q > 0);
                let price = it.get("unit_price").and_then(Value::as_f64).filter(|p| p.is_finite() && *p >= 0.0);
                match (qty, price) {
                    (Some(q), Some(p)) => sum += q as f64 * p,
                    _ => return Outcome::Reject(format!("items[{i}] needs qty > 0 and unit_price >= 0")),
                }
            }
            total = Some((sum * 100.0).round() / 100.0);
        }
        let from = self.states.get(order_id).copied();
        if let Some(f) = from {
            if !OrderState::allows(f, to) {
                return Outcome::Reject(format!("order {order_id}: invalid transition {f:?} -> {to:?}"));
            }
        }
        if from.is_none() {
            if self.order.len() >= self.max_orders {
                if let Some(old) = self.order.pop_front() {
                    self.states.remove(&old);
                    self.evicted = Some(old);
                }
            }
            self.order.push_back(order_id.to_string());
        }
        self.states.insert(order_id.to_string(), to);
        Outcome::Emit(output(
            Self::NAME,
            "bss.analytics.order_state",
            input,
            now_ms,
            json!({
                "order_id": order_id,
                "customer_id": d.get("customer_id"),
                "from": from,
                "to": to,
                "total": total,
                "currency": d.get("currency").and_then(Value::as_str).unwrap_or("EUR"),
            }),
        ))
    }
}

impl Changelog for OrderProcessor {
    /// The changelog keys the last `process` of `input` changed: the order it evicted, if
    /// any, then the order's own.
    fn touched(&self, input: &CloudEvent, mut key: impl FnMut(&str)) {
        let Some(id) = input.data.get("order_id").and_then(Value::as_str) else { return };
        if !self.states.contains_key(id) {
            return;
        }
        if let Some(old) = &self.evicted {
            key(old);
        }
        key(id);
    }

    /// A changelog key's current value: the order's state (`None`: a tombstone, evicted).
    fn value(&self, key: &str) -> Option<Vec<u8>> {
        self.states.get(key).map(|st| st.name().as_bytes().to_vec())
    }
}

impl OrderProcessor {
    /// Applies one changelog record (restore at start, in log order); a tombstone (`None`)
    /// forgets the order. (Its place in the eviction queue stays: popping it later removes
    /// nothing, or an order re-added since, which only evicts that one early.)
    pub fn restore(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(value) = value else {
            self.states.remove(key);
            return;
        };
        let Some(st) = OrderState::named(&String::from_utf8_lossy(value)) else { return };
        if !self.states.contains_key(key) {
            if self.order.len() >= self.max_orders {
                if let Some(old) = self.order.pop_front() {
                    self.states.remove(&old);
                }
            }
            self.order.push_back(key.to_string());
        }
        self.states.insert(key.to_string(), st);
    }
}

/// Sample inputs, used by the demo, the Streams page's "send events" button, tests and bench.
/// `seq` makes ids unique; every `malformed_every`-th event (if non-zero) is broken on purpose.
pub fn sample_event(run: &str, seq: u64, now_ms: u64) -> (&'static str, String, Vec<u8>) {
    let customer = format!("cust-{}", seq % 97);
    if seq % 2 == 0 {
        let ty = CUSTOMER_TYPES[(seq / 2 % 3) as usize];
        let data = json!({"customer_id": customer, "name": format!("Customer {}", seq % 97), "plan": "mobile-m"});
        let ev = CloudEvent::new("/bss/crm", ty, format!("{run}-{seq}"), now_ms, Some(customer.clone()), data);
        (CUSTOMER_TOPIC, customer, ev.to_bytes())
    } else {
        let order = format!("{run}-ord-{seq}");
        let data = json!({"order_id": order, "customer_id": customer, "currency": "EUR",
            "items": [{"sku": "SIM-5G", "qty": 1 + seq % 3, "unit_price": 9.99}, {"sku": "ROAM-EU", "qty": 1, "unit_price": 5.0}]});
        let ev = CloudEvent::new("/bss/orders", "bss.order.placed", format!("{run}-{seq}"), now_ms, Some(order.clone()), data);
        (ORDER_TOPIC, order, ev.to_bytes())
    }
}

/// A deliberately malformed record (alternating: not JSON, missing `id`); it contains
/// `run-seq` so an observer can recognise it in the DLQ.
pub fn malformed_event(run: &str, seq: u64) -> Vec<u8> {
    if seq % 2 == 0 {
        format!("{{not json {run}-{seq}").into_bytes()
    } else {
        json!({"specversion": "1.0", "source": "/bss/crm", "type": "bss.customer.created", "subject": format!("{run}-{seq}"), "data": {}})
            .to_string()
            .into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ty: &str, data: Value) -> CloudEvent {
        CloudEvent::new("/test", ty, "e1".into(), 1_700_000_000_000, None, data)
    }

    #[test]
    fn the_hand_written_decoder_agrees_with_the_envelope() {
        // Every attribute in place, extensions kept, optional ones absent or null.
        let full = br#"{"specversion":"1.0","id":"a-1","source":"/s","type":"t","time":"2026-12-01T10:00:00.123Z","subject":"x","datacontenttype":"application/json","data":{"k":[1,2]},"traceparent":"00-ab","n":3}"#;
        let ev = CloudEvent::parse(full).unwrap();
        assert_eq!((ev.id.as_str(), ev.source.as_str(), ev.ty.as_str(), ev.subject.as_deref()), ("a-1", "/s", "t", Some("x")));
        assert_eq!(ev.time_ms(), Some(1_796_119_200_123));
        assert_eq!(ev.data, json!({"k": [1, 2]}));
        assert_eq!(ev.extensions, BTreeMap::from([("traceparent".to_string(), json!("00-ab")), ("n".to_string(), json!(3))]));
        assert_eq!(CloudEvent::parse(&ev.to_bytes()).unwrap(), ev, "round trip");
        let bare = CloudEvent::parse(br#"{"specversion":"1.0","id":"a","source":"/s","type":"t","time":null}"#).unwrap();
        assert_eq!((bare.time, bare.data), (None, Value::Null));
        // A repeated attribute is refused, not silently overwritten.
        assert!(serde_json::from_slice::<CloudEvent>(br#"{"specversion":"1.0","id":"a","id":"b","source":"/s","type":"t"}"#).is_err());
        assert!(serde_json::from_slice::<CloudEvent>(br#"{"specversion":"1.0","id":"a","source":"/s","type":"t","x":1,"x":2}"#).is_err());
        // Through a Value too (parse's slow path).
        let v: Value = serde_json::from_slice(full).unwrap();
        assert_eq!(serde_json::from_value::<CloudEvent>(v).unwrap(), ev);
    }

    #[test]
    fn parse_round_trips_and_keeps_extensions() {
        let mut e = ev("bss.customer.created", json!({"customer_id": "c1"}));
        e.extensions.insert("traceparent".into(), json!("00-abc"));
        let back = CloudEvent::parse(&e.to_bytes()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.time_ms(), Some(1_700_000_000_000));
    }

    #[test]
    fn parse_names_what_is_wrong() {
        assert!(CloudEvent::parse(b"{nope").unwrap_err().0.starts_with("not JSON"));
        assert!(CloudEvent::parse(b"[1]").unwrap_err().0.contains("object"));
        let e = CloudEvent::parse(br#"{"specversion":"1.0","source":"s","type":"t"}"#).unwrap_err().0;
        assert!(e.contains("\"id\""), "{e}");
        let e = CloudEvent::parse(br#"{"specversion":"0.3","id":"1","source":"s","type":"t"}"#).unwrap_err().0;
        assert!(e.contains("specversion"), "{e}");
        let e = CloudEvent::parse(br#"{"specversion":"1.0","id":7,"source":"s","type":"t"}"#).unwrap_err().0;
        assert!(e.contains("\"id\""), "{e}");
    }

    #[test]
    fn state_restored_from_the_changelog_continues_where_it_stopped() {
        let mut a = CustomerAnalytics::new(60_000);
        let mut log = vec![];
        let t0 = 1_700_000_040_000;
        for (i, c) in ["c1", "c2", "c1"].iter().enumerate() {
            let e = CloudEvent::new("/t", "bss.customer.created", format!("e{i}"), t0 + i as u64, None, json!({"customer_id": c}));
            assert!(matches!(a.process(&e, t0), Outcome::Emit(_)));
            log.extend(a.changes(&e));
        }
        // A fresh instance (after a restart) replays the log, then counts on from it.
        let mut b = CustomerAnalytics::new(60_000);
        for (k, v) in &log {
            b.restore(k, v.as_deref());
        }
        let next = CloudEvent::new("/t", "bss.customer.updated", "e9".into(), t0 + 9, None, json!({"customer_id": "c1"}));
        let Outcome::Emit(out) = b.process(&next, t0) else { panic!("rejected") };
        assert_eq!(out.data["customer_event_count"], 3, "c1 was seen twice before the restart");
        assert_eq!(out.data["window_tallies"]["bss.customer.created"], 3, "the window's tallies survive too");

        let mut o = OrderProcessor::default();
        let placed = CloudEvent::new("/t", "bss.order.placed", "o1".into(), t0, None, json!({"order_id": "o1", "items": [{"qty": 1, "unit_price": 2.0}]}));
        assert!(matches!(o.process(&placed, t0), Outcome::Emit(_)));
        let mut o2 = OrderProcessor::default();
        for (k, v) in o.changes(&placed) {
            o2.restore(&k, v.as_deref());
        }
        // Without the restored state, "fulfilled" before "paid" would not be caught.
        let fulfilled = CloudEvent::new("/t", "bss.order.fulfilled", "o2".into(), t0, None, json!({"order_id": "o1"}));
        assert!(matches!(o2.process(&fulfilled, t0), Outcome::Reject(r) if r.contains("invalid transition")));
    }

    /// An order pushed out of memory gets a tombstone in the changelog, so the compacted
    /// log (and a restore) holds only the orders still remembered.
    #[test]
    fn evicted_orders_become_tombstones_and_a_restore_forgets_them() {
        let mut o = OrderProcessor::with_capacity(2);
        let mut log: Vec<(String, Option<Vec<u8>>)> = vec![];
        for id in ["o1", "o2", "o3"] {
            let placed = CloudEvent::new("/t", "bss.order.placed", id.into(), 0, None, json!({"order_id": id, "items": [{"qty": 1, "unit_price": 2.0}]}));
            assert!(matches!(o.process(&placed, 0), Outcome::Emit(_)));
            log.extend(o.changes(&placed));
        }
        let keys: Vec<(&str, bool)> = log.iter().map(|(k, v)| (k.as_str(), v.is_some())).collect();
        assert_eq!(keys, [("o1", true), ("o2", true), ("o1", false), ("o3", true)], "o3 evicted o1: its tombstone comes first");
        // A rejected input evicts nothing and leaves no stale tombstone behind.
        let bad = CloudEvent::new("/t", "bss.order.placed", "x".into(), 0, None, json!({"order_id": "o4"}));
        assert!(matches!(o.process(&bad, 0), Outcome::Reject(_)));
        assert!(o.changes(&bad).is_empty());
        // Replayed (as compaction would leave it or not), o1 is gone and o2, o3 remain.
        let mut r = OrderProcessor::with_capacity(10);
        for (k, v) in &log {
            r.restore(k, v.as_deref());
        }
        assert_eq!(r.states.len(), 2);
        assert!(!r.states.contains_key("o1"));
    }

    #[test]
    fn customer_counts_and_windows() {
        let mut p = CustomerAnalytics::new(60_000);
        let t0 = 1_700_000_040_000; // a multiple of 60 s: a window starts here
        let mk = |ty: &str, id: &str, t: u64| {
            let mut e = CloudEvent::new("/t", ty, id.into(), t, None, json!({"customer_id": "c1", "plan": "x"}));
            e.subject = Some("c1".into());
            e
        };
        let Outcome::Emit(o1) = p.process(&mk("bss.customer.created", "a", t0), t0 + 5) else { panic!() };
        let Outcome::Emit(o2) = p.process(&mk("bss.customer.plan_changed", "b", t0 + 1), t0 + 6) else { panic!() };
        assert_eq!(o2.data["customer_event_count"], 2);
        assert_eq!(o2.data["window_tallies"]["bss.customer.created"], 1);
        assert_eq!(o2.extensions["causationid"], "b");
        assert_eq!(o1.id, "bss-customer-analytics:a");
        assert_eq!(o1.extensions["processingms"], 5);
        // Next window: tallies reset, per-customer count goes on.
        let Outcome::Emit(o3) = p.process(&mk("bss.customer.updated", "c", t0 + 60_000), t0 + 60_001) else { panic!() };
        assert_eq!(o3.data["window_tallies"], json!({"bss.customer.updated": 1}));
        assert_eq!(o3.data["customer_event_count"], 3);
    }

    #[test]
    fn customer_rejects_bad_input() {
        let mut p = CustomerAnalytics::new(1000);
        assert!(matches!(p.process(&ev("bss.customer.exploded", json!({"customer_id": "c"})), 0), Outcome::Reject(r) if r.contains("unknown")));
        assert!(matches!(p.process(&ev("bss.customer.created", json!({})), 0), Outcome::Reject(r) if r.contains("customer_id")));
        assert!(matches!(p.process(&ev("bss.customer.plan_changed", json!({"customer_id": "c"})), 0), Outcome::Reject(r) if r.contains("plan")));
    }

    #[test]
    fn order_totals_and_transitions() {
        let mut p = OrderProcessor::default();
        let placed = ev("bss.order.placed", json!({"order_id": "o1", "items": [{"qty": 2, "unit_price": 9.99}, {"qty": 1, "unit_price": 5}]}));
        let Outcome::Emit(o) = p.process(&placed, 0) else { panic!() };
        assert_eq!(o.data["total"], 24.98);
        assert_eq!(o.data["from"], Value::Null);
        // Redelivery of the same event is accepted (at-least-once).
        assert!(matches!(p.process(&placed, 0), Outcome::Emit(_)));
        let Outcome::Emit(o) = p.process(&ev("bss.order.paid", json!({"order_id": "o1"})), 0) else { panic!() };
        assert_eq!((o.data["from"].as_str(), o.data["to"].as_str()), (Some("placed"), Some("paid")));
        assert!(matches!(p.process(&ev("bss.order.fulfilled", json!({"order_id": "o1"})), 0), Outcome::Emit(_)));
        let r = p.process(&ev("bss.order.cancelled", json!({"order_id": "o1"})), 0);
        assert!(matches!(r, Outcome::Reject(ref m) if m.contains("Fulfilled -> Cancelled")), "{r:?}");
        // An order first seen mid-life (state lost on restart) is accepted.
        assert!(matches!(p.process(&ev("bss.order.paid", json!({"order_id": "o2"})), 0), Outcome::Emit(_)));
    }

    #[test]
    fn order_rejects_bad_items() {
        let mut p = OrderProcessor::default();
        for data in [
            json!({"order_id": "o", "items": []}),
            json!({"order_id": "o", "items": [{"qty": 0, "unit_price": 1}]}),
            json!({"order_id": "o", "items": [{"qty": 1, "unit_price": -1}]}),
            json!({"items": [{"qty": 1, "unit_price": 1}]}),
        ] {
            assert!(matches!(p.process(&ev("bss.order.placed", data.clone()), 0), Outcome::Reject(_)), "{data}");
        }
    }

    #[test]
    fn samples_are_valid_and_malformed_ones_are_not() {
        let mut c = CustomerAnalytics::new(1000);
        let mut o = OrderProcessor::default();
        for seq in 0..20 {
            let (topic, _key, bytes) = sample_event("r", seq, 1_700_000_000_000);
            let e = CloudEvent::parse(&bytes).unwrap();
            let out = if topic == CUSTOMER_TOPIC { c.process(&e, 0) } else { o.process(&e, 0) };
            assert!(matches!(out, Outcome::Emit(_)), "{seq}: {out:?}");
            assert!(CloudEvent::parse(&malformed_event("r", seq)).is_err());
        }
    }
}
