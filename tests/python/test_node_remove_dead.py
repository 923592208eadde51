"""A dead node removed without a replacement (issue "Elastic cluster"): a 4-node `percore
dev` cluster loses node 4 to SIGKILL, and `percore node remove 4 --dead` takes it out in one
layout version while a reader reads every acknowledged object and lists the bucket, and a
writer keeps writing, through nodes 1-3. What node 4 held is rebuilt on the other nodes from
the other copies; every read returns the exact bytes at every moment, and at the end nodes 1-3
read everything. Every wait is bounded; every process stopped by pid."""
import re
import subprocess
import time

from changes import (Traffic, control_status, fill_bucket, metrics, read_all, wait_change_done,
                     wait_metrics)
from cluster import DevCluster
from conftest import percore_bin


def test_remove_a_dead_node_without_a_replacement_while_reading_and_writing(tmp_path):
    c = DevCluster(tmp_path, nodes=4, cores_per_node=2)
    traffic = None
    try:
        bucket = "dead"
        blobs = fill_bucket(c, bucket)
        traffic = Traffic(c, bucket, blobs, nodes=(1, 2, 3))
        time.sleep(2)
        traffic.check()

        c.kill(4)
        r = subprocess.run([percore_bin(), "node", "remove", "4", "--dead", "--config",
                            c.config(1), "--limit", "0"],
                           capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        assert r.returncode == 0, out
        assert re.search(r"layout version \d+ committed: \d+ placement groups move", out), out
        assert "is a voter of the control plane" not in out, out
        version = int(re.findall(r"layout version (\d+) committed", out)[-1])
        status = control_status(c)
        assert "node 4: removed: the change rebuilds what it held" in status or \
            "node 4: removed: it can be stopped" in status, status
        status = wait_change_done(c, version, traffic.check)
        assert "node 4: removed: it can be stopped and its data wiped" in status, status
        traffic.stop()
        assert traffic.writes > 0 and traffic.reads > len(blobs), (traffic.writes, traffic.reads)
        rebuilt = sum(metrics(c, n).get('percore_layout_moved{kind="bytes"}', 0)
                      for n in (1, 2, 3))
        assert rebuilt > 0, "nothing was rebuilt"
        wait_metrics(c, (1, 2, 3), {"percore_layout_version": version})
        for n in (1, 2, 3):
            read_all(c, n, bucket, blobs)
        # Node 3 stopped too: nodes 1 and 2 still read every object (node 4's share was
        # rebuilt with the redundancy the policies ask for, not left one node short).
        c.kill(3, sig=15)
        read_all(c, 1, bucket, blobs)
    finally:
        if traffic is not None:
            traffic.done.set()
        c.stop()
