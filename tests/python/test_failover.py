"""Failover of conditional writes on real processes (issue "Elastic cluster", item 4): a 3-node
`percore dev` cluster loses a node that is not the control plane's leader to SIGKILL. The
leader stops reaching it, and once any lease it held must have run out it demotes it: the next
core of each of its placement groups serializes their conditional writes. From then on every
If-None-Match: * create and every CreateBucket succeeds through the nodes left, and two
creators racing through two nodes never both win. Restarted, the node is brought back (on its
way, then serializing again) while creates race through it and a survivor. Every wait is
bounded; every process stopped by pid."""
import re
import threading
import time

from botocore.exceptions import ClientError

from changes import control_status, wait_status
from cluster import DevCluster

# The leader demotes a node unreached for 4 s (its lease) + 2 s (margin); allow for the
# election of a leader, a commit, and a loaded CI machine.
DEMOTED_WITHIN_S = 60


def status_code(e):
    return e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def race(clients, bucket, key):
    """Two If-None-Match: * PUTs of `key` at once, one through each client: their statuses."""
    statuses = [None, None]
    barrier = threading.Barrier(len(clients), timeout=60)

    def create(i):
        barrier.wait()
        try:
            clients[i].put_object(Bucket=bucket, Key=key, Body=b"creator %d" % i,
                                  IfNoneMatch="*")
            statuses[i] = 200
        except ClientError as e:
            statuses[i] = status_code(e)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return statuses


def test_conditional_writes_fail_over_from_a_dead_node(tmp_path):
    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    try:
        bucket = "failover"
        c.client(1).create_bucket(Bucket=bucket)
        leader = int(re.search(r"leader (\d+)", control_status(c)).group(1))
        victim = 3 if leader != 3 else 2
        left = [n for n in (1, 2, 3) if n != victim]
        c.kill(victim)
        killed = time.time()

        status = wait_status(c, f"node {victim}: demoted", lambda: None,
                             timeout_s=DEMOTED_WITHIN_S)
        print(f"node {victim} demoted {time.time() - killed:.1f} s after its kill")
        assert f"leader {leader}" in status, status

        # A third of the groups had their first core on the dead node: every create succeeds
        # once, whichever node receives it.
        clients = [c.client(n) for n in left]
        won = {}
        for i in range(40):
            key = f"k{i}"
            statuses = race(clients, bucket, key)
            assert sorted(statuses) == [200, 412], (key, statuses)
            won[key] = b"creator %d" % statuses.index(200)
        for i in range(10):
            clients[i % 2].create_bucket(Bucket=f"{bucket}-{i}")

        # Restarted, the node comes back: on its way (no core serializes its groups until every
        # node applied that), then serializing again. Creates race through it and a survivor
        # all along.
        c.restart(victim)
        restarted = time.time()
        clients = [c.client(victim), c.client(left[0])]
        deadline, i, seen = time.time() + DEMOTED_WITHIN_S, 40, set()
        while True:
            status = control_status(c)
            for word in ("demoted", "restoring"):
                if f"node {victim}: {word}" in status:
                    seen.add(word)
            if f"node {victim}: " not in status:
                break
            assert time.time() < deadline, status
            key = f"k{i}"
            statuses = race(clients, bucket, key)
            assert sorted(statuses) == [200, 412], (key, statuses)
            won[key] = b"creator %d" % statuses.index(200)
            i += 1
        print(f"node {victim} serializes again {time.time() - restarted:.1f} s after its restart "
              f"(seen: {sorted(seen)})")
        for j in range(i, i + 20):
            key = f"k{j}"
            statuses = race(clients, bucket, key)
            assert sorted(statuses) == [200, 412], (key, statuses)
            won[key] = b"creator %d" % statuses.index(200)

        for n in (1, 2, 3):
            s3 = c.client(n)
            for key, body in won.items():
                assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, (n, key)
    finally:
        c.stop()
