//! A small SVG line chart shared by the Database, Streams and Gateway pages: one series per
//! name, time on x, optional dashed reference lines (seed claims, thresholds).
//! Series colours are classes `c0`…`c3` in the stylesheet (the CSP forbids inline styles).
use leptos::prelude::*;

const COLORS: usize = 4;

#[component]
pub fn LineChart(
    title: String,
    unit: &'static str,
    names: Vec<String>,
    /// (unix ms, one value per name)
    points: Vec<(u64, Vec<f64>)>,
    #[prop(optional)] refs: Vec<(f64, &'static str)>,
    testid: String,
) -> impl IntoView {
    let (w, h, pad) = (720.0, 180.0, 36.0);
    let max_v = points
        .iter()
        .flat_map(|p| p.1.iter().copied())
        .chain(refs.iter().map(|r| r.0))
        .fold(0.0_f64, f64::max)
        .max(1e-9)
        * 1.15;
    let (t0, t1) = (points.first().map(|p| p.0).unwrap_or(0), points.last().map(|p| p.0).unwrap_or(1));
    let span = (t1.saturating_sub(t0)).max(1) as f64;
    let x = move |t: u64| pad + (t.saturating_sub(t0)) as f64 / span * (w - pad - 8.0);
    let y = move |v: f64| h - 20.0 - v / max_v * (h - 30.0);
    let value = |p: &(u64, Vec<f64>), i: usize| p.1.get(i).copied().unwrap_or(f64::NAN);
    let lines = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            // A gap where the series has no sample (NaN): one polyline per run of samples.
            segments(points.iter().map(|p| (p.0, value(p, i))))
                .into_iter()
                .map(|run| {
                    let pts = polyline_points(&run, x, y);
                    view! { <polyline points=pts class=format!("series c{}", i % COLORS) data-series=name.clone()/> }
                })
                .collect_view()
        })
        .collect_view();
    let refs = refs
        .into_iter()
        .map(|(v, label)| view! {
            <line x1=pad x2=w - 8.0 y1=y(v) y2=y(v) class="ref"/>
            <text x=w - 10.0 y=y(v) - 4.0 text-anchor="end" class="ref-label">{label}</text>
        })
        .collect_view();
    let latest = points.last().map(|p| p.1.clone()).unwrap_or_default();
    let seconds = if points.len() > 1 { (t1 - t0) / 1000 } else { 0 };
    let alt = text_alternative(&title, unit, &names, &points, seconds);
    view! {
        <figure class="chart" data-testid=testid.clone()>
            <figcaption>{title.clone()} <span class="muted">" (last " {seconds} " s)"</span></figcaption>
            <svg viewBox=format!("0 0 {w} {h}") role="img" aria-label=alt>
                <text x="4" y="14" class="axis" data-testid=format!("{testid}-max")>{format!("{:.2} {unit}", max_v)}</text>
                <text x="4" y=h - 22.0 class="axis">"0"</text>
                {refs}
                {lines}
            </svg>
            <ul class="legend">
                {names.iter().enumerate().map(|(i, n)| view! {
                    <li><span class=format!("swatch c{}", i % COLORS)></span>
                        {n.clone()} ": " <b data-testid=format!("{testid}-{n}")>{shown(latest.get(i).copied().unwrap_or(f64::NAN))}</b> " " {unit}</li>
                }).collect_view()}
            </ul>
        </figure>
    }
}


/// Chart values from samples that may be missing: a missing one is a gap (NaN), never 0.
pub fn gaps(values: &[Option<f64>]) -> Vec<f64> {
    values.iter().map(|v| v.unwrap_or(f64::NAN)).collect()
}

/// The `points` of one run's polyline. A lone sample between gaps becomes a short tick: a
/// one-point polyline draws nothing.
fn polyline_points(run: &[(u64, f64)], x: impl Fn(u64) -> f64, y: impl Fn(f64) -> f64) -> String {
    match run {
        [(t, v)] => format!("{:.1},{:.1} {:.1},{:.1}", x(*t) - 1.5, y(*v), x(*t) + 1.5, y(*v)),
        _ => run.iter().map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v))).collect::<Vec<_>>().join(" "),
    }
}

/// Runs of consecutive samples, split where a value is missing (NaN).
pub fn segments(values: impl Iterator<Item = (u64, f64)>) -> Vec<Vec<(u64, f64)>> {
    let mut runs: Vec<Vec<(u64, f64)>> = vec![];
    let mut open = false;
    for (t, v) in values {
        if v.is_nan() {
            open = false;
        } else if open {
            runs.last_mut().expect("an open run").push((t, v));
        } else {
            runs.push(vec![(t, v)]);
            open = true;
        }
    }
    runs
}

/// A value for reading: two decimals, or "–" when there is no sample.
fn shown(v: f64) -> String {
    if v.is_nan() { "–".into() } else { format!("{v:.2}") }
}

/// What a screen reader says for a chart: per series its current value and its range over
/// the window ("Replication lag, last 300 s: replica-1 now 0.02 s (0.00 to 0.10); …").
pub fn text_alternative(title: &str, unit: &str, names: &[String], points: &[(u64, Vec<f64>)], seconds: u64) -> String {
    if points.is_empty() {
        return format!("{title}: no data yet");
    }
    let series = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let vals = points.iter().map(|p| p.1.get(i).copied().unwrap_or(f64::NAN)).filter(|v| !v.is_nan());
            let (lo, hi) = vals.clone().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
            if lo > hi {
                return format!("{n} no samples");
            }
            let now = points.last().and_then(|p| p.1.get(i)).copied().unwrap_or(f64::NAN);
            format!("{n} now {} {unit} ({lo:.2} to {hi:.2})", shown(now))
        })
        .collect::<Vec<_>>()
        .join("; ");
    format!("{title}, last {seconds} s: {series}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chart_reads_as_its_current_values_and_ranges() {
        let names = vec!["replica-1".to_string(), "replica-2".to_string()];
        let points = vec![(1_000, vec![0.5, 2.0]), (2_000, vec![0.1, 3.0]), (3_000, vec![0.25, 1.0])];
        assert_eq!(
            super::text_alternative("Lag", "s", &names, &points, 2),
            "Lag, last 2 s: replica-1 now 0.25 s (0.10 to 0.50); replica-2 now 1.00 s (1.00 to 3.00)"
        );
        assert_eq!(super::text_alternative("Lag", "s", &names, &[], 0), "Lag: no data yet");
        // Gaps (no sample at a step) are neither zeros nor part of the range.
        let gappy = vec![(1_000, vec![0.5, f64::NAN]), (2_000, vec![f64::NAN, f64::NAN]), (3_000, vec![0.25, f64::NAN])];
        assert_eq!(super::text_alternative("Lag", "s", &names, &gappy, 2), "Lag, last 2 s: replica-1 now 0.25 s (0.25 to 0.50); replica-2 no samples");
    }

    #[test]
    fn a_series_with_gaps_is_drawn_as_separate_runs() {
        let v = [(1, 1.0), (2, f64::NAN), (3, 3.0), (4, 4.0), (5, f64::NAN), (6, f64::NAN)];
        assert_eq!(super::segments(v.into_iter()), vec![vec![(1, 1.0)], vec![(3, 3.0), (4, 4.0)]]);
        assert!(super::segments([(1, f64::NAN)].into_iter()).is_empty());
    }

    #[test]
    fn a_lone_sample_is_drawn_as_a_tick() {
        let (x, y) = (|t: u64| t as f64, |v: f64| v);
        assert_eq!(super::polyline_points(&[(10, 2.0)], x, y), "8.5,2.0 11.5,2.0");
        assert_eq!(super::polyline_points(&[(10, 2.0), (20, 3.0)], x, y), "10.0,2.0 20.0,3.0");
    }
}
