#!/usr/bin/env python3
"""Combines the perf suite's loadgen reports into one JSON and one self-contained HTML page.

Usage: suite_report.py OUT_DIR RUN [RUN ...]   (reads OUT_DIR/RUN.json and OUT_DIR/RUN.html)
Writes OUT_DIR/suite.json and OUT_DIR/suite.html and prints the headline table. Standard
library only: the suite runs on a fresh machine.
"""

import html
import json
import platform
import sys
from pathlib import Path


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f}"


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
]


def cell(row, key):
    value = row[key]
    return f"{value:,.1f}" if isinstance(value, float) else str(value)


def text_table(rows):
    table = [[label for _, label in COLUMNS]] + [[cell(r, k) for k, _ in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(value.ljust(widths[i]) for i, value in enumerate(line)) for line in table
    )


def html_page(rows, runs, out):
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell(r, k))}</td>" for k, _ in COLUMNS) + "</tr>"
        for r in rows
    )
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
        f"<table><tr>{head}</tr>{body}</table>{''.join(frames)}</body></html>"
    )


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    runs = [(name, json.loads((out / f"{name}.json").read_text())) for name in argv[2:]]
    rows = headline_rows(runs)
    suite = {
        "host": platform.platform(),
        "headline": rows,
        "runs": {name: report for name, report in runs},
    }
    (out / "suite.json").write_text(json.dumps(suite, indent=2))
    (out / "suite.html").write_text(html_page(rows, runs, out), encoding="utf-8")
    print(text_table(rows))
    print(f"\nwrote {out / 'suite.json'} and {out / 'suite.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
