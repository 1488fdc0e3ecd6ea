//! The routing decision, as pure functions over what the monitor last saw: which backend a
//! read goes to, and when a replica is taken out or let back in. No I/O here, so every rule
//! is unit-tested.
use std::time::Duration;

use serde::Serialize;

/// A PostgreSQL WAL position (`pg_lsn`), as a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// Parses PostgreSQL's `X/Y` text form (two hex halves).
    /// PostgreSQL's text form `X/Y`: two groups of 1 to 8 hex digits, nothing else (no
    /// sign, no spaces, no digits shifted out of the 64 bits).
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.split_once('/')?;
        let half = |p: &str| (1..=8).contains(&p.len()).then_some(()).filter(|_| p.bytes().all(|b| b.is_ascii_hexdigit())).and_then(|_| u32::from_str_radix(p, 16).ok());
        Some(Lsn((u64::from(half(hi)?) << 32) | u64::from(half(lo)?)))
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub max_lag_bytes: u64,
    pub max_lag: Duration,
    /// A taken-out replica comes back only below this fraction of both limits, so a
    /// replica hovering at the limit does not flap in and out.
    pub readmit_fraction: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { max_lag_bytes: 16 * 1024 * 1024, max_lag: Duration::from_secs(2), readmit_fraction: 0.5 }
    }
}

/// One replica as last sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Why the check failed (down, timeout); `None` when the replica answered.
    pub unreachable: Option<String>,
    pub in_recovery: bool,
    pub replay_lsn: Option<Lsn>,
    /// WAL not replayed yet; None unless both the primary's and the replica's positions
    /// were read (and the replica answered as a standby).
    pub lag_bytes: Option<u64>,
    /// How far replay is behind; None unless the replica answered as a standby with a
    /// replay position.
    pub lag: Option<Duration>,
}

pub use app::api::Admission;

/// Applies one sample to a replica's admission, with hysteresis on lag.
pub fn admit(prev: &Admission, s: &Sample, t: &Thresholds, now_ms: u64) -> Admission {
    let out = |reason: String| match prev {
        // Keep the original time while the reason stays the same kind.
        Admission::Out { reason: r, since_ms } if r.split(':').next() == reason.split(':').next() => {
            Admission::Out { reason, since_ms: *since_ms }
        }
        _ => Admission::Out { reason, since_ms: now_ms },
    };
    if let Some(e) = &s.unreachable {
        return out(format!("down: {e}"));
    }
    if !s.in_recovery {
        return out("not a standby: it left recovery (promoted?)".into());
    }
    // A standby that answered is judged on what is known: with the primary down its byte
    // lag cannot be read, but it cannot fall further behind either (no new WAL), so the
    // unknown part does not eject it; the seconds still judge.
    let (bytes, lag) = (s.lag_bytes.unwrap_or(0), s.lag.unwrap_or_default());
    let over = bytes > t.max_lag_bytes || lag > t.max_lag;
    let under_readmit = (bytes as f64) <= t.max_lag_bytes as f64 * t.readmit_fraction
        && lag.as_secs_f64() <= t.max_lag.as_secs_f64() * t.readmit_fraction;
    let lag_reason = || {
        let bytes = s.lag_bytes.map_or_else(|| "? bytes (primary unknown)".to_string(), |b| format!("{b} bytes"));
        format!("lag: {bytes} / {:.1} s behind (limit {} bytes / {:.1} s)", lag.as_secs_f64(), t.max_lag_bytes, t.max_lag.as_secs_f64())
    };
    match prev {
        Admission::In if over => out(lag_reason()),
        Admission::In => Admission::In,
        Admission::Out { reason, .. } if reason.starts_with("lag") && !under_readmit => out(lag_reason()),
        Admission::Out { .. } if over => out(lag_reason()),
        Admission::Out { .. } => Admission::In,
    }
}

/// Where one read goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    Replica(usize),
    /// No usable replica (or none caught up to the session's write): the primary serves.
    Primary { fallback: bool },
}

/// Chooses a replica round-robin among those admitted and, for read-your-writes, replayed
/// at least to `min_lsn`; the primary otherwise.
pub fn choose_read(replicas: &[(Admission, Option<Lsn>)], counter: usize, min_lsn: Option<Lsn>) -> Target {
    let usable: Vec<usize> = replicas
        .iter()
        .enumerate()
        .filter(|(_, (a, lsn))| *a == Admission::In && min_lsn.is_none_or(|m| lsn.is_some_and(|l| l >= m)))
        .map(|(i, _)| i)
        .collect();
    if usable.is_empty() {
        Target::Primary { fallback: true }
    } else {
        Target::Replica(usable[counter % usable.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(lag_bytes: u64, lag_s: f64) -> Sample {
        Sample { unreachable: None, in_recovery: true, replay_lsn: Some(Lsn(100)), lag_bytes: Some(lag_bytes), lag: Some(Duration::from_secs_f64(lag_s)) }
    }

    #[test]
    fn lsn_parses_and_prints() {
        assert_eq!(Lsn::parse("0/3000148"), Some(Lsn(0x3000148)));
        assert_eq!(Lsn::parse("1/0"), Some(Lsn(1 << 32)));
        assert_eq!(Lsn(0x1_0000_0010).to_string(), "1/10");
        assert_eq!(Lsn::parse("nope"), None);
        assert_eq!(Lsn::parse("FFFFFFFF/ffffffff"), Some(Lsn(u64::MAX)));
        // What from_str_radix alone let through: signs, spaces, digits shifted out.
        for bad in ["+1/2", "1/-2", " 0/1", "0/1 ", "123456789/0", "0/123456789", "/1", "1/", "0/1/2"] {
            assert_eq!(Lsn::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lag_over_the_limit_takes_a_replica_out_with_a_reason() {
        let t = Thresholds::default();
        let a = admit(&Admission::In, &sample(0, 5.0), &t, 1000);
        match a {
            Admission::Out { reason, since_ms } => {
                assert!(reason.starts_with("lag: 0 bytes / 5.0 s"), "{reason}");
                assert_eq!(since_ms, 1000);
            }
            _ => panic!("should be out"),
        }
    }

    #[test]
    fn hysteresis_keeps_it_out_until_well_below_the_limit() {
        let t = Thresholds::default(); // 2 s limit, back in below 1 s
        let out = admit(&Admission::In, &sample(0, 3.0), &t, 1000);
        let still = admit(&out, &sample(0, 1.5), &t, 2000);
        assert!(matches!(&still, Admission::Out { since_ms: 1000, .. }), "{still:?}");
        assert_eq!(admit(&still, &sample(0, 0.2), &t, 3000), Admission::In);
    }

    #[test]
    fn with_the_primary_down_a_standby_is_judged_on_its_seconds() {
        let t = Thresholds::default();
        let mut s = sample(0, 0.3);
        s.lag_bytes = None; // the primary's position could not be read
        assert_eq!(admit(&Admission::In, &s, &t, 1), Admission::In, "an unknown byte lag does not eject");
        s.lag = Some(Duration::from_secs(5));
        match admit(&Admission::In, &s, &t, 1) {
            Admission::Out { reason, .. } => assert!(reason.starts_with("lag: ? bytes (primary unknown) / 5.0 s"), "{reason}"),
            a => panic!("5 s behind should be out: {a:?}"),
        }
    }

    #[test]
    fn down_or_promoted_replicas_are_out() {
        let t = Thresholds::default();
        let mut s = sample(0, 0.0);
        s.unreachable = Some("connection refused".into());
        assert!(matches!(admit(&Admission::In, &s, &t, 1), Admission::Out { reason, .. } if reason.contains("connection refused")));
        let mut s = sample(0, 0.0);
        s.in_recovery = false;
        assert!(matches!(admit(&Admission::In, &s, &t, 1), Admission::Out { reason, .. } if reason.contains("standby")));
        // Back up and caught up: in again.
        let back = admit(&Admission::Out { reason: "down: x".into(), since_ms: 1 }, &sample(0, 0.0), &t, 2);
        assert_eq!(back, Admission::In);
    }

    #[test]
    fn reads_round_robin_over_admitted_replicas() {
        let r = vec![(Admission::In, Some(Lsn(10))), (Admission::Out { reason: "lag".into(), since_ms: 0 }, None), (Admission::In, Some(Lsn(10)))];
        let picks: Vec<Target> = (0..4).map(|c| choose_read(&r, c, None)).collect();
        assert_eq!(picks, vec![Target::Replica(0), Target::Replica(2), Target::Replica(0), Target::Replica(2)]);
    }

    #[test]
    fn no_usable_replica_falls_back_to_the_primary() {
        let r = vec![(Admission::Out { reason: "down".into(), since_ms: 0 }, None)];
        assert_eq!(choose_read(&r, 0, None), Target::Primary { fallback: true });
        assert_eq!(choose_read(&[], 0, None), Target::Primary { fallback: true });
    }

    #[test]
    fn read_your_writes_only_uses_replicas_that_replayed_the_write() {
        let r = vec![(Admission::In, Some(Lsn(5))), (Admission::In, Some(Lsn(9)))];
        assert_eq!(choose_read(&r, 0, Some(Lsn(8))), Target::Replica(1));
        assert_eq!(choose_read(&r, 1, Some(Lsn(8))), Target::Replica(1));
        assert_eq!(choose_read(&r, 0, Some(Lsn(10))), Target::Primary { fallback: true });
    }
}
