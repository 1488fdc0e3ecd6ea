//! `make bench` part 2, first: one hop on the stack's brokers, nothing else flowing —
//! produce → acknowledged and produce → consumed, at 100 events/s for 10 s, on a topic of
//! 3 partitions RF 3. The floor under every end-to-end figure of the streams bench.
//!
//! Two producers, same consumer:
//!   acks=all   the processors' own producer settings (idempotent, acks=all, linger 5 ms):
//!              the leader answers once both followers have fetched the record
//!   acks=1     the leader answers on its own append: the difference is what replication
//!              to the followers costs on this machine
//! A record carries its send time; the consumer (a `BaseConsumer` on its own thread,
//! assigned every partition at the end) reads it back. Times in µs on this host's clock.
//! Prints figures (`FIGURE` lines for bench.sh's table); asserts nothing.
use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::Message,
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};
use server::streams::{percentile, processor};

const BROKERS: &str = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9095";
/// Events/s (HOP_RATE: other rates for experiments) for SECS seconds.
fn rate() -> u64 {
    std::env::var("HOP_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(100)
}
const SECS: u64 = 10;
/// About a CloudEvent's size.
const PAYLOAD: usize = 400;

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros() as u64
}

/// Reads every record of `topic` from the end, recording (send µs, receive µs).
fn follow(topic: &str, stop: Arc<AtomicBool>, seen: Arc<Mutex<Vec<(u64, u64)>>>) -> std::thread::JoinHandle<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", BROKERS)
        .set("group.id", format!("bench-hop-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, Offset::End).unwrap();
    }
    c.assign(&tpl).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                let at = now_us();
                if let Some(sent) = m.payload().and_then(|p| p.get(..8)).map(|b| u64::from_be_bytes(b.try_into().unwrap())) {
                    seen.lock().unwrap().push((sent, at));
                }
            }
        }
    })
}

/// Ack p50 / p99 and consumed p50 / p99 in ms, then the records read back and sent.
async fn measure(name: &str, producer: FutureProducer, rate: u64) -> (f64, f64, f64, f64, usize, usize) {
    let topic = format!("bench.hop.{name}.{}", now_us());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", BROKERS).create().unwrap();
    for r in admin.create_topics(&[NewTopic::new(&topic, 3, TopicReplication::Fixed(3))], &AdminOptions::new()).await.unwrap() {
        r.unwrap();
    }
    let (stop, seen) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(vec![])));
    let reader = follow(&topic, stop.clone(), seen.clone());
    let mut payload = vec![b'x'; PAYLOAD];
    // Warm: the producer's id, metadata and a connection to every leader, the consumer's
    // assignment in place (records before it are not counted: their send time is older).
    let warm_until = Instant::now() + Duration::from_secs(3);
    let mut i = 0u32;
    while Instant::now() < warm_until {
        let key = i.to_string();
        i += 1;
        let _ = producer.send(FutureRecord::to(&topic).key(&key).payload(&payload[..]), Duration::from_secs(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    seen.lock().unwrap().clear();
    let t0 = Instant::now();
    let mut acks = vec![];
    let n = rate * SECS;
    for k in 0..n {
        let due = Duration::from_secs_f64(k as f64 / rate as f64);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let sent = now_us();
        payload[..8].copy_from_slice(&sent.to_be_bytes());
        let key = k.to_string();
        let d = producer.send_result(FutureRecord::to(&topic).key(&key).payload(&payload[..])).map_err(|(e, _)| e).unwrap();
        acks.push(tokio::spawn(async move {
            let ok = matches!(d.await, Ok(Ok(_)));
            ok.then(|| now_us() - sent)
        }));
    }
    let mut ack_us: Vec<u64> = vec![];
    for a in acks {
        if let Some(us) = a.await.unwrap() {
            ack_us.push(us);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().len() < n as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    let mut got: Vec<u64> = seen.lock().unwrap().iter().map(|(s, r)| r.saturating_sub(*s)).collect();
    let ms = |v: f64| v / 1000.0;
    let received = got.len();
    (
        ms(percentile(&mut ack_us, 0.50)),
        ms(percentile(&mut ack_us, 0.99)),
        ms(percentile(&mut got, 0.50)),
        ms(percentile(&mut got, 0.99)),
        received,
        n as usize,
    )
}

#[tokio::main]
async fn main() {
    let rate = rate();
    println!("single hop: {rate} events/s for {SECS} s, {PAYLOAD}-byte records, topic 3 partitions RF 3, nothing else flowing");
    let all = processor::producer(BROKERS).unwrap();
    let one: FutureProducer = processor::producer_config(BROKERS).set("enable.idempotence", "false").set("acks", "1").create().unwrap();
    for (name, producer) in [("acks=all", all), ("acks=1", one)] {
        let (a50, a99, c50, c99, got, n) = measure(&name.replace('=', ""), producer, rate).await;
        println!("  {name:8}  acknowledged p50 {a50:6.1} ms  p99 {a99:6.1} ms   consumed p50 {c50:6.1} ms  p99 {c99:6.1} ms   ({got} of {n} read back)");
        server::goals::figure(
            &format!("single hop at {rate} ev/s, {name}: produce → acknowledged / → consumed, p50 / p99"),
            &format!("{a50:.1} / {a99:.1} ms, {c50:.1} / {c99:.1} ms"),
        );
    }
}
