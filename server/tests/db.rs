//! The read/write router against the real primary + 2 streaming replicas of the stack
//! (provisioned by the supervisor from the offline images). `#[ignore]`d by default; run by
//! `make test` with `--ignored`.
mod common;

use std::{process::Command, sync::Arc, time::Duration};

use server::db::{boxed, routing::Admission, DbConfig, DbRouter};

fn docker(args: &[&str]) {
    assert!(Command::new("docker").args(args).status().unwrap().success(), "docker {args:?}");
}

async fn in_recovery(router: &DbRouter) -> Result<(String, bool), server::db::DbError> {
    router.read(|p| boxed(sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()").fetch_one(p))).await
}

#[tokio::test]
#[ignore = "needs the offline images and the stack's ports; run by `make test`"]
async fn router_on_the_real_replicas() {
    let sup = common::stack_supervisor();
    sup.up().await.expect("stack up");
    let router = Arc::new(DbRouter::new(DbConfig::dev_stack()));
    let admitted = |r: &DbRouter| r.status().replicas.iter().filter(|x| x.admission == Admission::In).count();
    wait_until!("both replicas admitted", 30, {
        router.check_once().await;
        admitted(&router) == 2
    });
    let known = |r: &DbRouter, i: usize| {
        let s = &r.status().replicas[i];
        (s.lag_bytes.is_some(), s.lag_secs.is_some())
    };
    assert_eq!((known(&router, 0), known(&router, 1)), ((true, true), (true, true)), "both standbys' lag measured: {:?}", router.status());

    // Writes land on the primary.
    let on_primary: bool = sqlx::query_scalar("SELECT NOT pg_is_in_recovery()").fetch_one(router.write()).await.unwrap();
    assert!(on_primary);

    // Reads are spread over both replicas (round-robin: within ±10 %).
    let mut per = std::collections::BTreeMap::new();
    for _ in 0..100 {
        let (who, standby) = in_recovery(&router).await.unwrap();
        assert!(standby, "read served by {who}, not a standby");
        *per.entry(who).or_insert(0) += 1;
    }
    assert_eq!(per.len(), 2, "{per:?}");
    assert!(per.values().all(|&n| (40..=60).contains(&n)), "{per:?}");

    // Read-your-writes: the row just written is read back, from a replica that has it.
    sqlx::query("CREATE TABLE IF NOT EXISTS router_test (id bigserial PRIMARY KEY, note text)").execute(router.write()).await.unwrap();
    for i in 0..20 {
        let id: i64 = sqlx::query_scalar("INSERT INTO router_test (note) VALUES ($1) RETURNING id")
            .bind(format!("ryw {i}"))
            .fetch_one(router.write())
            .await
            .unwrap();
        let lsn = router.write_lsn().await.unwrap();
        let (who, n) = router
            .read_after(lsn, |p| boxed(sqlx::query_scalar::<_, i64>("SELECT count(*) FROM router_test WHERE id = $1").bind(id).fetch_one(p)))
            .await
            .unwrap();
        assert_eq!(n, 1, "read-your-writes on {who} missed row {id}");
    }

    // A paused replica is taken out once it lags past the threshold, and back after resume.
    router.set_replay_paused("postgres-replica-1", true).await.unwrap();
    wait_until!("replica-1 out for lag", 60, {
        sqlx::query("INSERT INTO router_test (note) SELECT repeat('x', 1000) FROM generate_series(1, 200)").execute(router.write()).await.unwrap();
        router.check_once().await;
        matches!(&router.status().replicas[0].admission, Admission::Out { reason, .. } if reason.starts_with("lag"))
    });
    for _ in 0..10 {
        assert_eq!(in_recovery(&router).await.unwrap().0, "postgres-replica-2", "reads avoid the lagging replica");
    }
    router.set_replay_paused("postgres-replica-1", false).await.unwrap();
    wait_until!("replica-1 readmitted after resume", 60, {
        router.check_once().await;
        router.status().replicas[0].admission == Admission::In
    });

    // A replica stopped under a read loop: no read fails.
    let monitor = {
        let r = router.clone();
        tokio::spawn(async move {
            loop {
                r.check_once().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let reader = {
        let r = router.clone();
        tokio::spawn(async move {
            let mut failures = vec![];
            for _ in 0..300 {
                if let Err(e) = in_recovery(&r).await {
                    failures.push(e.to_string());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            failures
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    docker(&["stop", "-t", "1", "bss-postgres-replica-2"]);
    let failures = reader.await.unwrap();
    assert!(failures.is_empty(), "reads failed while a replica stopped: {failures:?}");
    // Its lag is unknown now, not 0: on the page, in the chart's last point, in /metrics.
    router.check_once().await;
    assert_eq!(known(&router, 1), (false, false), "{:?}", router.status().replicas[1]);
    let last = router.history().pop().unwrap();
    assert_eq!((last.lag_bytes[1], last.lag_secs[1]), (None, None), "{last:?}");
    sup.start("postgres-replica-2").await.unwrap();

    // Primary stopped: writes fail with a clear error, reads go on from the replicas.
    docker(&["stop", "-t", "1", "bss-postgres-primary"]);
    let err = router.write_lsn().await.unwrap_err().to_string();
    assert!(err.starts_with("primary unavailable for writes"), "{err}");
    for _ in 0..10 {
        let (who, standby) = in_recovery(&router).await.unwrap();
        assert!(standby && who != "postgres-primary");
    }
    // With the primary's position unknown a standby's byte lag is too; its seconds are not.
    router.check_once().await;
    assert_eq!(known(&router, 0), (false, true), "{:?}", router.status().replicas[0]);
    monitor.abort();
    sup.start("postgres-primary").await.unwrap();
    wait_until!("both replicas streaming and admitted again", 90, {
        router.check_once().await;
        admitted(&router) == 2
    });
}
