#!/usr/bin/env python3
"""percore's layout-change benchmark (issue "Elastic cluster"): a release 3-node `percore dev`
cluster (2 cores per node) holding a data set grows to 4 nodes through its control plane while
an open-loop 4 KiB GET load runs through node 1. It measures, in one run:

- the move's throughput against the configured limit (`move_mib_per_sec` on every node: the
  leader's node moves): fragment bytes copied ÷ the time the change took;
- foreground 4 KiB GET p99 during the move ÷ the same load idle, just before (target ≤ 1.2):
  the load runs in windows of `MOVE_WINDOW` (5 s) one after the other, and each side's
  figure is its worst window's p99 (the generator cannot be stopped at the move's end and
  still report, so the move's time is covered by whole windows); for context, the same load
  once the change is done (`MOVE_AFTER_WINDOWS`, the 4-node cluster idle). summary.json
  lists every window's p99 and the generator's own send lag p99 (a window whose lag rose was
  disturbed by other work on the CPUs, whatever the cluster did);
- bytes copied ÷ an estimate of what the plan requires: the bytes the cores held before the
  change (every fragment, the data set's EC shards and replicas) × the fraction of fragment
  slots the plan moves (target ≤ 1.05; an estimate, as the moved slots hold a data set's
  fragments in proportion only on average; cluster/tests/moves.rs checks the exact bound).

Writes OUT/summary.md and OUT/summary.json, each loadgen run's JSON and HTML, and the nodes'
logs. Standard library only; the S3 work is percore-loadgen's.

Usage: python3 bench/move.py OUT_DIR
Env:   MOVE_RATE_MIB (8), MOVE_GET_RATE (400 GETs/s), MOVE_DATA_KEYS (1500 objects of
       MOVE_DATA_SIZE, 256KiB), MOVE_IDLE_WINDOWS (4), MOVE_AFTER_WINDOWS (2),
       MOVE_WINDOW (5 s), MOVE_QUICK=1 (a smoke run of this script: small data, one idle
       window and one after), MOVE_PERCORE (a percore binary to run instead of building
       target/release/percore: an A/B of two builds).
       MOVE_HOG=SHARE: no layout change; instead the "during" windows run beside one process
       per CPU that is busy SHARE of its time (0.09: 9%) in 4 ms bursts (MOVE_HOG_IDLE=1: at
       the SCHED_IDLE priority), to tell what any background work of that size does to the
       GET tail on this machine (bench/README.md, "Layout change").
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICK = os.environ.get("MOVE_QUICK") == "1"
RATE_MIB = int(os.environ.get("MOVE_RATE_MIB", "8"))
GET_RATE = int(os.environ.get("MOVE_GET_RATE", "400"))
DATA_KEYS = int(os.environ.get("MOVE_DATA_KEYS", "60" if QUICK else "1500"))
DATA_SIZE = os.environ.get("MOVE_DATA_SIZE", "256KiB")
IDLE_WINDOWS = int(os.environ.get("MOVE_IDLE_WINDOWS", "1" if QUICK else "4"))
AFTER_WINDOWS = int(os.environ.get("MOVE_AFTER_WINDOWS", "1" if QUICK else "2"))
WINDOW_S = int(os.environ.get("MOVE_WINDOW", "5"))
HOG = float(os.environ.get("MOVE_HOG", "0"))
HOG_IDLE = os.environ.get("MOVE_HOG_IDLE") == "1"
HOG_WINDOWS = 5
CHANGE_TIMEOUT_S = 900
NODES, CORES = 3, 2


def port_block(count):
    for _ in range(200):
        base = random.randrange(20000, 60000 - count)
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    sys.exit("no block of free ports")


def wait_line(path, pattern, timeout_s, what):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if os.path.exists(path):
            text = open(path).read()
            if re.search(pattern, text, re.M):
                return text
        time.sleep(0.2)
    sys.exit(f"{what} did not start: {open(path).read()[-2000:] if os.path.exists(path) else ''}")


def metrics(endpoint):
    text = urllib.request.urlopen(endpoint + "/-/metrics", timeout=10).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def stored_bytes(endpoints):
    """Every core's live bytes: each node's `percore_core_live_bytes` of its own cores."""
    return sum(v for e in endpoints for k, v in metrics(e).items()
               if k.startswith("percore_core_live_bytes"))


def control_status(binary, data):
    r = subprocess.run([binary, "control", "status", "--data", data], capture_output=True,
                       text=True, timeout=60)
    return r.stdout


def window(binary, args, out, name):
    """One window of the open-loop 4 KiB GET load; (p99 ms, errors, GETs/s, the generator's
    own send lag p99 ms: how late its requests left, a sign of other work on the CPUs)."""
    cmd = [binary, "--endpoint", args["endpoint"], "--access-key", args["ak"], "--secret-key",
           args["sk"], "--bucket", "movebench", "--workload", "get", "--size", "4KiB", "--keys",
           "1000", "--rate", str(GET_RATE), "--warmup", "1s", "--duration", f"{WINDOW_S}s",
           "--json", os.path.join(out, f"{name}.json")]
    subprocess.run(cmd, stdout=open(os.path.join(out, f"{name}.txt"), "w"),
                   stderr=subprocess.STDOUT, timeout=300, check=True)
    report = json.load(open(os.path.join(out, f"{name}.json")))
    op = next(o for o in report["endpoints"][0]["ops"] if o["op"] == "get")
    lag = report["endpoints"][0].get("send_lag", {}).get("p99_us", 0) / 1000.0
    return op["latency"]["p99_us"] / 1000.0, op["errors"], op["ops_per_s"], lag


def hog_windows(lg, args, out):
    """The GET windows beside one CPU hog per CPU (MOVE_HOG), each busy 4 ms at a time."""
    busy = 0.004
    code = ("import os, time\n"
            + ("os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\n" if HOG_IDLE
               else "")
            + f"for _ in range({int(3600 / (busy / HOG))}):\n"
            "    t = time.perf_counter()\n"
            f"    while time.perf_counter() - t < {busy}:\n"
            "        pass\n"
            f"    time.sleep({busy * (1 - HOG) / HOG})\n")
    hogs = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(os.cpu_count() or 1)]
    try:
        return [window(lg, args, out, f"get-during-{i}") for i in range(HOG_WINDOWS)]
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def write_summary(out, summary, rows, title):
    json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
    md = [f"# {title} (release, one run)", "", "| what | value | target |", "|---|---|---|"]
    md += [f"| {w} | {v} | {t} |" for w, v, t in rows]
    md += ["", "```", json.dumps(summary, indent=2), "```", ""]
    open(os.path.join(out, "summary.md"), "w").write("\n".join(md))
    print("\n".join(md))


def window_lists(idle, during, after):
    return {
        "get_p99_windows_ms": {name: [round(w[0], 2) for w in ws]
                               for name, ws in (("idle", idle), ("during", during),
                                                ("after", after))},
        "send_lag_p99_windows_ms": {name: [round(w[3], 2) for w in ws]
                                    for name, ws in (("idle", idle), ("during", during),
                                                     ("after", after))},
    }


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 bench/move.py OUT_DIR")
    out = os.path.abspath(sys.argv[1])
    os.makedirs(out, exist_ok=True)
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--bin", "percore-loadgen"]
                   + ([] if os.environ.get("MOVE_PERCORE") else ["--bin", "percore"]),
                   cwd=ROOT, check=True)
    percore = os.environ.get("MOVE_PERCORE") or os.path.join(ROOT, "target", "release", "percore")
    lg = os.path.join(ROOT, "target", "release", "percore-loadgen")
    work = tempfile.mkdtemp(prefix="percore-move-bench.", dir="/var/tmp")
    cdir = os.path.join(work, "c")
    base = port_block(NODES + NODES * CORES + 3)
    procs = []

    def dev():
        p = subprocess.Popen([percore, "dev", "--nodes", str(NODES), "--data", cdir,
                              "--listen-base", str(base), "--cores-per-node", str(CORES)],
                             stdout=open(os.path.join(work, "dev.out"), "w"),
                             stderr=open(os.path.join(work, "dev.err"), "a"),
                             env={**os.environ, "RUST_LOG": "warn"})
        procs.append(p)
        return p

    try:
        # A first start writes the node configs; the copy rate is set in each, then the same
        # cluster starts again (dev keeps config edits).
        first = dev()
        wait_line(os.path.join(work, "dev.out"), r"^ready$", 180, "percore dev")
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=120)
        for n in range(1, NODES + 1):
            with open(os.path.join(cdir, f"node-{n}.toml"), "a") as f:
                f.write(f"move_mib_per_sec = {RATE_MIB}\n")
        os.remove(os.path.join(work, "dev.out"))
        dev()
        text = wait_line(os.path.join(work, "dev.out"), r"^ready$", 180, "percore dev")
        args = {
            "endpoint": f"http://127.0.0.1:{base}",
            "ak": re.search(r"access_key: (\S+)", text).group(1),
            "sk": re.search(r"secret_key: (\S+)", text).group(1),
        }
        # The data set that moves, then the 4 KiB keys the foreground load reads.
        prep = [lg, "--endpoint", args["endpoint"], "--access-key", args["ak"], "--secret-key",
                args["sk"], "--bucket", "movedata", "--prepare", "--no-run", "--size",
                DATA_SIZE, "--keys", str(DATA_KEYS)]
        subprocess.run(prep, check=True, stdout=subprocess.DEVNULL)
        small = [lg, "--endpoint", args["endpoint"], "--access-key", args["ak"],
                 "--secret-key", args["sk"], "--bucket", "movebench", "--prepare",
                 "--no-run", "--size", "4KiB", "--keys", "1000"]
        subprocess.run(small, check=True, stdout=subprocess.DEVNULL)

        idle = [window(lg, args, out, f"get-idle-{i}") for i in range(IDLE_WINDOWS)]
        if HOG:
            during = hog_windows(lg, args, out)
            after = [window(lg, args, out, f"get-after-{i}") for i in range(AFTER_WINDOWS)]
            ratio = round(max(w[0] for w in during) / max(w[0] for w in idle), 2)
            summary = {"hog_share_per_cpu": HOG, "hog_sched_idle": HOG_IDLE,
                       "hog_processes": os.cpu_count() or 1, "get_p99_ratio": ratio,
                       **window_lists(idle, during, after)}
            which = "SCHED_IDLE" if HOG_IDLE else "normal priority"
            write_summary(out, summary, [("4 KiB GET p99 beside the hogs / idle", ratio,
                                          "(≤ 1.2 asked of a move)")],
                          f"GET tail beside CPU hogs ({HOG:.0%} of each CPU, {which})")
            return

        # Node 4 and layout version 2.
        ports = port_block(1 + CORES)
        v1 = open(os.path.join(cdir, "cluster.toml")).read()
        v2 = v1.replace("version = 1\n", "version = 2\n") + (
            f'\n[[node]]\nid = 4\naddress = "127.0.0.1"\nbase_port = {ports + 1}\n'
            f'zone = "zone-4"\ncores = {CORES}\n')
        v2_path = os.path.join(cdir, "cluster-v2.toml")
        open(v2_path, "w").write(v2)
        n4 = open(os.path.join(cdir, "node-3.toml")).read()
        data4 = os.path.join(cdir, "node-4")
        os.makedirs(data4)
        shutil.copy(os.path.join(cdir, "credentials.toml"), data4)
        n4 = re.sub(r"(?m)^data = .*$", f'data = "{data4}"', n4)
        n4 = re.sub(r"(?m)^listen = .*$", f'listen = "127.0.0.1:{ports}"', n4)
        n4 = re.sub(r"(?m)^layout = .*$", f'layout = "{v2_path}"', n4)
        n4 = re.sub(r"(?m)^node_id = .*$", "node_id = 4", n4)
        open(os.path.join(cdir, "node-4.toml"), "w").write(n4)
        n4_out = os.path.join(work, "node-4.out")
        procs.append(subprocess.Popen([percore, "serve", "--config",
                                       os.path.join(cdir, "node-4.toml")],
                                      stdout=open(n4_out, "w"),
                                      stderr=open(os.path.join(work, "node-4.log"), "w"),
                                      env={**os.environ, "RUST_LOG": "warn"}))
        wait_line(n4_out, r"^cores: ", 120, "node 4")

        time.sleep(6)  # the nodes' core figures refreshed
        before = stored_bytes([f"http://127.0.0.1:{base + n}" for n in range(NODES)])
        r = subprocess.run([percore, "layout", "apply", "--config",
                            os.path.join(cdir, "node-1.toml"), v2_path, "--limit", "0"],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            sys.exit(r.stdout + r.stderr)
        started = time.time()
        slots = re.search(r"(\d+) of (\d+) fragment slots move", r.stdout)
        moved_fraction = int(slots.group(1)) / int(slots.group(2))
        node1 = os.path.join(cdir, "node-1")
        finished = {}

        def watch():
            # Polls node 1's layout version (2 once the change is done) every 0.5 s while the
            # load's windows run: one HTTP GET, where a `percore control status` process each
            # time cost the machine more than the GETs measured (a process start, a runtime,
            # three voters asked) and was charged to the move.
            while time.time() - started < CHANGE_TIMEOUT_S:
                if metrics(args["endpoint"]).get("percore_layout_version") == 2:
                    finished["at"] = time.time()
                    finished["status"] = control_status(percore, node1)
                    return
                time.sleep(0.5)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        during = []
        while watcher.is_alive():
            during.append(window(lg, args, out, f"get-during-{len(during)}"))
        if "at" not in finished:
            sys.exit(f"the change did not finish: {control_status(percore, node1)}")
        took, status = finished["at"] - started, finished["status"]
        leader = int(re.search(r"leader (\d+)", status).group(1))
        copied = metrics(f"http://127.0.0.1:{base + leader - 1}").get(
            'percore_layout_moved{kind="bytes"}', 0.0)

        # The same load once the change is done: the 4-node cluster idle, to tell what the
        # move costs from what the larger cluster costs.
        after = [window(lg, args, out, f"get-after-{i}") for i in range(AFTER_WINDOWS)]

        idle_p99 = max(w[0] for w in idle)
        idle_err = sum(w[1] for w in idle)
        during_p99 = max(w[0] for w in during)
        during_err = sum(w[1] for w in during)
        during_ops = round(sum(w[2] for w in during) / len(during), 1)
        required = before * moved_fraction
        summary = {
            "rate_limit_mib_per_s": RATE_MIB,
            "move_seconds": round(took, 1),
            "bytes_copied": copied,
            "move_mib_per_s": round(copied / took / 2**20, 2),
            "move_rate_vs_limit": round(copied / took / 2**20 / RATE_MIB, 3),
            "windows_idle": len(idle),
            "windows_during": len(during),
            "get_p99_idle_ms": round(idle_p99, 2),
            "get_p99_during_ms": round(during_p99, 2),
            "get_p99_ratio": round(during_p99 / idle_p99, 2),
            "windows_after": len(after),
            "get_p99_after_ms": round(max(w[0] for w in after), 2) if after else None,
            "get_p99_during_vs_after": (round(during_p99 / max(w[0] for w in after), 2)
                                        if after else None),
            **window_lists(idle, during, after),
            "get_errors_idle": idle_err,
            "get_errors_during": during_err,
            "get_ops_per_s_during": during_ops,
            "stored_bytes_before": before,
            "moved_slot_fraction": moved_fraction,
            "bytes_copied_vs_estimate": round(copied / required, 3) if required else None,
        }
        rows = [
            ("move throughput / limit", summary["move_rate_vs_limit"], "≤ 1 (pacing)"),
            ("4 KiB GET p99 during / idle", summary["get_p99_ratio"], "≤ 1.2"),
            ("bytes copied / estimated required", summary["bytes_copied_vs_estimate"], "≤ 1.05"),
        ]
        write_summary(out, summary, rows, "Layout change 3 → 4 nodes")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in os.listdir(cdir) if os.path.isdir(cdir) else []:
            if f.endswith(".log"):
                shutil.copy(os.path.join(cdir, f), os.path.join(out, f))
        for f in ("node-4.log", "dev.err"):
            if os.path.exists(os.path.join(work, f)):
                shutil.copy(os.path.join(work, f), os.path.join(out, f))
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
