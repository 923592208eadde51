"""What the tests of live layout changes share: the control plane's view of a change (through
`percore control status`), proposing a layout, a node's metrics, and the traffic that runs
through the cluster while a change moves data."""
import collections
import contextlib
import os
import re
import subprocess
import threading
import time
import urllib.request

from conftest import percore_bin

CHANGE_TIMEOUT_S = 300
KiB = 1024
# Replicated (under 128 KiB) and EC 4+2 objects.
SIZES = [1, 4 * KiB, 100_000, 300_000, 1024 * KiB + 1]


def control_status(c):
    r = subprocess.run([percore_bin(), "control", "status", "--data", os.path.join(c.dir, "node-1")],
                       capture_output=True, text=True, timeout=60)
    return r.stdout + r.stderr


def apply_layout(c, path, ok=True):
    r = subprocess.run([percore_bin(), "layout", "apply", "--config", c.config(1), path,
                        "--limit", "0"], capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == ok, r.stdout + r.stderr
    return r.stdout + r.stderr


def metrics(c, node):
    text = urllib.request.urlopen(c.endpoints[node] + "/-/metrics", timeout=10).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines() if line and not line.startswith("#")}


def change_progress(c):
    """(groups done, groups moved, the leader) as `percore control status` says."""
    out = control_status(c)
    m = re.search(r"(\d+) of (\d+) placement groups done", out)
    leader = re.search(r"leader (\d+)", out)
    return (int(m.group(1)) if m else 0, int(m.group(2)) if m else 0,
            int(leader.group(1)) if leader else None)


def wait_change_done(c, to_version, check):
    """Polls `percore control status` until the change to `to_version` is done; `check` runs
    between polls (it fails the test on a bad read)."""
    deadline = time.time() + CHANGE_TIMEOUT_S
    while time.time() < deadline:
        out = control_status(c)
        m = re.search(r"change: version \d+ -> (\d+) (done|in progress)", out)
        if m and int(m.group(1)) == to_version and m.group(2) == "done":
            assert f"layout: version {to_version}" in out, out
            return out
        check()
        time.sleep(1)
    raise AssertionError(f"the change to version {to_version} did not finish: {control_status(c)}")


class Traffic:
    """A reader that reads every acknowledged object and lists the bucket, round after round,
    through `nodes`, a writer that adds objects through them, and two creators that send
    If-None-Match: * PUTs of the same new key at once through two nodes (at most one may win,
    across any phase of a change), all until `stop`."""

    def __init__(self, c, bucket, blobs, nodes=(1, 2, 3)):
        self.c, self.bucket, self.blobs = c, bucket, blobs
        # The nodes it goes through (a node killed by the test is taken out meanwhile), and
        # the requests in flight through each.
        self.nodes = list(nodes)
        self.in_flight = collections.Counter()
        self.lock = threading.Lock()
        self.errors, self.reads, self.writes = [], 0, 0
        self.done = threading.Event()
        # Creators: key -> the creators that won it; a barrier starts each pair at once.
        self.created, self.creates = {}, 0
        self.pair = threading.Barrier(2, timeout=120)
        self.threads = [threading.Thread(target=self.read, daemon=True),
                        threading.Thread(target=self.write, daemon=True),
                        threading.Thread(target=self.create, args=(0,), daemon=True),
                        threading.Thread(target=self.create, args=(1,), daemon=True)]
        for t in self.threads:
            t.start()

    @contextlib.contextmanager
    def through(self, i):
        """The node request `i` goes through, counted in flight until the block ends: a node
        the test takes out (`take_out`) gets no new request, and is killed only once the
        requests that took it before have ended (however slow a client is to start one)."""
        with self.lock:
            n = self.nodes[i % len(self.nodes)]
            self.in_flight[n] += 1
        try:
            yield n
        finally:
            with self.lock:
                self.in_flight[n] -= 1

    def take_out(self, node, timeout_s=120):
        """No new request goes through `node`; returns once none that took it is in flight."""
        with self.lock:
            self.nodes.remove(node)
        deadline = time.time() + timeout_s
        while True:
            with self.lock:
                if self.in_flight[node] == 0:
                    return
            assert time.time() < deadline, f"requests through node {node} still in flight"
            time.sleep(0.05)

    def put_back(self, node):
        """Requests go through `node` (again)."""
        with self.lock:
            self.nodes.append(node)

    def read(self):
        clients = {}
        i = 0

        def client(n):
            if n not in clients:
                clients[n] = self.c.client(n)
            return clients[n]

        while not self.done.is_set():
            with self.lock:
                items = list(self.blobs.items())
            for key, data in items:
                with self.through(i) as n:
                    i += 1
                    try:
                        got = client(n).get_object(Bucket=self.bucket, Key=key)["Body"].read()
                        if got != data:
                            self.errors.append(
                                f"{key}: {len(got)} bytes read, {len(data)} written")
                    except Exception as e:  # noqa: BLE001 - every failure is a finding
                        self.errors.append(f"GET {key} through node {n}: {e}")
                self.reads += 1
            header = None
            with self.through(i) as lister:
                try:
                    listed = client(lister).list_objects_v2(Bucket=self.bucket, MaxKeys=1000)
                except Exception as e:  # noqa: BLE001
                    self.errors.append(f"LIST through node {lister}: {e}")
                    continue
            for j, o in enumerate(listed.get("Contents", [])):
                with self.through(i + 1 + j) as header:
                    try:
                        client(header).head_object(Bucket=self.bucket, Key=o["Key"])
                    except Exception as e:  # noqa: BLE001
                        self.errors.append(f"HEAD {o['Key']} (listed through node {lister}) "
                                           f"through node {header}: {e}")
                        break

    def write(self):
        n = 0
        while not self.done.is_set():
            key, data = f"during-{n}", os.urandom(SIZES[n % len(SIZES)])
            with self.through(n) as node:
                try:
                    self.c.client(node).put_object(Bucket=self.bucket, Key=key, Body=data)
                    with self.lock:
                        self.blobs[key] = data
                    self.writes += 1
                except Exception as e:  # noqa: BLE001
                    self.errors.append(f"PUT {key} through node {node}: {e}")
            n += 1
            time.sleep(0.3)

    def create(self, side):
        clients = {}
        n = 0
        while True:
            try:
                self.pair.wait()
            except threading.BrokenBarrierError:
                return
            if self.done.is_set():
                self.pair.abort()
                return
            key = f"create-{n}"
            data = b"creator %d of %s" % (side, key.encode())
            with self.through(n + side) as node:
                try:
                    if node not in clients:
                        clients[node] = self.c.client(node)
                    clients[node].put_object(Bucket=self.bucket, Key=key, Body=data,
                                             IfNoneMatch="*")
                    with self.lock:
                        self.created.setdefault(key, []).append(side)
                        if len(self.created[key]) == 1:
                            self.blobs[key] = data
                        else:
                            self.errors.append(f"{key}: both conditional creates won")
                except Exception as e:  # noqa: BLE001
                    status = getattr(e, "response", {}).get("ResponseMetadata", {}).get(
                        "HTTPStatusCode")
                    # The other creator won (412), or a conflict or 503 a client retries.
                    if status not in (409, 412, 503):
                        self.errors.append(f"conditional PUT {key} through node {node}: {e}")
            with self.lock:
                self.creates += 1
            n += 1
            time.sleep(0.1)

    def check(self):
        assert not self.errors, self.errors[:10]

    def stop(self):
        self.done.set()
        self.pair.abort()
        for t in self.threads:
            t.join(timeout=120)
        self.check()


def wait_status(c, text, check, timeout_s=60):
    """Polls `percore control status` until it says `text`; `check` runs between polls."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        out = control_status(c)
        if text in out:
            return out
        check()
        time.sleep(0.5)
    raise AssertionError(f"control status never said {text!r}: {control_status(c)}")


def wait_metrics(c, nodes, wanted, check=lambda: None, timeout_s=60):
    """Polls each of `nodes`' /-/metrics until it shows every value in `wanted` ({name:
    value}); `check` runs between polls. A node applies a map a moment after the control plane
    commits it (`percore control status` shows the map, each node's metrics what it applied)."""
    deadline = time.time() + timeout_s
    for n in nodes:
        while True:
            m = metrics(c, n)
            seen = {name: m.get(name) for name in wanted}
            if seen == wanted:
                break
            if time.time() > deadline:
                raise AssertionError(f"node {n}'s metrics show {seen}, not {wanted}")
            check()
            time.sleep(0.2)


def fill_bucket(c, bucket, count=40):
    """Creates `bucket` through node 1 and writes `count` objects of the mixed SIZES into it;
    returns {key: bytes}."""
    w = c.client(1)
    w.create_bucket(Bucket=bucket)
    blobs = {}
    for i in range(count):
        key, data = f"before-{i}", os.urandom(SIZES[i % len(SIZES)])
        w.put_object(Bucket=bucket, Key=key, Body=data)
        blobs[key] = data
    return blobs


def read_all(c, node, bucket, blobs, unknown=None):
    """Every object of `blobs` reads back whole through `node`, and the listing is exact.
    `unknown` (key: body) holds writes answered 503, whose outcome S3 leaves open: the write
    may have landed whole before a later step of the request was refused (the re-read of the
    bucket record after the listing entry, say). Each may be listed or not, but a listed one
    must read back exactly what was sent (no listed key without its object)."""
    client = c.client(node)
    for key, data in blobs.items():
        assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == data, (node, key)
    listed = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, MaxKeys=1000)["Contents"]}
    unknown = unknown or {}
    extra = listed - set(blobs)
    assert extra <= set(unknown) and set(blobs) <= listed, (
        node, "listed, not written:", sorted(extra - set(unknown)),
        "written, not listed:", sorted(set(blobs) - listed))
    for key in sorted(extra):
        got = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert got == unknown[key], (node, key, len(got), len(unknown[key]))
    if extra:
        print(f"{len(extra)} of {len(unknown)} writes answered 503 landed: {sorted(extra)}")
