//! Open-loop load shapes: the request rate as a function of time, and the
//! pacer that turns a rate curve into each request's *intended* send time.
//!
//! Invariants:
//! - `Shape::rate` is never negative;
//! - a `Pacer` hands out non-decreasing intended times whose count over any
//!   interval is the integral of its share of the rate over that interval
//!   (to within one request), so latency measured from those times is the
//!   coordinated-omission-corrected latency.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    Constant {
        rate: f64,
    },
    /// From `from` to `to` over `over`, then `to`.
    Linear {
        from: f64,
        to: f64,
        over: f64,
    },
    /// `start`, plus `step` more every `every` seconds.
    Step {
        start: f64,
        step: f64,
        every: f64,
    },
    /// `base`, plus `extra` during `[at, at + len)`.
    Spike {
        base: f64,
        extra: f64,
        at: f64,
        len: f64,
    },
    /// `mean + amplitude * sin(2πt / period)`, floored at 0.
    Sine {
        mean: f64,
        amplitude: f64,
        period: f64,
    },
}

impl Shape {
    /// `R`, `constant:R`, `linear:R1:R2`, `step:R0:INC:EVERY`,
    /// `spike:BASE:EXTRA:AT:FOR`, `sine:MEAN:AMPLITUDE:PERIOD`. `run` is the
    /// run length (`linear` ramps over it).
    pub fn parse(spec: &str, run: Option<Duration>) -> Result<Shape, String> {
        let parts: Vec<&str> = spec.split(':').collect();
        let rate = |t: &str| match t.trim().parse::<f64>() {
            Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
            _ => Err(format!("expected a rate in requests/s, got {t:?} in {spec:?}")),
        };
        let secs = |t: &str| match crate::config::parse_duration(t) {
            Some(d) if !d.is_zero() => Ok(d.as_secs_f64()),
            _ => Err(format!("expected a duration like 2s or 500ms, got {t:?} in {spec:?}")),
        };
        let want = |n: usize, form: &str| {
            if parts.len() == n {
                Ok(())
            } else {
                Err(format!("expected {form}, got {spec:?}"))
            }
        };
        let shape = match parts[0] {
            _ if parts.len() == 1 => Shape::Constant { rate: rate(parts[0])? },
            "constant" => {
                want(2, "constant:R")?;
                Shape::Constant { rate: rate(parts[1])? }
            }
            "linear" => {
                want(3, "linear:R1:R2")?;
                let over = run.ok_or("linear ramps over --duration, which is not given")?.as_secs_f64();
                Shape::Linear { from: rate(parts[1])?, to: rate(parts[2])?, over }
            }
            "step" => {
                want(4, "step:R0:INC:EVERY")?;
                Shape::Step { start: rate(parts[1])?, step: rate(parts[2])?, every: secs(parts[3])? }
            }
            "spike" => {
                want(5, "spike:BASE:EXTRA:AT:FOR")?;
                let at = crate::config::parse_duration(parts[3])
                    .ok_or_else(|| format!("expected a duration, got {:?} in {spec:?}", parts[3]))?;
                Shape::Spike {
                    base: rate(parts[1])?,
                    extra: rate(parts[2])?,
                    at: at.as_secs_f64(),
                    len: secs(parts[4])?,
                }
            }
            "sine" => {
                want(4, "sine:MEAN:AMPLITUDE:PERIOD")?;
                Shape::Sine { mean: rate(parts[1])?, amplitude: rate(parts[2])?, period: secs(parts[3])? }
            }
            other => return Err(format!("unknown shape {other:?}: expected constant, linear, step, spike or sine")),
        };
        if shape.peak() <= 0.0 {
            return Err(format!("{spec:?} never sends a request (rate 0)"));
        }
        Ok(shape)
    }

    /// Requests per second at `t` seconds into the run.
    pub fn rate(&self, t: f64) -> f64 {
        let r = match *self {
            Shape::Constant { rate } => rate,
            Shape::Linear { from, to, over } => from + (to - from) * (t / over).clamp(0.0, 1.0),
            Shape::Step { start, step, every } => start + step * (t / every).floor(),
            Shape::Spike { base, extra, at, len } => base + if t >= at && t < at + len { extra } else { 0.0 },
            Shape::Sine { mean, amplitude, period } => mean + amplitude * (std::f64::consts::TAU * t / period).sin(),
        };
        r.max(0.0)
    }

    /// The highest rate the shape reaches over an unbounded run (upper
    /// bound for `step`, which grows forever; used only to refuse zero).
    fn peak(&self) -> f64 {
        match *self {
            Shape::Constant { rate } => rate,
            Shape::Linear { from, to, .. } => from.max(to),
            Shape::Step { start, step, .. } => start + step,
            Shape::Spike { base, extra, .. } => base + extra,
            Shape::Sine { mean, amplitude, .. } => mean + amplitude,
        }
    }

    pub fn describe(&self) -> String {
        match *self {
            Shape::Constant { rate } => format!("{rate} req/s"),
            Shape::Linear { from, to, over } => format!("linear {from} -> {to} req/s over {over}s"),
            Shape::Step { start, step, every } => format!("step {start} req/s + {step} every {every}s"),
            Shape::Spike { base, extra, at, len } => format!("{base} req/s, +{extra} at {at}s for {len}s"),
            Shape::Sine { mean, amplitude, period } => format!("sine {mean} ± {amplitude} req/s, period {period}s"),
        }
    }
}

/// Longest step of the numeric integration: below a rate of 1/MAX_STEP per
/// lane the pacer walks the curve in these steps, so it never jumps over
/// a rise of the rate.
const MAX_STEP: f64 = 0.01;

/// One connection's share of a shape: intended send times in seconds since
/// the run started.
#[derive(Debug, Clone)]
pub struct Pacer {
    share: f64,
    next: f64,
}

impl Pacer {
    /// Lane `index` of `lanes`: it takes `1/lanes` of the rate, and its first
    /// request is staggered by `index/lanes` of an interval so that lanes
    /// do not fire together.
    pub fn new(shape: &Shape, index: usize, lanes: usize) -> Pacer {
        let share = 1.0 / lanes.max(1) as f64;
        let mut p = Pacer { share, next: 0.0 };
        p.next = p.advance_by(shape, 0.0, (index as f64 + 1.0) / lanes.max(1) as f64);
        p
    }

    /// Intended time of the next request, seconds since the start.
    pub fn next(&self) -> f64 {
        self.next
    }

    /// Moves past the current request to the next one.
    pub fn advance(&mut self, shape: &Shape) {
        self.next = self.advance_by(shape, self.next, 1.0);
    }

    /// The time at which `need` more requests of this lane's share have
    /// accumulated after `t`.
    fn advance_by(&self, shape: &Shape, mut t: f64, mut need: f64) -> f64 {
        // A zero rate forever (a sine trough is not forever) would loop
        // without end; stop after a day of simulated time.
        let give_up = t + 86_400.0;
        loop {
            let r = shape.rate(t) * self.share;
            if r > 0.0 && need / r <= MAX_STEP {
                return t + need / r;
            }
            need -= r * MAX_STEP;
            t += MAX_STEP;
            if t > give_up {
                return f64::INFINITY;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(s: &str) -> Shape {
        Shape::parse(s, Some(Duration::from_secs(10))).unwrap()
    }

    /// Requests per whole second handed out by `lanes` pacers over `secs`.
    fn per_second(s: &Shape, lanes: usize, secs: usize) -> Vec<f64> {
        let mut counts = vec![0.0; secs];
        for lane in 0..lanes {
            let mut p = Pacer::new(s, lane, lanes);
            while p.next() < secs as f64 {
                counts[p.next() as usize] += 1.0;
                p.advance(s);
            }
        }
        counts
    }

    /// The integral of the rate over second `i`, by the midpoint rule.
    fn integral(s: &Shape, i: usize) -> f64 {
        (0..1000).map(|j| s.rate(i as f64 + (j as f64 + 0.5) / 1000.0) / 1000.0).sum()
    }

    #[test]
    fn each_shape_has_its_rate_curve() {
        let c = shape("2000");
        assert_eq!((c.rate(0.0), c.rate(9.9)), (2000.0, 2000.0));
        assert_eq!(shape("constant:300"), Shape::Constant { rate: 300.0 });
        let l = shape("linear:1000:3000");
        assert_eq!((l.rate(0.0), l.rate(5.0), l.rate(10.0), l.rate(12.0)), (1000.0, 2000.0, 3000.0, 3000.0));
        let st = shape("step:1000:500:2s");
        assert_eq!((st.rate(0.0), st.rate(1.99), st.rate(2.0), st.rate(7.0)), (1000.0, 1000.0, 1500.0, 2500.0));
        let sp = shape("spike:1000:4000:3s:1s");
        assert_eq!((sp.rate(2.99), sp.rate(3.0), sp.rate(3.5), sp.rate(4.0)), (1000.0, 5000.0, 5000.0, 1000.0));
        let si = shape("sine:2000:1000:4s");
        for (t, want) in [(0.0, 2000.0), (1.0, 3000.0), (2.0, 2000.0), (3.0, 1000.0)] {
            assert!((si.rate(t) - want).abs() < 1e-6, "sine at {t}: {}", si.rate(t));
        }
        assert_eq!(shape("sine:100:300:4s").rate(3.0), 0.0, "floored at zero");
    }

    #[test]
    fn pacers_follow_every_curve() {
        for spec in ["2000", "linear:500:3000", "step:1000:500:2s", "spike:1000:4000:3s:1s", "sine:2000:1500:4s"] {
            let s = shape(spec);
            let got = per_second(&s, 7, 10);
            for (i, &n) in got.iter().enumerate() {
                let want = integral(&s, i);
                // Seven lanes, each within one request of its share.
                assert!((n - want).abs() <= 8.0 + want * 0.005, "{spec} second {i}: {n} sent, {want:.1} intended");
            }
        }
    }

    #[test]
    fn a_trough_of_zero_is_walked_not_skipped() {
        // 100 + 300 sin(2πt/4) is 0 wherever sin < -1/3: t in about
        // (2.22, 3.78) of each 4 s period. Nothing is sent there, and the
        // pacer resumes when the rate rises again.
        let s = shape("sine:100:300:4s");
        let mut p = Pacer::new(&s, 0, 1);
        let mut times = Vec::new();
        while p.next() < 8.0 {
            times.push(p.next());
            p.advance(&s);
        }
        assert!(!times.iter().any(|t| (2.25..3.75).contains(&(t % 4.0))), "sent in the trough");
        assert!(times.iter().any(|t| (3.8..4.0).contains(t)), "resumed after the first trough");
        assert!(times.iter().any(|t| (4.0..5.0).contains(t)));
    }

    #[test]
    fn bad_shapes_are_refused() {
        for bad in ["", "x", "-5", "0", "linear:1", "step:1:2", "spike:1:2:3s", "sine:1:1:0s", "wave:1", "constant:0"] {
            assert!(Shape::parse(bad, Some(Duration::from_secs(1))).is_err(), "{bad:?}");
        }
        assert!(Shape::parse("linear:1:2", None).is_err(), "linear needs --duration");
    }
}
