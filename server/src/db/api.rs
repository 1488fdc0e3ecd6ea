//! What the Database page asks of the read/write router, and the lag history it keeps.
use std::{sync::Arc, time::Duration};

use app::{
    api::{DbView, LagPoint, OutboxView, Principal, Role},
    backend::DbApi,
    error::AppError,
};

use super::DbError;
use crate::state::{require, Act, Services};

impl From<DbError> for AppError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::UnknownReplica(_) => AppError::NotFound(e.to_string()),
            DbError::AheadOfPrimary { .. } => AppError::Invalid(e.to_string()),
            DbError::PrimaryDown(_) | DbError::Query { .. } => AppError::Unavailable(e.to_string()),
        }
    }
}

#[async_trait::async_trait]
impl DbApi for Services {
    async fn db_view(&self, who: &Principal) -> Result<DbView, AppError> {
        require(who, Role::Viewer, "reading the database router")?;
        let t = self.db.thresholds();
        let (haproxy, haproxy_error) = match self.gateway.haproxy().await {
            Ok(rows) => (rows.into_iter().filter(|r| r.proxy == "pg_replicas").collect(), None),
            Err(e) => (vec![], Some(e.to_string())),
        };
        let names = self.db.replica_names();
        let rows = self.store.lag_minutes(crate::clock::now_ms().saturating_sub(86_400_000)).await?;
        let mut long_history: Vec<LagPoint> = vec![];
        for (at, replica, bytes, secs) in rows {
            if long_history.last().is_none_or(|p| p.at_ms != at as u64) {
                // A replica with no row for the minute had no known lag then: a gap.
                long_history.push(LagPoint { at_ms: at as u64, lag_bytes: vec![None; names.len()], lag_secs: vec![None; names.len()] });
            }
            if let (Some(i), Some(p)) = (names.iter().position(|n| *n == replica), long_history.last_mut()) {
                p.lag_bytes[i] = bytes.map(|b| b.max(0) as u64);
                p.lag_secs[i] = Some(secs);
            }
        }
        let outbox = match self.outbox.backlog(&self.db).await {
            Ok(b) => OutboxView {
                pending: b.pending,
                oldest_secs: b.oldest.map(|d| d.as_secs_f64()),
                published: self.outbox.published.load(std::sync::atomic::Ordering::Relaxed),
                error: self.outbox.last_error.lock().unwrap().clone(),
            },
            Err(e) => OutboxView { error: Some(e.to_string()), ..Default::default() },
        };
        Ok(DbView {
            outbox,
            long_history,
            haproxy,
            haproxy_error,
            status: self.db.status(),
            history: self.db.history(),
            claim_max_lag_secs: 1.0,
            threshold_secs: t.max_lag.as_secs_f64(),
            threshold_bytes: t.max_lag_bytes,
        })
    }

    async fn set_replay_paused(&self, who: &Principal, replica: &str, paused: bool) -> Result<String, AppError> {
        let action = if paused { "db.replay_pause" } else { "db.replay_resume" };
        let act = Act { role: Role::Operator, what: "pausing or resuming replay", lock: replica, verb: action, audit: action, target: replica };
        self.guarded(who, act, |_guard| async move {
            self.db.set_replay_paused(replica, paused).await?;
            Ok(format!("{replica}: replay {}", if paused { "paused" } else { "resumed" }))
        })
        .await
    }
}

impl Services {
    /// Every minute, stores each replica's maximum lag of the past minute in SQLite.
    pub(crate) async fn downsample_lag(self: Arc<Self>, cancel: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = crate::clock::now_ms();
            let minute = now - now % 60_000 - 60_000;
            let recent: Vec<_> = self.db.history().into_iter().filter(|p| p.at_ms >= minute && p.at_ms < minute + 60_000).collect();
            if recent.is_empty() {
                continue;
            }
            // The maximum of what was known in the minute; a replica whose lag was never known
            // in it (down the whole minute) gets no row, and the 24 h chart a gap.
            let rows: Vec<(String, Option<u64>, f64)> = self
                .db
                .replica_names()
                .into_iter()
                .enumerate()
                .filter_map(|(i, name)| {
                    let bytes = recent.iter().filter_map(|p| p.lag_bytes.get(i).copied().flatten()).max();
                    let secs = recent.iter().filter_map(|p| p.lag_secs.get(i).copied().flatten()).reduce(f64::max)?;
                    Some((name, bytes, secs))
                })
                .collect();
            if let Err(e) = self.store.save_lag_minute(minute, &rows).await {
                tracing::warn!(error = %e, "could not store downsampled lag");
            }
        }
    }
}
