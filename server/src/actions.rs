//! One action at a time per target. A stack-wide action (`up`, `down`) conflicts with
//! every service action and vice versa; two actions on different services do not.
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use app::{api::RunningAction, error::AppError};

use crate::runtime::supervisor::now_ms;

pub const STACK: &str = "stack";

#[derive(Default, Debug)]
pub struct ActionLocks {
    running: Mutex<BTreeMap<String, RunningAction>>,
}

/// Releases the lock when dropped, so a panicking or failing action never leaves it held.
/// Owns its lock table, so it can move into a background task (`up`, `down`).
#[derive(Debug)]
pub struct ActionGuard {
    locks: Arc<ActionLocks>,
    target: String,
}

impl Drop for ActionGuard {
    fn drop(&mut self) {
        self.locks.running.lock().unwrap().remove(&self.target);
    }
}

impl ActionLocks {
    /// Takes the lock for `target` or says who holds a conflicting one.
    pub fn acquire(self: &Arc<Self>, target: &str, action: &str, by: &str) -> Result<ActionGuard, AppError> {
        let mut running = self.running.lock().unwrap();
        let conflict = running.get(target).or_else(|| {
            if target == STACK {
                running.values().next()
            } else {
                running.get(STACK)
            }
        });
        if let Some(r) = conflict {
            let secs = now_ms().saturating_sub(r.since_ms) / 1000;
            return Err(AppError::Busy(format!("{} {} is in progress by {} since {} s ago", r.target, r.action, r.by, secs)));
        }
        running.insert(
            target.to_string(),
            RunningAction { target: target.into(), action: action.into(), by: by.into(), since_ms: now_ms() },
        );
        Ok(ActionGuard { locks: self.clone(), target: target.into() })
    }

    pub fn running(&self) -> Vec<RunningAction> {
        self.running.lock().unwrap().values().cloned().collect()
    }
}

/// Open server-sent-event streams, capped per user and in total: each stream holds a slot
/// until its browser goes away or the server shuts down.
#[derive(Debug)]
pub struct StreamSlots {
    per_user: usize,
    total: usize,
    open: Mutex<BTreeMap<String, usize>>,
}

/// A stream's place; released when dropped (the stream ended).
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    user: String,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap();
        if let Some(n) = open.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.user);
            }
        }
    }
}

impl StreamSlots {
    pub fn new(per_user: usize, total: usize) -> Arc<Self> {
        Arc::new(Self { per_user, total, open: Mutex::new(BTreeMap::new()) })
    }

    /// A slot for one more stream of `user`, or why not.
    pub fn acquire(self: &Arc<Self>, user: &str) -> Result<StreamSlot, StreamsFull> {
        let mut open = self.open.lock().unwrap();
        if open.values().sum::<usize>() >= self.total {
            return Err(StreamsFull::Panel(self.total));
        }
        let n = open.entry(user.to_string()).or_default();
        if *n >= self.per_user {
            return Err(StreamsFull::User { user: user.to_string(), max: self.per_user });
        }
        *n += 1;
        Ok(StreamSlot { slots: self.clone(), user: user.to_string() })
    }
}

/// Why one more live stream is refused (HTTP 429).
#[derive(Debug, thiserror::Error)]
pub enum StreamsFull {
    #[error("{0} live streams are open, the most this panel serves")]
    Panel(usize),
    #[error("{user} has {max} live streams open, the most one user may have")]
    User { user: String, max: usize },
}

/// The background run (demo, drill) in progress or last started in this process: its live
/// state, which the page reads, and the token that cancels it.
pub struct RunSlot<T> {
    current: Mutex<Option<(Arc<Mutex<T>>, tokio_util::sync::CancellationToken)>>,
}

impl<T> Default for RunSlot<T> {
    fn default() -> Self {
        Self { current: Mutex::new(None) }
    }
}

impl<T: Clone> RunSlot<T> {
    /// Makes `state` the current run; returns its cancel token.
    pub fn start(&self, state: Arc<Mutex<T>>) -> tokio_util::sync::CancellationToken {
        let cancel = tokio_util::sync::CancellationToken::new();
        *self.current.lock().unwrap() = Some((state, cancel.clone()));
        cancel
    }

    /// A copy of the current run's state, if any.
    pub fn snapshot(&self) -> Option<T> {
        self.current.lock().unwrap().as_ref().map(|(s, _)| s.lock().unwrap().clone())
    }

    /// Cancels the current run if `running` says it still runs; whether it did.
    /// Cancels the run if `running` says it still runs, else says there is none (`what`:
    /// "demo", "drill").
    pub fn cancel_running(&self, running: impl Fn(&T) -> bool, what: &str) -> Result<(), AppError> {
        if self.cancel_if(running) {
            Ok(())
        } else {
            Err(AppError::Invalid(format!("no {what} is running")))
        }
    }

    pub fn cancel_if(&self, running: impl Fn(&T) -> bool) -> bool {
        match &*self.current.lock().unwrap() {
            Some((s, cancel)) if running(&s.lock().unwrap()) => {
                cancel.cancel();
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_slots_cap_per_user_and_in_total_and_free_on_drop() {
        let s = StreamSlots::new(2, 3);
        let a1 = s.acquire("alice").unwrap();
        let _a2 = s.acquire("alice").unwrap();
        assert!(s.acquire("alice").unwrap_err().to_string().contains("alice has 2"));
        let _b1 = s.acquire("bob").unwrap();
        assert!(s.acquire("carol").unwrap_err().to_string().contains("3 live streams"));
        drop(a1);
        assert!(s.acquire("alice").is_ok());
    }

    #[test]
    fn same_target_conflicts_and_names_the_holder() {
        let l = Arc::new(ActionLocks::default());
        let _g = l.acquire("kafka-1", "restart", "alice").unwrap();
        let e = l.acquire("kafka-1", "stop", "bob").unwrap_err().to_string();
        assert!(e.contains("kafka-1 restart is in progress by alice"), "{e}");
    }

    #[test]
    fn different_services_run_together_but_not_with_the_stack() {
        let l = Arc::new(ActionLocks::default());
        let a = l.acquire("kafka-1", "restart", "alice").unwrap();
        let _b = l.acquire("kafka-2", "restart", "bob").unwrap();
        assert!(l.acquire(STACK, "down", "carol").is_err());
        drop(a);
        assert_eq!(l.running().len(), 1);
    }

    #[test]
    fn stack_action_blocks_services_and_releases_on_drop() {
        let l = Arc::new(ActionLocks::default());
        let g = l.acquire(STACK, "up", "alice").unwrap();
        assert!(l.acquire("envoy", "restart", "bob").unwrap_err().to_string().contains("stack up"));
        drop(g);
        assert!(l.acquire("envoy", "restart", "bob").is_ok());
    }
}
