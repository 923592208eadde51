//! The figures of a finished run as plain data: what the text table, the JSON and HTML reports
//! and the targets evaluator all read.
//!
//! Owns the shapes and the derived ratios (compare mode). It does not compute percentiles from
//! samples (see `stats`) and does not format anything for people (see `report`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::workload::Op;

/// Latency percentiles of one histogram, microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_us: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// One point of a latency-by-percentile curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpectrumPoint {
    pub percentile: f64,
    pub latency_us: u64,
}

/// Everything measured for one operation on one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSummary {
    pub op: Op,
    /// Successful requests in the measured window.
    pub ok: u64,
    /// Failed requests in the measured window (all codes).
    pub errors: u64,
    pub errors_by_code: BTreeMap<String, u64>,
    /// Open loop: requests due while the in-flight bound held the generator back.
    pub delayed: u64,
    /// Successful requests per second of the endpoint's measured time.
    pub ops_per_s: f64,
    /// Object bytes moved by successful requests (GET/PUT/multipart), MiB per second.
    pub mib_per_s: f64,
    pub bytes: u64,
    /// Successful requests, from the intended send time (open loop) or the send (closed loop).
    pub latency: Option<Percentiles>,
    /// Successful requests, from the actual send to the last byte: the server's share.
    pub service: Option<Percentiles>,
    /// GET only: from the intended send time to the response head (first byte).
    pub ttfb: Option<Percentiles>,
    pub spectrum: Vec<SpectrumPoint>,
}

/// Errors as a share of all requests (0 when there were none).
fn error_ratio(ok: u64, errors: u64) -> f64 {
    let all = ok + errors;
    if all == 0 {
        0.0
    } else {
        errors as f64 / all as f64
    }
}

impl OpSummary {
    /// Errors as a share of all requests of this op.
    pub fn error_ratio(&self) -> f64 {
        error_ratio(self.ok, self.errors)
    }
}

/// One second of the run on one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalSummary {
    /// Seconds since the start of the run (warm-up included).
    pub t_s: u64,
    pub warmup: bool,
    pub ok: u64,
    pub errors: u64,
    pub bytes: u64,
    /// Of the successful requests completing in this second.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// All operations on one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EndpointSummary {
    /// "A" or "B".
    pub name: String,
    pub url: String,
    /// Time of the measured window this endpoint owned (all of it outside compare mode), s.
    pub measured_s: f64,
    pub ok: u64,
    pub errors: u64,
    pub ops_per_s: f64,
    pub mib_per_s: f64,
    pub ops: Vec<OpSummary>,
    /// Open loop: how late requests left relative to their due time (generator lag plus waits
    /// for a slot), µs.
    pub send_lag: Option<Percentiles>,
    pub timeline: Vec<IntervalSummary>,
}

impl EndpointSummary {
    pub fn op(&self, op: Op) -> Option<&OpSummary> {
        self.ops.iter().find(|o| o.op == op)
    }

    pub fn error_ratio(&self) -> f64 {
        error_ratio(self.ok, self.errors)
    }
}

/// Compare mode: B divided by A for one operation. Above 1 means B is higher (better for
/// throughput, worse for latency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RatioRow {
    pub op: Op,
    pub ops_per_s: Option<f64>,
    pub mib_per_s: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub p999: Option<f64>,
    pub max: Option<f64>,
    pub error_ratio_a: f64,
    pub error_ratio_b: f64,
}

fn ratio(b: f64, a: f64) -> Option<f64> {
    (a > 0.0 && b.is_finite()).then(|| b / a)
}

/// The B/A table for every op both endpoints measured.
pub fn ratio_table(a: &EndpointSummary, b: &EndpointSummary) -> Vec<RatioRow> {
    let mut rows = Vec::new();
    for op_a in &a.ops {
        let Some(op_b) = b.op(op_a.op) else { continue };
        let lat = |pick: fn(&Percentiles) -> u64| match (&op_a.latency, &op_b.latency) {
            (Some(la), Some(lb)) => ratio(pick(lb) as f64, pick(la) as f64),
            _ => None,
        };
        rows.push(RatioRow {
            op: op_a.op,
            ops_per_s: ratio(op_b.ops_per_s, op_a.ops_per_s),
            mib_per_s: if op_a.op.carries_payload() {
                ratio(op_b.mib_per_s, op_a.mib_per_s)
            } else {
                None
            },
            p50: lat(|p| p.p50_us),
            p90: lat(|p| p.p90_us),
            p99: lat(|p| p.p99_us),
            p999: lat(|p| p.p999_us),
            max: lat(|p| p.max_us),
            error_ratio_a: op_a.error_ratio(),
            error_ratio_b: op_b.error_ratio(),
        });
    }
    rows
}

#[cfg(test)]
pub mod fixtures {
    //! Literal summaries for the report and targets tests.
    use super::*;

    pub fn percentiles(p50_us: u64, p99_us: u64) -> Percentiles {
        Percentiles {
            count: 1000,
            mean_us: p50_us as f64 * 1.1,
            p50_us,
            p90_us: u64::midpoint(p50_us, p99_us),
            p99_us,
            p999_us: p99_us * 2,
            max_us: p99_us * 4,
        }
    }

    pub fn op(op: Op, ops_per_s: f64, p50_us: u64, p99_us: u64, errors: u64) -> OpSummary {
        let mut errors_by_code = BTreeMap::new();
        if errors > 0 {
            errors_by_code.insert("SlowDown".to_owned(), errors);
        }
        OpSummary {
            op,
            ok: (ops_per_s * 10.0) as u64,
            errors,
            errors_by_code,
            delayed: 0,
            ops_per_s,
            mib_per_s: ops_per_s * 4096.0 / 1_048_576.0,
            bytes: (ops_per_s * 10.0 * 4096.0) as u64,
            latency: Some(percentiles(p50_us, p99_us)),
            service: Some(percentiles(p50_us, p99_us)),
            ttfb: (op == Op::Get).then(|| percentiles(p50_us / 2, p99_us / 2)),
            spectrum: vec![
                SpectrumPoint {
                    percentile: 0.0,
                    latency_us: p50_us / 2,
                },
                SpectrumPoint {
                    percentile: 50.0,
                    latency_us: p50_us,
                },
                SpectrumPoint {
                    percentile: 99.0,
                    latency_us: p99_us,
                },
                SpectrumPoint {
                    percentile: 100.0,
                    latency_us: p99_us * 4,
                },
            ],
        }
    }

    pub fn endpoint(name: &str, ops: Vec<OpSummary>) -> EndpointSummary {
        let ok = ops.iter().map(|o| o.ok).sum();
        let errors = ops.iter().map(|o| o.errors).sum();
        let ops_per_s = ops.iter().map(|o| o.ops_per_s).sum();
        let mib_per_s = ops.iter().map(|o| o.mib_per_s).sum();
        EndpointSummary {
            name: name.to_owned(),
            url: format!("http://127.0.0.1:900{}", name.len()),
            measured_s: 10.0,
            ok,
            errors,
            ops_per_s,
            mib_per_s,
            ops,
            send_lag: Some(percentiles(20, 200)),
            timeline: (0..12)
                .map(|t| IntervalSummary {
                    t_s: t,
                    warmup: t < 2,
                    ok: 1000 + t * 10,
                    errors: u64::from(t == 5),
                    bytes: 4096 * 1000,
                    p50_us: Some(800),
                    p99_us: Some(2000 + t * 100),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn ratios_are_b_over_a() {
        let a = endpoint(
            "A",
            vec![
                op(Op::Get, 1000.0, 500, 2000, 0),
                op(Op::List, 10.0, 1, 1, 0),
            ],
        );
        let b = endpoint("B", vec![op(Op::Get, 1500.0, 1000, 1000, 5)]);
        let rows = ratio_table(&a, &b);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.op, Op::Get);
        assert!((row.ops_per_s.unwrap() - 1.5).abs() < 1e-9);
        assert!((row.p50.unwrap() - 2.0).abs() < 1e-9);
        assert!((row.p99.unwrap() - 0.5).abs() < 1e-9);
        assert!(row.error_ratio_b > 0.0);
        assert!(row.error_ratio_a.abs() < f64::EPSILON);
    }
}
