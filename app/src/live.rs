//! The pages' hooks, in one place: the browser's end of the live feeds (an `EventSource`
//! on `/sse/stack` that bumps a signal on every event, so pages refetch their snapshot,
//! rendered on the server first), polling, and whether the caller may act.
use leptos::prelude::*;
use serde::{de::DeserializeOwned, Serialize};

use crate::api::StackEvent;

/// JSON for resources, decoded the way server functions decode their responses
/// (`serde_json::from_slice`). Leptos' default codec decodes from `&str`, a second copy of
/// every wire type's decoder in the browser's wasm (a `StrRead` and a `SliceRead` one): about
/// 260 KB of the bundle before this.
pub struct Json;

impl<T: Serialize> codee::Encoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = String;
    fn encode(val: &T) -> Result<String, serde_json::Error> {
        serde_json::to_string(val)
    }
}

impl<T: DeserializeOwned> codee::Decoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = str;
    fn decode(val: &str) -> Result<T, serde_json::Error> {
        serde_json::from_slice(val.as_bytes())
    }
}

/// `Resource::new` with the [`Json`] codec: rendered on the server, its value read back in
/// the browser without running the fetcher again.
#[track_caller]
pub fn resource<S, T, Fut>(
    source: impl Fn() -> S + Send + Sync + 'static,
    fetcher: impl Fn(S) -> Fut + Send + Sync + 'static,
) -> Resource<T, Json>
where
    S: Send + Sync + Clone + PartialEq + 'static,
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    Resource::new_with_options(source, fetcher, false)
}

pub struct StackFeed {
    /// Increments on every event: use as a resource source to refetch.
    pub tick: ReadSignal<u32>,
    /// Events received since the page loaded, newest first (at most 100).
    pub events: ReadSignal<Vec<StackEvent>>,
    pub connected: ReadSignal<bool>,
}

pub fn use_stack_feed() -> StackFeed {
    let (tick, set_tick) = signal(0u32);
    let (events, set_events) = signal(Vec::<StackEvent>::new());
    // A burst of events (a whole stack going down emits hundreds) refetches once, 750 ms
    // after its first event, not once per event: refetches that never finish would leave
    // the page on its loading state for the whole burst.
    let pending = StoredValue::new(false);
    let connected = use_event_source("/sse/stack", "stack", move |ev: StackEvent| {
        set_events.update(|v| {
            v.insert(0, ev);
            v.truncate(100);
        });
        if !pending.get_value() {
            pending.set_value(true);
            set_timeout(
                move || {
                    pending.set_value(false);
                    set_tick.update(|t| *t += 1);
                },
                std::time::Duration::from_millis(750),
            );
        }
    });
    StackFeed { tick, events, connected }
}

/// Calls `on_item` for every `event` on the SSE stream at `url` (browser only); the
/// connection closes when the component is unmounted. Returns whether it is connected.
pub fn use_event_source<T>(url: &'static str, event: &'static str, on_item: impl Fn(T) + 'static) -> ReadSignal<bool>
where
    T: serde::de::DeserializeOwned + 'static,
{
    let (connected, set_connected) = signal(false);
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::{prelude::Closure, JsCast};
        if let Ok(es) = web_sys::EventSource::new(url) {
            let on_event = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |m: web_sys::MessageEvent| {
                if let Some(item) = m.data().as_string().and_then(|t| serde_json::from_slice::<T>(t.as_bytes()).ok()) {
                    on_item(item);
                }
            });
            let _ = es.add_event_listener_with_callback(event, on_event.as_ref().unchecked_ref());
            let on_open = Closure::<dyn FnMut()>::new(move || set_connected.set(true));
            es.set_onopen(Some(on_open.as_ref().unchecked_ref()));
            let on_error = Closure::<dyn FnMut()>::new(move || set_connected.set(false));
            es.set_onerror(Some(on_error.as_ref().unchecked_ref()));
            let es = send_wrapper::SendWrapper::new((es, on_event, on_open, on_error));
            on_cleanup(move || es.0.close());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (url, event, on_item, set_connected);
    connected
}

/// Milliseconds since the epoch → "HH:MM:SS" (UTC), without a date library.
/// The result line of a page with several actions: whichever finished last (not the first
/// in a fixed order, which hid a newer result behind an older one).
pub fn latest_outcome<S>(values: &[S]) -> RwSignal<Option<String>>
where
    S: Get<Value = Option<Result<String, crate::error::AppError>>> + Clone + Send + Sync + 'static,
{
    let last = RwSignal::new(None);
    for v in values.iter().cloned() {
        Effect::new(move |_| {
            if let Some(r) = v.get() {
                last.set(Some(crate::error::outcome(r)));
            }
        });
    }
    last
}

pub fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

/// Re-runs `tick` every `secs` while the component is mounted (for polling pages).
pub fn poll_every(secs: u64) -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    Effect::new(move |_| {
        let handle = set_interval_with_handle(move || tick.update(|t| *t += 1), std::time::Duration::from_secs(secs));
        on_cleanup(move || {
            if let Ok(h) = handle {
                h.clear();
            }
        });
    });
    tick
}

/// Whether the signed-in user may press operator buttons (the UI only hides what the role
/// may not do; the server refuses it regardless).
pub fn use_is_operator() -> Signal<bool> {
    let who = resource(|| (), |_| crate::pages::auth::whoami());
    Signal::derive(move || who.get().and_then(|r| r.ok()).is_some_and(|p| p.may(crate::api::Role::Operator)))
}

#[cfg(test)]
mod tests {
    use codee::{Decoder, Encoder};

    use super::Json;
    use crate::error::AppError;

    /// What the server renders into the page is what the browser reads back, for a page's
    /// typical value: a result of a wire type with gaps (`None`) and an error.
    #[test]
    fn resource_values_survive_the_page() {
        type Value = Result<Vec<(i64, Vec<Option<f64>>)>, AppError>;
        let ok: Value = Ok(vec![(1, vec![Some(0.5), None]), (2, vec![None, Some(3.0)])]);
        let err: Value = Err(AppError::Invalid("window must be one of 15m, 1h".into()));
        for v in [ok, err] {
            let page = <Json as Encoder<Value>>::encode(&v).unwrap();
            let back = <Json as Decoder<Value>>::decode(&page).unwrap();
            assert_eq!(back, v);
        }
        assert!(<Json as Decoder<Value>>::decode("{not json").is_err());
    }
}
