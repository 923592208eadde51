"""Live layout changes on real processes (issue "Elastic cluster"): a 3-node `percore dev`
cluster grows to 4 nodes and shrinks back to 3 through its control plane (`percore layout
apply --config`), while a reader reads every acknowledged object and lists the bucket without
pause and a writer keeps writing. Every read must return the exact bytes, every listed key
must be readable, at every moment of both changes. In the middle of the shrink the control
plane's leader (whose node runs the mover) is killed with SIGKILL and restarted: a new leader
takes the move over, the restarted node routes by the layout it took from the map (its config
still names version 1), and the change completes. After the shrink the fourth node is stopped
and everything is still read. Every wait is bounded; every process stopped by pid."""
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.request

from cluster import DevCluster, Lines, port_block, stop_process
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
    through nodes 1-3, and a writer that adds objects through them, both until `stop`."""

    def __init__(self, c, bucket, blobs):
        self.c, self.bucket, self.blobs = c, bucket, blobs
        # The nodes it goes through (a node killed by the test is taken out meanwhile).
        self.nodes = [1, 2, 3]
        self.lock = threading.Lock()
        self.errors, self.reads, self.writes = [], 0, 0
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self.read, daemon=True),
                        threading.Thread(target=self.write, daemon=True)]
        for t in self.threads:
            t.start()

    def node(self, i):
        with self.lock:
            return self.nodes[i % len(self.nodes)]

    def read(self):
        clients = {n: self.c.client(n) for n in (1, 2, 3)}
        i = 0
        while not self.done.is_set():
            with self.lock:
                items = list(self.blobs.items())
            for key, data in items:
                n = self.node(i)
                i += 1
                try:
                    got = clients[n].get_object(Bucket=self.bucket, Key=key)["Body"].read()
                    if got != data:
                        self.errors.append(f"{key}: {len(got)} bytes read, {len(data)} written")
                except Exception as e:  # noqa: BLE001 - every failure is a finding
                    self.errors.append(f"GET {key} through node {n}: {e}")
                self.reads += 1
            lister, header = self.node(i), self.node(i + 1)
            try:
                listed = clients[lister].list_objects_v2(Bucket=self.bucket, MaxKeys=1000)
                for o in listed.get("Contents", []):
                    clients[header].head_object(Bucket=self.bucket, Key=o["Key"])
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"LIST through node {lister}, HEAD through {header}: {e}")

    def write(self):
        n = 0
        while not self.done.is_set():
            key, data = f"during-{n}", os.urandom(SIZES[n % len(SIZES)])
            try:
                self.c.client(self.node(n)).put_object(Bucket=self.bucket, Key=key, Body=data)
                with self.lock:
                    self.blobs[key] = data
                self.writes += 1
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"PUT {key}: {e}")
            n += 1
            time.sleep(0.3)

    def check(self):
        assert not self.errors, self.errors[:10]

    def stop(self):
        self.done.set()
        for t in self.threads:
            t.join(timeout=120)
        self.check()


def add_node_4(c, tmp_path):
    """Node 4's layout (version 2: the dev layout and one more node) and its config; starts
    it with `percore serve`. Returns (the process, the layout path)."""
    ports = port_block(1 + c.cores_per_node)
    v1 = open(os.path.join(c.dir, "cluster.toml")).read()
    assert "version = 1\n" in v1
    v2 = v1.replace("version = 1\n", "version = 2\n") + (
        f'\n[[node]]\nid = 4\naddress = "127.0.0.1"\nbase_port = {ports + 1}\n'
        f'zone = "zone-4"\ncores = {c.cores_per_node}\n')
    v2_path = os.path.join(c.dir, "cluster-v2.toml")
    open(v2_path, "w").write(v2)
    node3 = open(c.config(3)).read()
    data = os.path.join(c.dir, "node-4")
    os.makedirs(data)
    shutil.copy(os.path.join(c.dir, "credentials.toml"), os.path.join(data, "credentials.toml"))
    config = re.sub(r'(?m)^data = .*$', f'data = "{data}"', node3)
    config = re.sub(r'(?m)^listen = .*$', f'listen = "127.0.0.1:{ports}"', config)
    config = re.sub(r'(?m)^layout = .*$', f'layout = "{v2_path}"', config)
    config = re.sub(r'(?m)^node_id = .*$', "node_id = 4", config)
    path = os.path.join(c.dir, "node-4.toml")
    open(path, "w").write(config)
    p = subprocess.Popen([percore_bin(), "serve", "--config", path], stdout=subprocess.PIPE,
                         stderr=c.err, stdin=subprocess.DEVNULL, text=True,
                         env={**os.environ, "RUST_LOG": "warn"})
    try:
        Lines(p.stdout).until(r"^cores: ", 120, "node 4")
    except AssertionError:
        p.kill()
        p.wait()
        raise
    c.endpoints[4] = f"http://127.0.0.1:{ports}"
    return p, v2_path


def test_grow_3_to_4_and_shrink_back_while_reading_and_writing(tmp_path):
    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    node4 = traffic = None
    try:
        bucket = "moving"
        w = c.client(1)
        w.create_bucket(Bucket=bucket)
        blobs = {}
        for i in range(40):
            key, data = f"before-{i}", os.urandom(SIZES[i % len(SIZES)])
            w.put_object(Bucket=bucket, Key=key, Body=data)
            blobs[key] = data
        node4, v2_path = add_node_4(c, tmp_path)

        traffic = Traffic(c, bucket, blobs)
        out = apply_layout(c, v2_path)
        assert "layout version 1 (the nodes' until now) committed" in out, out
        assert re.search(r"layout version 2 committed: \d+ placement groups move", out), out
        status = wait_change_done(c, 2, traffic.check)
        assert "256 of 256 placement groups done" in status, status
        leader = change_progress(c)[2]
        m = metrics(c, leader)
        # The mover's node copied the objects' fragments; every node routes by version 2.
        assert m.get('percore_layout_moved{kind="bytes"}', 0) > 0, m
        for n in (1, 2, 3, 4):
            m = metrics(c, n)
            assert m.get("percore_layout_version") == 2, (n, m.get("percore_layout_version"))
            assert m.get('percore_layout_change_groups{phase="done"}') == 256, n
        # The new node serves every object (it routes by the new layout alone now).
        r4 = c.client(4)
        with traffic.lock:
            items = list(blobs.items())
        for key, data in items:
            assert r4.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key

        # A layout without node 2 would renumber the cores (hints name them by index): refused
        # before anything is committed.
        blocks = open(v2_path).read().split("[[node]]")
        without_2 = "[[node]]".join(b for b in blocks if "id = 2\n" not in b)
        bad = os.path.join(c.dir, "cluster-bad.toml")
        open(bad, "w").write(without_2.replace("version = 2\n", "version = 3\n"))
        out = apply_layout(c, bad, ok=False)
        assert "renumbers cores" in out, out
        assert "layout: version 2" in control_status(c)

        # Shrink back: version 3 has the first three nodes only.
        v3 = open(os.path.join(c.dir, "cluster.toml")).read().replace("version = 1\n",
                                                                      "version = 3\n")
        v3_path = os.path.join(c.dir, "cluster-v3.toml")
        open(v3_path, "w").write(v3)
        out = apply_layout(c, v3_path)
        assert re.search(r"layout version 3 committed: \d+ placement groups move", out), out
        assert "node 4: leaving the layout: do not stop it" in control_status(c)
        # Kill -9 the leader (its node moves the data) once a tenth of the groups are done.
        deadline = time.time() + CHANGE_TIMEOUT_S
        while True:
            done, total, leader = change_progress(c)
            if total and done >= total // 10 and leader in (1, 2, 3):
                break
            assert time.time() < deadline, control_status(c)
            traffic.check()
            time.sleep(0.5)
        with traffic.lock:
            traffic.nodes.remove(leader)
        time.sleep(1)  # requests through it in flight end
        c.kill(leader)
        time.sleep(3)
        c.restart(leader)
        with traffic.lock:
            traffic.nodes.append(leader)
        status = wait_change_done(c, 3, traffic.check)
        assert "node 4: left the layout, its data moved: it can be stopped" in status, status
        assert "routing by layout version 2 taken from the control plane" in open(
            os.path.join(c.dir, "..", "dev.err")).read()
        traffic.stop()
        assert traffic.writes > 0 and traffic.reads > len(items), (traffic.writes, traffic.reads)

        # Node 4 gone: everything is on nodes 1-3.
        stop_process(node4)
        node4 = None
        for n in (1, 2, 3):
            rc = c.client(n)
            for key, data in blobs.items():
                assert rc.get_object(Bucket=bucket, Key=key)["Body"].read() == data, (n, key)
            listed = rc.list_objects_v2(Bucket=bucket, MaxKeys=1000)
            assert sorted(o["Key"] for o in listed["Contents"]) == sorted(blobs)
    finally:
        if traffic is not None:
            traffic.done.set()
        if node4 is not None:
            stop_process(node4)
        assert c.stop() == 0
