#!/usr/bin/env python3
"""Combines the perf suite's loadgen reports into one JSON and one self-contained HTML page.

Usage: suite_report.py OUT_DIR RUN [RUN ...]   (reads OUT_DIR/RUN.json, OUT_DIR/RUN.html and the
ceilings the suite measured, OUT_DIR/ceilings.json)
Writes OUT_DIR/suite.json and OUT_DIR/suite.html and prints the ratio and headline tables. Standard
library only: the suite runs on a fresh machine.
"""

import html
import json
import platform
import sys
from pathlib import Path


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


def server_us(report):
    """Server CPU per request over the run (every op), µs; "-" without `--server-pid`."""
    value = (report.get("cpu") or {}).get("server_us_per_request")
    return "-" if value is None else f"{value:.0f}"


def op_of(runs, name, op):
    """The summary of `op` in run `name`, or None when that run is not in the suite."""
    report = runs.get(name)
    if report is None:
        return None
    return next((o for o in report["endpoints"][0]["ops"] if o["op"] == op), None)


def ratio_rows(runs, ceilings):
    """The issue's targets as ratios measured in this run: (what, value, target, verdict)."""
    rows = []

    def add(what, value, target, ok):
        shown = "not measured" if value is None else f"{value:.3g}"
        verdict = "-" if value is None or ok is None else ("met" if ok(value) else "MISSED")
        rows.append({"what": what, "value": shown, "target": target, "verdict": verdict})

    def rate(name, op):
        o = op_of(runs, name, op)
        return None if o is None else o["ops_per_s"]

    def mib(name, op):
        o = op_of(runs, name, op)
        return None if o is None else o["mib_per_s"]

    def lat(name, op, key):
        o = op_of(runs, name, op)
        value = None if o is None else (o.get("latency") or {}).get(key)
        return None if value is None else value / 1000

    def cpu(name):
        report = runs.get(name)
        return None if report is None else (report.get("cpu") or {}).get("server_us_per_request")

    def div(a, b):
        return None if a is None or not b else a / b

    add("4 KiB GET closed loop, percore / nginx", div(rate("get-4k-peak", "get"),
        rate("nginx-get-4k-peak", "get")), ">= 0.6", lambda v: v >= 0.6)
    add("server CPU per 4 KiB GET, us", cpu("get-4k-peak"), "<= 50", lambda v: v <= 50)
    add("server CPU per 4 KiB PUT, us", cpu("put-4k-peak"), "<= 100", lambda v: v <= 100)
    add("server CPU per 4 KiB PUT of a new key (ingest), us", cpu("put-4k-new"), "<= 100",
        lambda v: v <= 100)
    add("4 KiB GET open loop p99 at 25% of peak, ms", lat("get-4k-open25", "get", "p99_us"),
        "<= 2", lambda v: v <= 2)
    add("4 KiB GET open loop p99 at 50% of peak, ms", lat("get-4k-open50", "get", "p99_us"),
        "<= 5", lambda v: v <= 5)
    add("64 MiB GET / fio read", div(mib("get-64m", "get"), ceilings.get("fio_read_mib_per_s")),
        ">= 0.85", lambda v: v >= 0.85)
    amp = ceilings.get("put_64m_amplification")
    put = mib("put-64m", "put")
    add("64 MiB PUT x its device amplification "
        f"({'?' if amp is None else amp}) / fio write",
        div(None if put is None or amp is None else put * amp,
            ceilings.get("fio_write_mib_per_s")), ">= 0.85", lambda v: v >= 0.85)
    add("1 MiB GET p99.9 / p50 (after the PUT phase)", div(lat("get-1m", "get", "p999_us"),
        lat("get-1m", "get", "p50_us")), "<= 5", lambda v: v <= 5)
    for size in ("4kib", "1kib"):
        d = ceilings.get(f"disk_{size}") or {}
        copies = d.get("copies")
        add(f"{size[:-3]} KiB objects on disk (log + LMDB) / the policy's "
            f"{'?' if copies is None else f'{copies:.3g}'} copies",
            d.get("amplification"), "<= 1.25", lambda v: v <= 1.25)
    add("zipfian 4 KiB GETs served from the cache", (ceilings.get("cache_zipf") or {}).get(
        "hit_ratio"), ">= 0.95", lambda v: v >= 0.95)
    for name, op in [("get-4k-peak", "get"), ("put-4k-peak", "put"), ("get-1m", "get"),
                     ("put-1m", "put")]:
        if f"peer-{name}" in runs:
            add(f"{name}: percore / peer", div(rate(name, op), rate(f"peer-{name}", op)),
                "-", None)
    return rows


RATIO_COLUMNS = [("what", "ratio"), ("value", "value"), ("target", "target"),
                 ("verdict", "verdict")]


def headline_rows(runs):
    """One row per (run, op): mode, ops/s, MiB/s, p50/p99/p99.9 from intended send, errors."""
    rows = []
    for name, report in runs:
        settings = report.get("settings", {})
        mode = dict(settings.get("mode", {}))
        kind = mode.pop("kind", "?").replace("_", " ")
        mode_text = " ".join([kind] + [f"{k}={v}" for k, v in mode.items()])
        for op in report["endpoints"][0]["ops"]:
            lat = op.get("latency") or {}
            rows.append(
                {
                    "run": name,
                    "op": op["op"],
                    "mode": mode_text,
                    "ops_per_s": op["ops_per_s"],
                    "mib_per_s": op["mib_per_s"],
                    "p50_ms": ms(lat.get("p50_us")),
                    "p99_ms": ms(lat.get("p99_us")),
                    "p999_ms": ms(lat.get("p999_us")),
                    "errors": op["errors"],
                    "server_us": server_us(report),
                }
            )
    return rows


COLUMNS = [
    ("run", "run"),
    ("op", "op"),
    ("mode", "mode"),
    ("ops_per_s", "ops/s"),
    ("mib_per_s", "MiB/s"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("p999_ms", "p99.9 ms"),
    ("errors", "errors"),
    ("server_us", "server us/req"),
]


def cell(row, key):
    value = row[key]
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def text_table(rows, columns=COLUMNS):
    table = [[label for _, label in columns]] + [[cell(r, k) for k, _ in columns] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return "\n".join(
        "  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in table
    )


def html_table(rows, columns):
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r, k))}</td>" for k, _ in columns) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(rows, ratios, runs, out):
    frames = []
    for name, _ in runs:
        page = (out / f"{name}.html").read_text(encoding="utf-8")
        frames.append(
            f'<h2 id="{html.escape(name)}">{html.escape(name)}</h2>'
            f'<iframe title="{html.escape(name)}" srcdoc="{html.escape(page, quote=True)}">'
            "</iframe>"
        )
    return (
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>percore perf suite</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}"
        "iframe{width:100%;height:1400px;border:1px solid #ccc}</style></head><body>"
        f"<h1>percore perf suite</h1><p>{html.escape(platform.platform())}, "
        f"{html.escape(str(len(runs)))} runs. Latencies from the intended send time "
        "(open loop) or the send (closed loop).</p>"
        f"<h2>Targets, as ratios in this run</h2>{html_table(ratios, RATIO_COLUMNS)}"
        f"<h2>Every run</h2>{html_table(rows, COLUMNS)}{''.join(frames)}</body></html>"
    )


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    runs = [(name, json.loads((out / f"{name}.json").read_text())) for name in argv[2:]]
    rows = headline_rows(runs)
    ceilings_path = out / "ceilings.json"
    ceilings = json.loads(ceilings_path.read_text()) if ceilings_path.exists() else {}
    ratios = ratio_rows(dict(runs), ceilings)
    suite = {
        "host": platform.platform(),
        "ceilings": ceilings,
        "ratios": ratios,
        "headline": rows,
        "runs": {name: report for name, report in runs},
    }
    (out / "suite.json").write_text(json.dumps(suite, indent=2))
    (out / "suite.html").write_text(html_page(rows, ratios, runs, out), encoding="utf-8")
    print(text_table(ratios, RATIO_COLUMNS))
    print()
    print(text_table(rows))
    print(f"\nwrote {out / 'suite.json'} and {out / 'suite.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
