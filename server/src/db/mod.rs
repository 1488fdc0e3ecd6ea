//! `db`: the read/write router in front of the PostgreSQL primary and its streaming
//! replicas. Split like mature routers: `routing` (pure decisions), this file (pools,
//! the health/lag monitor, the router API), `config` in [`DbConfig`].
//!
//! - writes and transactions: [`DbRouter::write`] — always the primary;
//! - reads: [`DbRouter::read`] — round-robin over admitted replicas, retried on another
//!   backend if the chosen one fails, the primary when none is usable (counted);
//! - read-your-writes: [`DbRouter::write_lsn`] after a write, then
//!   [`DbRouter::read_after`] waits (bounded) for a replica that replayed it, else primary.
pub mod api;
pub mod routing;

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Mutex,
    },
    time::Duration,
};

use sqlx::{postgres::PgPoolOptions, PgPool, Row};

use crate::runtime::supervisor::now_ms;
use routing::{admit, choose_read, Admission, Lsn, Sample, Target, Thresholds};

impl DbRouter {
    pub fn thresholds(&self) -> Thresholds {
        self.cfg.thresholds
    }
}

#[derive(Debug, Clone)]
pub struct DbConfig {
    pub primary_url: String,
    /// (name, url) per replica.
    pub replicas: Vec<(String, String)>,
    pub check_interval: Duration,
    pub check_timeout: Duration,
    pub thresholds: Thresholds,
    pub ryw_timeout: Duration,
}

impl DbConfig {
    /// The servers of the `[postgres]` config section, with the router's default timings.
    pub fn new(pg: &crate::config::PostgresConfig) -> Self {
        Self {
            primary_url: pg.primary.clone(),
            replicas: pg.replicas.iter().map(|r| (r.name.clone(), r.url.clone())).collect(),
            check_interval: Duration::from_secs(1),
            check_timeout: Duration::from_millis(800),
            thresholds: Thresholds::default(),
            ryw_timeout: Duration::from_secs(2),
        }
    }

    /// The dev stack of `dev/compose.yml`: the config's defaults.
    pub fn dev_stack() -> Self {
        Self::new(&crate::config::PostgresConfig::default())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("primary unavailable for writes: {0}")]
    PrimaryDown(String),
    #[error("{backend}: {source}")]
    Query { backend: String, source: sqlx::Error },
    #[error("unknown replica {0:?}")]
    UnknownReplica(String),
    /// A read-after LSN the primary has not reached: no write returned it.
    #[error("LSN {wanted} is ahead of the primary's {current}: not an LSN a write returned")]
    AheadOfPrimary { wanted: Lsn, current: Lsn },
}

pub use app::api::{DbStatus, LagPoint, ReplicaStatus};

struct Replica {
    name: String,
    pool: PgPool,
    state: Mutex<(Admission, Option<Sample>, bool)>, // admission, last sample, replay paused
    reads: AtomicU64,
}

pub struct DbRouter {
    cfg: DbConfig,
    primary: PgPool,
    replicas: Vec<Replica>,
    counter: AtomicUsize,
    writes: AtomicU64,
    primary_reads: AtomicU64,
    fallbacks: AtomicU64,
    retried_reads: AtomicU64,
    primary_state: Mutex<(bool, Option<Lsn>)>,
    /// Why a check found the primary refusing (refused, reset: gone, not slow), until a
    /// check gets an answer again; `None` when it answered or was never refused.
    primary_refused: Mutex<Option<String>>,
    /// Woken when the write gate closes: writers waiting on the pool give up at once.
    gate_closed: tokio::sync::Notify,
    history: Mutex<VecDeque<LagPoint>>,
    /// The primary's WAL position at each check (ms, LSN), 15 min: dates a replica's lag.
    primary_positions: Mutex<VecDeque<(u64, Lsn)>>,
    /// Read-your-writes waits that may poll the replicas at once; past it a read-after
    /// goes straight to whoever has the LSN (or the primary) without waiting, so many
    /// parallel waits cannot exhaust the replicas' pools.
    ryw_waits: tokio::sync::Semaphore,
}

/// At most this many read-your-writes waits poll the replicas at the same time.
const RYW_WAITS: usize = 8;

/// 15 minutes at one sample a second.
const HISTORY: usize = 900;

pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, sqlx::Error>> + Send + 'a>>;

/// A lazily connecting pool whose `acquire` gives up after `acquire` (sqlx retries a
/// refused connect until then, so this is also how long a stopped server takes to fail).
fn pool(url: &str, acquire: Duration) -> PgPool {
    PgPoolOptions::new().max_connections(8).acquire_timeout(acquire).connect_lazy(url).expect("valid postgres URL")
}

impl DbRouter {
    pub fn new(cfg: DbConfig) -> Self {
        let replicas = cfg
            .replicas
            .iter()
            .map(|(name, url)| Replica {
                name: name.clone(),
                // A replica that cannot hand out a connection within a check's timeout is
                // skipped for this read (another replica or the primary answers): a stopped
                // replica costs a read one check timeout, not the primary's 2 s.
                pool: pool(url, cfg.check_timeout),
                // Out until the first check says otherwise.
                state: Mutex::new((Admission::Out { reason: "not checked yet".into(), since_ms: now_ms() }, None, false)),
                reads: AtomicU64::new(0),
            })
            .collect();
        Self {
            // Writes wait longer for the primary: there is nowhere else to send them.
            primary: pool(&cfg.primary_url, cfg.check_timeout.max(Duration::from_secs(2))),
            replicas,
            cfg,
            counter: AtomicUsize::new(0),
            writes: AtomicU64::new(0),
            primary_reads: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            retried_reads: AtomicU64::new(0),
            primary_state: Mutex::new((false, None)),
            primary_refused: Mutex::new(None),
            gate_closed: tokio::sync::Notify::new(),
            history: Mutex::new(VecDeque::new()),
            primary_positions: Mutex::new(VecDeque::new()),
            ryw_waits: tokio::sync::Semaphore::new(RYW_WAITS),
        }
    }

    /// The pool for writes, failing at once with the reason when the monitor's last check
    /// found the primary refusing connections (until one gets an answer again): a writer
    /// learns "the primary is down" within a check interval instead of waiting out the
    /// pool's acquire timeout. A check that only timed out (a slow primary) does not close it.
    pub fn writer(&self) -> Result<&PgPool, DbError> {
        match self.primary_refused.lock().unwrap().clone() {
            Some(why) => Err(DbError::PrimaryDown(why)),
            None => Ok(self.write()),
        }
    }

    /// Closes the write gate with `why` (a refusal, or the engine reporting the primary's
    /// container going down): writers fail at once, and those waiting on the pool give up,
    /// instead of waiting out its acquire timeout while connects to a vanishing container
    /// hang. The next check that gets an answer opens it.
    pub fn close_write_gate(&self, why: String) {
        *self.primary_refused.lock().unwrap() = Some(why);
        self.gate_closed.notify_waiters();
    }

    /// A connection for a write, from the primary's pool; fails at once while the write gate
    /// is closed, and a wait for the pool (a connect to a vanishing primary can hang until
    /// the acquire timeout) ends the moment the gate closes.
    pub async fn acquire_write(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, DbError> {
        let closed = self.gate_closed.notified();
        tokio::pin!(closed);
        closed.as_mut().enable();
        let pool = self.writer()?;
        tokio::select! {
            c = pool.acquire() => c.map_err(|e| DbError::PrimaryDown(e.to_string())),
            _ = closed => Err(self.writer().err().unwrap_or_else(|| DbError::PrimaryDown("the write gate closed".into()))),
        }
    }

    /// The pool for writes and transactions: always the primary.
    pub fn write(&self) -> &PgPool {
        self.writes.fetch_add(1, Ordering::Relaxed);
        &self.primary
    }

    /// The primary's current WAL insert position: call after a write commits, pass to
    /// [`Self::read_after`] for read-your-writes.
    pub async fn write_lsn(&self) -> Result<Lsn, DbError> {
        let s: String = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&self.primary)
            .await
            .map_err(|e| DbError::PrimaryDown(e.to_string()))?;
        Ok(Lsn::parse(&s).unwrap_or_default())
    }

    fn pick(&self, min_lsn: Option<Lsn>, skip: &[usize]) -> Target {
        let view: Vec<(Admission, Option<Lsn>)> = self
            .replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let st = r.state.lock().unwrap();
                let adm = if skip.contains(&i) { Admission::Out { reason: "failed this read".into(), since_ms: 0 } } else { st.0.clone() };
                (adm, st.1.as_ref().and_then(|s| s.replay_lsn))
            })
            .collect();
        choose_read(&view, self.counter.fetch_add(1, Ordering::Relaxed), min_lsn)
    }

    /// Runs a read on a replica (round-robin over admitted ones); if it fails, on the next
    /// one, then the primary. Returns the backend that answered.
    pub async fn read<T, F>(&self, f: F) -> Result<(String, T), DbError>
    where
        F: for<'p> Fn(&'p PgPool) -> BoxFut<'p, T>,
    {
        self.read_inner(None, f).await
    }

    /// A read that wants the freshest data: on the primary (counted as a primary read).
    pub async fn read_prefer_primary<T, F>(&self, f: F) -> Result<(String, T), DbError>
    where
        F: for<'p> Fn(&'p PgPool) -> BoxFut<'p, T>,
    {
        self.primary_reads.fetch_add(1, Ordering::Relaxed);
        f(&self.primary)
            .await
            .map(|v| ("postgres-primary".to_string(), v))
            .map_err(|e| DbError::Query { backend: "postgres-primary".into(), source: e })
    }

    /// Read-your-writes: like [`Self::read`], but only on a replica that replayed `lsn`,
    /// waiting up to the configured bound for one to catch up, else on the primary.
    pub async fn read_after<T, F>(&self, lsn: Lsn, f: F) -> Result<(String, T), DbError>
    where
        F: for<'p> Fn(&'p PgPool) -> BoxFut<'p, T>,
    {
        // The insert position, like `write_lsn`: the write position trails it by the WAL
        // not yet written out, and an LSN a write just returned may lie in that gap.
        // Only a sanity check of the caller's LSN, so it must not delay the read: skipped
        // while the write gate is closed (the primary refuses), bounded by a check's timeout
        // otherwise. Unbounded, a primary that was starting up held every read here for the
        // pool's 2 s acquire timeout (sqlx retries "starting up"), and a read that then
        // went to a replica on a busy machine missed a 3 s deadline (the primary-stop drill,
        // once in CI, 21 s after the fault).
        let current: Option<String> = if self.primary_refused.lock().unwrap().is_some() {
            None
        } else {
            let q = sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text").fetch_one(&self.primary);
            tokio::time::timeout(self.cfg.check_timeout, q).await.ok().and_then(Result::ok)
        };
        if let Some(current) = current.as_deref().and_then(Lsn::parse) {
            if lsn > current {
                return Err(DbError::AheadOfPrimary { wanted: lsn, current });
            }
        }
        // Waiting is bounded in time and in how many wait at once.
        let Ok(_permit) = self.ryw_waits.try_acquire() else {
            return self.read_inner(Some(lsn), f).await;
        };
        let deadline = tokio::time::Instant::now() + self.cfg.ryw_timeout;
        loop {
            // Refresh replay positions directly: the monitor's last sample may be a second old.
            // Only admitted replicas (a read would not go to the others anyway), all at once,
            // each bounded by a check's timeout: a stopped or paused replica must not hold
            // the read for its pool's acquire timeout on every turn of this loop.
            let refreshes = self.replicas.iter().filter(|r| r.state.lock().unwrap().0 == Admission::In).map(|r| async move {
                let q = sqlx::query_scalar::<_, Option<String>>("SELECT pg_last_wal_replay_lsn()::text").fetch_one(&r.pool);
                if let Ok(Ok(Some(s))) = tokio::time::timeout(self.cfg.check_timeout, q).await {
                    if let Some(sample) = r.state.lock().unwrap().1.as_mut() {
                        sample.replay_lsn = Lsn::parse(&s);
                    }
                }
            });
            futures_util::future::join_all(refreshes).await;
            if matches!(self.pick(Some(lsn), &[]), Target::Replica(_)) || tokio::time::Instant::now() >= deadline {
                return self.read_inner(Some(lsn), f).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn read_inner<T, F>(&self, min_lsn: Option<Lsn>, f: F) -> Result<(String, T), DbError>
    where
        F: for<'p> Fn(&'p PgPool) -> BoxFut<'p, T>,
    {
        let mut failed = vec![];
        loop {
            match self.pick(min_lsn, &failed) {
                Target::Replica(i) => {
                    let r = &self.replicas[i];
                    match f(&r.pool).await {
                        Ok(v) => {
                            r.reads.fetch_add(1, Ordering::Relaxed);
                            return Ok((r.name.clone(), v));
                        }
                        Err(e) if is_connection_error(&e) => {
                            // Take it out now rather than at the next check.
                            tracing::warn!(replica = %r.name, error = %e, "read failed; retrying elsewhere");
                            r.state.lock().unwrap().0 = Admission::Out { reason: format!("down: {e}"), since_ms: now_ms() };
                            self.retried_reads.fetch_add(1, Ordering::Relaxed);
                            failed.push(i);
                        }
                        Err(e) => return Err(DbError::Query { backend: r.name.clone(), source: e }),
                    }
                }
                Target::Primary { .. } => {
                    self.fallbacks.fetch_add(u64::from(!self.replicas.is_empty()), Ordering::Relaxed);
                    self.primary_reads.fetch_add(1, Ordering::Relaxed);
                    return f(&self.primary)
                        .await
                        .map(|v| ("postgres-primary".to_string(), v))
                        .map_err(|e| DbError::Query { backend: "postgres-primary".into(), source: e });
                }
            }
        }
    }

    /// One monitor pass: the primary's position, then each replica's state and lag.
    pub async fn check_once(&self) {
        let t = self.cfg.check_timeout;
        let checked = tokio::time::timeout(t, sqlx::query_scalar::<_, String>("SELECT pg_current_wal_lsn()::text").fetch_one(&self.primary)).await;
        // Closed by a refusal, opened by an answer; a timeout changes nothing by itself (the
        // primary may just be slow). But the pool retries a refused connect until its acquire
        // timeout, which hides the refusal for seconds: so when the pooled check did not
        // answer, one connection of its own says whether the primary refuses.
        match &checked {
            Ok(Ok(_)) => *self.primary_refused.lock().unwrap() = None,
            Ok(Err(e)) if refused(e) => self.close_write_gate(format!("the primary refused the router's check: {e}")),
            _ => {
                use sqlx::Connection;
                if let Ok(Err(e)) = tokio::time::timeout(t, sqlx::PgConnection::connect(&self.cfg.primary_url)).await {
                    if refused(&e) {
                        self.close_write_gate(format!("the primary refused a connection: {e}"));
                    }
                }
            }
        }
        let primary_lsn = match checked {
            Ok(Ok(s)) => Lsn::parse(&s),
            _ => None,
        };
        *self.primary_state.lock().unwrap() = (primary_lsn.is_some(), primary_lsn);
        if let Some(l) = primary_lsn {
            let mut pos = self.primary_positions.lock().unwrap();
            if pos.len() == HISTORY {
                pos.pop_front();
            }
            pos.push_back((now_ms(), l));
        }
        let mut point = LagPoint { at_ms: now_ms(), lag_bytes: vec![], lag_secs: vec![] };
        for r in &self.replicas {
            let q = sqlx::query(
                "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text, pg_is_wal_replay_paused()",
            )
            .fetch_one(&r.pool);
            let sample = match tokio::time::timeout(t, q).await {
                Ok(Ok(row)) => {
                    let in_recovery: bool = row.get(0);
                    let replay = row.get::<Option<String>, _>(1).and_then(|s| Lsn::parse(&s));
                    let paused: bool = if in_recovery { row.get(2) } else { false };
                    // Known only from both positions, and only of a standby (a promoted
                    // node is not behind anything).
                    let lag_bytes = match (in_recovery, primary_lsn, replay) {
                        (true, Some(p), Some(rp)) => Some(p.0.saturating_sub(rp.0)),
                        _ => None,
                    };
                    // Seconds behind: how long ago the primary first passed the replayed position,
                    // from the positions recorded at each check (so 1 s resolution). Unlike
                    // `now() - pg_last_xact_replay_timestamp()`, an idle replica that is a few
                    // bytes behind is not "minutes behind".
                    let secs = replay.filter(|_| in_recovery).and_then(|rp| lag_secs(&self.primary_positions.lock().unwrap(), rp, now_ms()));
                    r.state.lock().unwrap().2 = paused;
                    Sample { unreachable: None, in_recovery, replay_lsn: replay, lag_bytes, lag: secs.map(Duration::from_secs_f64) }
                }
                Ok(Err(e)) => Sample { unreachable: Some(e.to_string()), in_recovery: false, replay_lsn: None, lag_bytes: None, lag: None },
                Err(_) => Sample { unreachable: Some(format!("no answer within {} ms", t.as_millis())), in_recovery: false, replay_lsn: None, lag_bytes: None, lag: None },
            };
            point.lag_bytes.push(sample.lag_bytes);
            point.lag_secs.push(sample.lag.map(|l| l.as_secs_f64()));
            let mut st = r.state.lock().unwrap();
            let next = admit(&st.0, &sample, &self.cfg.thresholds, now_ms());
            if next != st.0 {
                tracing::info!(replica = %r.name, admission = ?next, "replica admission changed");
            }
            st.0 = next;
            st.1 = Some(sample);
        }
        let mut h = self.history.lock().unwrap();
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(point);
    }

    pub async fn run(self: std::sync::Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(self.cfg.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return,
                _ = tick.tick() => self.check_once().await,
            }
        }
    }

    pub fn status(&self) -> DbStatus {
        let (primary_up, primary_lsn) = *self.primary_state.lock().unwrap();
        DbStatus {
            primary_lsn: primary_lsn.map(|l| l.to_string()),
            primary_up,
            writes: self.writes.load(Ordering::Relaxed),
            primary_reads: self.primary_reads.load(Ordering::Relaxed),
            fallbacks: self.fallbacks.load(Ordering::Relaxed),
            retried_reads: self.retried_reads.load(Ordering::Relaxed),
            replicas: self
                .replicas
                .iter()
                .map(|r| {
                    let st = r.state.lock().unwrap();
                    let s = st.1.as_ref();
                    ReplicaStatus {
                        name: r.name.clone(),
                        admission: st.0.clone(),
                        reachable: s.is_some_and(|s| s.unreachable.is_none()),
                        replay_paused: st.2,
                        replay_lsn: s.and_then(|s| s.replay_lsn).map(|l| l.to_string()),
                        lag_bytes: s.and_then(|s| s.lag_bytes),
                        lag_secs: s.and_then(|s| s.lag).map(|l| l.as_secs_f64()),
                        reads: r.reads.load(Ordering::Relaxed),
                    }
                })
                .collect(),
        }
    }

    pub fn history(&self) -> Vec<LagPoint> {
        self.history.lock().unwrap().iter().cloned().collect()
    }

    pub fn replica_names(&self) -> Vec<String> {
        self.replicas.iter().map(|r| r.name.clone()).collect()
    }

    /// Pauses or resumes WAL replay on a replica (to demonstrate lag-based ejection).
    pub async fn set_replay_paused(&self, replica: &str, paused: bool) -> Result<(), DbError> {
        let r = self.replicas.iter().find(|r| r.name == replica).ok_or_else(|| DbError::UnknownReplica(replica.into()))?;
        let sql = if paused { "SELECT pg_wal_replay_pause()" } else { "SELECT pg_wal_replay_resume()" };
        sqlx::query(sql).execute(&r.pool).await.map_err(|e| DbError::Query { backend: r.name.clone(), source: e })?;
        r.state.lock().unwrap().2 = paused;
        Ok(())
    }
}

/// Whether `e` says the server is not there (connection refused, reset, closed, shutting
/// down) rather than slow.
fn refused(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolClosed => true,
        // 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now.
        sqlx::Error::Database(d) => d.code().is_some_and(|c| c.starts_with("57P")),
        _ => false,
    }
}

/// Seconds since the primary's recorded position first exceeded `replayed` (0 when it never
/// has: caught up); None with no position of the primary recorded (nothing to compare
/// with). `positions` are (ms, LSN), oldest first.
pub fn lag_secs(positions: &VecDeque<(u64, Lsn)>, replayed: Lsn, now: u64) -> Option<f64> {
    if positions.is_empty() {
        return None;
    }
    Some(match positions.iter().find(|(_, l)| *l > replayed) {
        Some((t, _)) => now.saturating_sub(*t) as f64 / 1000.0,
        None => 0.0,
    })
}

fn is_connection_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_))
        || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c.starts_with("57P") || c.starts_with("08")))
}

/// Boxes a read for [`DbRouter::read`]: `router.read(read_fn(|p| async move { … }))`.
pub fn boxed<'p, T, Fut>(fut: Fut) -> BoxFut<'p, T>
where
    Fut: Future<Output = Result<T, sqlx::Error>> + Send + 'p,
{
    Box::pin(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_refusal_closes_the_write_gate() {
        assert!(refused(&sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused"))));
        assert!(refused(&sqlx::Error::PoolClosed));
        assert!(!refused(&sqlx::Error::PoolTimedOut), "slow is not gone");
        assert!(!refused(&sqlx::Error::RowNotFound));
    }

    #[tokio::test]
    async fn one_check_closes_the_write_gate_when_the_primary_refuses_connections() {
        // A port nothing listens on: connects are refused at once, which the pool would
        // only report after its 2 s acquire timeout (retrying meanwhile).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut cfg = DbConfig::dev_stack();
        cfg.primary_url = format!("postgres://bss:bss@127.0.0.1:{port}/bss");
        cfg.replicas.clear();
        cfg.check_timeout = Duration::from_millis(500);
        let db = DbRouter::new(cfg);
        // The pooled query gives up at the 500 ms check timeout; the check's own connect
        // hears the refusal.
        db.check_once().await;
        let e = db.writer().unwrap_err().to_string();
        assert!(e.contains("refused a connection"), "{e}");
    }

    #[tokio::test]
    async fn the_write_gate_opens_without_a_check_and_closes_with_the_reason() {
        let db = DbRouter::new(DbConfig::dev_stack());
        assert!(db.writer().is_ok(), "never checked: writes are not refused");
        *db.primary_refused.lock().unwrap() = Some("the primary refused the router's check: connection refused".into());
        let e = db.writer().unwrap_err().to_string();
        assert!(e.starts_with("primary unavailable for writes: the primary refused"), "{e}");
    }

    #[test]
    fn lag_is_dated_by_the_primary_positions() {
        let pos: VecDeque<(u64, Lsn)> = [(1_000, Lsn(10)), (2_000, Lsn(10)), (3_000, Lsn(50)), (4_000, Lsn(90))].into();
        assert_eq!(lag_secs(&pos, Lsn(90), 5_000), Some(0.0), "caught up");
        assert_eq!(lag_secs(&pos, Lsn(10), 5_000), Some(2.0), "behind since the primary passed 10 at 3 s");
        assert_eq!(lag_secs(&pos, Lsn(60), 5_000), Some(1.0));
        assert_eq!(lag_secs(&VecDeque::new(), Lsn(1), 5_000), None, "no position of the primary seen yet: unknown, not caught up");
    }
}
