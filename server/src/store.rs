//! `store` owns the product's SQLite file (sqlx): migrations at open, then small typed
//! queries. Every other module asks the store; nothing else opens the file.
use std::{path::Path, str::FromStr, time::SystemTime};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
    SqlitePool,
};

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
}

#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
}

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
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migrate { path: shown, source })?;
        Ok(Self { pool })
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

    /// Audit entries, newest first, optionally filtered by actor and action prefix.
    pub async fn audit_filtered(&self, actor: Option<&str>, action: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE (?1 IS NULL OR actor = ?1) AND (?2 IS NULL OR action LIKE ?2 || '%') ORDER BY id DESC LIMIT ?3",
        )
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
