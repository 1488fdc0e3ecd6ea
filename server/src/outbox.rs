//! The transactional outbox between the BSS API and Kafka.
//!
//! A write and its CloudEvent commit together: the event is a row of `outbox` inserted in
//! the write's transaction, so there is never an event for a row that does not exist, and
//! a committed row's event cannot be lost to a bus outage. The relay publishes pending rows
//! with the idempotent producer (`acks=all`) and marks each row published once the brokers
//! acknowledged it. A crash between the acknowledgement and the mark publishes the row
//! again with the same event id (at-least-once; consumers dedupe on the id). Rows are
//! claimed with `FOR UPDATE SKIP LOCKED`, so two control planes never publish one row at
//! the same time. A row whose delivery failed stays pending with its attempts and error.
use std::{
    sync::{
        atomic::{AtomicI64, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use sqlx::PgConnection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{db::DbRouter, streams::Streams};

/// Rows one relay pass claims at most.
const BATCH: i64 = 500;

#[derive(Default)]
pub struct Outbox {
    wake: Notify,
    /// Rows not yet published, as of the last pass.
    pub pending: AtomicI64,
    /// Age in ms of the oldest of them (0: none), as of the last pass.
    pub oldest_ms: AtomicI64,
    pub published: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// Adds `payload` for `topic`/`key` to the outbox inside the caller's transaction.
pub async fn enqueue(tx: &mut PgConnection, topic: &str, key: &str, payload: &[u8]) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3) RETURNING id")
        .bind(topic)
        .bind(key)
        .bind(payload)
        .fetch_one(tx)
        .await
}

/// Why a relay pass published nothing.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox schema: {0}")]
    Schema(String),
    #[error("outbox (primary): {0}")]
    Db(#[from] sqlx::Error),
    /// The brokers refused every record of the batch (the first refusal).
    #[error("publishing the outbox: {0}")]
    Publish(String),
}

/// Rows waiting for the bus and the age of the oldest.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backlog {
    pub pending: i64,
    pub oldest: Option<Duration>,
}

impl Outbox {
    /// Reads the backlog from the primary (the partial index on pending rows keeps it
    /// cheap) and keeps it for `/metrics`.
    pub async fn backlog(&self, db: &DbRouter) -> Result<Backlog, OutboxError> {
        crate::bss::ensure_schema(db).await.map_err(|e| OutboxError::Schema(e.to_string()))?;
        let (pending, oldest_secs): (i64, Option<f64>) =
            sqlx::query_as("SELECT count(*), extract(epoch FROM now() - min(created_at))::float8 FROM outbox WHERE published_at IS NULL")
                .fetch_one(db.write())
                .await?;
        let oldest = oldest_secs.map(|s| Duration::from_secs_f64(s.max(0.0)));
        self.pending.store(pending, Ordering::Relaxed);
        self.oldest_ms.store(oldest.map_or(0, |d| d.as_millis() as i64), Ordering::Relaxed);
        Ok(Backlog { pending, oldest })
    }

    /// A write committed: publish soon rather than at the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: claims up to [`BATCH`] pending rows in id order, publishes them, marks the
    /// acknowledged ones published and records the failures. Returns how many were published.
    pub async fn relay_once(&self, db: &DbRouter, streams: &Streams) -> Result<usize, OutboxError> {
        crate::bss::ensure_schema(db).await.map_err(|e| OutboxError::Schema(e.to_string()))?;
        let mut tx = db.write().begin().await?;
        let rows: Vec<(i64, String, String, Vec<u8>)> =
            sqlx::query_as("SELECT id, topic, key, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED")
                .bind(BATCH)
                .fetch_all(&mut *tx)
                .await?;
        let mut published = 0;
        let mut first_error = None;
        if !rows.is_empty() {
            let results = streams.publish_batch(rows.iter().map(|r| (r.1.as_str(), r.2.as_str(), r.3.as_slice()))).await;
            let (mut ok, mut failed, mut errors) = (vec![], vec![], vec![]);
            for (row, r) in rows.iter().zip(results) {
                match r {
                    Ok(()) => ok.push(row.0),
                    Err(e) => {
                        first_error.get_or_insert_with(|| e.to_string());
                        failed.push(row.0);
                        errors.push(e.to_string());
                    }
                }
            }
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)").bind(&ok).execute(&mut *tx).await?;
            sqlx::query("UPDATE outbox o SET attempts = o.attempts + 1, last_error = f.err FROM unnest($1::bigint[], $2::text[]) AS f(id, err) WHERE o.id = f.id")
                .bind(&failed)
                .bind(&errors)
                .execute(&mut *tx)
                .await?;
            published = ok.len();
        }
        tx.commit().await?;
        self.published.fetch_add(published as u64, Ordering::Relaxed);
        let _ = self.backlog(db).await;
        *self.last_error.lock().unwrap() = first_error.clone();
        match first_error {
            Some(e) if published == 0 => Err(OutboxError::Publish(e)),
            _ => Ok(published),
        }
    }

    /// Relays until `cancel`: right after a write, else every second; after a failure with
    /// backoff (1 s … 30 s).
    pub async fn run(self: Arc<Self>, db: Arc<DbRouter>, streams: Arc<Streams>, cancel: CancellationToken) {
        let mut backoff = Duration::from_secs(1);
        loop {
            match self.relay_once(&db, &streams).await {
                // A full batch: more may be waiting.
                Ok(n) if n as i64 == BATCH => continue,
                Ok(_) => backoff = Duration::from_secs(1),
                Err(e) => {
                    tracing::debug!(error = %e, "outbox relay");
                    *self.last_error.lock().unwrap() = Some(e.to_string());
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }
}
