//! The reports of a run: the text tables on stdout, `--json` and `--html`.
//!
//! Owns the [`Report`] document (every setting and every figure) and its three renderings.
//! All renderers are pure functions of the document, so they are tested on literal data.

pub mod html;
pub mod svg;
pub mod text;

use serde::Serialize;

use crate::config::Settings;
use crate::cpu::CpuSummary;
use crate::summary::{EndpointSummary, RatioRow};
use crate::targets::TargetRow;

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    /// 0 ok, 1 targets missed, 2 usage or configuration error, 3 endpoint errors above the
    /// threshold.
    pub exit_code: i32,
    pub reason: String,
}

/// Everything a run measured, with everything it was told.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub version: String,
    /// UTC, `YYYYMMDDTHHMMSSZ`.
    pub started_at: String,
    pub settings: Settings,
    pub endpoints: Vec<EndpointSummary>,
    /// Compare mode: B divided by A per op.
    pub compare: Option<Vec<RatioRow>>,
    pub targets: Option<Vec<TargetRow>>,
    pub outcome: Outcome,
    /// CPU time of the `--server-pid` processes and of the generator over the measured phase.
    pub cpu: Option<CpuSummary>,
}

impl Report {
    pub fn to_json(&self) -> String {
        // A Report is plain data (strings, numbers, maps with string keys): serialisation
        // cannot fail.
        serde_json::to_string_pretty(self).expect("report serialises")
    }
}

#[cfg(test)]
pub mod fixtures {
    use super::*;
    use crate::config::{Args, Plan};
    use crate::summary::fixtures::{endpoint, op};
    use crate::summary::ratio_table;
    use crate::targets::{evaluate, TargetsFile};
    use crate::workload::Op;
    use clap::Parser;

    /// Two server processes, 4.5 s of CPU over 10 s for 12 000 requests.
    pub fn cpu() -> CpuSummary {
        use crate::cpu::{summarize, ProcessReading, Snapshot, StatTimes};
        let reading = |utime_ticks, stime_ticks| {
            Ok(ProcessReading {
                comm: "percore".to_owned(),
                times: StatTimes {
                    utime_ticks,
                    stime_ticks,
                },
            })
        };
        let start = Snapshot {
            servers: vec![(101, reading(0, 0)), (102, reading(0, 0))],
            self_us: 0,
        };
        let end = Snapshot {
            servers: vec![(101, reading(300, 100)), (102, reading(40, 10))],
            self_us: 1_200_000,
        };
        summarize(&start, &end, 10.0, 100, 12_000, 12_000 * 4096)
    }

    pub fn report(compare: bool) -> Report {
        let mut argv = vec![
            "percore-loadgen",
            "--endpoint",
            "http://127.0.0.1:9000",
            "--access-key",
            "ak",
            "--secret-key",
            "very-secret",
            "--rate",
            "1000",
            "--label",
            "<run & co>",
        ];
        if compare {
            argv.extend_from_slice(&["--endpoint", "http://127.0.0.1:9001"]);
        }
        let plan = Plan::from_args(&Args::try_parse_from(argv).unwrap()).unwrap();
        let mut endpoints = vec![endpoint(
            "A",
            vec![
                op(Op::Get, 1000.0, 500, 2500, 0),
                op(Op::Put, 200.0, 900, 9000, 3),
            ],
        )];
        if compare {
            endpoints.push(endpoint(
                "B",
                vec![
                    op(Op::Get, 1200.0, 400, 2000, 0),
                    op(Op::Put, 100.0, 1900, 19000, 0),
                ],
            ));
        }
        let compare_rows = compare.then(|| ratio_table(&endpoints[0], &endpoints[1]));
        let targets =
            TargetsFile::parse("[[target]]\nop = \"get\"\nmin_ops_per_s = 1100\nmax_p99_ms = 3\n")
                .unwrap();
        let rows = evaluate(&targets, &endpoints, Some(4096));
        Report {
            tool: "percore-loadgen".to_owned(),
            version: "0.1.0".to_owned(),
            started_at: "20260101T000000Z".to_owned(),
            settings: plan.settings,
            endpoints,
            compare: compare_rows,
            targets: Some(rows),
            outcome: Outcome {
                exit_code: 1,
                reason: "targets missed".to_owned(),
            },
            cpu: Some(cpu()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::report;

    #[test]
    fn json_has_every_setting_and_figure_and_no_secret() {
        let report = report(true);
        let json = report.to_json();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let settings = &value["settings"];
        for key in [
            "endpoints",
            "region",
            "bucket",
            "key_prefix",
            "workload",
            "size",
            "keys",
            "key_dist",
            "seed",
            "mode",
            "warmup_s",
            "duration_s",
            "slice_ms",
            "timeout_s",
            "verify",
            "prepare",
            "cleanup",
            "part_size_bytes",
            "list_keys_max",
            "payload_signing",
            "threads",
            "max_error_ratio",
        ] {
            assert!(settings.get(key).is_some(), "settings.{key} missing");
        }
        assert_eq!(settings["mode"]["kind"], "open_loop");
        assert_eq!(settings["mode"]["rate_per_s"], 1000.0);
        let get = &value["endpoints"][0]["ops"][0];
        assert_eq!(get["op"], "get");
        for key in [
            "ok",
            "errors",
            "errors_by_code",
            "delayed",
            "ops_per_s",
            "mib_per_s",
            "latency",
            "service",
            "ttfb",
            "spectrum",
        ] {
            assert!(get.get(key).is_some(), "op.{key} missing");
        }
        assert_eq!(get["latency"]["p99_us"], 2500);
        assert_eq!(
            value["endpoints"][0]["ops"][1]["errors_by_code"]["SlowDown"],
            3
        );
        assert!(value["endpoints"][1]["timeline"].as_array().unwrap().len() > 10);
        assert_eq!(value["compare"][0]["op"], "get");
        assert_eq!(value["targets"][0]["verdict"], "fail");
        assert_eq!(value["targets"][1]["verdict"], "pass");
        assert_eq!(value["outcome"]["exit_code"], 1);
        assert!(!json.contains("very-secret"));
        let cpu = &value["cpu"];
        assert_eq!(cpu["servers"][0]["pid"], 101);
        assert_eq!(cpu["server_cpu_s"], 4.5);
        assert_eq!(cpu["server_us_per_request"], 375.0);
        assert_eq!(cpu["loadgen_us_per_request"], 100.0);
        assert!(cpu["server_us_per_mib"].as_f64().unwrap() > 0.0);
    }
}
