//! The `--html` report: one self-contained page (inline CSS and SVG, no script, no font or
//! stylesheet to fetch) that opens offline.
//!
//! Owns the page layout and the choice of charts: latency by percentile per operation (log
//! scales, so the tail is readable next to the median), throughput and p99 per second over the
//! run with the warm-up shaded, then the tables of the text report and every setting. Every
//! piece of text that comes from the run (labels, URLs, S3 error codes) is escaped. It does not
//! compute figures: everything comes from the [`Report`].

use std::fmt::Write as _;

use crate::config::Mode;
use crate::cpu::CpuSummary;
use crate::report::svg::{escape, line_chart, trim_number, Axis, Series};
use crate::report::text::{ms, opt_fixed, opt_ms, opt_ratio};
use crate::report::Report;
use crate::summary::{EndpointSummary, IntervalSummary, OpSummary};
use crate::targets::Verdict;
use crate::workload::Op;

const STYLE: &str = "\
body{font-family:sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}\
h1{font-size:1.6em}h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:0.5em 0 1em}\
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f3f3f3}td.l,th.l{text-align:left}\
.pass{color:#006d2c;font-weight:bold}.fail{color:#b30000;font-weight:bold}.skip{color:#777}\
.outcome{font-size:1.1em;padding:0.5em 1em;border-radius:4px;display:inline-block}\
.ok{background:#e5f5e0}.bad{background:#fde0dd}.note{color:#555;font-size:0.9em}\
figure{margin:1em 0}svg{max-width:100%;height:auto}";

/// Where the maximum sits on the percentile axis (right of 99.999 %).
const NINES_MAX_AT: f64 = 5.5;

/// The whole page.
pub fn render(report: &Report) -> String {
    let mut out = String::with_capacity(64 << 10);
    let title = match &report.settings.label {
        Some(label) => format!("percore-loadgen: {label}"),
        None => "percore-loadgen report".to_owned(),
    };
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n",
        escape(&title)
    );
    let _ = writeln!(out, "<h1>{}</h1>", escape(&title));
    header(&mut out, report);
    for endpoint in &report.endpoints {
        endpoint_section(&mut out, endpoint);
    }
    if let Some(cpu) = &report.cpu {
        cpu_section(&mut out, cpu);
    }
    compare_section(&mut out, report);
    targets_section(&mut out, report);
    charts(&mut out, report);
    settings_section(&mut out, report);
    out.push_str("</body></html>\n");
    out
}

fn header(out: &mut String, report: &Report) {
    let s = &report.settings;
    let class = if report.outcome.exit_code == 0 {
        "ok"
    } else {
        "bad"
    };
    let _ = writeln!(
        out,
        "<p class=\"outcome {class}\">exit {}: {}</p>",
        report.outcome.exit_code,
        escape(&report.outcome.reason)
    );
    let mode = match s.mode {
        Mode::OpenLoop {
            rate_per_s,
            inflight_max,
        } => format!(
            "open loop at {} req/s (at most {inflight_max} in flight); latency from the intended \
             send time, so stalls are charged",
            trim_number(rate_per_s)
        ),
        Mode::ClosedLoop { concurrency } => format!(
            "closed loop, {concurrency} in flight; latency from the actual send (closed-loop \
             figures hide queueing)"
        ),
    };
    let _ = writeln!(
        out,
        "<p>{} {} &middot; started {} UTC &middot; workload <b>{}</b> &middot; size <b>{}</b> \
         &middot; {} keys ({}) &middot; warm-up {} s &middot; measured {} s</p><p>{}</p>",
        escape(&report.tool),
        escape(&report.version),
        escape(&report.started_at),
        escape(&s.workload),
        escape(&s.size_text),
        s.keys,
        escape(&s.key_dist.describe()),
        trim_number(s.warmup_s),
        trim_number(s.duration_s),
        escape(&mode)
    );
}

fn row(out: &mut String, cells: &[String]) {
    out.push_str("<tr>");
    for (i, cell) in cells.iter().enumerate() {
        let class = if i == 0 { " class=\"l\"" } else { "" };
        let _ = write!(out, "<td{class}>{}</td>", escape(cell));
    }
    out.push_str("</tr>\n");
}

fn head(out: &mut String, cells: &[&str]) {
    out.push_str("<table><tr>");
    for (i, cell) in cells.iter().enumerate() {
        let class = if i == 0 { " class=\"l\"" } else { "" };
        let _ = write!(out, "<th{class}>{}</th>", escape(cell));
    }
    out.push_str("</tr>\n");
}

fn endpoint_section(out: &mut String, endpoint: &EndpointSummary) {
    let _ = writeln!(
        out,
        "<h2>Endpoint {} <small>{}</small></h2>\n<p>measured {:.1} s &middot; {:.1} ops/s \
         &middot; {:.2} MiB/s &middot; {} ok &middot; {} errors</p>",
        escape(&endpoint.name),
        escape(&endpoint.url),
        endpoint.measured_s,
        endpoint.ops_per_s,
        endpoint.mib_per_s,
        endpoint.ok,
        endpoint.errors
    );
    head(
        out,
        &[
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
            "TTFB p99 ms",
            "service p99 ms",
            "delayed",
            "errors by code",
        ],
    );
    for op in &endpoint.ops {
        let latency = op.latency.as_ref();
        let codes: Vec<String> = op
            .errors_by_code
            .iter()
            .map(|(code, n)| format!("{code}={n}"))
            .collect();
        row(
            out,
            &[
                op.op.name().to_owned(),
                op.ok.to_string(),
                op.errors.to_string(),
                format!("{:.1}", op.ops_per_s),
                format!("{:.2}", op.mib_per_s),
                opt_ms(latency, |p| p.p50_us),
                opt_ms(latency, |p| p.p90_us),
                opt_ms(latency, |p| p.p99_us),
                opt_ms(latency, |p| p.p999_us),
                opt_ms(latency, |p| p.max_us),
                opt_ms(op.ttfb.as_ref(), |p| p.p99_us),
                opt_ms(op.service.as_ref(), |p| p.p99_us),
                op.delayed.to_string(),
                codes.join(" "),
            ],
        );
    }
    out.push_str("</table>\n");
    if let Some(lag) = &endpoint.send_lag {
        let _ = writeln!(
            out,
            "<p class=\"note\">Send lag (how late requests left against their intended time): \
             p50 {} ms, p99 {} ms, max {} ms. Service time is from the actual send; the \
             latency columns are from the intended send time.</p>",
            ms(lag.p50_us),
            ms(lag.p99_us),
            ms(lag.max_us)
        );
    }
}

/// CPU per request: one row per server process, their total, and the generator.
fn cpu_section(out: &mut String, cpu: &CpuSummary) {
    let _ = writeln!(
        out,
        "<h2>CPU per request</h2>\n<p class=\"note\">Over the measured phase: {:.1} s, {} \
         requests ({:.1} req/s). Server figures are utime + stime of every thread of the \
         <code>--server-pid</code> processes, resolution {} ms; the generator's own from \
         getrusage.</p>",
        cpu.wall_s,
        cpu.requests,
        if cpu.wall_s > 0.0 {
            cpu.requests as f64 / cpu.wall_s
        } else {
            0.0
        },
        cpu.server_tick_s * 1000.0
    );
    head(
        out,
        &[
            "process",
            "cpu s",
            "user s",
            "system s",
            "cores",
            "µs/request",
            "µs/MiB",
            "note",
        ],
    );
    for p in &cpu.servers {
        row(
            out,
            &[
                format!("server pid {} {}", p.pid, p.comm),
                opt_fixed(p.cpu_s, 3),
                opt_fixed(p.user_s, 3),
                opt_fixed(p.system_s, 3),
                opt_fixed(p.cpu_s.map(|c| c / cpu.wall_s.max(1e-9)), 2),
                opt_fixed(p.cpu_s.map(|c| c * 1e6 / cpu.requests.max(1) as f64), 1),
                "-".to_owned(),
                p.error.clone().unwrap_or_default(),
            ],
        );
    }
    if !cpu.servers.is_empty() {
        row(
            out,
            &[
                "server total".to_owned(),
                opt_fixed(cpu.server_cpu_s, 3),
                "-".to_owned(),
                "-".to_owned(),
                opt_fixed(cpu.server_cores, 2),
                opt_fixed(cpu.server_us_per_request, 1),
                opt_fixed(cpu.server_us_per_mib, 0),
                String::new(),
            ],
        );
    }
    row(
        out,
        &[
            "loadgen".to_owned(),
            format!("{:.3}", cpu.loadgen_cpu_s),
            "-".to_owned(),
            "-".to_owned(),
            format!("{:.2}", cpu.loadgen_cores),
            opt_fixed(cpu.loadgen_us_per_request, 1),
            "-".to_owned(),
            String::new(),
        ],
    );
    out.push_str("</table>\n");
}

fn compare_section(out: &mut String, report: &Report) {
    let Some(rows) = &report.compare else { return };
    out.push_str(
        "<h2>Compare: B / A</h2>\n<p class=\"note\">Above 1: B is higher (better for ops/s and \
         MiB/s, worse for latency). Both endpoints ran the same workload, interleaved in \
         slices.</p>\n",
    );
    head(
        out,
        &[
            "op", "ops/s", "MiB/s", "p50", "p90", "p99", "p99.9", "max", "err % A", "err % B",
        ],
    );
    for r in rows {
        row(
            out,
            &[
                r.op.name().to_owned(),
                opt_ratio(r.ops_per_s),
                opt_ratio(r.mib_per_s),
                opt_ratio(r.p50),
                opt_ratio(r.p90),
                opt_ratio(r.p99),
                opt_ratio(r.p999),
                opt_ratio(r.max),
                format!("{:.3}", r.error_ratio_a * 100.0),
                format!("{:.3}", r.error_ratio_b * 100.0),
            ],
        );
    }
    out.push_str("</table>\n");
}

fn targets_section(out: &mut String, report: &Report) {
    let Some(rows) = &report.targets else { return };
    out.push_str("<h2>Targets</h2>\n");
    head(
        out,
        &[
            "#", "endpoint", "op", "size", "metric", "limit", "actual", "verdict", "note",
        ],
    );
    for r in rows {
        let (class, verdict) = match r.verdict {
            Verdict::Pass => ("pass", "PASS"),
            Verdict::Fail => ("fail", "FAIL"),
            Verdict::Skipped => ("skip", "skipped"),
        };
        let _ = writeln!(
            out,
            "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td><td class=\"l\">{}</td>\
             <td class=\"l\">{}</td><td class=\"l\">{}</td><td>{} {}</td><td>{}</td>\
             <td class=\"{class}\">{verdict}</td><td class=\"l\">{}</td></tr>",
            r.target,
            escape(&r.endpoint),
            r.op.name(),
            escape(r.size.as_deref().unwrap_or("any")),
            escape(&r.metric),
            escape(&r.comparison),
            trim_number(r.limit),
            r.actual
                .map_or_else(|| "-".to_owned(), |a| format!("{a:.3}")),
            escape(&r.note)
        );
    }
    out.push_str("</table>\n");
}

/// A latency tick label from milliseconds.
fn latency_label(latency_ms: f64) -> String {
    if latency_ms < 1.0 {
        format!("{} µs", trim_number(latency_ms * 1000.0))
    } else if latency_ms < 1000.0 {
        format!("{} ms", trim_number(latency_ms))
    } else {
        format!("{} s", trim_number(latency_ms / 1000.0))
    }
}

/// Position of a percentile on the "nines" axis: 0 % at 0, 90 % at 1, 99 % at 2...
fn nines(percentile: f64) -> f64 {
    if percentile >= 100.0 {
        NINES_MAX_AT
    } else {
        (-(1.0 - percentile / 100.0).log10()).clamp(0.0, 5.0)
    }
}

fn nines_axis() -> Axis {
    let ticks = [
        (0.0, "0%"),
        (1.0, "90%"),
        (2.0, "99%"),
        (3.0, "99.9%"),
        (4.0, "99.99%"),
        (5.0, "99.999%"),
        (NINES_MAX_AT, "max"),
    ];
    Axis {
        label: "percentile".to_owned(),
        min: 0.0,
        max: NINES_MAX_AT,
        ticks: ticks.iter().map(|(v, l)| (*v, (*l).to_owned())).collect(),
    }
}

/// One latency-by-percentile chart of `(name, op)` series.
fn spectrum_chart(title: &str, lines: &[(String, &OpSummary)]) -> Option<String> {
    let series: Vec<Series> = lines
        .iter()
        .filter(|(_, op)| !op.spectrum.is_empty())
        .map(|(name, op)| Series {
            name: name.clone(),
            points: op
                .spectrum
                .iter()
                .map(|p| {
                    (
                        nines(p.percentile),
                        (p.latency_us.max(1) as f64 / 1000.0).log10(),
                    )
                })
                .collect(),
        })
        .collect();
    if series.is_empty() {
        return None;
    }
    let all_ms = lines
        .iter()
        .flat_map(|(_, op)| op.spectrum.iter())
        .map(|p| p.latency_us.max(1) as f64 / 1000.0);
    let (low, high) = all_ms.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let y = Axis::log10("latency (log scale)", low, high, latency_label);
    Some(line_chart(title, &nines_axis(), &y, &series, None))
}

fn charts(out: &mut String, report: &Report) {
    out.push_str("<h2>Latency by percentile</h2>\n");
    let compare = report.endpoints.len() > 1;
    let mut any = false;
    if compare {
        for op in Op::ALL {
            let lines: Vec<(String, &OpSummary)> = report
                .endpoints
                .iter()
                .filter_map(|e| e.op(op).map(|o| (e.name.clone(), o)))
                .collect();
            let title = format!("{} latency by percentile, A and B", op.name());
            if let Some(chart) = spectrum_chart(&title, &lines) {
                let _ = writeln!(out, "<figure>{chart}</figure>");
                any = true;
            }
        }
    } else if let Some(endpoint) = report.endpoints.first() {
        let lines: Vec<(String, &OpSummary)> = endpoint
            .ops
            .iter()
            .map(|o| (o.op.name().to_owned(), o))
            .collect();
        if let Some(chart) = spectrum_chart("latency by percentile, per operation", &lines) {
            let _ = writeln!(out, "<figure>{chart}</figure>");
            any = true;
        }
    }
    if !any {
        out.push_str("<p>No successful requests: nothing to plot.</p>\n");
    }
    out.push_str("<h2>Over time</h2>\n");
    let warmup_s = report.settings.warmup_s;
    // Only whole seconds of the run: the partial second after the end holds the last
    // completions only and would draw a false drop.
    let end_s = warmup_s + report.settings.duration_s;
    let seconds = end_s.floor().max(1.0);
    let in_run = |i: &&IntervalSummary| i.t_s as f64 + 1.0 <= seconds;
    let x = Axis::linear_from_zero("time since start (s)", seconds, "");
    let shade = (warmup_s > 0.0).then_some((0.0, warmup_s, "warm-up"));
    // One series per endpoint over the run's whole seconds, plotted mid-second.
    let series = |value: fn(&IntervalSummary) -> Option<f64>| -> Vec<Series> {
        report
            .endpoints
            .iter()
            .map(|e| Series {
                name: e.name.clone(),
                points: e
                    .timeline
                    .iter()
                    .filter(in_run)
                    .filter_map(|i| value(i).map(|v| (i.t_s as f64 + 0.5, v)))
                    .collect(),
            })
            .collect()
    };
    let peak = |all: &[Series]| {
        all.iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
    };
    let throughput = series(|i| Some(i.ok as f64));
    let y = Axis::linear_from_zero("successful ops/s", peak(&throughput), "");
    let chart = line_chart("throughput per second", &x, &y, &throughput, shade);
    let _ = writeln!(out, "<figure>{chart}</figure>");
    let p99 = series(|i| i.p99_us.map(|us| us as f64 / 1000.0));
    let peak_ms = peak(&p99);
    let y = Axis::linear_from_zero("p99 latency (ms)", peak_ms, "");
    let chart = line_chart(
        "p99 latency of the requests completing each second (all ops)",
        &x,
        &y,
        &p99,
        shade,
    );
    let _ = writeln!(out, "<figure>{chart}</figure>");
    if compare {
        out.push_str(
            "<p class=\"note\">Compare mode: each endpoint gets the load only during its own \
             slices, so its lines alternate with the other's.</p>\n",
        );
    }
}

/// Every setting, one row each; nested values are shown as compact JSON.
fn settings_section(out: &mut String, report: &Report) {
    out.push_str("<h2>Settings</h2>\n");
    head(out, &["setting", "value"]);
    // Settings are plain data: serialising to a JSON value cannot fail.
    let value = serde_json::to_value(&report.settings).expect("settings serialise");
    if let serde_json::Value::Object(map) = value {
        for (key, value) in map {
            let text = match value {
                serde_json::Value::String(s) => s,
                serde_json::Value::Null => "-".to_owned(),
                other => other.to_string(),
            };
            let _ = writeln!(
                out,
                "<tr><td class=\"l\">{}</td><td class=\"l\">{}</td></tr>",
                escape(&key),
                escape(&text)
            );
        }
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::fixtures::report;

    #[test]
    fn html_is_self_contained_with_charts_and_tables() {
        let html = render(&report(true));
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        // Spectrum per op (get, put) in compare mode, plus throughput and p99 over time.
        assert_eq!(html.matches("<svg").count(), 4, "{html}");
        assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
        assert!(html.contains("<polyline"));
        assert!(html.contains("warm-up"));
        assert!(html.contains("99.9%"));
        assert!(html.contains("<h2>CPU per request</h2>"));
        assert!(html.contains("<td class=\"l\">server total</td><td>4.500</td>"));
        assert!(html.contains("<td>375.0</td>"));
        // Offline: nothing to fetch, nothing to run.
        for banned in ["<script", "<link", "src=", "href=", "@import", "url("] {
            assert!(!html.contains(banned), "found {banned}");
        }
        // Tables of the text report.
        assert!(html.contains("Compare: B / A"));
        assert!(html.contains("class=\"fail\">FAIL"));
        assert!(html.contains("class=\"pass\">PASS"));
        assert!(html.contains("SlowDown=3"));
        assert!(html.contains("exit 1: targets missed"));
        assert!(html.contains("http://127.0.0.1:9001"));
        // Every setting, secrets excluded.
        assert!(html.contains("payload_signing"));
        assert!(!html.contains("very-secret"));
    }

    #[test]
    fn text_from_the_run_is_escaped() {
        let mut r = report(false);
        r.outcome.reason = "<b>bad</b> & worse".to_owned();
        r.endpoints[0].ops[1]
            .errors_by_code
            .insert("<img onerror=x>".to_owned(), 1);
        let html = render(&r);
        // The label "<run & co>" appears in the title and the settings, escaped.
        assert!(html.contains("percore-loadgen: &lt;run &amp; co&gt;"));
        assert!(!html.contains("<run & co>"));
        assert!(html.contains("&lt;b&gt;bad&lt;/b&gt; &amp; worse"));
        assert!(html.contains("&lt;img onerror=x&gt;=1"));
        assert!(!html.contains("<img"));
        // One endpoint: one spectrum chart with a line per op.
        assert_eq!(html.matches("<svg").count(), 3);
    }

    #[test]
    fn nines_axis_positions() {
        assert!(nines(0.0).abs() < 1e-9);
        assert!((nines(90.0) - 1.0).abs() < 1e-9);
        assert!((nines(99.9) - 3.0).abs() < 1e-9);
        assert!((nines(100.0) - NINES_MAX_AT).abs() < 1e-9);
        assert_eq!(latency_label(0.25), "250 µs");
        assert_eq!(latency_label(20.0), "20 ms");
        assert_eq!(latency_label(5000.0), "5 s");
    }
}
