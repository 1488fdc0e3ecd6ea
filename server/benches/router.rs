//! `make bench` part 3: the read/write router's overhead, same run, same PostgreSQL:
//!   reads  — `router.read` (round-robin over the two replicas) vs direct sqlx pools on the
//!            same two replicas taken in turn, a simple indexed select by primary key;
//!   writes — `router.write()` vs a direct pool on the primary, a one-row insert;
//! and how the router spread its reads over the replicas (goal ±10 %); and
//!   outbox — the relay draining a backlog of BSS API events (claim, publish with acks=all,
//!            mark, in one primary transaction per 500 rows) vs the same events published
//!            straight from memory with the same producer.
//! Rounds alternate
//! (direct, router, direct, router…) so drift on this shared machine hits both alike; the
//! ratio of medians is printed, nothing is asserted. Needs the stack up (bench.sh).
use std::time::{Duration, Instant};

use server::db::{boxed, DbConfig, DbRouter};
use sqlx::{postgres::PgPoolOptions, PgPool};

const OPS: usize = 2000;
const ROUNDS: usize = 5;
const CONCURRENCY: usize = 8;

async fn run_ops<F, Fut>(f: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    run_ops_with(CONCURRENCY, f).await
}

/// `OPS` operations over `clients` concurrent tasks; returns operations per second.
async fn run_ops_with<F, Fut>(clients: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let t0 = Instant::now();
    let per = OPS / clients;
    let tasks: Vec<_> = (0..clients)
        .map(|w| {
            let f = f.clone();
            tokio::spawn(async move {
                for i in 0..per {
                    f(w * per + i).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (per * clients) as f64 / t0.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new().max_connections(CONCURRENCY as u32).connect(url).await.expect("connect")
}

#[tokio::main]
async fn main() {
    let cfg = DbConfig::dev_stack();
    let primary = pool(&cfg.primary_url).await;
    let replicas = [pool(&cfg.replicas[0].1).await, pool(&cfg.replicas[1].1).await];
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_router (id bigserial PRIMARY KEY, v text NOT NULL)").execute(&primary).await.unwrap();
    sqlx::query("INSERT INTO bench_router (v) SELECT md5(g::text) FROM generate_series(1, 10000) g WHERE NOT EXISTS (SELECT 1 FROM bench_router)")
        .execute(&primary)
        .await
        .unwrap();
    let cfg_primary_only = DbConfig { replicas: vec![], ..cfg.clone() };
    let router = std::sync::Arc::new(DbRouter::new(cfg));
    for _ in 0..60 {
        router.check_once().await;
        if router.status().replicas.iter().all(|r| r.admission == app::api::Admission::In) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Let the insert reach the replicas before reading.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (mut direct_r, mut router_r, mut direct_w, mut router_w) = (vec![], vec![], vec![], vec![]);
    let reads_before: Vec<u64> = router.status().replicas.iter().map(|r| r.reads).collect();
    for _ in 0..ROUNDS {
        let rs = replicas.clone();
        direct_r.push(
            run_ops(move |i| {
                let p = rs[i % 2].clone();
                async move {
                    sqlx::query_scalar::<_, String>("SELECT v FROM bench_router WHERE id = $1").bind((i % 10000 + 1) as i64).fetch_one(&p).await.unwrap();
                }
            })
            .await,
        );
        let r = router.clone();
        router_r.push(
            run_ops(move |i| {
                let r = r.clone();
                async move {
                    let id = (i % 10000 + 1) as i64;
                    r.read(|p| boxed(sqlx::query_scalar::<_, String>("SELECT v FROM bench_router WHERE id = $1").bind(id).fetch_one(p))).await.unwrap();
                }
            })
            .await,
        );
        let p = primary.clone();
        direct_w.push(
            run_ops(move |i| {
                let p = p.clone();
                async move {
                    sqlx::query("INSERT INTO bench_router (v) VALUES ($1)").bind(i.to_string()).execute(&p).await.unwrap();
                }
            })
            .await,
        );
        let r = router.clone();
        router_w.push(
            run_ops(move |i| {
                let r = r.clone();
                async move {
                    sqlx::query("INSERT INTO bench_router (v) VALUES ($1)").bind(i.to_string()).execute(r.write()).await.unwrap();
                }
            })
            .await,
        );
    }
    let reads: Vec<u64> = router.status().replicas.iter().zip(&reads_before).map(|(r, b)| r.reads - b).collect();
    let (dr, rr, dw, rw) = (median(direct_r), median(router_r), median(direct_w), median(router_w));
    println!("router bench: PostgreSQL 16 primary + 2 streaming replicas (Docker on this host), {CONCURRENCY} concurrent clients, {OPS} ops × {ROUNDS} alternating rounds");
    println!("  indexed select: direct pools, replicas in turn {dr:>8.0} ops/s, router.read {rr:>8.0} ops/s, overhead {:+.1} % (goal ≤ 5 %)", (dr / rr - 1.0) * 100.0);
    println!("  one-row insert: direct pool on the primary     {dw:>8.0} ops/s, router.write {rw:>7.0} ops/s, overhead {:+.1} % (goal ≤ 5 %)", (dw / rw - 1.0) * 100.0);
    server::goals::report("router: read overhead vs direct pools", &format!("{:+.1} %", (dr / rr - 1.0) * 100.0), "≤ 5 %", dr / rr - 1.0 <= 0.05);
    server::goals::report("router: write overhead vs a direct pool", &format!("{:+.1} %", (dw / rw - 1.0) * 100.0), "≤ 5 %", dw / rw - 1.0 <= 0.05);
    let total: u64 = reads.iter().sum();
    let even = total as f64 / reads.len() as f64;
    let spread = reads.iter().map(|n| (*n as f64 - even).abs() / even * 100.0).fold(0.0, f64::max);
    println!(
        "  read distribution over replicas: {} (max deviation from even {spread:.1} %, goal ±10 %)",
        reads.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(" / "),
    );
    server::goals::report("router: read spread over replicas (max deviation)", &format!("{spread:.1} %"), "≤ 10 %", spread <= 10.0);
    read_scaling(&router, &cfg_primary_only).await;
    sqlx::query("DROP TABLE bench_router").execute(&primary).await.unwrap();
    outbox(&router).await;
}

/// The seed's "3x read performance": the same reads through the router with both replicas
/// in the pool vs a router with none (every read on the primary), at 8 and 32 concurrent
/// clients, alternating rounds. On one host the three servers share its cores, so this
/// measures what the replicas add here, not what three machines would.
async fn read_scaling(router: &std::sync::Arc<DbRouter>, primary_only: &DbConfig) {
    let alone = std::sync::Arc::new(DbRouter::new(primary_only.clone()));
    alone.check_once().await;
    println!("read scaling (the seed claims 3x read performance with replicas): router.read, indexed select, {ROUNDS} alternating rounds");
    for clients in [8, 32] {
        let (mut with, mut without) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            for (r, out) in [(router.clone(), &mut with), (alone.clone(), &mut without)] {
                out.push(
                    run_ops_with(clients, move |i| {
                        let r = r.clone();
                        async move {
                            let id = (i % 10000 + 1) as i64;
                            r.read(|p| boxed(sqlx::query_scalar::<_, String>("SELECT v FROM bench_router WHERE id = $1").bind(id).fetch_one(p))).await.unwrap();
                        }
                    })
                    .await,
                );
            }
        }
        let (w, a) = (median(with), median(without));
        println!(
            "  {clients:>2} clients: primary + 2 replicas {w:>8.0} reads/s, primary alone {a:>8.0} reads/s, ratio {:.2} (seed: 3x; {})",
            w / a,
            if w / a >= 3.0 { "met" } else { "not met" }
        );
        server::goals::report(&format!("seed read claim: replicas / primary alone, {clients} clients"), &format!("{:.2}×", w / a), "≥ 3× (seed)", w / a >= 3.0);
    }
    let on_primary = alone.status().primary_reads;
    println!("  (the primary-only router served {on_primary} reads on the primary: none went elsewhere)");
}

const BROKERS: &str = "127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9095";
const OUTBOX_ROWS: usize = 5000;

/// The outbox relay's publish rate against a direct publish of the same events.
async fn outbox(router: &DbRouter) {
    use rdkafka::{
        admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
        client::DefaultClientContext,
        config::ClientConfig,
    };
    let topic = format!("bench.outbox.{}", server::streams::events::now_ms());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new().set("bootstrap.servers", BROKERS).create().unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 3, TopicReplication::Fixed(3))], &AdminOptions::new()).await.unwrap();
    server::bss::ensure_schema(router).await.unwrap();
    let streams = server::streams::Streams::with_specs(BROKERS, vec![]);
    let events: Vec<(String, Vec<u8>)> = (0..OUTBOX_ROWS as u64)
        .map(|i| {
            let (_, key, bytes) = server::streams::events::sample_event("bench", i, server::streams::events::now_ms());
            (key, bytes)
        })
        .collect();
    let ob = server::outbox::Outbox::default();
    let (mut direct, mut relayed) = (vec![], vec![]);
    for _ in 0..ROUNDS {
        let t0 = Instant::now();
        for chunk in events.chunks(500) {
            let results = streams.publish_batch(chunk.iter().map(|(k, b)| (topic.as_str(), k.as_str(), b.as_slice()))).await;
            assert!(results.iter().all(Result::is_ok), "direct publish failed");
        }
        direct.push(OUTBOX_ROWS as f64 / t0.elapsed().as_secs_f64());
        // The backlog a bus outage leaves: committed rows, nothing published yet.
        let mut tx = router.write().begin().await.unwrap();
        for (k, b) in &events {
            server::outbox::enqueue(&mut tx, &topic, k, b).await.unwrap();
        }
        tx.commit().await.unwrap();
        let t0 = Instant::now();
        let mut published = 0;
        while published < OUTBOX_ROWS {
            published += ob.relay_once(router, &streams).await.expect("relay");
        }
        relayed.push(published as f64 / t0.elapsed().as_secs_f64());
    }
    let (d, r) = (median(direct), median(relayed));
    println!("outbox bench: {OUTBOX_ROWS} BSS events (about {} bytes each) × {ROUNDS} alternating rounds, 3 brokers, acks=all", events[0].1.len());
    println!("  published straight from memory {d:>8.0} events/s; relayed from the outbox {r:>8.0} events/s; relay / direct {:.2}", r / d);
}
