//! The reports of a run: the text tables on stdout, `--json` and `--html`.
//!
//! Owns the [`Report`] document (every setting and every figure) and its three renderings.
//! All renderers are pure functions of the document, so they are tested on literal data.

pub mod html;
pub mod svg;
pub mod text;

use serde::Serialize;

use crate::config::Settings;
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
    }
}
