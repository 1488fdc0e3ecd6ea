//! `make bench`'s goals in one table. Each bench prints one `GOAL` line per goal it
//! measures (tab-separated: what, measured, goal, met / not met); `dev/scripts/bench.sh`
//! gathers them into one table at the end and keeps the last run's lines, with the date,
//! in `$BSS_CACHE/bench/last.tsv`, which the verify suite shows beside the seed's claims.
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq)]
pub struct Goal {
    pub what: String,
    pub measured: String,
    pub goal: String,
    pub met: bool,
}

const TAG: &str = "GOAL";
/// A figure reported beside the goals, with no goal of its own (e.g. the single hop's
/// latency under the end-to-end figures): parsed as a [`Goal`] whose `goal` is empty.
const FIGURE: &str = "FIGURE";

impl Goal {
    pub fn is_figure(&self) -> bool {
        self.goal.is_empty()
    }
}

/// The line a bench prints for one goal.
pub fn line(what: &str, measured: &str, goal: &str, met: bool) -> String {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    format!("{TAG}\t{}\t{}\t{}\t{}", clean(what), clean(measured), clean(goal), if met { "met" } else { "not met" })
}

/// The line a bench prints for a figure without a goal.
pub fn figure_line(what: &str, measured: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n'], " ");
    format!("{FIGURE}\t{}\t{}", clean(what), clean(measured))
}

/// Prints [`figure_line`] on stdout.
pub fn figure(what: &str, measured: &str) {
    println!("{}", figure_line(what, measured));
}

/// Prints [`line`] on stdout.
pub fn report(what: &str, measured: &str, goal: &str, met: bool) {
    println!("{}", line(what, measured, goal, met));
}

/// Every goal and figure line in `text`; other lines are ignored, malformed ones too.
pub fn parse(text: &str) -> Vec<Goal> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            match f.as_slice() {
                [TAG, what, measured, goal, met @ ("met" | "not met")] => {
                    Some(Goal { what: what.to_string(), measured: measured.to_string(), goal: goal.to_string(), met: *met == "met" })
                }
                [FIGURE, what, measured] => Some(Goal { what: what.to_string(), measured: measured.to_string(), goal: String::new(), met: true }),
                _ => None,
            }
        })
        .collect()
}

/// Where bench.sh keeps the last run's goal lines.
pub fn last_run_path() -> PathBuf {
    let cache = std::env::var_os("BSS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/bss-control"));
    cache.join("bench/last.tsv")
}

/// The last `make bench` run: its date (the file's first line, `# date`) and goals.
pub fn last_run() -> Option<(String, Vec<Goal>)> {
    let text = std::fs::read_to_string(last_run_path()).ok()?;
    let date = text.lines().next()?.strip_prefix("# ")?.trim().to_string();
    Some((date, parse(&text)))
}

/// The goal whose name starts with `prefix`, from the last run.
pub fn find<'a>(goals: &'a [Goal], prefix: &str) -> Option<&'a Goal> {
    goals.iter().find(|g| g.what.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_noise_is_ignored() {
        let text = format!(
            "streams bench: ...\n{}\n{}\nGOAL\tbroken\n{}\n",
            line("gateway: Envoy direct rate", "8 412 req/s", "≥ 100 000 req/s (seed)", false),
            line("read scaling, 8 clients", "1.04×", "≥ 3× (seed)", false),
            line("provisioning\tratio", "0.71", "≤ 0.80", true)
        ) + &figure_line("single hop at 100 ev/s", "8.6 / 27.0 ms")
            + "\nFIGURE\tno value\n";
        let g = parse(&text);
        assert_eq!(g.len(), 4);
        assert!(g[3].is_figure() && !g[0].is_figure());
        assert_eq!((g[3].what.as_str(), g[3].measured.as_str()), ("single hop at 100 ev/s", "8.6 / 27.0 ms"));
        assert_eq!(g[0], Goal { what: "gateway: Envoy direct rate".into(), measured: "8 412 req/s".into(), goal: "≥ 100 000 req/s (seed)".into(), met: false });
        assert_eq!(g[2].what, "provisioning ratio", "a tab inside a field cannot split it");
        assert!(g[2].met);
        assert_eq!(find(&g, "read scaling").unwrap().measured, "1.04×");
        assert!(find(&g, "nothing").is_none());
    }
}
