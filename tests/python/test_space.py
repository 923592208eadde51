"""A real full disk: `percore serve` on a 200 MiB ext4 filesystem on a loop device, filled with
PUTs until it refuses them. The refusal is a clean 507 InsufficientStorage, reads and deletes
go on, deleting gives the space back, a restart (SIGTERM, kill -9) works on the full disk, and a
device filled to the last block by someone else refuses writes without poisoning a core.
Every acknowledged object reads back with its bytes at every step. Needs root (mount)."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import Server

MiB = 1 << 20
# Not a divisor of the 1 MiB segment, so records pack several per segment.
OBJECT_BYTES = 300_000


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.fixture
def small_fs():
    """A fresh 200 MiB ext4 filesystem mounted on a loop device; unmounted and detached after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a loop filesystem needs root")
    for tool in ("truncate", "mkfs.ext4", "mount", "umount", "losetup"):
        if shutil.which(tool) is None:
            pytest.skip(f"mounting a loop filesystem needs {tool}")
    top = tempfile.mkdtemp(prefix="percore-space-")
    img, mnt = os.path.join(top, "img"), os.path.join(top, "mnt")
    os.mkdir(mnt)
    for cmd in (("truncate", "-s", "200M", img), ("mkfs.ext4", "-q", "-F", img),
                ("mount", "-o", "loop", img, mnt)):
        r = run(*cmd)
        if r.returncode != 0:
            shutil.rmtree(top)
            pytest.skip(f"cannot mount a loop filesystem here ({cmd[0]}: {r.stderr.strip()})")
    try:
        yield top, mnt
    finally:
        for _ in range(100):
            if run("umount", mnt).returncode == 0:
                break
            time.sleep(0.1)
        else:
            run("umount", "-l", mnt)
        # `mount -o loop` detaches on unmount (autoclear); detach anything left over.
        for line in run("losetup", "-j", img).stdout.splitlines():
            run("losetup", "-d", line.split(":")[0])
        shutil.rmtree(top, ignore_errors=True)


def start(top, mnt):
    config = os.path.join(top, "node.toml")
    with open(config, "w") as f:
        f.write("segment_mib = 1\n")
    # A one-second lifecycle day: a deleted object's chunks are removed after 1 s, not 30 s.
    return Server(os.path.join(mnt, "d"),
                  extra=("--config", config, "--lifecycle-day-secs", "1"))


def refusal(e):
    return (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])


FULL = (507, "InsufficientStorage")


def fill(c, acked, prefix, limit=2000):
    """PUTs until three refusals in a row; every refusal must be the clean one."""
    refusals = 0
    for i in range(limit):
        key = f"{prefix}{i:05}"
        data = os.urandom(OBJECT_BYTES)
        try:
            c.put_object(Bucket="full", Key=key, Body=data)
            acked[key] = data
            refusals = 0
        except ClientError as e:
            assert refusal(e) == FULL, e.response
            refusals += 1
            if refusals == 3:
                return i + 1
    pytest.fail(f"{limit} PUTs of {OBJECT_BYTES} bytes never filled a 200 MiB filesystem")


def read_all(c, acked):
    for key, data in acked.items():
        assert c.get_object(Bucket="full", Key=key)["Body"].read() == data, key


def metrics(s, name):
    """{core: value} of one per-core gauge of `/-/metrics`."""
    text = urllib.request.urlopen(s.endpoint + "/-/metrics", timeout=10).read().decode()
    return {m.group(1): int(m.group(2))
            for m in re.finditer(rf'^percore_{name}{{core="([^"]*)"}} (\d+)$', text, re.M)}


def settled_metrics(s, name):
    """The gauge once the node has refreshed it (every 2 s)."""
    time.sleep(5)
    values = metrics(s, name)
    assert values, f"/-/metrics has no percore_{name}"
    return values


def put_when_room(c, acked, key, wait_s=120):
    """PUTs `key` until it is accepted (space comes back by delete and reclaim)."""
    deadline = time.time() + wait_s
    while True:
        data = os.urandom(OBJECT_BYTES)
        try:
            c.put_object(Bucket="full", Key=key, Body=data)
            acked[key] = data
            return
        except ClientError as e:
            assert refusal(e) == FULL, e.response
        assert time.time() < deadline, f"no room for {key} after {wait_s} s"
        time.sleep(1)


def delete_half(c, acked):
    for key in sorted(acked)[::2]:
        c.delete_object(Bucket="full", Key=key)
        del acked[key]


def test_a_full_disk_refuses_cleanly_deletes_and_recovers(small_fs):
    top, mnt = small_fs
    s = start(top, mnt)
    acked = {}
    try:
        c = s.client()
        c.create_bucket(Bucket="full")
        free = settled_metrics(s, "core_free_bytes")
        assert len(free) == 2 and all(100 * MiB < v < 200 * MiB for v in free.values()), free

        refused = fill(c, acked, "a")
        assert len(acked) * OBJECT_BYTES > 20 * MiB, f"only {len(acked)} objects fit"
        # Refused at the floor kept for deletes and metadata, not at the last block.
        df = shutil.disk_usage(mnt)
        assert df.free > 8 * MiB, df
        assert all(v < 2 * MiB for v in settled_metrics(s, "core_free_bytes").values())
        assert set(settled_metrics(s, "core_poisoned").values()) == {0}
        print(f"full after {len(acked)} objects ({refused} PUTs refused), {df.free} bytes free")

        read_all(c, acked)
        delete_half(c, acked)
        put_when_room(c, acked, "after-delete")
        read_all(c, acked)

        # Fill again, then restart on the full disk: SIGTERM, start.
        fill(c, acked, "b")
        assert s.stop() == 0
        s = start(top, mnt)
        c = s.client()
        read_all(c, acked)
        delete_half(c, acked)
        put_when_room(c, acked, "after-sigterm")

        # Someone else fills the device to its last block (root may use ext4's reserved
        # blocks): writes refused, reads served, no core poisoned.
        fill(c, acked, "c")
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * MiB)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError:
                pass
        try:
            for i in range(5):
                try:
                    data = os.urandom(OBJECT_BYTES)
                    c.put_object(Bucket="full", Key=f"exhausted{i}", Body=data)
                    acked[f"exhausted{i}"] = data
                except ClientError as e:
                    assert refusal(e) == FULL, e.response
            read_all(c, acked)
            assert set(settled_metrics(s, "core_poisoned").values()) == {0}
        finally:
            os.remove(filler)

        # kill -9 on the full disk, start: everything acknowledged is there, deletes work.
        s.proc.kill()
        s.proc.wait()
        s = start(top, mnt)
        c = s.client()
        read_all(c, acked)
        delete_half(c, acked)
        put_when_room(c, acked, "after-kill")
        read_all(c, acked)
        assert set(settled_metrics(s, "core_poisoned").values()) == {0}
        # The segment files reclaim kept for reuse, and what reuse and replay did (a full
        # device gets the pool back, so the figures are printed, not bounded).
        pool = {name: metrics(s, name) for name in
                ("core_free_segment_files", "core_segments_reused", "core_replay_stale_stops")}
        assert all(len(v) == 2 for v in pool.values()), pool
        print(f"segment files after the last start: {pool}")
    finally:
        s.stop()
