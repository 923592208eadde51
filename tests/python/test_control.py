"""The control plane in running nodes: a 3-node `percore dev` cluster (3 voters) keeps its users
in the replicated map. `percore user …` on one node's data directory proposes through the
control plane, and every node's gateway serves the committed users within SPREAD_S: created
on node 1, the key signs on node 3; deleted, it is refused (403 InvalidAccessKeyId) on every
node. kill -9 of the Raft leader: a user created afterwards through another node works on the
survivors and, once the old leader is restarted, on it too. Every wait is bounded; every
process is stopped by pid (cluster.py)."""
import json
import os
import re
import signal
import struct
import subprocess
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from cluster import DevCluster, start_gateway, stop_process
from conftest import percore_bin

# How long a committed change may take to reach every node's gateway.
SPREAD_S = 5
DENY_ALL = json.dumps({"Version": "2012-10-17",
                       "Statement": [{"Effect": "Deny", "Action": "s3:*", "Resource": "*"}]})


@pytest.fixture
def cluster3(tmp_path):
    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    yield c
    assert c.stop() == 0


def run(*args, timeout_s=60):
    return subprocess.run([percore_bin(), *args], capture_output=True, text=True,
                          timeout=timeout_s, env={**os.environ, "RUST_BACKTRACE": "0"})


def data_dir(c, node):
    return os.path.join(c.dir, f"node-{node}")


def user_cli(c, node, *args):
    return run("user", *args, "--data", data_dir(c, node))


def keys_of(out):
    fields = dict(re.findall(r"^(access_key|secret_key): (\S+)$", out.stdout, re.M))
    assert set(fields) == {"access_key", "secret_key"}, out.stdout + out.stderr
    return fields["access_key"], fields["secret_key"]


def s3(c, node, keys):
    return boto3.client(
        "s3", endpoint_url=c.endpoints[node], region_name="us-east-1",
        aws_access_key_id=keys[0], aws_secret_access_key=keys[1],
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"},
                      connect_timeout=5, read_timeout=30),
    )


def code_of(call):
    try:
        call()
        return None
    except ClientError as e:
        return e.response["Error"]["Code"]


def wait_code(c, nodes, keys, want, what, timeout_s=SPREAD_S):
    """Waits until ListBuckets signed with `keys` answers `want` (None: success) on each node."""
    deadline = time.time() + timeout_s
    for node in nodes:
        while True:
            got = code_of(s3(c, node, keys).list_buckets)
            if got == want:
                break
            assert time.time() < deadline, f"{what}: node {node} answers {got}, not {want}"
            time.sleep(0.1)


def leader(c, alive):
    """The leader the alive voters agree on (`percore control status`)."""
    deadline = time.time() + 30
    while True:
        out = run("control", "status", "--data", data_dir(c, alive[0]))
        found = {int(v) for v in re.findall(r"^voter \d+ \S+: up, leader (\d+),", out.stdout,
                                            re.M)}
        if len(found) == 1:
            return found.pop()
        assert time.time() < deadline, f"no agreed leader: {out.stdout}{out.stderr}"
        time.sleep(0.2)


def test_a_user_made_on_one_node_signs_on_every_node_until_deleted(cluster3):
    c = cluster3
    out = user_cli(c, 1, "create", "ann")
    assert out.returncode == 0, out.stderr
    ann = keys_of(out)
    # Served from the map, not from node 1's users file.
    assert not os.path.exists(os.path.join(data_dir(c, 1), "users.toml"))
    wait_code(c, [3, 2, 1], ann, None, "a new user's key signs on every node")
    s3(c, 1, ann).create_bucket(Bucket="ann-bucket")
    s3(c, 3, ann).put_object(Bucket="ann-bucket", Key="k", Body=b"hello")
    assert s3(c, 2, ann).get_object(Bucket="ann-bucket", Key="k")["Body"].read() == b"hello"

    listed = user_cli(c, 2, "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^ann\t{ann[0]}\t-$", listed.stdout, re.M), listed.stdout
    assert ann[1] not in listed.stdout

    # An identity policy set through node 2 applies on node 3, and its removal too.
    policy = os.path.join(c.dir, "..", "deny.json")
    with open(policy, "w") as f:
        f.write(DENY_ALL)
    out = user_cli(c, 2, "policy", "set", "ann", policy)
    assert out.returncode == 0, out.stderr
    wait_code(c, [3, 1], ann, "AccessDenied", "a policy set on node 2")
    assert json.loads(user_cli(c, 3, "policy", "get", "ann").stdout) == json.loads(DENY_ALL)
    out = user_cli(c, 3, "policy", "delete", "ann")
    assert out.returncode == 0, out.stderr
    wait_code(c, [1, 2], ann, None, "a policy removed on node 3")

    # `percore key create`, `user create`'s old name, takes the same path.
    out = run("key", "create", "kay", "--data", data_dir(c, 3))
    assert out.returncode == 0, out.stderr
    wait_code(c, [1], keys_of(out), None, "a user made with the old command name")

    # Refusals: the name is taken, root is each node's own.
    out = user_cli(c, 3, "create", "ann")
    assert out.returncode != 0 and "already exists" in out.stderr, out.stderr
    out = user_cli(c, 1, "create", "root")
    assert out.returncode != 0 and "root" in out.stderr, out.stderr

    # Keys rotate: a second key made on node 1 signs on node 3 as ann (her bucket); a third
    # is refused; her first key deleted through node 2 stops everywhere, the second goes on.
    out = user_cli(c, 1, "key", "create", "ann")
    assert out.returncode == 0, out.stderr
    ann2 = keys_of(out)
    wait_code(c, [3, 2], ann2, None, "a user's second key")
    assert [b["Name"] for b in s3(c, 3, ann2).list_buckets()["Buckets"]] == ["ann-bucket"]
    listed = user_cli(c, 3, "list").stdout
    assert re.search(rf"^ann\t{ann[0]},{ann2[0]}\t-$", listed, re.M), listed
    out = user_cli(c, 2, "key", "create", "ann")
    assert out.returncode != 0 and "2 keys" in out.stderr, out.stderr
    out = user_cli(c, 2, "key", "delete", ann[0])
    assert out.returncode == 0 and "ann" in out.stdout, out.stderr
    wait_code(c, [1, 2, 3], ann, "InvalidAccessKeyId", "a deleted first key stops everywhere")
    wait_code(c, [1, 2, 3], ann2, None, "the second key goes on")
    assert s3(c, 1, ann2).get_object(Bucket="ann-bucket", Key="k")["Body"].read() == b"hello"
    out = user_cli(c, 3, "key", "delete", ann[0])
    assert out.returncode != 0 and "no user signs" in out.stderr, out.stderr

    out = user_cli(c, 2, "delete", "ann")
    assert out.returncode == 0, out.stderr
    wait_code(c, [1, 2, 3], ann2, "InvalidAccessKeyId", "a deleted user's key stops everywhere")
    out = user_cli(c, 1, "delete", "ann")
    assert out.returncode != 0 and "no user" in out.stderr, out.stderr
    # Root (each node's credentials.toml) is untouched by all this.
    assert code_of(s3(c, 3, (c.access_key, c.secret_key)).list_buckets) is None


def test_users_survive_the_leader_killed_and_reach_it_when_it_returns(cluster3):
    c = cluster3
    out = user_cli(c, 1, "create", "bea")
    assert out.returncode == 0, out.stderr
    bea = keys_of(out)
    wait_code(c, [1, 2, 3], bea, None, "a user made before the kill")

    old = leader(c, [1, 2, 3])
    c.kill(old)
    alive = [n for n in (1, 2, 3) if n != old]
    out = user_cli(c, alive[0], "create", "cal")
    assert out.returncode == 0, out.stderr
    cal = keys_of(out)
    wait_code(c, alive, cal, None, "a user made after the leader died, on the survivors")
    assert leader(c, alive) != old
    out = user_cli(c, alive[1], "delete", "bea")
    assert out.returncode == 0, out.stderr
    wait_code(c, alive, bea, "InvalidAccessKeyId", "a user deleted while the leader is down")

    c.restart(old)
    # The restarted voter catches up through Raft and its gateway follows it.
    wait_code(c, [old], cal, None, "the old leader, restarted, serves the new user",
              timeout_s=SPREAD_S + 10)
    wait_code(c, [old], bea, "InvalidAccessKeyId", "the old leader knows of the deletion")
    status = run("control", "status", "--data", data_dir(c, old))
    assert status.returncode == 0, status.stdout + status.stderr


def test_a_voter_whose_raft_store_is_damaged_serves_without_voting(cluster3):
    # The Raft store's LMDB file is checked before LMDB maps it: a damaged structure sent
    # LMDB past the end of the file (a SIGBUS of the whole node) or into its asserts. A voter
    # whose store fails the check must not vote on what it lost; its node still serves,
    # following the map from the two other voters, as if its voter were down.
    c = cluster3
    c.client(1).create_bucket(Bucket="kept")
    c.client(1).put_object(Bucket="kept", Key="k", Body=b"before")
    c.kill(3, sig=signal.SIGTERM)
    raft = os.path.join(data_dir(c, 3), "control", "raft", "data.mdb")
    with open(raft, "r+b") as f:
        psize = struct.unpack_from("<I", f.read(64), 16 + 24)[0]
        # Both meta pages claim a last page far past the file and the map.
        for meta in (0, psize):
            f.seek(meta + 16 + 120)
            f.write(struct.pack("<Q", 1 << 40))
    c.restart(3)
    err_path = os.path.join(c.dir, "..", "dev.err")
    deadline = time.time() + 30
    while "control-plane voter is NOT started" not in open(err_path).read():
        assert time.time() < deadline, "no warning that node 3's voter is not started"
        time.sleep(0.2)
    assert "control/raft/data.mdb is damaged" in open(err_path).read()
    assert c.client(3).get_object(Bucket="kept", Key="k")["Body"].read() == b"before"
    c.client(3).put_object(Bucket="kept", Key="after", Body=b"after")
    assert c.client(1).get_object(Bucket="kept", Key="after")["Body"].read() == b"after"
    # The two other voters still commit, and node 3 follows them.
    out = user_cli(c, 1, "create", "dee")
    assert out.returncode == 0, out.stderr
    wait_code(c, [3], keys_of(out), None, "a user made while node 3's voter is out",
              timeout_s=SPREAD_S + 10)
    status = run("control", "status", "--data", data_dir(c, 1))
    assert re.search(r"^voter 3 \S+: unreachable", status.stdout, re.M), status.stdout


def test_a_node_that_is_no_voter_follows_the_voters_and_moves_on_when_one_dies(tmp_path):
    # 4 nodes: voters 1-3; node 4 and a gateway follow them (voter 1 first), node 4's data
    # directory proposes through them.
    c = DevCluster(tmp_path, nodes=4, cores_per_node=1)
    gw = None
    try:
        control = [line for line in open(c.config(1)) if line.startswith("control = ")]
        gw, _ = start_gateway(c, tmp_path, extra=control[0])
        assert "control = {" in open(c.config(4)).read()
        assert not os.path.exists(os.path.join(data_dir(c, 4), "control"))
        out = user_cli(c, 4, "create", "dee")
        assert out.returncode == 0, out.stderr
        dee = keys_of(out)
        wait_code(c, [4, 1, "gw"], dee, None, "a user made through the node that is no voter")
        c.kill(1)
        out = user_cli(c, 2, "create", "eve")
        assert out.returncode == 0, out.stderr
        eve = keys_of(out)
        wait_code(c, [4, "gw"], eve, None, "node 4 and the gateway follow another voter once "
                  "voter 1 is gone", timeout_s=SPREAD_S + 5)
        out = user_cli(c, 4, "delete", "dee")
        assert out.returncode == 0, out.stderr
        wait_code(c, [4, 2, 3, "gw"], dee, "InvalidAccessKeyId", "deleted through node 4")
    finally:
        if gw is not None:
            stop_process(gw)
        assert c.stop() == 0
