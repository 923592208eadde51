"""A local `percore dev` cluster for the cluster tests: starts it, parses what it prints, kills
and restarts nodes by pid, and stops everything it started (by pid) even when a test fails.

Every wait is bounded: reading the dev process's output goes through a reader thread and a
queue, so a silent child costs a timeout, never a hang."""
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time

import boto3
from botocore.config import Config

from conftest import free_port, percore_bin, port_block

START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 60


def pid_alive(pid):
    """True while `pid` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def is_percore(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"percore" in f.read()
    except OSError:
        return False


def wait_gone(pid, timeout_s):
    deadline = time.time() + timeout_s
    while pid_alive(pid):
        if time.time() > deadline:
            return False
        time.sleep(0.05)
    return True


class Lines:
    """The lines a process prints, read by a thread so every wait can time out."""

    def __init__(self, stream):
        self.q = queue.Queue()
        self.seen = []
        t = threading.Thread(target=self._read, args=(stream,), daemon=True)
        t.start()

    def _read(self, stream):
        for line in stream:
            self.q.put(line.rstrip("\n"))
        self.q.put(None)

    def until(self, pattern, timeout_s, what):
        """Lines up to and including the first that matches `pattern`."""
        deadline = time.time() + timeout_s
        got = []
        while True:
            left = deadline - time.time()
            assert left > 0, f"{what}: no line matching {pattern!r} within {timeout_s}s: {got}"
            try:
                line = self.q.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"{what}: exited before printing {pattern!r}: {got}"
            got.append(line)
            self.seen.append(line)
            if re.search(pattern, line):
                return got


class DevCluster:
    def __init__(self, tmp_path, nodes=3, cores_per_node=2, bin=None):
        self.dir = str(tmp_path / "cluster")
        # The build that starts the nodes (`percore_bin()` by default); `restart` may use another.
        self.bin = bin or percore_bin()
        self.nodes = nodes
        self.cores_per_node = cores_per_node
        # S3 endpoints, cores, and the control plane's voters (3 with three nodes or more, else 1).
        # A test may add a node at base + 50 (test_cluster's join test): kept out of other
        # blocks.
        self.base = port_block(nodes + nodes * cores_per_node + (3 if nodes >= 3 else 1),
                               spare=64)
        self.node_pids = {}
        self.restarted = {}  # node id -> Popen of a `percore serve` this test started
        self.endpoints = {}
        self.proc = None
        self.start()

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        self.err = open(os.path.join(self.dir, "..", "dev.err"), "a")
        self.proc = subprocess.Popen(
            [self.bin, "dev", "--nodes", str(self.nodes), "--data", self.dir,
             "--listen-base", str(self.base), "--cores-per-node", str(self.cores_per_node)],
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.out = Lines(self.proc.stdout)
        try:
            lines = self.out.until(r"^ready$", START_TIMEOUT_S, "percore dev")
        except AssertionError:
            self.stop()
            raise
        for line in lines:
            m = re.match(r"node (\d+): endpoint (\S+) pid (\d+) config (\S+)", line)
            if m:
                self.endpoints[int(m.group(1))] = m.group(2)
                self.node_pids[int(m.group(1))] = int(m.group(3))
            m = re.match(r"(access_key|secret_key): (\S+)", line)
            if m:
                setattr(self, m.group(1), m.group(2))
        assert sorted(self.endpoints) == list(range(1, self.nodes + 1)), lines

    def config(self, node):
        return os.path.join(self.dir, f"node-{node}.toml")

    def client(self, node, read_timeout_s=60, keys=None):
        """An S3 client of `node`, signing as root or with `keys` (access key, secret key)."""
        access, secret = keys or (self.access_key, self.secret_key)
        return boto3.client(
            "s3", endpoint_url=self.endpoints[node], region_name="us-east-1",
            aws_access_key_id=access, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"},
                          connect_timeout=5, read_timeout=read_timeout_s),
        )

    def pid(self, node):
        if node in self.restarted:
            return self.restarted[node].pid
        return self.node_pids[node]

    def kill(self, node, sig=signal.SIGKILL, timeout_s=STOP_TIMEOUT_S):
        """Sends `sig` to node's process and waits until it is gone."""
        pid = self.pid(node)
        os.kill(pid, sig)
        if node in self.restarted:
            self.restarted.pop(node).wait(timeout=timeout_s)
        else:
            assert wait_gone(pid, timeout_s), f"node {node} (pid {pid}) still runs"

    def restart(self, node, bin=None):
        """Starts node again with `percore serve --config DIR/node-N.toml` (not under dev), of
        the build `bin` (`percore_bin()` by default)."""
        assert node not in self.restarted and not pid_alive(self.node_pids[node])
        p = subprocess.Popen(
            [bin or percore_bin(), "serve", "--config", self.config(node)],
            stdout=subprocess.PIPE, stderr=self.err, stdin=subprocess.DEVNULL, text=True,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        self.restarted[node] = p
        lines = Lines(p.stdout).until(r"^cores: ", START_TIMEOUT_S, f"node {node}")
        ep = [line.split(": ", 1)[1] for line in lines if line.startswith("endpoint: ")]
        assert ep == [self.endpoints[node]], lines

    def status(self):
        """`percore status` against the layout: (exit code, output)."""
        r = subprocess.run(
            [percore_bin(), "status", "--config", os.path.join(self.dir, "cluster.toml")],
            capture_output=True, text=True, timeout=60,
        )
        return r.returncode, r.stdout + r.stderr

    def stop(self):
        """Stops dev (which stops its children), then whatever is left, by pid."""
        if self.proc and self.proc.poll() is None:
            stop_process(self.proc)
        for node, p in list(self.restarted.items()):
            if p.poll() is None:
                stop_process(p)
            self.restarted.pop(node)
        for pid in self.node_pids.values():
            if pid_alive(pid) and is_percore(pid):
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
        self.err.close()
        return self.proc.returncode if self.proc else None


def start_gateway(c, tmp_path, extra="", layout=None):
    """`percore gateway` for the cluster `c`: its own data directory (the cluster's credentials
    copied in) and config (`extra` appended; `layout`, the cluster's file by default), its
    endpoint registered as `c.endpoints["gw"]`. Returns (the process, its data directory);
    stop it with `stop_process`."""
    data = tmp_path / "gw"
    data.mkdir(exist_ok=True)
    shutil.copy(os.path.join(c.dir, "credentials.toml"), data / "credentials.toml")
    port = free_port()
    config = tmp_path / "gw.toml"
    layout = layout or f"{c.dir}/cluster.toml"
    config.write_text(f'layout = "{layout}"\ndata = "{data}"\n'
                      f'listen = "127.0.0.1:{port}"\n{extra}')
    p = subprocess.Popen([percore_bin(), "gateway", "--config", str(config)],
                         stdout=subprocess.PIPE, stderr=c.err, stdin=subprocess.DEVNULL,
                         text=True, env={**os.environ, "RUST_LOG": "warn"})
    try:
        Lines(p.stdout).until(r"^endpoint: ", 60, "the gateway")
    except AssertionError:
        p.kill()
        p.wait()
        raise
    c.endpoints["gw"] = f"http://127.0.0.1:{port}"
    return p, data


def new_node_ports(c):
    """A port block for one more node of `c`: its S3 endpoint, then its cores."""
    return port_block(1 + c.cores_per_node)


def start_new_node(c, node, layout_path, ports, control_listen=None):
    """Starts node `node` (not one of dev's) with `percore serve`: node 3's config with its own
    data directory (the cluster's credentials copied in), endpoint on `ports`, the layout file
    `layout_path` (which must give the node its cores from `ports + 1`), and with
    `control_listen` ("HOST:PORT") a control port, where it may be made a voter. Registers its
    endpoint in `c.endpoints`; returns the process (stop it with `stop_process`)."""
    node3 = open(c.config(3)).read()
    if control_listen is not None:
        node3, n = re.subn(r'(?m)^control = \{ ', f'control = {{ listen = "{control_listen}", ',
                           node3)
        assert n == 1, node3
    data = os.path.join(c.dir, f"node-{node}")
    os.makedirs(data)
    shutil.copy(os.path.join(c.dir, "credentials.toml"), os.path.join(data, "credentials.toml"))
    config = re.sub(r'(?m)^data = .*$', f'data = "{data}"', node3)
    config = re.sub(r'(?m)^listen = .*$', f'listen = "127.0.0.1:{ports}"', config)
    config = re.sub(r'(?m)^layout = .*$', f'layout = "{layout_path}"', config)
    config = re.sub(r'(?m)^node_id = .*$', f"node_id = {node}", config)
    path = os.path.join(c.dir, f"node-{node}.toml")
    open(path, "w").write(config)
    p = subprocess.Popen([percore_bin(), "serve", "--config", path], stdout=subprocess.PIPE,
                         stderr=c.err, stdin=subprocess.DEVNULL, text=True,
                         env={**os.environ, "RUST_LOG": "warn"})
    try:
        Lines(p.stdout).until(r"^cores: ", START_TIMEOUT_S, f"node {node}")
    except AssertionError:
        p.kill()
        p.wait()
        raise
    c.endpoints[node] = f"http://127.0.0.1:{ports}"
    return p


def stop_process(p):
    """SIGTERM, then SIGKILL if `p` has not exited within STOP_TIMEOUT_S."""
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
