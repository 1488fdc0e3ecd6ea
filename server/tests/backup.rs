//! Backup and restore of the control plane's state, on real SQLite files: a backup taken
//! while writers run is one consistent moment; a restore refuses a running server's store,
//! a file that is not a store, and never loses the store it replaces; the audit log stays
//! append-only through the round trip. And the real binary: `serve` holds the store's lock,
//! `restore` is refused while it runs, `backup` works beside it.
mod common;

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use server::store::{backup, Store, StoreError};

async fn audit_ids(store: &Store) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM audit_log ORDER BY id").fetch_all(store.pool()).await.unwrap()
}

#[tokio::test]
async fn a_backup_taken_under_writes_restores_whole_and_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let live = Store::open(&dir.path().join("live.db")).await.unwrap();
    let auth = server::auth::Auth::new(live.clone(), true, Duration::from_secs(60));
    auth.add_user("ada", app::api::Role::Admin, "correct horse battery staple").await.unwrap();
    live.save_run("verify", "2026-11-30T00:00:00Z", "ada", "passed", "all green", &serde_json::json!({})).await.unwrap();
    for i in 0..200 {
        live.audit("ada", "test.before", &i.to_string(), "ok", serde_json::json!({})).await.unwrap();
    }
    // Writers keep going while the backup runs.
    let writer = {
        let live = live.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                live.audit("ada", "test.during", &i.to_string(), "ok", serde_json::json!({})).await.unwrap();
            }
        })
    };
    let file = dir.path().join("backup.db");
    let held = live.backup(&file).await.unwrap();
    writer.await.unwrap();
    assert_eq!((held.users, held.runs), (1, 1), "{held}");
    assert!(held.audit_entries >= 200 && held.audit_entries <= 600, "{held}");

    // A backup never overwrites.
    let before = std::fs::read(&file).unwrap();
    assert!(matches!(live.backup(&file).await, Err(StoreError::Refused(m)) if m.contains("never overwrites")));
    assert_eq!(std::fs::read(&file).unwrap(), before);

    // Restored into a store that exists: that store is kept aside, not deleted.
    let target = dir.path().join("restored.db");
    let old = Store::open(&target).await.unwrap();
    old.audit("someone", "old.entry", "x", "ok", serde_json::json!({})).await.unwrap();
    drop(old);
    let restored = backup::restore(&file, &target).await.unwrap();
    assert_eq!(restored.audit_entries, held.audit_entries);
    let kept: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.starts_with("restored.db.before-restore-")).collect();
    assert!(kept.iter().any(|n| !n.ends_with("-wal") && !n.ends_with("-shm")), "the replaced store is kept: {kept:?}");

    // One consistent moment: the entries are a gap-free prefix of the live log.
    let store = Store::open(&target).await.unwrap();
    let ids = audit_ids(&store).await;
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    assert_eq!(ids, audit_ids(&live).await[..ids.len()].to_vec());
    // Still append-only, and the user can sign in.
    let e = sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = 1").execute(store.pool()).await.unwrap_err();
    assert!(e.to_string().contains("append-only"), "{e}");
    assert!(sqlx::query("DELETE FROM audit_log").execute(store.pool()).await.is_err());
    let auth = server::auth::Auth::new(store.clone(), true, Duration::from_secs(60));
    auth.login("ada", "correct horse battery staple", None).await.expect("the restored user signs in");
}

#[tokio::test]
async fn a_restore_refuses_what_would_lose_something() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("state.db");
    let store = Store::open(&target).await.unwrap();
    store.audit("ada", "keep.me", "x", "ok", serde_json::json!({})).await.unwrap();
    let file = dir.path().join("b.db");
    store.backup(&file).await.unwrap();
    drop(store);
    let untouched = || async {
        let s = Store::open(&target).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'keep.me'").fetch_one(s.pool()).await.unwrap();
        assert_eq!(n, 1, "the store was changed by a refused restore");
    };

    // A server holds the store: refused, and says why.
    let lock = backup::lock_for_serving(&target, Duration::ZERO).unwrap();
    let e = backup::restore(&file, &target).await.unwrap_err().to_string();
    assert!(e.contains("another bss-control server is using") && e.contains(&std::process::id().to_string()) && e.contains("stop it"), "{e}");
    drop(lock);

    // Not a store at all, or not a bss-control one.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database, it is a shopping list").unwrap();
    assert!(backup::restore(&junk, &target).await.unwrap_err().to_string().contains("not a SQLite database"));
    let other = dir.path().join("other.db");
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", other.display())).await.unwrap();
        sqlx::query("CREATE TABLE t (x)").execute(&mut c).await.unwrap();
    }
    assert!(backup::restore(&other, &target).await.unwrap_err().to_string().contains("not a bss-control store"));

    // Made by a newer release.
    let newer = dir.path().join("newer.db");
    std::fs::copy(&file, &newer).unwrap();
    {
        use sqlx::Connection;
        let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", newer.display())).await.unwrap();
        sqlx::query("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'future', 1, x'00', 0)")
            .execute(&mut c)
            .await
            .unwrap();
    }
    assert!(backup::restore(&newer, &target).await.unwrap_err().to_string().contains("newer bss-control"));
    untouched().await;
    assert!(!dir.path().join("state.db.restore-tmp").exists());
}

/// The real binary: `serve` holds the lock; `restore` is refused while it runs, `backup`
/// works beside it; once it is gone, `restore` goes through.
#[tokio::test]
async fn the_cli_backs_up_beside_a_running_server_and_restores_only_once_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("state.db");
    let bin = env!("CARGO_BIN_EXE_bss-control");
    let cli = |args: &[&str]| {
        Command::new(bin).args(args).env("BSS_STORE_PATH", &store).stdin(Stdio::null()).output().unwrap()
    };
    let mut server = common::KillOnDrop(Command::new(bin)
        .arg("serve")
        .env("BSS_STORE_PATH", &store)
        .env("BSS_LISTEN", "127.0.0.1:3953")
        .env("BSS_STACK_LISTEN", "off")
        .env("BSS_STREAMS_AUTOSTART", "off")
        .env("BSS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap());
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..100 {
        if http.get("http://127.0.0.1:3953/healthz").send().await.is_ok_and(|r| r.status().is_success()) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(up, "the server answers /healthz");
    let file = dir.path().join("b.db");
    let out = cli(&["backup", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["restore", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("another bss-control server is using"), "{err}");
    // A second server on the same store is refused too.
    let second = Command::new(bin).arg("serve").env("BSS_STORE_PATH", &store).env("BSS_LISTEN", "127.0.0.1:3954").env("BSS_STACK_LISTEN", "off").env("BSS_LOG", "warn").output().unwrap();
    assert!(!second.status.success() && String::from_utf8_lossy(&second.stderr).contains("another bss-control server is using"));

    server.kill().unwrap();
    server.wait().unwrap();
    let out = cli(&["restore", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let s = Store::open(&store).await.unwrap();
    let restores: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'store.restore'").fetch_one(s.pool()).await.unwrap();
    assert_eq!(restores, 1, "the restore is in the restored log");
}
