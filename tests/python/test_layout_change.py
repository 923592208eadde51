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
import time

from changes import (CHANGE_TIMEOUT_S, Traffic, apply_layout, change_progress, control_status,
                     fill_bucket, metrics, read_all, wait_change_done, wait_metrics)
from cluster import DevCluster, new_node_ports, start_new_node, stop_process

def add_node_4(c):
    """Node 4's layout (version 2: the dev layout and one more node), and node 4 started with
    it. Returns (the process, the layout path)."""
    ports = new_node_ports(c)
    v1 = open(os.path.join(c.dir, "cluster.toml")).read()
    assert "version = 1\n" in v1
    v2 = v1.replace("version = 1\n", "version = 2\n") + (
        f'\n[[node]]\nid = 4\naddress = "127.0.0.1"\nbase_port = {ports + 1}\n'
        f'zone = "zone-4"\ncores = {c.cores_per_node}\n')
    v2_path = os.path.join(c.dir, "cluster-v2.toml")
    open(v2_path, "w").write(v2)
    return start_new_node(c, 4, v2_path, ports), v2_path


def test_grow_3_to_4_and_shrink_back_while_reading_and_writing(tmp_path):
    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    node4 = traffic = None
    try:
        bucket = "moving"
        blobs = fill_bucket(c, bucket)
        node4, v2_path = add_node_4(c)

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
        wait_metrics(c, (1, 2, 3, 4), {"percore_layout_version": 2,
                                       'percore_layout_change_groups{phase="done"}': 256},
                     traffic.check)
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
        traffic.take_out(leader)
        c.kill(leader)
        killed_at = change_progress(c)[0]
        print(f"the leader, node {leader}, killed with {killed_at} of {total} groups done")
        assert killed_at < total, "the shrink ended before the leader was killed"
        time.sleep(3)
        c.restart(leader)
        traffic.put_back(leader)
        status = wait_change_done(c, 3, traffic.check)
        assert "node 4: left the layout, its data moved: it can be stopped" in status, status
        assert "routing by layout version 2 taken from the control plane" in open(
            os.path.join(c.dir, "..", "dev.err")).read()
        traffic.stop()
        assert traffic.writes > 0 and traffic.reads > len(items), (traffic.writes, traffic.reads)
        assert traffic.creates > 0 and traffic.created, (traffic.creates, len(traffic.created))

        # Node 4 gone: everything is on nodes 1-3.
        stop_process(node4)
        node4 = None
        for n in (1, 2, 3):
            read_all(c, n, bucket, blobs)
    finally:
        if traffic is not None:
            traffic.done.set()
        if node4 is not None:
            stop_process(node4)
        assert c.stop() == 0
