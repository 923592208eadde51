//! percore-loadgen: an S3 load generator that measures latency honestly.
//!
//! Speaks only S3 over HTTP with SigV4 (no workspace crate), so it runs against any S3 endpoint.
//! This file wires the phases together and owns the exit codes: parse and check the settings,
//! prepare, run, evaluate targets, print and write the reports, clean up. The work itself lives
//! in the modules below; see `--help` for the exit codes.

mod config;
mod cpu;
mod error;
mod limits;
mod progress;
mod report;
mod runner;
mod s3;
mod scheduler;
mod sigv4;
mod stats;
mod summary;
mod targets;
mod units;
mod workload;
mod xml;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;

use crate::config::{Args, Mode, Plan};
use crate::cpu::CpuSummary;
use crate::error::{ConfigError, LoadgenError};
use crate::report::{Outcome, Report};
use crate::runner::Context;
use crate::summary::EndpointSummary;
use crate::targets::{TargetRow, Verdict};

/// The run completed and met every target.
const EXIT_OK: u8 = 0;
/// A target was missed.
const EXIT_TARGETS_MISSED: u8 = 1;
/// Usage or configuration error (clap uses 2 for usage errors too).
const EXIT_CONFIG: u8 = 2;
/// The run failed: prepare failed, too many errors, or a report could not be written.
const EXIT_RUN_FAILED: u8 = 3;

fn main() -> ExitCode {
    // clap prints usage errors and exits with 2, and exits with 0 after --help/--version.
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("percore-loadgen: {error}");
            ExitCode::from(match error {
                LoadgenError::Config(_) => EXIT_CONFIG,
                _ => EXIT_RUN_FAILED,
            })
        }
    }
}

fn run(args: &Args) -> Result<u8, LoadgenError> {
    let plan = Plan::from_args(args)?;
    let settings = &plan.settings;
    // Fail before a long run, not after it, when a report cannot be written.
    for path in [&settings.json, &settings.html].into_iter().flatten() {
        create_file(path)?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .thread_name("loadgen")
        .enable_all()
        .build()
        .map_err(LoadgenError::Runtime)?;
    let in_flight = match settings.mode {
        Mode::OpenLoop { inflight_max, .. } => inflight_max,
        Mode::ClosedLoop { concurrency } => concurrency,
    };
    let pool_size = in_flight.max(settings.prepare_concurrency) as usize;
    let ctx = Arc::new(Context::new(&plan, pool_size));
    if let Some(dir) = &args.write_files {
        let written = workload::write_files(dir, &ctx.bucket, &ctx.keyspace, &ctx.payload)?;
        if !settings.quiet {
            eprintln!(
                "wrote {written} files under {}",
                dir.join(&ctx.bucket).display()
            );
        }
        return Ok(EXIT_OK);
    }
    let started_at = sigv4::amz_datetime_now();

    if settings.prepare {
        runtime.block_on(runner::prepare(
            Arc::clone(&ctx),
            settings.prepare_concurrency,
            settings.quiet,
        ))?;
    }
    let mut code = EXIT_OK;
    if settings.run {
        let (endpoints, cpu) = runner::run(&runtime, &ctx, &plan)?;
        let report = build_report(&plan, started_at, endpoints, Some(cpu));
        print!("{}", report::text::render(&report));
        code = report.outcome.exit_code as u8;
        if let Some(path) = &settings.json {
            write_file(path, &report.to_json())?;
        }
        if let Some(path) = &settings.html {
            write_file(path, &report::html::render(&report))?;
        }
    }
    if settings.cleanup {
        let failures = runtime.block_on(runner::cleanup(
            Arc::clone(&ctx),
            settings.prepare_concurrency,
            settings.delete_bucket,
            settings.quiet,
        ));
        // A failed cleanup does not change a measured run's verdict; it fails a cleanup-only one.
        if failures > 0 && !settings.run {
            code = EXIT_RUN_FAILED;
        }
    }
    Ok(code)
}

/// The report of a finished run, with its verdict.
fn build_report(
    plan: &Plan,
    started_at: String,
    endpoints: Vec<EndpointSummary>,
    cpu: Option<CpuSummary>,
) -> Report {
    let settings = &plan.settings;
    let compare = match endpoints.as_slice() {
        [a, b] => Some(summary::ratio_table(a, b)),
        _ => None,
    };
    let targets = plan
        .targets
        .as_ref()
        .map(|file| targets::evaluate(file, &endpoints, settings.size.fixed_size_bytes()));
    let outcome = outcome(&endpoints, targets.as_deref(), settings.max_error_ratio);
    Report {
        tool: "percore-loadgen".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at,
        settings: settings.clone(),
        endpoints,
        compare,
        targets,
        outcome,
        cpu,
    }
}

/// The verdict: a failed run (3) outranks a missed target (1).
fn outcome(
    endpoints: &[EndpointSummary],
    targets: Option<&[TargetRow]>,
    max_error_ratio: f64,
) -> Outcome {
    let mut failures = Vec::new();
    for endpoint in endpoints {
        if endpoint.ok + endpoint.errors == 0 {
            failures.push(format!("endpoint {}: no request measured", endpoint.name));
        } else if endpoint.error_ratio() > max_error_ratio {
            failures.push(format!(
                "endpoint {}: {} of {} requests failed ({:.3}%, above --max-error-ratio {})",
                endpoint.name,
                endpoint.errors,
                endpoint.ok + endpoint.errors,
                endpoint.error_ratio() * 100.0,
                max_error_ratio
            ));
        }
    }
    if !failures.is_empty() {
        return Outcome {
            exit_code: i32::from(EXIT_RUN_FAILED),
            reason: format!("run failed: {}", failures.join("; ")),
        };
    }
    match targets {
        Some(rows) if !targets::all_met(rows) => {
            let failed = rows.iter().filter(|r| r.verdict == Verdict::Fail).count();
            Outcome {
                exit_code: i32::from(EXIT_TARGETS_MISSED),
                reason: format!("targets missed: {failed} of {} limits failed", rows.len()),
            }
        }
        Some(rows) => Outcome {
            exit_code: i32::from(EXIT_OK),
            reason: format!(
                "ok: every target met ({} limits checked)",
                rows.iter().filter(|r| r.verdict == Verdict::Pass).count()
            ),
        },
        None => Outcome {
            exit_code: i32::from(EXIT_OK),
            reason: "ok".to_owned(),
        },
    }
}

fn create_file(path: &Path) -> Result<(), ConfigError> {
    std::fs::File::create(path)
        .map(drop)
        .map_err(|e| ConfigError::ReportFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn write_file(path: &Path, contents: &str) -> Result<(), LoadgenError> {
    std::fs::write(path, contents).map_err(|source| LoadgenError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::fixtures::{endpoint, op};
    use crate::targets::TargetsFile;
    use crate::workload::Op;

    #[test]
    fn outcome_codes() {
        let good = vec![endpoint("A", vec![op(Op::Get, 1000.0, 500, 2500, 0)])];
        assert_eq!(outcome(&good, None, 0.01).exit_code, 0);
        let file = TargetsFile::parse("[[target]]\nop = \"get\"\nmax_p99_ms = 1\n").unwrap();
        let rows = targets::evaluate(&file, &good, Some(4096));
        let missed = outcome(&good, Some(&rows), 0.01);
        assert_eq!(missed.exit_code, 1, "{missed:?}");
        // 200 errors against 10000 ok is 2%: a failed run, which outranks the missed target.
        let bad = vec![endpoint("A", vec![op(Op::Get, 1000.0, 500, 2500, 200)])];
        let failed = outcome(&bad, Some(&rows), 0.01);
        assert_eq!(failed.exit_code, 3, "{failed:?}");
        assert!(failed.reason.contains("above --max-error-ratio"));
        assert_eq!(outcome(&bad, None, 0.05).exit_code, 0);
        let empty = vec![endpoint("A", vec![])];
        assert_eq!(outcome(&empty, None, 0.01).exit_code, 3);
    }
}
