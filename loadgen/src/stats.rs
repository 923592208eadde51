//! Recording request samples into HdrHistograms and turning them into a [`summary`].
//!
//! Owns the measured-window rule (a request counts when its intended time falls in
//! `[warmup_ns, end_ns)`), per-op histograms per endpoint, per-second intervals for the
//! over-time plots and the live figures for the progress display. Single-owner: one collector
//! task feeds it; nothing here is shared between threads.
//!
//! [`summary`]: crate::summary

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::error::OpError;
use crate::limits;
use crate::summary::{EndpointSummary, IntervalSummary, OpSummary, Percentiles, SpectrumPoint};
use crate::workload::Op;

const NS_PER_S: u64 = 1_000_000_000;
const MIB: f64 = 1_048_576.0;

/// One finished (or abandoned) request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub endpoint: usize,
    pub op: Op,
    /// When it was due (open loop) or sent (closed loop), ns since start.
    pub intended_ns: u64,
    pub sent_ns: u64,
    /// When the response head arrived, ns since start.
    pub first_byte_ns: Option<u64>,
    pub done_ns: u64,
    /// Object bytes moved (GET/PUT/multipart bodies).
    pub bytes: u64,
    pub error: Option<OpError>,
    pub delayed: bool,
}

fn latency_histogram(sigfig: u8) -> Histogram<u64> {
    // Bounds are constants that satisfy hdrhistogram's rules, so this cannot fail.
    Histogram::new_with_bounds(1, limits::LATENCY_US_MAX, sigfig).expect("valid histogram bounds")
}

fn record_us(histogram: &mut Histogram<u64>, ns: u64) {
    let us = (ns / 1000).clamp(1, limits::LATENCY_US_MAX);
    histogram.saturating_record(us);
}

#[derive(Debug)]
struct OpRecorder {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    ttfb: Histogram<u64>,
    ok: u64,
    bytes: u64,
    errors: BTreeMap<String, u64>,
    error_count: u64,
    delayed: u64,
}

impl OpRecorder {
    fn new() -> OpRecorder {
        OpRecorder {
            latency: latency_histogram(3),
            service: latency_histogram(3),
            ttfb: latency_histogram(3),
            ok: 0,
            bytes: 0,
            errors: BTreeMap::new(),
            error_count: 0,
            delayed: 0,
        }
    }

    fn record(&mut self, sample: &Sample) {
        self.delayed += u64::from(sample.delayed);
        match &sample.error {
            None => {
                self.ok += 1;
                self.bytes += sample.bytes;
                record_us(&mut self.latency, sample.done_ns - sample.intended_ns);
                record_us(&mut self.service, sample.done_ns - sample.sent_ns);
                if let Some(first_byte_ns) = sample.first_byte_ns {
                    record_us(&mut self.ttfb, first_byte_ns - sample.intended_ns);
                }
            }
            Some(error) => {
                self.error_count += 1;
                let mut code = error.code();
                if self.errors.len() >= limits::ERROR_CODES_MAX && !self.errors.contains_key(&code)
                {
                    "Other".clone_into(&mut code);
                }
                *self.errors.entry(code).or_insert(0) += 1;
            }
        }
    }
}

#[derive(Debug)]
struct Interval {
    ok: u64,
    errors: u64,
    bytes: u64,
    /// Dropped when the interval closes, leaving the percentiles.
    latency: Option<Histogram<u64>>,
    p50_us: Option<u64>,
    p99_us: Option<u64>,
}

impl Interval {
    fn new() -> Interval {
        Interval {
            ok: 0,
            errors: 0,
            bytes: 0,
            latency: Some(latency_histogram(2)),
            p50_us: None,
            p99_us: None,
        }
    }

    fn close(&mut self) {
        if let Some(h) = self.latency.take() {
            if !h.is_empty() {
                self.p50_us = Some(h.value_at_quantile(0.5));
                self.p99_us = Some(h.value_at_quantile(0.99));
            }
        }
    }
}

#[derive(Debug)]
struct EndpointRecorder {
    ops: BTreeMap<Op, OpRecorder>,
    send_lag: Histogram<u64>,
    timeline: Vec<Interval>,
}

/// Live figures since the last call to [`Recorder::take_live`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Live {
    pub ok: u64,
    pub errors: u64,
    pub p99_us: Option<u64>,
    pub completed_total: u64,
    pub errors_total: u64,
}

/// Accumulates the samples of one run.
#[derive(Debug)]
pub struct Recorder {
    warmup_ns: u64,
    end_ns: u64,
    open_loop: bool,
    intervals_max: usize,
    endpoints: Vec<EndpointRecorder>,
    live_latency: Histogram<u64>,
    live_ok: u64,
    live_errors: u64,
    completed_total: u64,
    errors_total: u64,
}

impl Recorder {
    /// The measured window is `[warmup_ns, end_ns)` of intended times; `intervals_max` bounds
    /// the per-second timeline.
    pub fn new(
        endpoints: usize,
        warmup_ns: u64,
        end_ns: u64,
        open_loop: bool,
        intervals_max: usize,
    ) -> Recorder {
        assert!((1..=limits::ENDPOINTS_MAX).contains(&endpoints));
        assert!(warmup_ns <= end_ns);
        Recorder {
            warmup_ns,
            end_ns,
            open_loop,
            intervals_max,
            endpoints: (0..endpoints)
                .map(|_| EndpointRecorder {
                    ops: BTreeMap::new(),
                    send_lag: latency_histogram(3),
                    timeline: Vec::new(),
                })
                .collect(),
            live_latency: latency_histogram(2),
            live_ok: 0,
            live_errors: 0,
            completed_total: 0,
            errors_total: 0,
        }
    }

    pub fn record(&mut self, sample: &Sample) {
        assert!(sample.endpoint < self.endpoints.len());
        assert!(sample.intended_ns <= sample.sent_ns && sample.sent_ns <= sample.done_ns);
        self.completed_total += 1;
        let failed = sample.error.is_some();
        self.errors_total += u64::from(failed);
        if failed {
            self.live_errors += 1;
        } else {
            self.live_ok += 1;
            record_us(&mut self.live_latency, sample.done_ns - sample.intended_ns);
        }
        let endpoint = &mut self.endpoints[sample.endpoint];
        let second = ((sample.done_ns / NS_PER_S) as usize).min(self.intervals_max);
        while endpoint.timeline.len() <= second {
            endpoint.timeline.push(Interval::new());
        }
        let interval = &mut endpoint.timeline[second];
        if failed {
            interval.errors += 1;
        } else {
            interval.ok += 1;
            interval.bytes += sample.bytes;
            if let Some(h) = interval.latency.as_mut() {
                record_us(h, sample.done_ns - sample.intended_ns);
            }
        }
        if sample.intended_ns < self.warmup_ns || sample.intended_ns >= self.end_ns {
            return;
        }
        if self.open_loop {
            endpoint
                .send_lag
                .saturating_record((sample.sent_ns - sample.intended_ns) / 1000);
        }
        endpoint
            .ops
            .entry(sample.op)
            .or_insert_with(OpRecorder::new)
            .record(sample);
    }

    /// Closes the per-second intervals before `second` (their samples are all in).
    pub fn close_intervals_before(&mut self, second: usize) {
        for endpoint in &mut self.endpoints {
            for interval in endpoint.timeline.iter_mut().take(second) {
                interval.close();
            }
        }
    }

    /// Figures since the previous call, for the progress display.
    pub fn take_live(&mut self) -> Live {
        let p99_us =
            (!self.live_latency.is_empty()).then(|| self.live_latency.value_at_quantile(0.99));
        let live = Live {
            ok: self.live_ok,
            errors: self.live_errors,
            p99_us,
            completed_total: self.completed_total,
            errors_total: self.errors_total,
        };
        self.live_latency.reset();
        self.live_ok = 0;
        self.live_errors = 0;
        live
    }

    /// The summary per endpoint; `measured_ns[e]` is the measured time endpoint `e` owned.
    pub fn summarize(
        mut self,
        names: &[(String, String)],
        measured_ns: &[u64],
    ) -> Vec<EndpointSummary> {
        assert_eq!(names.len(), self.endpoints.len());
        assert_eq!(measured_ns.len(), self.endpoints.len());
        self.close_intervals_before(usize::MAX);
        let warmup_s = self.warmup_ns.div_ceil(NS_PER_S);
        let open_loop = self.open_loop;
        self.endpoints
            .into_iter()
            .zip(names)
            .zip(measured_ns)
            .map(|((endpoint, (name, url)), &owned_ns)| {
                let seconds = owned_ns as f64 / 1e9;
                let ops: Vec<OpSummary> = endpoint
                    .ops
                    .into_iter()
                    .map(|(op, rec)| op_summary(op, &rec, seconds))
                    .collect();
                EndpointSummary {
                    name: name.clone(),
                    url: url.clone(),
                    measured_s: seconds,
                    ok: ops.iter().map(|o| o.ok).sum(),
                    errors: ops.iter().map(|o| o.errors).sum(),
                    ops_per_s: ops.iter().map(|o| o.ops_per_s).sum(),
                    mib_per_s: ops.iter().map(|o| o.mib_per_s).sum(),
                    ops,
                    send_lag: if open_loop {
                        percentiles(&endpoint.send_lag)
                    } else {
                        None
                    },
                    timeline: endpoint
                        .timeline
                        .iter()
                        .enumerate()
                        .map(|(t, i)| IntervalSummary {
                            t_s: t as u64,
                            warmup: (t as u64) < warmup_s,
                            ok: i.ok,
                            errors: i.errors,
                            bytes: i.bytes,
                            p50_us: i.p50_us,
                            p99_us: i.p99_us,
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

fn op_summary(op: Op, rec: &OpRecorder, measured_s: f64) -> OpSummary {
    let per_s = |x: f64| {
        if measured_s > 0.0 {
            x / measured_s
        } else {
            0.0
        }
    };
    OpSummary {
        op,
        ok: rec.ok,
        errors: rec.error_count,
        errors_by_code: rec.errors.clone(),
        delayed: rec.delayed,
        ops_per_s: per_s(rec.ok as f64),
        mib_per_s: per_s(rec.bytes as f64 / MIB),
        bytes: rec.bytes,
        latency: percentiles(&rec.latency),
        service: percentiles(&rec.service),
        ttfb: if op == Op::Get {
            percentiles(&rec.ttfb)
        } else {
            None
        },
        spectrum: spectrum(&rec.latency),
    }
}

/// Percentiles of a histogram of microseconds; `None` when it is empty.
pub fn percentiles(h: &Histogram<u64>) -> Option<Percentiles> {
    if h.is_empty() {
        return None;
    }
    Some(Percentiles {
        count: h.len(),
        mean_us: h.mean(),
        p50_us: h.value_at_quantile(0.50),
        p90_us: h.value_at_quantile(0.90),
        p99_us: h.value_at_quantile(0.99),
        p999_us: h.value_at_quantile(0.999),
        max_us: h.max(),
    })
}

/// Latency by percentile at 1 - 10^(-k/10) for k = 0..=50 (0 % to 99.999 %), then the max.
pub fn spectrum(h: &Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<SpectrumPoint> = (0..=50)
        .map(|k| {
            let quantile = 1.0 - 10f64.powf(-f64::from(k) / 10.0);
            SpectrumPoint {
                percentile: quantile * 100.0,
                latency_us: h.value_at_quantile(quantile),
            }
        })
        .collect();
    points.push(SpectrumPoint {
        percentile: 100.0,
        latency_us: h.max(),
    });
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(op: Op, intended_ms: u64, latency_ms: u64, error: Option<OpError>) -> Sample {
        Sample {
            endpoint: 0,
            op,
            intended_ns: intended_ms * 1_000_000,
            sent_ns: intended_ms * 1_000_000,
            first_byte_ns: (op == Op::Get).then_some((intended_ms + latency_ms / 2) * 1_000_000),
            done_ns: (intended_ms + latency_ms) * 1_000_000,
            bytes: 4096,
            error,
            delayed: false,
        }
    }

    #[test]
    fn warmup_is_excluded_and_errors_are_counted_by_code() {
        let mut rec = Recorder::new(1, 1_000_000_000, 3_000_000_000, true, 100);
        // Warm-up: slow, not counted.
        for i in 0..100 {
            rec.record(&sample(Op::Get, i * 10, 500, None));
        }
        for i in 0..200 {
            rec.record(&sample(Op::Get, 1000 + i * 10, 2, None));
        }
        rec.record(&sample(
            Op::Get,
            1500,
            2,
            Some(OpError::S3 {
                status: 503,
                code: "SlowDown".to_owned(),
                message: String::new(),
            }),
        ));
        rec.record(&sample(Op::Put, 1600, 3, Some(OpError::Timeout)));
        // After the window: ignored.
        rec.record(&sample(Op::Get, 3000, 900, None));
        let live = rec.take_live();
        assert_eq!(live.completed_total, 303);
        assert_eq!(live.errors_total, 2);
        let summary = rec.summarize(&[("A".to_owned(), "http://x".to_owned())], &[2_000_000_000]);
        let get = summary[0].op(Op::Get).unwrap();
        assert_eq!(get.ok, 200);
        assert_eq!(get.errors, 1);
        assert_eq!(get.errors_by_code.get("SlowDown"), Some(&1));
        assert!((get.ops_per_s - 100.0).abs() < 1e-9);
        let latency = get.latency.as_ref().unwrap();
        assert!((1990..=2010).contains(&latency.p99_us), "{latency:?}");
        assert!(get.ttfb.as_ref().unwrap().p50_us < latency.p50_us);
        assert_eq!(get.spectrum.len(), 52);
        let put = summary[0].op(Op::Put).unwrap();
        assert_eq!(put.errors_by_code.get("Timeout"), Some(&1));
        assert!(put.latency.is_none());
        assert_eq!(summary[0].errors, 2);
        // Timeline holds every second that saw a completion, warm-up flagged.
        assert!(summary[0].timeline[0].warmup);
        assert!(!summary[0].timeline[2].warmup);
        assert!(summary[0].timeline[1].p99_us.is_some());
    }
}
