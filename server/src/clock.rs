//! The one wall clock of the server: milliseconds since the epoch for samples, events and
//! locks; RFC 3339 for what people read.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// Whole seconds from an engine timestamp (RFC 3339, any fraction) until now; `None` when
/// it does not parse or lies ahead.
pub fn secs_since(rfc3339: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339_weak(rfc3339.split('.').next().unwrap_or(rfc3339).trim_end_matches('Z')).ok()?;
    std::time::SystemTime::now().duration_since(t).ok().map(|d| d.as_secs())
}
