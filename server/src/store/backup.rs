//! Backup and restore of the control plane's own state (users, sessions, the audit log,
//! run histories, lag history, the drill journal), and the lock that tells a running
//! server's store from an idle one.
//!
//! - `backup` copies the database while the server runs: SQLite's `VACUUM INTO` reads it
//!   in one transaction, so writers go on and the copy is a single moment of it; the copy
//!   is checked (`integrity_check`) before it is reported.
//! - `restore` refuses while a server holds the store's lock, refuses a file that is not a
//!   bss-control store or was made by a newer release, and never deletes: the store it
//!   replaces is moved aside (`<store>.before-restore-<unix time>`, with its WAL). The
//!   restored file is then migrated forward like any older store.
use std::{
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    str::FromStr,
    time::{Duration, SystemTime},
};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqlitePoolOptions},
    Row,
};

use super::{Store, StoreError};

/// What a backup or restore holds: row counts of the tables that matter.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Contents {
    pub schema_version: i64,
    pub users: i64,
    pub audit_entries: i64,
    pub runs: i64,
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "schema {}, {} users, {} audit entries, {} stored runs", self.schema_version, self.users, self.audit_entries, self.runs)
    }
}

fn refused(why: impl Into<String>) -> StoreError {
    StoreError::Refused(why.into())
}

/// The newest schema this build knows (its last migration).
fn known_schema() -> i64 {
    sqlx::migrate!("./migrations").iter().map(|m| m.version).max().unwrap_or(0)
}

/// Checks that `path` is a whole bss-control store and says what it holds.
async fn inspect(path: &Path) -> Result<Contents, StoreError> {
    let shown = path.display().to_string();
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{shown}"))
        .map_err(|source| StoreError::Open { path: shown.clone(), source })?
        .read_only(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.map_err(|e| refused(format!("{shown} is not a SQLite database: {e}")))?;
    let checked = async {
        let ok: String = sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&pool).await.map_err(|e| refused(format!("{shown} is not a SQLite database: {e}")))?;
        if ok != "ok" {
            return Err(refused(format!("{shown} is damaged: integrity_check says {ok}")));
        }
        let row = sqlx::query(
            "SELECT (SELECT max(version) FROM _sqlx_migrations WHERE success) AS v, (SELECT count(*) FROM users) AS u, \
             (SELECT count(*) FROM audit_log) AS a, (SELECT count(*) FROM runs) AS r",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| refused(format!("{shown} is not a bss-control store: {e}")))?;
        Ok(Contents { schema_version: row.get::<Option<i64>, _>("v").unwrap_or(0), users: row.get("u"), audit_entries: row.get("a"), runs: row.get("r") })
    }
    .await;
    pool.close().await;
    checked
}

impl Store {
    /// Writes a consistent copy of the store to `dest` (which must not exist) while it is
    /// in use, checks the copy and says what it holds.
    pub async fn backup(&self, dest: &Path) -> Result<Contents, StoreError> {
        if dest.exists() {
            return Err(refused(format!("{} exists; a backup never overwrites a file", dest.display())));
        }
        let dest_text = dest.to_str().ok_or_else(|| refused(format!("{} is not a UTF-8 path", dest.display())))?;
        sqlx::query("VACUUM INTO ?").bind(dest_text).execute(self.pool()).await?;
        match inspect(dest).await {
            Ok(c) => Ok(c),
            Err(e) => {
                let _ = std::fs::remove_file(dest);
                Err(e)
            }
        }
    }
}

/// An exclusive lock on `<store>.lock` held by a serving control plane for its lifetime
/// (the kernel drops it when the process ends, however it ends).
pub struct ServeLock {
    _file: File,
}

/// `store` with `suffix` appended to its file name (`state.db` → `state.db.lock`).
fn beside(store: &Path, suffix: &str) -> PathBuf {
    let mut p = store.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// Takes the store's lock, waiting up to `wait` for a control plane that is ending (e.g.
/// one just killed) to let go. The lock file names the holder's pid.
pub fn lock_for_serving(store: &Path, wait: Duration) -> Result<ServeLock, StoreError> {
    let path = beside(store, ".lock");
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir { path: dir.display().to_string(), source })?;
    }
    let io = |source: std::io::Error| StoreError::Dir { path: path.display().to_string(), source };
    let mut file = std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&path).map_err(io)?;
    let deadline = std::time::Instant::now() + wait;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(refused(format!(
                    "another bss-control server is using {} (pid {}); one store serves one control plane",
                    store.display(),
                    holder.trim()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
    }
    file.set_len(0).map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(ServeLock { _file: file })
}

/// Replaces the store at `store` with the backup `src` (see the module comment); returns
/// what the restored store holds after its forward migrations.
pub async fn restore(src: &Path, store: &Path) -> Result<Contents, StoreError> {
    // Held until the restore is done: a server starting meanwhile waits, then refuses.
    let _lock = lock_for_serving(store, Duration::ZERO).map_err(|e| match e {
        StoreError::Refused(why) => refused(format!("{why}: stop it before restoring")),
        e => e,
    })?;
    let found = inspect(src).await?;
    if found.schema_version > known_schema() {
        return Err(refused(format!(
            "{} was made by a newer bss-control (schema {}, this release knows up to {}): restore it with that release",
            src.display(),
            found.schema_version,
            known_schema()
        )));
    }
    let io = |what: &str, source: std::io::Error| StoreError::Dir { path: what.to_string(), source };
    // The copy first, synced, beside the store: the switch below is then renames only.
    let tmp = beside(store, ".restore-tmp");
    std::fs::copy(src, &tmp).map_err(|e| io(&tmp.display().to_string(), e))?;
    File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| io(&tmp.display().to_string(), e))?;
    if store.exists() {
        let at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        for suffix in ["", "-wal", "-shm"] {
            let from = beside(store, suffix);
            if from.exists() {
                let to = beside(store, &format!(".before-restore-{at}{suffix}"));
                std::fs::rename(&from, &to).map_err(|e| io(&from.display().to_string(), e))?;
            }
        }
    }
    std::fs::rename(&tmp, store).map_err(|e| io(&store.display().to_string(), e))?;
    // Forward migrations, as at any start; then what it holds.
    Store::open(store).await?.pool().close().await;
    inspect(store).await
}
