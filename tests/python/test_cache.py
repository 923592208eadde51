"""Each core's cache of small fragments (README "Cache"), end to end: `cache_mib` from the
config file, hot GETs counted as hits in /-/metrics, exact bytes after overwrite and delete,
and `cache_mib = 0` turning it off.
"""
import os
import re
import tempfile
import time
import urllib.request

import pytest

from conftest import Server

MIB = 1 << 20


def _metrics(server):
    return urllib.request.urlopen(server.endpoint + "/-/metrics", timeout=10).read().decode()


def _sum(text, name, labels=""):
    """The sum of a metric's samples over the cores (whose labels contain `labels`)."""
    total, seen = 0, False
    for m in re.finditer(rf"^percore_{name}\{{([^}}]*)\}} (\d+)$", text, re.M):
        if labels in m.group(1):
            total += int(m.group(2))
            seen = True
    assert seen, f"no percore_{name}{{{labels}}} in\n{text}"
    return total


def _wait(server, check, timeout=30):
    """Waits until `check(metrics text)` holds (the gateway refreshes core counters every 2 s)."""
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = _metrics(server)
        try:
            if check(text):
                return text
        except AssertionError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"metrics never matched:\n{text}")


@pytest.fixture
def node(request):
    cache_mib = request.param
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "node.toml")
        with open(config, "w") as f:
            f.write(f"cache_mib = {cache_mib}\n")
        s = Server(os.path.join(d, "data"), extra=("--config", config))
        try:
            yield s
        finally:
            assert s.stop() == 0


@pytest.mark.parametrize("node", [8], indirect=True)
def test_hot_gets_hit_and_stay_exact(node):
    c = node.client()
    c.create_bucket(Bucket="hot")
    objects = {f"k{i:02d}": os.urandom(4096) for i in range(20)}
    for k, v in objects.items():
        c.put_object(Bucket="hot", Key=k, Body=v)
    for _ in range(5):
        for k, v in objects.items():
            assert c.get_object(Bucket="hot", Key=k)["Body"].read() == v
    # A replica read once fills its core's entry; at most two replicas per object miss.
    text = _wait(node, lambda t: _sum(t, "core_cache_reads", 'result="hit"') >= 20 * 3)
    assert _sum(text, "core_cache_budget_bytes") == 2 * 8 * MIB
    assert 20 * 4096 <= _sum(text, "core_cache_bytes") <= 2 * 8 * MIB
    # Exact under overwrite (new bytes, also by range) and delete.
    new = os.urandom(3000)
    c.put_object(Bucket="hot", Key="k00", Body=new)
    for _ in range(3):
        assert c.get_object(Bucket="hot", Key="k00")["Body"].read() == new
        part = c.get_object(Bucket="hot", Key="k00", Range="bytes=100-199")["Body"].read()
        assert part == new[100:200]
    c.delete_object(Bucket="hot", Key="k01")
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="hot", Key="k01")


@pytest.mark.parametrize("node", [0], indirect=True)
def test_cache_mib_zero_turns_it_off(node):
    c = node.client()
    c.create_bucket(Bucket="cold")
    v = os.urandom(4096)
    c.put_object(Bucket="cold", Key="k", Body=v)
    for _ in range(5):
        assert c.get_object(Bucket="cold", Key="k")["Body"].read() == v
    # The fragment counters reached the gateway (gets counted), the cache's stayed at zero.
    text = _wait(node, lambda t: _sum(t, "core_cache_budget_bytes") == 0
                 and _sum(t, "core_fragments") > 0)
    assert _sum(text, "core_cache_reads", 'result="hit"') == 0
    assert _sum(text, "core_cache_reads", 'result="miss"') == 0
    assert _sum(text, "core_cache_bytes") == 0


def test_cache_mib_out_of_bounds_is_refused():
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "node.toml")
        with open(config, "w") as f:
            f.write("cache_mib = 2000000\n")
        with pytest.raises(AssertionError, match="exited before"):
            Server(os.path.join(d, "data"), extra=("--config", config))
