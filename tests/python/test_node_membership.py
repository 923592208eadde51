"""Membership changes on real processes (issue "Elastic cluster"): a 4-node `percore dev`
cluster drains node 4 and removes it (`percore node drain|remove`), then loses node 3 to
SIGKILL and replaces it by a new node 5 (`percore node replace`), while a reader reads every
acknowledged object and lists the bucket, and a writer keeps writing, through the nodes that
stay. Every read must return the exact bytes at every moment. Removing a node that still holds
data is refused. At the end node 2 is stopped too: with nodes 1 and 5 alone, every object
must still read, which it can only if node 5 holds what node 3 held (its metadata replicas,
its EC shards). Node 3 was a voter of the control plane: node 5 replaces it there too
(`percore control voters`), so with node 2 stopped, nodes 1 and 5 are still a majority and a
user created then works on both. Node 3, restarted after all, finds itself removed and serves nothing from its
cores; after that it refuses to start. Every wait is bounded; every process stopped by
pid."""
import os
import re
import subprocess
import threading
import time

import boto3
import pytest
from botocore.config import Config

from changes import (SIZES, Traffic, control_status, fill_bucket, metrics, read_all,
                     wait_change_done, wait_metrics, wait_status)
from botocore.exceptions import ClientError
from cluster import DevCluster, new_node_ports, start_gateway, start_new_node, stop_process
from conftest import free_port, percore_bin, port_block


# The largest body a gateway reads whole before a request runs (s3api's RERUN_BODY_BYTES_MAX).
SMALL_BODY_BYTES = 64 * 1024


def node_cmd(c, *args, ok=True):
    r = subprocess.run([percore_bin(), "node", *args, "--config", c.config(1), "--limit", "0"],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == ok, r.stdout + r.stderr
    return r.stdout + r.stderr


def control_cli(c, *args, ok=True):
    r = subprocess.run([percore_bin(), "control", *args, "--data", os.path.join(c.dir, "node-1")],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode == 0) == ok, r.stdout + r.stderr
    return r.stdout + r.stderr


def test_drain_remove_and_replace_a_dead_node_while_reading_and_writing(tmp_path):
    c = DevCluster(tmp_path, nodes=4, cores_per_node=2)
    dev_err = os.path.join(c.dir, "..", "dev.err")
    node5 = traffic = None
    try:
        bucket = "members"
        blobs = fill_bucket(c, bucket)
        traffic = Traffic(c, bucket, blobs, nodes=(1, 2, 3))

        # Node 4 holds data: removing it is refused, draining it moves everything off.
        out = node_cmd(c, "remove", "4", ok=False)
        assert "still holds data" in out and "drain it first" in out, out
        out = node_cmd(c, "drain", "4")
        assert "layout version 1 (the nodes' until now) committed" in out, out
        assert re.search(r"layout version 2 committed: \d+ placement groups move", out), out
        status = control_status(c)
        assert "node 4: draining: do not stop it" in status or "node 4: drained" in status, \
            status
        status = wait_change_done(c, 2, traffic.check)
        assert "node 4: drained, it holds no data: `percore node remove 4`" in status, status
        wait_metrics(c, (1, 2, 3, 4), {"percore_layout_version": 2}, traffic.check)

        # Removed: a version that moves nothing; node 4 may then be stopped.
        out = node_cmd(c, "remove", "4")
        assert "layout version 3 committed: no placement group moves" in out, out
        status = wait_status(c, "node 4: removed: it can be stopped", traffic.check)
        assert "layout: version 3" in status, status
        c.kill(4, sig=15)
        traffic.check()

        # Node 3 dies. It holds data, so a plain remove is refused; replace it by node 5.
        traffic.take_out(3)
        c.kill(3)
        out = node_cmd(c, "remove", "3", ok=False)
        assert "still holds data" in out, out
        ports = new_node_ports(c)
        v4_path = os.path.join(c.dir, "cluster-v4.toml")
        out = node_cmd(c, "replace", "3", "--id", "5", "--address", "127.0.0.1", "--base-port",
                       str(ports + 1), "--cores", str(c.cores_per_node), "--zone", "zone-5",
                       "--write", v4_path)
        assert re.search(r"layout version 4 committed: \d+ placement groups move", out), out
        assert "node 3 is a voter of the control plane: replace it there too" in out, out
        control5 = f"127.0.0.1:{port_block(1)}"
        node5 = start_new_node(c, 5, v4_path, ports, control_listen=control5)
        status = wait_change_done(c, 4, traffic.check)
        assert "node 3: removed: it can be stopped and its data wiped" in status, status
        traffic.put_back(5)
        traffic.stop()
        assert traffic.writes > 0 and traffic.reads > len(blobs), (traffic.writes, traffic.reads)
        moved = sum(metrics(c, n).get('percore_layout_moved{kind="bytes"}', 0) for n in (1, 2))
        assert moved > 0

        # `percore status` through node 1's config asks the layout node 1 took from the map:
        # nodes 1, 2 and 5, all up; the removed ones are not asked.
        r = subprocess.run([percore_bin(), "status", "--config", c.config(1)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        for n in (3, 4):
            assert re.search(rf"(?m)^node {n} .*: removed from the cluster, not asked$",
                             r.stdout), r.stdout
        assert "summary: 6/6 cores up, 0 of 3 nodes down" in r.stdout, r.stdout
        # ... and the map's layout and change, as `percore control status` says them.
        assert "layout: version 4\nchange: version 3 -> 4 done" in r.stdout, r.stdout
        assert "node 3: removed: it can be stopped and its data wiped" in r.stdout, r.stdout

        # Node 3 was a voter: node 5 takes its place in the control plane.
        assert "node 3: removed from the layout but still a voter" in control_status(c)
        out = control_cli(c, "voters")
        assert re.search(r"(?m)^voters: 1 \(.*\), 2 \(.*\), 3 \(", out), out
        out = control_cli(c, "voters", "1", "5", ok=False)
        assert "a control plane has 1, 3 or 5" in out, out
        out = control_cli(c, "voters", "1", "2", f"5={control5}")
        assert "voters: 1 (" in out and f"5 ({control5})" in out and "3 (" not in out, out
        # Every node learns it from the map's answers, and rewrites its control.toml.
        deadline = time.time() + 30
        while f"voter 5 {control5}: up" not in (status := control_status(c)):
            assert time.time() < deadline, status
            time.sleep(0.5)
        assert "voter 3 " not in status and "still a voter" not in status, status

        # Node 5 holds what node 3 held: with node 2 stopped too, nodes 1 and 5 serve it all.
        read_all(c, 5, bucket, blobs)
        c.kill(2, sig=15)
        read_all(c, 1, bucket, blobs)
        read_all(c, 5, bucket, blobs)
        # ... and are a majority of the voters: a user created now signs on both.
        out = subprocess.run([percore_bin(), "user", "create", "late", "--data",
                              os.path.join(c.dir, "node-1")], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0, out.stdout + out.stderr
        keys = tuple(re.search(rf"(?m)^{k}: (\S+)$", out.stdout).group(1)
                     for k in ("access_key", "secret_key"))
        for node in (1, 5):
            deadline = time.time() + 30
            while True:
                try:
                    c.client(node, keys=keys).list_buckets()
                    break
                except ClientError as e:
                    assert time.time() < deadline, f"node {node}: {e}"
                    time.sleep(0.2)

        # Node 3 comes back from the dead: it starts from the layout it kept (version 3), takes
        # the map's version 4, finds itself removed and says so; its cores serve nothing.
        c.restart(3)
        deadline = time.time() + 60
        while "this node was removed from the cluster" not in open(dev_err).read():
            assert time.time() < deadline, "node 3 never saw it was removed"
            time.sleep(0.5)
        read_all(c, 3, bucket, blobs)
        c.kill(3, sig=15)
        # Once it knows, it refuses to start.
        r = subprocess.run([percore_bin(), "serve", "--config", c.config(3)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "was removed from the cluster" in r.stderr, r.stderr
    finally:
        if traffic is not None:
            traffic.done.set()
        if node5 is not None:
            stop_process(node5)
        c.stop()



def drain_4_to_the_end(c):
    """Drains node 4 (layout version 2) and waits until the change is done, and a second."""
    out = node_cmd(c, "drain", "4")
    assert re.search(r"layout version 2 committed: \d+ placement groups move", out), out
    wait_change_done(c, 2, lambda: None)
    time.sleep(1)


def write_through_gateway(c, bucket, stop, found, client=None, knew=None):
    """Writes objects of the mixed SIZES through the gateway every 50 ms until `stop`. `found`
    is (written, refused, errors): acknowledged objects go into `written`, (key, body) of
    those answered 503 into `refused`, any other failure into `errors`. `client`: the S3
    client to write with (the cluster's, which retries a 503 once, by default). `knew`, when
    given, takes for each key whether the gateway's map had a layout change in progress when
    its PUT started (`changing`)."""
    written, refused, errors = found
    client, n = client or c.client("gw"), 0
    while not stop.is_set():
        key, data = f"through-gw-{n}", os.urandom(SIZES[n % len(SIZES)])
        if knew is not None:
            knew[key] = changing(c, "gw")
        try:
            client.put_object(Bucket=bucket, Key=key, Body=data)
            written[key] = data
        except ClientError as e:
            if e.response["ResponseMetadata"]["HTTPStatusCode"] == 503:
                refused.append((key, data))
            else:
                errors.append(f"PUT {key}: {e}")
        except Exception as e:  # noqa: BLE001 - every failure is a finding
            errors.append(f"PUT {key}: {e}")
        n += 1
        time.sleep(0.05)


def changing(c, node):
    """Whether the map `node` applied has a layout change in progress (groups not done, as its
    `percore_layout_change_groups` says)."""
    return any(v > 0 for k, v in metrics(c, node).items()
               if k.startswith("percore_layout_change_groups{") and 'phase="done"' not in k)


def one_attempt_client(c, node):
    """An S3 client of `node` that makes one attempt per request: the cluster's clients retry
    a 503 once, which would hide the very answers a test counts."""
    return boto3.client(
        "s3", endpoint_url=c.endpoints[node], region_name="us-east-1",
        aws_access_key_id=c.access_key, aws_secret_access_key=c.secret_key,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"},
                      s3={"addressing_style": "path"}, connect_timeout=5, read_timeout=60))


def test_a_pure_gateway_without_control_is_refused_once_a_change_starts(tmp_path):
    # A pure gateway without `[control]` cannot follow a change: it routes by its layout file
    # (version 1) for its whole life. It stamps its frames with that file's epoch, so once the
    # nodes take the first step of a change they refuse them (503) instead of taking writes
    # into the old rows behind the mover's copies. Every write it acknowledged must read back
    # whole through a node that routes by version 2 alone, and after the change it keeps
    # answering 503 (never a wrong answer) until it is restarted on the new layout file.
    c = DevCluster(tmp_path, nodes=4, cores_per_node=2)
    gw = writer = None
    stop = threading.Event()
    written, refused, errors = {}, [], []
    try:
        bucket = "unfollowed"
        blobs = fill_bucket(c, bucket, count=10)
        gw, _ = start_gateway(c, tmp_path)
        read_all(c, "gw", bucket, blobs)

        writer = threading.Thread(target=write_through_gateway, daemon=True,
                                  args=(c, bucket, stop, (written, refused, errors)))
        writer.start()
        time.sleep(1)
        drain_4_to_the_end(c)
        stop.set()
        writer.join(timeout=60)
        assert not writer.is_alive()
        assert not errors, errors[:10]
        print(f"{len(written)} writes through the gateway acknowledged, {len(refused)} refused "
              f"(503)")
        assert written and refused, (len(written), len(refused))
        r2 = c.client(2)
        for key, data in {**blobs, **written}.items():
            assert r2.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key
        with pytest.raises(ClientError) as e:
            c.client("gw").get_object(Bucket=bucket, Key=sorted(blobs)[0])["Body"].read()
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503, e.value.response
        # Restarted on the layout the change ended with (version 2, as a node keeps it), it
        # serves again.
        stop_process(gw)
        gw = None
        kept = os.path.join(c.dir, "node-1", "map-layout")
        gw, _ = start_gateway(c, tmp_path, extra=f'layout_state = "{kept}.table"\n',
                              layout=f"{kept}.toml")
        read_all(c, "gw", bucket, {**blobs, **written}, unknown=dict(refused))
    finally:
        stop.set()
        if writer is not None:
            writer.join(timeout=60)
        if gw is not None:
            stop_process(gw)
        assert c.stop() == 0


@pytest.mark.parametrize("voters", ["unreachable", "reachable"])
def test_a_pure_gateway_is_fenced_by_the_nodes_through_a_change(tmp_path, voters):
    # A pure gateway whose voters are all unreachable routes by its layout file (version 1),
    # and a writer writes through it while node 4 is drained. The mover never asks a pure
    # gateway whether it applied a phase: the nodes fence it instead. Its frames carry the
    # routing epoch of the map it applied; a node that applied a later phase refuses them and
    # names its map, which the gateway fetches from that node (sealed with the cluster secret)
    # and applies, so its next requests route by the change's phases. A request without a
    # body (a reader's GETs, HEADs and listings here), with a small one (the writer's 1 B and
    # 4 KiB PUTs), or with one up to 16 MiB once the gateway knows a change is in progress (it
    # reads such bodies whole first) is run again by the gateway once it applied that map:
    # those must never answer 503 (the writer and the reader make one attempt per request). A
    # larger body that was streaming when the gateway learned of the change answers 503 (its
    # body is gone; the client retries). Every write the gateway acknowledged must read back
    # whole through a node that routes by version 2 alone: without the fence, the gateway
    # writes the old rows alone all through the change, behind the mover's copies.
    c = DevCluster(tmp_path, nodes=4, cores_per_node=2)
    gw = writer = reader = None
    stop = threading.Event()
    written, refused, errors, knew = {}, [], [], {}
    reads = {"ok": 0, "503": []}
    try:
        bucket = "fenced"
        blobs = fill_bucket(c, bucket, count=10)
        control = [line for line in open(c.config(1)) if line.startswith("control = ")][0]
        if voters == "unreachable":
            nobody = free_port()
            cut_off = re.sub(r'"127\.0\.0\.1:\d+"', f'"127.0.0.1:{nobody}"', control)
            assert cut_off != control and str(nobody) in cut_off, cut_off
            control = cut_off
        gw, _ = start_gateway(c, tmp_path, extra=control)
        read_all(c, "gw", bucket, blobs)

        def read():
            client = one_attempt_client(c, "gw")
            keys, n = sorted(blobs), 0
            while not stop.is_set():
                key = keys[n % len(keys)]
                what = ("list" if n % 5 == 4 else "head" if n % 5 == 3 else "get") + " " + key
                try:
                    if what.startswith("get"):
                        got = client.get_object(Bucket=bucket, Key=key)["Body"].read()
                        assert got == blobs[key], f"GET {key}: {len(got)} bytes"
                    elif what.startswith("head"):
                        size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
                        assert size == len(blobs[key]), f"HEAD {key}: {size}"
                    else:
                        listed = client.list_objects_v2(Bucket=bucket, MaxKeys=1000)
                        missing = set(blobs) - {o["Key"] for o in listed.get("Contents", [])}
                        assert not missing, f"listing lacks {sorted(missing)[:5]}"
                    reads["ok"] += 1
                except ClientError as e:
                    if e.response["ResponseMetadata"]["HTTPStatusCode"] == 503:
                        reads["503"].append(what)
                    else:
                        errors.append(f"{what}: {e}")
                except Exception as e:  # noqa: BLE001 - every failure is a finding
                    errors.append(f"{what}: {e}")
                n += 1

        writer = threading.Thread(target=write_through_gateway, daemon=True,
                                  args=(c, bucket, stop, (written, refused, errors),
                                        one_attempt_client(c, "gw"), knew))
        writer.start()
        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        drain_4_to_the_end(c)
        stop.set()
        writer.join(timeout=60)
        reader.join(timeout=60)
        assert not writer.is_alive() and not reader.is_alive()
        assert not errors, errors[:10]
        rerouted = {k: v for k, v in metrics(c, "gw").items()
                    if k.startswith("percore_requests_rerouted")}
        print(f"{len(written)} writes through the gateway acknowledged, {len(refused)} refused "
              f"(503); {reads['ok']} reads, {len(reads['503'])} answered 503; rerouted: "
              f"{rerouted}")
        assert len(written) >= 3, (len(written), len(refused))
        assert not reads["503"], reads["503"][:10]
        # A body up to 64 KiB is read whole before the request runs, so it runs again too; so
        # is a larger one (up to 16 MiB) once the gateway knows a change is in progress. Only
        # a large PUT that started streaming before the gateway learned of the change (from
        # the control plane, or from the first refusal) may answer 503.
        sizes = [(key, len(data), knew[key]) for key, data in refused]
        small = [key for key, data in refused if len(data) <= SMALL_BODY_BYTES]
        assert not small, (small, sizes)
        knowing = [key for key, data in refused if knew[key]]
        assert not knowing, (knowing, sizes)
        large_knowing = [key for key, data in written.items()
                         if knew[key] and len(data) > SMALL_BODY_BYTES]
        print(f"{len(large_knowing)} PUTs over 64 KiB acknowledged while the gateway knew of "
              f"the change")
        assert large_knowing, sizes
        assert reads["ok"] >= 10, reads["ok"]
        wait_metrics(c, ("gw",), {"percore_layout_version": 2})

        # Through node 2 (the new layout alone) and through the gateway: every object whole.
        r2, through_gw = c.client(2), c.client("gw")
        for key, data in {**blobs, **written}.items():
            assert r2.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key
            assert through_gw.get_object(Bucket=bucket, Key=key)["Body"].read() == data, key
        new = os.urandom(100_000)
        through_gw.put_object(Bucket=bucket, Key="after", Body=new)
        assert r2.get_object(Bucket=bucket, Key="after")["Body"].read() == new
    finally:
        stop.set()
        for thread in (writer, reader):
            if thread is not None:
                thread.join(timeout=60)
        if gw is not None:
            stop_process(gw)
        assert c.stop() == 0
