//! `--plot FILE.svg`: two panels drawn with plotters' SVG backend (no
//! bitmap, no font files: text is SVG `<text>` sized by plotters' built-in
//! estimate, so it builds and runs without fontconfig).
//!
//! - Top: latency by percentile on a log "nines" axis (x = -log10(1 - q):
//!   0 is p0, 1 is p90, 2 is p99, 3 is p99.9 ...), log-scale milliseconds,
//!   one line per target over all its rounds (open loop: also the
//!   uncorrected service time, dashed).
//! - Bottom: completed requests per second over time, one line per target
//!   and round.

use std::path::Path;

use hdrhistogram::Histogram;
use plotters::prelude::*;

use super::error::BenchError;
use super::record::histogram;
use super::run::RunResult;

const SIZE: (u32, u32) = (1100, 900);

/// `(nines, ms)` points.
type Curve = Vec<(f64, f64)>;

/// `x` nines as a percentile label: 2 -> "p99", 2.5 -> "p99.68".
pub fn nines_label(x: f64) -> String {
    let q = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.ceil() as usize).saturating_sub(2);
    let text = format!("{q:.digits$}");
    format!("p{text}")
}

/// `(nines, ms)` points of `h` from p0 up to the deepest percentile its
/// sample count resolves (at most 6 nines).
pub fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let deepest = (h.len() as f64).log10().clamp(1.0, 6.0);
    let steps = (deepest / 0.02).ceil() as usize;
    (0..=steps)
        .map(|i| {
            let x = (i as f64 * 0.02).min(deepest);
            let q = 1.0 - 10f64.powf(-x);
            (x, (h.value_at_quantile(q) as f64 / 1e6).max(1e-3))
        })
        .collect()
}

fn fail(path: &Path, e: impl std::fmt::Display) -> BenchError {
    BenchError::Output { what: "plot", path: path.display().to_string(), problem: e.to_string() }
}

pub fn draw(path: &Path, labels: &[String], results: &[RunResult], open_loop: bool) -> Result<(), BenchError> {
    let merged: Vec<(String, Histogram<u64>, Histogram<u64>)> = labels
        .iter()
        .map(|l| {
            let (mut lat, mut svc) = (histogram(), histogram());
            for r in results.iter().filter(|r| &r.label == l) {
                let _ = lat.add(&r.rec.latency);
                let _ = svc.add(&r.rec.service);
            }
            (l.clone(), lat, svc)
        })
        .collect();
    let curves: Vec<(String, Curve, Curve)> =
        merged.iter().map(|(l, lat, svc)| (l.clone(), curve(lat), curve(svc))).collect();
    let all = curves.iter().flat_map(|(_, a, b)| a.iter().chain(b.iter()));
    let (mut lo, mut hi, mut xmax) = (f64::MAX, 0f64, 1f64);
    for &(x, y) in all {
        lo = lo.min(y);
        hi = hi.max(y);
        xmax = xmax.max(x);
    }
    if hi <= 0.0 {
        (lo, hi) = (0.001, 1.0);
    }
    let (lo, hi) = (lo / 1.5, hi * 1.5);

    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| fail(path, e))?;
    let (top, bottom) = root.split_vertically(SIZE.1 * 55 / 100);

    let mut chart = ChartBuilder::on(&top)
        .caption("latency by percentile", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..xmax.ceil(), (lo..hi).log_scale())
        .map_err(|e| fail(path, e))?;
    chart
        .configure_mesh()
        .x_labels(xmax.ceil() as usize + 1)
        .x_label_formatter(&|x| nines_label(*x))
        .y_labels(12)
        .y_label_formatter(&|y| format!("{y}"))
        .x_desc(if open_loop { "percentile (latency from intended send time)" } else { "percentile" })
        .y_desc("ms (log scale)")
        .draw()
        .map_err(|e| fail(path, e))?;
    for (i, (label, lat, svc)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(lat.iter().copied(), color.stroke_width(2)))
            .map_err(|e| fail(path, e))?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        if open_loop {
            chart
                .draw_series(DashedLineSeries::new(svc.iter().copied(), 6, 4, color.stroke_width(1)))
                .map_err(|e| fail(path, e))?
                .label(format!("{label} service time"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(1)));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(path, e))?;

    let tmax = results.iter().flat_map(|r| r.series.iter().map(|s| s.t + 1)).max().unwrap_or(1).max(1) as f64;
    let omax = results.iter().flat_map(|r| r.series.iter().map(|s| s.ops)).max().unwrap_or(1).max(1);
    let mut tp = ChartBuilder::on(&bottom)
        .caption("throughput", ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..tmax, 0u64..omax + omax / 10)
        .map_err(|e| fail(path, e))?;
    tp.configure_mesh().x_desc("second of the run").y_desc("completed ops/s").draw().map_err(|e| fail(path, e))?;
    for (i, label) in labels.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        for (n, r) in results.iter().filter(|r| &r.label == label).enumerate() {
            let series = tp
                // Each second's count at the middle of that second.
                .draw_series(LineSeries::new(
                    r.series.iter().map(|s| (f64::from(s.t) + 0.5, s.ops)),
                    color.stroke_width(2),
                ))
                .map_err(|e| fail(path, e))?;
            if n == 0 {
                series
                    .label(label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            }
        }
    }
    tp.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| fail(path, e))?;
    root.present().map_err(|e| fail(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis_labels() {
        assert_eq!(nines_label(0.0), "p0");
        assert_eq!(nines_label(1.0), "p90");
        assert_eq!(nines_label(2.0), "p99");
        assert_eq!(nines_label(3.0), "p99.9");
        assert_eq!(nines_label(4.0), "p99.99");
    }

    #[test]
    fn curve_rises_and_stops_at_the_resolved_depth() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000_000).unwrap();
        }
        let c = curve(&h);
        assert_eq!(c.first().map(|p| p.0), Some(0.0));
        assert!((c.last().unwrap().0 - 3.0).abs() < 1e-9, "1000 samples resolve 3 nines");
        assert!(c.windows(2).all(|w| w[1].1 >= w[0].1), "non-decreasing");
        let p99 = c.iter().find(|p| (p.0 - 2.0).abs() < 1e-9).unwrap().1;
        assert!((989.0..=992.0).contains(&p99), "p99 of 1..1000 ms is ~990 ms: {p99}");
        assert!(curve(&histogram()).is_empty());
    }
}
