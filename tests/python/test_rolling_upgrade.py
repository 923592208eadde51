"""A rolling upgrade from an older build, with real processes of both builds: a 3-node `percore
dev` cluster of the older build (`PERCORE_OLD_BIN`; CI builds the last commit before paired
writes, .ci/run) has its nodes restarted on this build one at a time. After each step every node
takes small PUTs and deletes and serves every object and the whole listing: nothing is refused,
lost or left behind. While the builds differ, a layout change is refused; once every node runs
this build, the same change commits.

One core per node and three copies: every small PUT's data, head and listing entry go in one
write (`PutPaired`, which the older build does not know), the case a rolling upgrade broke.
Skipped when `PERCORE_OLD_BIN` is not set (the README's test command does not build it)."""
import os
import re
import subprocess
import time

import boto3
import pytest
from botocore.config import Config

from cluster import DevCluster
from conftest import percore_bin

OLD_BIN = os.environ.get("PERCORE_OLD_BIN")
pytestmark = pytest.mark.skipif(
    not OLD_BIN, reason="PERCORE_OLD_BIN (an older build of percore) is not set: .ci/run builds one")


def propose_next_version(c, tmp_path):
    """`percore layout apply` (this build) of the cluster's layout with its version raised."""
    text = open(os.path.join(c.dir, "cluster.toml")).read()
    text = re.sub(r"(?m)^version = (\d+)", lambda m: f"version = {int(m.group(1)) + 1}", text,
                  count=1)
    path = tmp_path / "next.toml"
    path.write_text(text)
    r = subprocess.run([percore_bin(), "layout", "apply", "--config", c.config(1), str(path),
                        "--limit", "0"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "RUST_BACKTRACE": "0"})
    return r.returncode, r.stdout + r.stderr


def client(c, node):
    """An S3 client of `node` that retries as SDKs do by default (a 503 while a restarted
    node's peers still count it down, for up to 3 s, is retried, not a failure)."""
    return boto3.client(
        "s3", endpoint_url=c.endpoints[node], region_name="us-east-1",
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
        config=Config(retries={"max_attempts": 5, "mode": "standard"},
                      s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=60),
    )


def wait_all_up(c):
    """Until `percore status` says every core is up (60 s at most)."""
    deadline = time.time() + 60
    while True:
        code, out = c.status()
        if code == 0 and "3/3 cores up" in out:
            return
        assert time.time() < deadline, out
        time.sleep(0.5)


def test_nodes_upgraded_one_at_a_time_keep_serving(tmp_path):
    assert os.path.exists(OLD_BIN), OLD_BIN
    c = DevCluster(tmp_path, nodes=3, cores_per_node=1, bin=OLD_BIN)
    live = {}

    def check(step):
        for node in (1, 2, 3):
            s3 = client(c, node)
            for i in range(10):
                key = f"{step}/via-{node}/{i}"
                body = f"{key} {'x' * i}".encode()
                s3.put_object(Bucket="roll", Key=key, Body=body)
                live[key] = body
            gone = sorted(live)[0]
            s3.delete_object(Bucket="roll", Key=gone)
            del live[gone]
        for node in (1, 2, 3):
            s3 = client(c, node)
            for key, body in live.items():
                assert s3.get_object(Bucket="roll", Key=key)["Body"].read() == body, (step, node,
                                                                                      key)
            listed = set()
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="roll"):
                listed |= {o["Key"] for o in page.get("Contents", [])}
            assert listed == set(live), (step, node, listed ^ set(live))

    try:
        wait_all_up(c)
        client(c, 1).create_bucket(Bucket="roll")
        check("old")
        for node in (1, 2, 3):
            c.kill(node)
            c.restart(node, bin=percore_bin())
            wait_all_up(c)
            check(f"upgraded-{node}")
            if node == 1:
                code, out = propose_next_version(c, tmp_path)
                assert code != 0 and "different control-map encodings" in out, out
                assert "node 1: level 1" in out and "node 2: a build from before levels" in out, out
        code, out = propose_next_version(c, tmp_path)
        assert code == 0 and "committed" in out, out
    finally:
        c.stop()
