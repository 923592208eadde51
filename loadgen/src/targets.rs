//! Targets files: what a run must reach, and the pass/fail verdict of a run against them.
//!
//! A targets file is TOML with `[[target]]` tables; each names an op, optionally an object size
//! and an endpoint, and any of the limits below. Evaluation is a pure function of the summaries.
//! It does not print (see `report::text`).
//!
//! ```toml
//! [[target]]
//! op = "get"
//! size = "4KiB"          # only checked when the run's --size is exactly this
//! min_ops_per_s = 20000
//! max_p99_ms = 3.0
//! max_error_ratio = 0.001
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;
use crate::limits;
use crate::summary::{EndpointSummary, OpSummary};
use crate::units::parse_size_bytes;
use crate::workload::Op;

/// The file as written.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFile {
    #[serde(rename = "target", default)]
    pub targets: Vec<Target>,
}

/// One target row.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub op: Op,
    /// Object size this target is for (`4KiB`); absent means any run.
    pub size: Option<String>,
    /// `"A"` or `"B"`; absent means every endpoint.
    pub endpoint: Option<String>,
    pub min_ops_per_s: Option<f64>,
    pub min_mib_per_s: Option<f64>,
    pub max_p50_ms: Option<f64>,
    pub max_p90_ms: Option<f64>,
    pub max_p99_ms: Option<f64>,
    pub max_p999_ms: Option<f64>,
    pub max_max_ms: Option<f64>,
    pub max_ttfb_p99_ms: Option<f64>,
    pub max_error_ratio: Option<f64>,
}

/// The verdict on one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// The target does not apply to this run (another object size).
    Skipped,
}

/// One line of the pass/fail table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRow {
    pub target: usize,
    pub op: Op,
    pub size: Option<String>,
    pub endpoint: String,
    pub metric: String,
    /// `>=` or `<=`.
    pub comparison: String,
    pub limit: f64,
    pub actual: Option<f64>,
    pub verdict: Verdict,
    pub note: String,
}

impl TargetsFile {
    pub fn load(path: &Path) -> Result<TargetsFile, ConfigError> {
        let bad = |reason: String| ConfigError::Targets {
            path: path.to_owned(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| bad(e.to_string()))?
            .len();
        if size > limits::TARGETS_FILE_BYTES_MAX {
            return Err(bad(format!(
                "{size} bytes is above {}",
                limits::TARGETS_FILE_BYTES_MAX
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        TargetsFile::parse(&text).map_err(bad)
    }

    pub fn parse(text: &str) -> Result<TargetsFile, String> {
        let file: TargetsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.targets.is_empty() {
            return Err("no [[target]] tables".to_owned());
        }
        if file.targets.len() > limits::TARGETS_MAX {
            return Err(format!("more than {} targets", limits::TARGETS_MAX));
        }
        for (i, target) in file.targets.iter().enumerate() {
            target
                .check()
                .map_err(|e| format!("target {}: {e}", i + 1))?;
        }
        Ok(file)
    }
}

impl Target {
    fn limits(&self) -> Vec<(&'static str, bool, f64)> {
        // (metric, higher is better, limit)
        let mut out = Vec::new();
        let mut add = |name, higher, value: Option<f64>| {
            if let Some(v) = value {
                out.push((name, higher, v));
            }
        };
        add("ops_per_s", true, self.min_ops_per_s);
        add("mib_per_s", true, self.min_mib_per_s);
        add("p50_ms", false, self.max_p50_ms);
        add("p90_ms", false, self.max_p90_ms);
        add("p99_ms", false, self.max_p99_ms);
        add("p999_ms", false, self.max_p999_ms);
        add("max_ms", false, self.max_max_ms);
        add("ttfb_p99_ms", false, self.max_ttfb_p99_ms);
        add("error_ratio", false, self.max_error_ratio);
        out
    }

    fn check(&self) -> Result<(), String> {
        if let Some(size) = &self.size {
            parse_size_bytes(size).map_err(|e| e.to_string())?;
        }
        if let Some(endpoint) = &self.endpoint {
            if endpoint != "A" && endpoint != "B" {
                return Err(format!("endpoint is \"A\" or \"B\", not {endpoint:?}"));
            }
        }
        let limits = self.limits();
        if limits.is_empty() {
            return Err("sets no limit (min_ops_per_s, max_p99_ms, ...)".to_owned());
        }
        for (name, _, value) in limits {
            if !value.is_finite() || value < 0.0 {
                return Err(format!("{name} limit {value} is not a non-negative number"));
            }
        }
        Ok(())
    }
}

fn actual(metric: &str, op: &OpSummary) -> Option<f64> {
    let ms = |us: u64| us as f64 / 1000.0;
    let latency = op.latency.as_ref();
    match metric {
        "ops_per_s" => Some(op.ops_per_s),
        "mib_per_s" => Some(op.mib_per_s),
        "p50_ms" => latency.map(|l| ms(l.p50_us)),
        "p90_ms" => latency.map(|l| ms(l.p90_us)),
        "p99_ms" => latency.map(|l| ms(l.p99_us)),
        "p999_ms" => latency.map(|l| ms(l.p999_us)),
        "max_ms" => latency.map(|l| ms(l.max_us)),
        "ttfb_p99_ms" => op.ttfb.as_ref().map(|l| ms(l.p99_us)),
        "error_ratio" => Some(op.error_ratio()),
        _ => unreachable!("metric names come from Target::limits"),
    }
}

/// Every limit of every target against every endpoint it applies to. `run_size_bytes` is the
/// run's object size when fixed.
pub fn evaluate(
    file: &TargetsFile,
    endpoints: &[EndpointSummary],
    run_size_bytes: Option<u64>,
) -> Vec<TargetRow> {
    let mut rows = Vec::new();
    for (index, target) in file.targets.iter().enumerate() {
        // Sizes were checked when the file was loaded.
        let target_size = target
            .size
            .as_deref()
            .and_then(|s| parse_size_bytes(s).ok());
        let size_applies = target_size.is_none() || target_size == run_size_bytes;
        for endpoint in endpoints {
            if target
                .endpoint
                .as_ref()
                .is_some_and(|e| *e != endpoint.name)
            {
                continue;
            }
            let op = endpoint.op(target.op);
            for (metric, higher, limit) in target.limits() {
                let (value, verdict, note) = if !size_applies {
                    (
                        None,
                        Verdict::Skipped,
                        "run uses another object size".to_owned(),
                    )
                } else if let Some(op) = op {
                    match actual(metric, op) {
                        Some(v) if (higher && v >= limit) || (!higher && v <= limit) => {
                            (Some(v), Verdict::Pass, String::new())
                        }
                        Some(v) => (Some(v), Verdict::Fail, String::new()),
                        None => (None, Verdict::Fail, "no successful requests".to_owned()),
                    }
                } else {
                    (
                        None,
                        Verdict::Fail,
                        "op not measured in this run".to_owned(),
                    )
                };
                rows.push(TargetRow {
                    target: index + 1,
                    op: target.op,
                    size: target.size.clone(),
                    endpoint: endpoint.name.clone(),
                    metric: metric.to_owned(),
                    comparison: if higher { ">=" } else { "<=" }.to_owned(),
                    limit,
                    actual: value,
                    verdict,
                    note,
                });
            }
        }
    }
    rows
}

/// True when no row failed.
pub fn all_met(rows: &[TargetRow]) -> bool {
    rows.iter().all(|r| r.verdict != Verdict::Fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::fixtures::{endpoint, op};

    const FILE: &str = r#"
[[target]]
op = "get"
size = "4KiB"
min_ops_per_s = 900
max_p99_ms = 3.0
max_error_ratio = 0.01

[[target]]
op = "put"
endpoint = "B"
max_p50_ms = 1.0

[[target]]
op = "get"
size = "64MiB"
min_mib_per_s = 1000
"#;

    #[test]
    fn rows_pass_fail_and_skip() {
        let file = TargetsFile::parse(FILE).unwrap();
        let a = endpoint(
            "A",
            vec![
                op(Op::Get, 1000.0, 500, 2500, 0),
                op(Op::Put, 100.0, 800, 4000, 0),
            ],
        );
        let b = endpoint("B", vec![op(Op::Get, 800.0, 500, 3500, 200)]);
        let rows = evaluate(&file, &[a, b], Some(4096));
        let find = |t: usize, e: &str, m: &str| {
            rows.iter()
                .find(|r| r.target == t && r.endpoint == e && r.metric == m)
                .unwrap()
        };
        assert_eq!(find(1, "A", "ops_per_s").verdict, Verdict::Pass);
        assert_eq!(find(1, "A", "p99_ms").verdict, Verdict::Pass);
        assert!((find(1, "A", "p99_ms").actual.unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(find(1, "B", "ops_per_s").verdict, Verdict::Fail);
        assert_eq!(find(1, "B", "p99_ms").verdict, Verdict::Fail);
        assert_eq!(find(1, "B", "error_ratio").verdict, Verdict::Fail);
        // Target 2 is for endpoint B only, which measured no PUT.
        assert!(rows.iter().all(|r| !(r.target == 2 && r.endpoint == "A")));
        let put = find(2, "B", "p50_ms");
        assert_eq!(put.verdict, Verdict::Fail);
        assert_eq!(put.note, "op not measured in this run");
        // Target 3 is for 64 MiB objects; this run used 4 KiB.
        assert_eq!(find(3, "A", "mib_per_s").verdict, Verdict::Skipped);
        assert!(!all_met(&rows));
    }

    #[test]
    fn a_good_run_meets_all() {
        let file = TargetsFile::parse(FILE).unwrap();
        let a = endpoint("A", vec![op(Op::Get, 1000.0, 500, 2500, 0)]);
        let rows = evaluate(&file, &[a], Some(4096));
        assert!(all_met(&rows));
        assert_eq!(
            rows.iter().filter(|r| r.verdict == Verdict::Pass).count(),
            3
        );
    }

    #[test]
    fn bad_files_are_rejected() {
        assert!(TargetsFile::parse("").is_err());
        assert!(TargetsFile::parse("[[target]]\nop = \"get\"\n").is_err());
        assert!(TargetsFile::parse("[[target]]\nop = \"fly\"\nmax_p99_ms = 1\n").is_err());
        assert!(TargetsFile::parse("[[target]]\nop = \"get\"\nmax_p99 = 1\n").is_err());
        assert!(TargetsFile::parse("[[target]]\nop = \"get\"\nmax_p99_ms = -1\n").is_err());
        assert!(
            TargetsFile::parse("[[target]]\nop = \"get\"\nsize = \"big\"\nmax_p99_ms = 1\n")
                .is_err()
        );
        assert!(
            TargetsFile::parse("[[target]]\nop = \"get\"\nendpoint = \"C\"\nmax_p99_ms = 1\n")
                .is_err()
        );
    }

    #[test]
    fn shipped_example_parses() {
        let text = include_str!("../examples/targets.toml");
        let file = TargetsFile::parse(text).unwrap();
        assert!(!file.targets.is_empty());
    }
}
