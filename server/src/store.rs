//! `store` owns the product's SQLite file (sqlx): migrations at open, then small typed
//! queries. Every other module asks the store; nothing else opens the file.
use std::{path::Path, str::FromStr, time::SystemTime};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
    SqlitePool,
};

pub mod backup;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory for {path}: {source}")]
    Dir { path: String, source: std::io::Error },
    #[error("cannot open the state database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate the state database {path}: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
    #[error("state database: {0}")]
    Query(#[from] sqlx::Error),
    /// A backup or restore that would lose or damage something, refused before it did.
    #[error("{0}")]
    Refused(String),
}

/// A failure of the product's own state is the control plane's fault, not the caller's:
/// the page says so, the details go to the log.
impl From<StoreError> for app::error::AppError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state database");
        app::error::AppError::Internal("the control plane's state database failed".into())
    }
}

/// The history table of a run kind (verify, demo), newest first.
pub fn summaries(stored: &[(i64, String, String, String, String, String)]) -> Vec<app::api::RunSummary> {
    stored
        .iter()
        .map(|r| app::api::RunSummary { id: r.0, started_at: r.1.clone(), actor: r.2.clone(), status: r.3.clone(), summary: r.4.clone() })
        .collect()
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// One connection of its own for the liveness probe: `/healthz` must not queue behind
    /// a burst of writes on `pool` (300 failed sign-ins each write an audit row, and every
    /// write waits for the file's single writer lock and an fsync). A read in WAL mode
    /// never waits for a writer, so this answers while the writers queue.
    probe: SqlitePool,
}

/// How long the liveness probe waits for the store before it calls it degraded.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

pub use app::api::AuditEntry;

fn audit_row(r: sqlx::sqlite::SqliteRow) -> AuditEntry {
    use sqlx::Row;
    AuditEntry {
        id: r.get("id"),
        at: r.get("at"),
        actor: r.get("actor"),
        action: r.get("action"),
        target: r.get("target"),
        result: r.get("result"),
        detail: r.get("detail"),
    }
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: shown.clone(), source })?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|source| StoreError::Open { path: shown.clone(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { path: shown.clone(), source })?;
        let probe = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(PROBE_TIMEOUT)
            .connect_with(opts.read_only(true))
            .await
            .map_err(|source| StoreError::Open { path: shown, source })?;
        Ok(Self { pool, probe })
    }

    /// Whether the state database answers a read within a second, on the probe's own
    /// connection (see `probe`): what `/healthz` reports as `store`.
    pub async fn healthy(&self) -> bool {
        let read = sqlx::query("SELECT count(*) FROM sqlite_master").fetch_one(&self.probe);
        matches!(tokio::time::timeout(PROBE_TIMEOUT, read).await, Ok(Ok(_)))
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Appends one audit entry and returns its id.
    pub async fn audit(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        result: &str,
        detail: serde_json::Value,
    ) -> Result<i64, StoreError> {
        let at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        let id = sqlx::query(
            "INSERT INTO audit_log (at, actor, action, target, result, detail) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(at)
        .bind(actor)
        .bind(action)
        .bind(target)
        .bind(result)
        .bind(detail.to_string())
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Stores one minute of downsampled lag per replica; drops minutes older than 7 days.
    pub async fn save_lag_minute(&self, at_ms: u64, rows: &[(String, Option<u64>, f64)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (replica, bytes, secs) in rows {
            sqlx::query("INSERT OR REPLACE INTO lag_minutes (at_ms, replica, lag_bytes, lag_secs) VALUES (?, ?, ?, ?)")
                .bind(at_ms as i64)
                .bind(replica)
                .bind(bytes.map(|b| b as i64))
                .bind(*secs)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM lag_minutes WHERE at_ms < ?").bind(at_ms as i64 - 7 * 86_400_000).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Downsampled lag since `since_ms`: (minute, replica, bytes, secs), oldest first.
    /// `bytes` is None for a minute whose byte lag was not known.
    pub async fn lag_minutes(&self, since_ms: u64) -> Result<Vec<(i64, String, Option<i64>, f64)>, StoreError> {
        Ok(sqlx::query_as("SELECT at_ms, replica, lag_bytes, lag_secs FROM lag_minutes WHERE at_ms >= ? ORDER BY at_ms, replica")
            .bind(since_ms as i64)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Records a drill's fault before it is applied; returns its id.
    pub async fn record_fault(&self, drill: &str, service: &str, fault: &str) -> Result<i64, StoreError> {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        Ok(sqlx::query("INSERT INTO drill_faults (drill, service, fault, applied_at) VALUES (?, ?, ?, ?)")
            .bind(drill)
            .bind(service)
            .bind(fault)
            .bind(now)
            .execute(&self.pool)
            .await?
            .last_insert_rowid())
    }

    pub async fn fault_undone(&self, id: i64, result: &str) -> Result<(), StoreError> {
        let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        sqlx::query("UPDATE drill_faults SET undone_at = ?, undo_result = ? WHERE id = ?").bind(now).bind(result).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// Faults applied and never undone: (id, drill, service, fault), oldest first.
    pub async fn pending_faults(&self) -> Result<Vec<(i64, String, String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT id, drill, service, fault FROM drill_faults WHERE undone_at IS NULL ORDER BY id").fetch_all(&self.pool).await?)
    }

    /// Stores a finished verify or demo run; returns its id.
    pub async fn save_run(&self, kind: &str, started_at: &str, actor: &str, status: &str, summary: &str, result: &serde_json::Value) -> Result<i64, StoreError> {
        let finished = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        Ok(sqlx::query("INSERT INTO runs (kind, started_at, finished_at, actor, status, summary, result) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(kind)
            .bind(started_at)
            .bind(finished)
            .bind(actor)
            .bind(status)
            .bind(summary)
            .bind(result.to_string())
            .execute(&self.pool)
            .await?
            .last_insert_rowid())
    }

    /// The last `limit` runs of a kind, newest first: (id, started_at, actor, status, summary, result JSON).
    pub async fn runs(&self, kind: &str, limit: i64) -> Result<Vec<(i64, String, String, String, String, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT id, started_at, actor, status, summary, result FROM runs WHERE kind = ? ORDER BY id DESC LIMIT ?")
            .bind(kind)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    /// Audit entries, newest first, optionally filtered by actor and action prefix.
    pub async fn audit_filtered(&self, actor: Option<&str>, action: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_page(0, actor, action, limit, true).await
    }

    /// Up to `limit` entries after id `after`, oldest first (a page of the export).
    pub async fn audit_after(&self, after: i64, actor: Option<&str>, action: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_page(after, actor, action, limit, false).await
    }

    async fn audit_page(&self, after: i64, actor: Option<&str>, action: Option<&str>, limit: i64, newest_first: bool) -> Result<Vec<AuditEntry>, StoreError> {
        let sql = format!(
            "SELECT * FROM audit_log WHERE id > ?1 AND (?2 IS NULL OR actor = ?2) AND (?3 IS NULL OR action LIKE ?3 || '%') ORDER BY id {} LIMIT ?4",
            if newest_first { "DESC" } else { "ASC" }
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(actor.filter(|s| !s.is_empty()))
            .bind(action.filter(|s| !s.is_empty()))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(audit_row).collect())
    }

    /// Most recent audit entries first.
    pub async fn recent_audit(&self, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        self.audit_filtered(None, None, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn migrates_and_appends_audit_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("nested/state.db")).await.unwrap();
        store.audit("alice", "service.restart", "kafka-1", "ok", serde_json::json!({})).await.unwrap();
        store.audit("bob", "verify.run", "", "failed: x", serde_json::json!({"n": 1})).await.unwrap();
        let rows = store.recent_audit(10).await.unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].actor, "bob");
        assert_eq!(rows[1].target, "kafka-1");
    }

    #[tokio::test]
    async fn audit_log_refuses_update_and_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        store.audit("alice", "x", "", "ok", serde_json::json!({})).await.unwrap();
        let upd = sqlx::query("UPDATE audit_log SET actor = 'mallory'").execute(store.pool()).await;
        assert!(upd.unwrap_err().to_string().contains("append-only"));
        let del = sqlx::query("DELETE FROM audit_log").execute(store.pool()).await;
        assert!(del.is_err());
        assert_eq!(store.recent_audit(10).await.unwrap()[0].actor, "alice");
    }

    #[tokio::test]
    async fn runs_and_lag_minutes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).await.unwrap();
        let a = store.save_run("verify", "t0", "olga", "passed", "16 passed", &serde_json::json!({"x": 1})).await.unwrap();
        let b = store.save_run("verify", "t1", "olga", "failed", "1 failed", &serde_json::json!({"x": 2})).await.unwrap();
        store.save_run("demo", "t2", "olga", "passed", "demo", &serde_json::json!({})).await.unwrap();
        let runs = store.runs("verify", 10).await.unwrap();
        assert_eq!(runs.iter().map(|r| r.0).collect::<Vec<_>>(), [b, a], "newest first, one kind");
        assert_eq!(runs[0].5, r#"{"x":2}"#);

        let day = 86_400_000;
        store.save_lag_minute(10 * day, &[("r1".into(), Some(100), 0.5), ("r2".into(), Some(0), 0.0)]).await.unwrap();
        store.save_lag_minute(10 * day, &[("r1".into(), Some(200), 0.7)]).await.unwrap(); // same minute: replaced
        // Drops minutes > 7 days older; a minute whose byte lag was unknown keeps it unknown.
        store.save_lag_minute(18 * day, &[("r1".into(), Some(1), 0.1), ("r2".into(), None, 0.4)]).await.unwrap();
        let rows = store.lag_minutes(0).await.unwrap();
        assert_eq!(rows, vec![(18 * day as i64, "r1".to_string(), Some(1), 0.1), (18 * day as i64, "r2".to_string(), None, 0.4)]);
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_skips_applied_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        Store::open(&path).await.unwrap().audit("a", "b", "", "ok", serde_json::json!({})).await.unwrap();
        let again = Store::open(&path).await.unwrap();
        assert_eq!(again.recent_audit(5).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn unwritable_path_is_a_clear_error() {
        let err = Store::open(Path::new("/proc/bss-control/state.db")).await.unwrap_err().to_string();
        assert!(err.contains("/proc/bss-control/state.db"), "{err}");
    }
}
