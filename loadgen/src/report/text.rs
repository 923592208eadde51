//! The plain-text tables printed at the end of a run.
//!
//! Units are in every header: ops/s, MiB/s, latencies in ms (µs below 1 ms are shown as
//! fractions of a ms with three decimals).

use std::fmt::Write as _;

use crate::config::Mode;
use crate::cpu::CpuSummary;
use crate::report::Report;
use crate::summary::{EndpointSummary, Percentiles};
use crate::targets::Verdict;

pub(super) fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

pub(super) fn opt_ms(p: Option<&Percentiles>, pick: fn(&Percentiles) -> u64) -> String {
    p.map_or_else(|| "-".to_owned(), |p| ms(pick(p)))
}

pub(super) fn opt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_owned(), |r| format!("{r:.3}"))
}

/// The whole end-of-run text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let s = &report.settings;
    let mode = match s.mode {
        Mode::OpenLoop {
            rate_per_s,
            inflight_max,
        } => format!(
            "open loop at {rate_per_s} req/s (max {inflight_max} in flight); latency from the intended send time"
        ),
        Mode::ClosedLoop { concurrency } => format!(
            "closed loop, {concurrency} in flight; latency from the actual send (closed-loop figures hide queueing)"
        ),
    };
    let _ = writeln!(
        out,
        "workload {}  size {}  keys {} ({})  warm-up {} s  measured {} s\n{mode}",
        s.workload,
        s.size_text,
        s.keys,
        s.key_dist.describe(),
        s.warmup_s,
        s.duration_s
    );
    for endpoint in &report.endpoints {
        endpoint_table(&mut out, endpoint);
    }
    if let Some(cpu) = &report.cpu {
        cpu_lines(&mut out, cpu);
    }
    if let Some(rows) = &report.compare {
        let _ = writeln!(
            out,
            "\ncompare: B / A (above 1: B higher; better for ops/s, worse for latency)"
        );
        let _ = writeln!(
            out,
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            "op", "ops/s", "MiB/s", "p50", "p90", "p99", "p99.9", "max", "err% A", "err% B"
        );
        for row in rows {
            let _ = writeln!(
                out,
                "{:<10} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9.3} {:>9.3}",
                row.op.name(),
                opt_ratio(row.ops_per_s),
                opt_ratio(row.mib_per_s),
                opt_ratio(row.p50),
                opt_ratio(row.p90),
                opt_ratio(row.p99),
                opt_ratio(row.p999),
                opt_ratio(row.max),
                row.error_ratio_a * 100.0,
                row.error_ratio_b * 100.0
            );
        }
    }
    if let Some(rows) = &report.targets {
        let _ = writeln!(out, "\ntargets");
        let _ = writeln!(
            out,
            "{:>3} {:<2} {:<10} {:<8} {:<12} {:>16} {:>14}  {:<7} note",
            "#", "ep", "op", "size", "metric", "limit", "actual", "verdict"
        );
        for row in rows {
            let verdict = match row.verdict {
                Verdict::Pass => "PASS",
                Verdict::Fail => "FAIL",
                Verdict::Skipped => "skipped",
            };
            let _ = writeln!(
                out,
                "{:>3} {:<2} {:<10} {:<8} {:<12} {:>16} {:>14}  {:<7} {}",
                row.target,
                row.endpoint,
                row.op.name(),
                row.size.as_deref().unwrap_or("any"),
                row.metric,
                format!("{} {}", row.comparison, row.limit),
                row.actual
                    .map_or_else(|| "-".to_owned(), |a| format!("{a:.3}")),
                verdict,
                row.note
            );
        }
    }
    let _ = writeln!(
        out,
        "\nexit {}: {}",
        report.outcome.exit_code, report.outcome.reason
    );
    out
}

/// A figure or "-" when it could not be measured.
pub(super) fn opt_fixed(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// CPU time per request of the servers (`--server-pid`) and of the generator.
pub(super) fn cpu_lines(out: &mut String, cpu: &CpuSummary) {
    let ops_per_s = if cpu.wall_s > 0.0 {
        cpu.requests as f64 / cpu.wall_s
    } else {
        0.0
    };
    let _ = writeln!(
        out,
        "\ncpu over the measured phase ({:.1} s, {} requests, {ops_per_s:.1} req/s)",
        cpu.wall_s, cpu.requests
    );
    if !cpu.servers.is_empty() {
        let _ = writeln!(
            out,
            "  server  {} s ({} cores)  {} µs/request  {} µs/MiB  (resolution {} ms)",
            opt_fixed(cpu.server_cpu_s, 3),
            opt_fixed(cpu.server_cores, 2),
            opt_fixed(cpu.server_us_per_request, 1),
            opt_fixed(cpu.server_us_per_mib, 0),
            cpu.server_tick_s * 1000.0
        );
        for p in &cpu.servers {
            match &p.error {
                Some(e) => {
                    let _ = writeln!(out, "    pid {} {}: {e}", p.pid, p.comm);
                }
                None => {
                    let _ = writeln!(
                        out,
                        "    pid {} {}: {} s (user {} s, system {} s)",
                        p.pid,
                        p.comm,
                        opt_fixed(p.cpu_s, 3),
                        opt_fixed(p.user_s, 3),
                        opt_fixed(p.system_s, 3)
                    );
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "  loadgen {:.3} s ({:.2} cores)  {} µs/request",
        cpu.loadgen_cpu_s,
        cpu.loadgen_cores,
        opt_fixed(cpu.loadgen_us_per_request, 1)
    );
}

fn endpoint_table(out: &mut String, endpoint: &EndpointSummary) {
    let _ = writeln!(
        out,
        "\nendpoint {} {}  measured {:.1} s  {:.1} ops/s  {:.2} MiB/s  {} ok  {} errors",
        endpoint.name,
        endpoint.url,
        endpoint.measured_s,
        endpoint.ops_per_s,
        endpoint.mib_per_s,
        endpoint.ok,
        endpoint.errors
    );
    let _ = writeln!(
        out,
        "{:<10} {:>10} {:>8} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>9}",
        "op",
        "ok",
        "errors",
        "ops/s",
        "MiB/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
        "ttfb p99 ms",
        "delayed"
    );
    for op in &endpoint.ops {
        let latency = op.latency.as_ref();
        let _ = writeln!(
            out,
            "{:<10} {:>10} {:>8} {:>11.1} {:>9.2} {:>9} {:>9} {:>9} {:>9} {:>9} {:>12} {:>9}",
            op.op.name(),
            op.ok,
            op.errors,
            op.ops_per_s,
            op.mib_per_s,
            opt_ms(latency, |p| p.p50_us),
            opt_ms(latency, |p| p.p90_us),
            opt_ms(latency, |p| p.p99_us),
            opt_ms(latency, |p| p.p999_us),
            opt_ms(latency, |p| p.max_us),
            opt_ms(op.ttfb.as_ref(), |p| p.p99_us),
            op.delayed
        );
    }
    for op in endpoint.ops.iter().filter(|o| !o.errors_by_code.is_empty()) {
        let codes: Vec<String> = op
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        let _ = writeln!(out, "  {} errors: {}", op.op.name(), codes.join(" "));
    }
    if let Some(lag) = &endpoint.send_lag {
        let _ = writeln!(
            out,
            "  send lag (how late requests left vs. their intended time): p50 {} ms  p99 {} ms  max {} ms",
            ms(lag.p50_us),
            ms(lag.p99_us),
            ms(lag.max_us)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::report;

    #[test]
    fn text_has_tables_units_and_verdicts() {
        let text = render(&report(true));
        assert!(text.contains("open loop at 1000 req/s"));
        assert!(text.contains("endpoint A http://127.0.0.1:9001"));
        assert!(text.contains("p99 ms"));
        assert!(text.contains("MiB/s"));
        assert!(text.contains("put errors: SlowDown=3"));
        assert!(text.contains("compare: B / A"));
        // GET: B 1200 ops/s over A 1000.
        assert!(text
            .lines()
            .any(|l| l.starts_with("get") && l.contains("1.200")));
        assert!(text.contains("FAIL"));
        assert!(text.contains("PASS"));
        assert!(text.contains("exit 1: targets missed"));
        assert!(text.contains("send lag"));
        assert!(text.contains("server  4.500 s (0.45 cores)  375.0 µs/request"));
        assert!(text.contains("pid 101 percore: 4.000 s (user 3.000 s, system 1.000 s)"));
        assert!(text.contains("loadgen 1.200 s (0.12 cores)  100.0 µs/request"));
    }
}
