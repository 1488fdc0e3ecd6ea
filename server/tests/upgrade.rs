//! Upgrades: a store file left by the previous release (`fixtures/store-schema5.db`: the
//! SQLite file as schema 5 — before user administration — left it, made from the
//! migrations 0001–0005 as they were at commit 4647855^, with sqlx's bookkeeping and their
//! SHA-384 checksums; two users with the password below, five audit entries, a verify run,
//! a lag minute, an undone drill fault; never regenerated from today's migrations) opens in
//! this release — forward migrations only, every row kept, the audit log
//! still append-only, its users still able to sign in — and restoring a backup of such a
//! file does the same.
use std::{path::Path, time::Duration};

use server::{auth::Auth, store::Store};

const OLD_STORE: &[u8] = include_bytes!("fixtures/store-schema5.db");
const PASSWORD: &str = "kept across the upgrade";

/// Copies the previous release's store file to `path`.
async fn old_store_at(path: &Path) {
    std::fs::write(path, OLD_STORE).unwrap();
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(applied, 5, "the fixture stands for schema 5");
    pool.close().await;
}

async fn assert_upgraded(store: &Store) {
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version").fetch_all(store.pool()).await.unwrap();
    let latest = versions.last().copied().unwrap();
    assert!(latest >= 6 && versions == (1..=latest).collect::<Vec<_>>(), "forward migrations applied in order: {versions:?}");

    // Every row of the old file is still there.
    let audit = store.recent_audit(100).await.unwrap();
    assert_eq!(audit.iter().rev().map(|a| a.action.as_str()).collect::<Vec<_>>(), ["server.start", "auth.login", "stack.up", "service.restart", "verify.run"]);
    assert_eq!(store.runs("verify", 10).await.unwrap()[0].4, "16 passed, 1 failed");
    assert_eq!(store.lag_minutes(0).await.unwrap().len(), 1);

    // The audit log is still append-only, and the next entry follows the old ones.
    assert!(sqlx::query("DELETE FROM audit_log").execute(store.pool()).await.is_err());
    store.audit("cli", "upgrade.test", "", "ok", serde_json::json!({})).await.unwrap();
    assert_eq!(store.recent_audit(1).await.unwrap()[0].id, 6);

    // The users of the old release sign in, with their roles, and are not disabled by the
    // column the new schema added.
    let auth = Auth::new(store.clone(), true, Duration::from_secs(60));
    let users = auth.users().await.unwrap();
    assert_eq!(users.iter().map(|u| (u.name.as_str(), u.role, u.disabled)).collect::<Vec<_>>(), [("olga", app::api::Role::Admin, false), ("oscar", app::api::Role::Operator, false)]);
    let (_, who) = auth.login("oscar", PASSWORD, None).await.unwrap();
    assert_eq!(who.role, app::api::Role::Operator);
    assert!(auth.login("oscar", "not the password", None).await.is_err());
}

#[tokio::test]
async fn a_store_from_the_previous_release_opens_with_everything_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    old_store_at(&path).await;
    let store = Store::open(&path).await.unwrap();
    assert_upgraded(&store).await;
    // Opening again applies nothing twice.
    drop(store);
    let again = Store::open(&path).await.unwrap();
    assert_eq!(again.recent_audit(100).await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_backup_from_the_previous_release_restores_into_this_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old-backup.db");
    old_store_at(&old).await;
    let target = dir.path().join("state.db");
    server::store::backup::restore(&old, &target).await.unwrap();
    let store = Store::open(&target).await.unwrap();
    assert_upgraded(&store).await;
}

/// An old migration edited after release would break every store made by that release:
/// sqlx refuses it by checksum, and the file must say so clearly rather than half-migrate.
#[tokio::test]
async fn an_edited_old_migration_is_refused_with_the_path_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    old_store_at(&path).await;
    // As if 0001 had been edited after that release: its recorded checksum no longer matches.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = zeroblob(48) WHERE version = 1").execute(&pool).await.unwrap();
    pool.close().await;
    let err = Store::open(&path).await.err().expect("a checksum mismatch is refused").to_string();
    assert!(err.contains("state.db") && err.contains("migrat"), "{err}");
    // Nothing was applied on top of the refused file.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let max: i64 = sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations").fetch_one(&pool).await.unwrap();
    assert_eq!(max, 5);
}
