"""The scrub finds rot nobody has read yet and repairs it: real bytes flipped in the fragment
records of real segment files under a running `percore serve --cores 4`; a pass (SIGUSR1)
finds every one of them, rewrites each from the rest of its stripe, and a second pass finds
none. Fragments lost from a core's index (skipped at replay after a restart) are found missing
and rewritten the same way. A scheduled pass runs on the test clock.
"""
import http.client
import os
import random
import re
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from conftest import Server

CORES = 4
# Small objects get 3 replicas, large ones EC 2+2 on a 4-core node (cluster/src/ec.rs).
SIZES = [1, 1000, 70_000, 300_000, 1 << 20, 3 * (1 << 20) + 17]
RECORD_HEADER = 64
FRAGMENT_MAGIC = b"PCR1\x02\x01"


def _objects(seed, n=24):
    rng = random.Random(seed)
    return {f"obj/{i:03d}": rng.randbytes(SIZES[i % len(SIZES)]) for i in range(n)}


def _metrics(s):
    return urllib.request.urlopen(s.endpoint + "/-/metrics", timeout=10).read().decode()


def _by_core(text, name, result=None):
    """{core index: value} of a per-core scrub metric."""
    if result is None:
        pat = r'^percore_%s\{core="core (\d+)"\} (\d+)' % name
    else:
        pat = r'^percore_%s\{core="core (\d+)",result="%s"\} (\d+)' % (name, result)
    return {int(c): int(v) for c, v in re.findall(pat, text, re.M)}


def _scrub_now(s, passes_before, timeout=120):
    """Starts a pass with SIGUSR1 and waits until every core's walk has ended; the metrics."""
    s.proc.send_signal(signal.SIGUSR1)
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = _metrics(s)
        passes = _by_core(text, "scrub_passes_total")
        if len(passes) == CORES and all(v >= passes_before + 1 for v in passes.values()):
            return text
        time.sleep(0.3)
    raise AssertionError(f"no scrub pass ended within {timeout}s:\n{_metrics(s)}")


def _before_the_log_tail(seg):
    """Where the last written block of a segment's bytes starts. A running core's next group
    commit rewrites the block its log ends in from memory (engine/DESIGN.md, "Log and group
    commit"), which would undo a byte flipped there before a pass reads it: records that reach
    into that block are not damaged here."""
    end = len(seg.rstrip(b"\0"))
    return max(0, end - 1) // 4096 * 4096


def _fragment_records(data, damageable=False):
    """(core, segment path, record offset, fragment id, payload bytes) of every fragment
    record in every core's segments; with `damageable`, only those before each segment's
    last written block (`_before_the_log_tail`)."""
    out = []
    for core in range(CORES):
        d = os.path.join(data, f"core-{core}")
        for name in sorted(os.listdir(d)):
            if not name.startswith("seg-"):
                continue
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                seg = f.read()
            tail = _before_the_log_tail(seg)
            for m in re.finditer(re.escape(FRAGMENT_MAGIC), seg):
                at = m.start()
                if at % 8 or at + RECORD_HEADER > len(seg):
                    continue
                fid = seg[at + 16:at + 32]
                payload = int.from_bytes(seg[at + 32:at + 36], "little")
                end = at + RECORD_HEADER + payload
                if payload > 0 and end <= (tail if damageable else len(seg)):
                    out.append((core, path, at, fid, payload))
    return out


def _pick_one_per_stripe(records, n, rng, cores=None):
    """n records of distinct stripes (fragment id without its shard byte), so every stripe
    keeps enough sound fragments to be rebuilt."""
    rng.shuffle(records)
    stripes, chosen = set(), []
    for r in records:
        if cores is not None and r[0] not in cores:
            continue
        if r[3][:15] in stripes:
            continue
        stripes.add(r[3][:15])
        chosen.append(r)
        if len(chosen) == n:
            break
    assert len(chosen) == n, f"only {len(chosen)} stripes to damage"
    return chosen


def _flip(path, offset, mask=0x5A):
    fd = os.open(path, os.O_RDWR)
    try:
        b = os.pread(fd, 1, offset)
        assert len(b) == 1
        os.pwrite(fd, bytes([b[0] ^ mask]), offset)
        os.fsync(fd)
    finally:
        os.close(fd)


@pytest.fixture
def data_dir():
    with tempfile.TemporaryDirectory() as d:
        yield os.path.join(d, "data")


def _fill(s, objects, bucket="scrub"):
    c = s.client()
    c.create_bucket(Bucket=bucket)
    for k, v in objects.items():
        c.put_object(Bucket=bucket, Key=k, Body=v)
    return c


def _read_all(c, objects, bucket="scrub"):
    for k, v in objects.items():
        got = c.get_object(Bucket=bucket, Key=k)["Body"].read()
        assert got == v, f"{k}: {len(got)} bytes back, {len(v)} written"


def _sum(d):
    return sum(d.values())


def test_one_pass_finds_and_repairs_all_rot_and_a_second_finds_none(data_dir):
    s = Server(data_dir, cores=CORES, extra=["--scrub-days", "0",
                                             "--scrub-bytes-per-sec", str(256 << 20)])
    try:
        objects = _objects(11)
        c = _fill(s, objects)
        # Versions too: a versioned bucket's overwritten (noncurrent) versions are scrubbed.
        c.create_bucket(Bucket="scrub-v")
        c.put_bucket_versioning(Bucket="scrub-v", VersioningConfiguration={"Status": "Enabled"})
        versions = _objects(12, n=6)
        for k, v in versions.items():
            c.put_object(Bucket="scrub-v", Key="same", Body=v)
        # And the parts of an upload not completed yet.
        up = c.create_multipart_upload(Bucket="scrub", Key="pending")["UploadId"]
        parts = [random.Random(13).randbytes(5 << 20), b"p" * 2000]
        for n, body in enumerate(parts, 1):
            c.upload_part(Bucket="scrub", Key="pending", UploadId=up, PartNumber=n, Body=body)
        rng = random.Random(5)
        records = _fragment_records(data_dir)
        damaged = _pick_one_per_stripe(_fragment_records(data_dir, damageable=True), 16, rng)
        expected = {core: 0 for core in range(CORES)}
        for core, path, at, _, payload in damaged:
            _flip(path, at + RECORD_HEADER + rng.randrange(payload))
            expected[core] += 1

        first = _scrub_now(s, 0)
        corrupt = _by_core(first, "scrub_fragments_total", "corrupt")
        repaired = _by_core(first, "scrub_fragments_total", "repaired")
        verified = _by_core(first, "scrub_fragments_total", "verified")
        assert corrupt == expected, f"found {corrupt}, flipped {expected}"
        assert repaired == expected, f"repaired {repaired}, flipped {expected}"
        assert _sum(_by_core(first, "scrub_fragments_total", "missing")) == 0
        assert _sum(_by_core(first, "scrub_fragments_total", "repair_failed")) == 0
        assert _sum(_by_core(first, "scrub_fragments_total", "unreachable")) == 0
        # Every fragment record on disk was checked once.
        assert _sum(verified) == len(records), (verified, len(records))
        assert _sum(_by_core(first, "scrub_bytes_total")) == sum(r[4] for r in records)

        second = _scrub_now(s, 1)
        assert _by_core(second, "scrub_fragments_total", "corrupt") == expected, \
            "the second pass found more damage"
        assert _by_core(second, "scrub_fragments_total", "repaired") == expected
        assert _sum(_by_core(second, "scrub_fragments_total", "verified")) == 2 * len(records)
        ends = _by_core(second, "scrub_last_pass_end_ms")
        assert len(ends) == CORES and all(v > 0 for v in ends.values())

        _read_all(c, objects)
        done = c.complete_multipart_upload(
            Bucket="scrub", Key="pending", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": p["ETag"]} for n, p in enumerate(
                c.list_parts(Bucket="scrub", Key="pending", UploadId=up)["Parts"], 1)]})
        assert done["ETag"]
        got = c.get_object(Bucket="scrub", Key="pending")["Body"].read()
        assert got == b"".join(parts)
        listed = c.list_object_versions(Bucket="scrub-v")["Versions"]
        assert len(listed) == len(versions)
        for v in listed:
            body = c.get_object(Bucket="scrub-v", Key="same", VersionId=v["VersionId"])["Body"]
            assert body.read() in versions.values()
    finally:
        assert s.stop() == 0


def test_fragments_lost_from_the_index_are_found_missing_and_rewritten(data_dir):
    s = Server(data_dir, cores=CORES, extra=["--scrub-days", "0"])
    try:
        objects = _objects(21)
        _fill(s, objects)
    finally:
        assert s.stop() == 0
    # Core 1 restarts without its checkpoint, and replay skips the records whose crc fails:
    # their fragments are gone from its index (as in test_damage.py).
    core_dir = os.path.join(data_dir, "core-1")
    _flip(os.path.join(core_dir, "checkpoint"), 20)
    rng = random.Random(7)
    lost = _pick_one_per_stripe(_fragment_records(data_dir), 5, rng, cores={1})
    for _, path, at, _, _ in lost:
        _flip(path, at + 40)  # the record's aux field: its crc fails

    s = Server(data_dir, cores=CORES, extra=["--scrub-days", "0"])
    try:
        first = _scrub_now(s, 0)
        missing = _by_core(first, "scrub_fragments_total", "missing")
        # Replay skips a damaged record and finds the next one after it: one record lost
        # for each flip.
        assert missing.get(1, 0) == len(lost), missing
        assert _sum(missing) == missing[1], f"only core 1 lost fragments: {missing}"
        assert _by_core(first, "scrub_fragments_total", "repaired") == missing
        assert _sum(_by_core(first, "scrub_fragments_total", "corrupt")) == 0
        second = _scrub_now(s, 1)
        assert _by_core(second, "scrub_fragments_total", "missing") == missing
        _read_all(s.client(), objects)
    finally:
        assert s.stop() == 0


def test_a_pass_runs_on_schedule_and_the_record_survives_a_restart(data_dir):
    # A 1-second lifecycle day and a pass every day: passes come by themselves.
    extra = ["--lifecycle-day-secs", "1", "--scrub-days", "1"]
    s = Server(data_dir, cores=CORES, extra=extra)
    try:
        _fill(s, _objects(31, n=6))
        deadline = time.time() + 60
        while True:
            text = _metrics(s)
            passes = _by_core(text, "scrub_passes_total")
            if len(passes) == CORES and min(passes.values()) >= 3:
                break
            assert time.time() < deadline, f"scheduled passes: {passes}"
            time.sleep(0.5)
        assert _sum(_by_core(text, "scrub_fragments_total", "verified")) > 0
    finally:
        assert s.stop() == 0
    ended = _by_core(text, "scrub_last_pass_end_ms")
    # The restarted node reads each core's last pass from its record (and, a week of test
    # days not having passed, starts none by itself).
    s = Server(data_dir, cores=CORES, extra=["--lifecycle-day-secs", "1000"])
    try:
        deadline = time.time() + 30
        while True:
            text = _metrics(s)
            restored = _by_core(text, "scrub_last_pass_end_ms")
            if len(restored) == CORES:
                break
            assert time.time() < deadline, f"no last pass read back: {restored}"
            time.sleep(0.3)
        # Each core's record is at least as new as the metrics read before the stop (a pass
        # may have ended between that read and the stop).
        assert all(restored[c] >= ended[c] for c in ended), (restored, ended)
        assert _by_core(text, "scrub_passes_total") == {}
    finally:
        assert s.stop() == 0


def _sweeps(text, result="done"):
    m = re.search(r'^percore_orphan_sweeps_total\{result="%s"\} (\d+)' % result, text, re.M)
    return int(m.group(1)) if m else 0


def _sweep_now(s, passes_before, sweeps_before, timeout=120):
    """A scrub pass (SIGUSR1) and the orphan sweep after it; the metrics once it ended."""
    _scrub_now(s, passes_before, timeout)
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = _metrics(s)
        if _sweeps(text) + _sweeps(text, "stopped") > sweeps_before:
            assert _sweeps(text, "stopped") == 0, text
            return text
        time.sleep(0.3)
    raise AssertionError(f"no orphan sweep ended within {timeout}s")


def _slow_put(s, c, bucket, key, total, sent, pause):
    """A PUT of `total` declared bytes that sends `sent` of them, then waits `pause` s."""
    url = urllib.parse.urlsplit(c.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300))
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.putrequest("PUT", f"{url.path}?{url.query}")
    conn.putheader("Content-Length", str(total))
    conn.endheaders()
    block = random.Random(total).randbytes(1 << 20)
    for i in range(0, sent, len(block)):
        conn.send(block[:min(len(block), sent - i)])
    time.sleep(pause)
    return conn


GRACE = 20


def _fragments(s):
    """Fragments on the node's cores, once the per-core gauges (refreshed every 2 s) hold
    still across a refresh."""
    last = None
    for _ in range(30):
        now = _by_core(_metrics(s), "core_fragments")
        if len(now) == CORES and now == last:
            return _sum(now)
        last = now
        time.sleep(2.2)
    raise AssertionError(f"core_fragments never settled: {last}")


def test_fragments_a_crash_left_unreferenced_are_swept_after_the_grace(data_dir):
    """kill -9 in the middle of a 40 MiB PUT leaves its stored stripes without a head; after
    the grace the sweep removes exactly those, and nothing any record names: objects, a
    noncurrent version, an uploaded part of a pending upload."""
    extra = ["--scrub-days", "0", "--orphan-grace-secs", str(GRACE),
             "--scrub-bytes-per-sec", str(256 << 20)]
    s = Server(data_dir, cores=CORES, extra=extra)
    objects = _objects(41, n=8)
    try:
        c = _fill(s, objects)
        c.create_bucket(Bucket="versions")
        c.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
        old = c.put_object(Bucket="versions", Key="k", Body=b"old" * 100_000)["VersionId"]
        c.put_object(Bucket="versions", Key="k", Body=b"new")
        up = c.create_multipart_upload(Bucket="scrub", Key="mp")["UploadId"]
        part = random.Random(5).randbytes(5 << 20)
        etag = c.upload_part(Bucket="scrub", Key="mp", UploadId=up, PartNumber=1,
                             Body=part)["ETag"]
        kept = _fragments(s)
        _slow_put(s, c, "scrub", "cut", 40 << 20, 20 << 20, 2)
        s.proc.kill()
        s.proc.wait()
    finally:
        if s.proc.poll() is None:
            s.stop()
    crashed_at = time.time()
    s = Server(data_dir, cores=CORES, extra=extra)
    try:
        c = s.client()
        before = _fragments(s)
        assert before > kept, (before, kept)
        # Younger than the grace: a sweep keeps them.
        text = _sweep_now(s, 0, 0)
        assert _sum(_by_core(text, "orphan_fragments_total", "deleted")) == 0
        assert _fragments(s) == before
        time.sleep(max(0.0, crashed_at + GRACE + 1 - time.time()))
        text = _sweep_now(s, 1, 1)
        deleted = _sum(_by_core(text, "orphan_fragments_total", "deleted"))
        assert deleted == before - kept, (deleted, before, kept)
        assert _fragments(s) == kept
        _read_all(c, objects)
        assert c.get_object(Bucket="versions", Key="k",
                            VersionId=old)["Body"].read() == b"old" * 100_000
        c.complete_multipart_upload(Bucket="scrub", Key="mp", UploadId=up, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": etag}]})
        assert c.get_object(Bucket="scrub", Key="mp")["Body"].read() == part
        # Nothing left to sweep.
        text = _sweep_now(s, 2, 2)
        assert _sum(_by_core(text, "orphan_fragments_total", "deleted")) == deleted
    finally:
        assert s.stop() == 0


def test_a_write_slower_than_half_the_grace_is_refused(data_dir):
    s = Server(data_dir, cores=CORES, extra=["--orphan-grace-secs", "4"])
    try:
        c = _fill(s, {})
        conn = _slow_put(s, c, "scrub", "slow", 2 << 20, (2 << 20) - 1, 3)
        conn.send(b"x")
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 400 and b"RequestTimeout" in body, body
        conn.close()
        with pytest.raises(Exception):
            c.head_object(Bucket="scrub", Key="slow")
        assert _fragments(s) == 0
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("flags", [["--scrub-bytes-per-sec", "0"], ["--scrub-days", "40000"],
                                   ["--orphan-grace-secs", "1"]])
def test_bad_scrub_settings_are_refused(data_dir, flags):
    with pytest.raises(AssertionError, match="exited before"):
        Server(data_dir, cores=1, extra=flags)


def _all_fragment_records(root, damageable=False):
    """(path, record offset, fragment id, payload bytes) of every fragment record under root
    (with `damageable`, as in `_fragment_records`)."""
    out = []
    for d, _, files in os.walk(root):
        for name in sorted(files):
            if not name.startswith("seg-"):
                continue
            path = os.path.join(d, name)
            with open(path, "rb") as f:
                seg = f.read()
            tail = _before_the_log_tail(seg)
            for m in re.finditer(re.escape(FRAGMENT_MAGIC), seg):
                at = m.start()
                if at % 8 or at + RECORD_HEADER > len(seg):
                    continue
                payload = int.from_bytes(seg[at + 32:at + 36], "little")
                end = at + RECORD_HEADER + payload
                if payload > 0 and end <= (tail if damageable else len(seg)):
                    out.append((path, at, seg[at + 16:at + 32], payload))
    return out


def _total(text, result):
    return sum(int(v) for v in re.findall(
        r'^percore_scrub_fragments_total\{core="[^"]*",result="%s"\} (\d+)' % result, text, re.M))


def test_a_cluster_scrubs_each_fragment_once_and_status_shows_it(tmp_path):
    from cluster import DevCluster

    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    try:
        s3 = c.client(1)
        s3.create_bucket(Bucket="scrub-c")
        objects = _objects(41, n=12)
        for k, v in objects.items():
            s3.put_object(Bucket="scrub-c", Key=k, Body=v)
        records = _all_fragment_records(c.dir)
        rng = random.Random(9)
        damageable = _all_fragment_records(c.dir, damageable=True)
        rng.shuffle(damageable)
        stripes, damaged = set(), []
        for r in damageable:
            if r[2][:15] not in stripes and len(damaged) < 6:
                stripes.add(r[2][:15])
                damaged.append(r)
        for path, at, _, payload in damaged:
            _flip(path, at + RECORD_HEADER + rng.randrange(payload))
        for node in range(1, c.nodes + 1):
            os.kill(c.pid(node), signal.SIGUSR1)
        texts = {}
        deadline = time.time() + 120
        for node in range(1, c.nodes + 1):
            while True:
                text = urllib.request.urlopen(
                    c.endpoints[node] + "/-/metrics", timeout=10).read().decode()
                passes = re.findall(r'^percore_scrub_passes_total\{core="[^"]*"\} (\d+)', text,
                                    re.M)
                if len(passes) == c.cores_per_node:
                    texts[node] = text
                    break
                assert time.time() < deadline, f"node {node}: no pass ended:\n{text}"
                time.sleep(0.3)
        # Each fragment was checked by exactly one node: the one primary of its version.
        assert sum(_total(t, "verified") for t in texts.values()) == len(records)
        assert sum(_total(t, "corrupt") for t in texts.values()) == len(damaged)
        assert sum(_total(t, "repaired") for t in texts.values()) == len(damaged)
        assert sum(_total(t, "unreachable") for t in texts.values()) == 0
        code, out = c.status()
        assert code == 0, out
        lines = [line for line in out.splitlines() if line.strip().startswith("core ")]
        assert len(lines) == c.nodes * c.cores_per_node, out
        assert all("scrub: last pass ended" in line for line in lines), out
        found = sum(int(m) for m in re.findall(r", (\d+) corrupt, ", out))
        assert found == len(damaged), out
        for k, v in objects.items():
            assert s3.get_object(Bucket="scrub-c", Key=k)["Body"].read() == v
    finally:
        assert c.stop() == 0


def _meta_env(core_dir, readonly):
    import lmdb
    return lmdb.open(os.path.join(core_dir, "meta"), map_size=1 << 36, max_dbs=32,
                     readonly=readonly, lock=not readonly)


def _tree(env, first):
    """The database of a core's metadata store that holds the keys starting with byte `first`:
    a split store's tree for it (engine/DESIGN.md, "Trees"), or an older store's one `meta`."""
    fmt = env.open_db(b"format", create=False)
    with env.begin(db=fmt) as txn:
        split = txn.get(b"split") == b"\x01"
    if not split:
        return env.open_db(b"meta", create=False)
    index = 1 + first - ord("A") if ord("A") <= first <= ord("Z") else (0 if first < ord("A") else 27)
    return env.open_db(b"m%02d" % index, create=False)


def _delete_hints(core_dir):
    """Removes every hint record (`H…`) from a stopped core's metadata store; how many."""
    env = _meta_env(core_dir, readonly=False)
    try:
        db = _tree(env, ord("H"))
        with env.begin(write=True, db=db) as txn:
            keys = [k for k, _ in txn.cursor() if k.startswith(b"H")]
            for k in keys:
                txn.delete(k)
        return len(keys)
    finally:
        env.close()


def _records_on(core_dir, prefix):
    """How many metadata records under `prefix` a stopped core holds (live or not)."""
    env = _meta_env(core_dir, readonly=True)
    try:
        db = _tree(env, prefix[0])
        with env.begin(db=db) as txn:
            return sum(1 for k, _ in txn.cursor() if k.startswith(prefix))
    finally:
        env.close()


def _heads_on(core_dir, bucket_prefix):
    """How many object heads of a bucket a stopped core holds (live or not)."""
    return _records_on(core_dir, b"O" + bucket_prefix)


def _cluster_pass(c):
    """SIGUSR1 to every node; each node's metrics once one more pass ended on its cores."""
    pattern = r'^percore_scrub_passes_total\{core="[^"]*"\} (\d+)'

    def passes(node):
        text = urllib.request.urlopen(c.endpoints[node] + "/-/metrics", timeout=10).read()
        found = re.findall(pattern, text.decode(), re.M)
        return text.decode(), (sum(map(int, found)) if len(found) == c.cores_per_node else -1)

    before = {node: passes(node)[1] for node in range(1, c.nodes + 1)}
    for node in range(1, c.nodes + 1):
        os.kill(c.pid(node), signal.SIGUSR1)
    texts = {}
    deadline = time.time() + 120
    for node in range(1, c.nodes + 1):
        while True:
            text, n = passes(node)
            if n >= max(before[node], 0) + c.cores_per_node:
                texts[node] = text
                break
            assert time.time() < deadline, f"node {node}: no pass ended:\n{text}"
            time.sleep(0.3)
    return texts


def _digests(texts, result):
    return sum(int(v) for t in texts.values() for v in re.findall(
        r'^percore_scrub_digests_total\{core="[^"]*",result="%s"\} (\d+)' % result, t, re.M))


def _records(texts, result):
    return sum(int(v) for t in texts.values() for v in re.findall(
        r'^percore_scrub_records_total\{core="[^"]*",result="%s"\} (\d+)' % result, t, re.M))


def test_a_node_whose_hints_were_lost_converges(tmp_path):
    # Node 3 is down while 10 objects are written (and tagged, an upload started with a part,
    # the bucket tagged); the hints of what it missed are then removed from the two nodes that
    # kept them. The scrub's anti-entropy compares each record with its replicas and writes it
    # where it is missing: node 3 ends with every head, listing entry, tag set, upload, part
    # and bucket configuration record, and a second pass finds nothing to converge.
    from cluster import DevCluster

    c = DevCluster(tmp_path, nodes=3, cores_per_node=1)
    objects = _objects(51, n=10)
    try:
        s3 = c.client(1)
        s3.create_bucket(Bucket="aecheck")
        # The bucket's first tagging marks its record (a compare-and-swap on its primary,
        # which may be on node 3): done while every node is up.
        s3.put_object(Bucket="aecheck", Key="first", Body=b"1")
        s3.put_object_tagging(Bucket="aecheck", Key="first",
                              Tagging={"TagSet": [{"Key": "t", "Value": "1"}]})
        c.kill(3)
        for k, v in objects.items():
            s3.put_object(Bucket="aecheck", Key=k, Body=v)
        for k in list(objects)[:3]:
            s3.put_object_tagging(Bucket="aecheck", Key=k,
                                  Tagging={"TagSet": [{"Key": "t", "Value": k}]})
        s3.put_bucket_tagging(Bucket="aecheck", Tagging={"TagSet": [{"Key": "b", "Value": "1"}]})
        up = s3.create_multipart_upload(Bucket="aecheck", Key="pending")["UploadId"]
        s3.upload_part(Bucket="aecheck", Key="pending", UploadId=up, PartNumber=1, Body=b"p")
    finally:
        c.stop()
    kinds = [b"Laecheck", b"Taecheck", b"Raecheck", b"Uaecheck", b"P" + up.encode()]
    core = lambda node: os.path.join(c.dir, f"node-{node}", "core-0")  # noqa: E731
    assert _heads_on(core(3), b"aecheck") == 1, "node 3 missed every write but the first"
    assert _heads_on(core(1), b"aecheck") == len(objects) + 1
    held = {k: _records_on(core(1), k) for k in kinds}
    assert all(held.values()), held
    assert {k: _records_on(core(3), k) for k in kinds} != held
    removed = _delete_hints(core(1)) + _delete_hints(core(2))
    assert removed >= 2 * len(objects), removed
    c.start()
    try:
        first = _cluster_pass(c)
        assert _records(first, "converged") >= len(objects), first
        assert _records(first, "unreachable") == 0
        # Batches are compared by digest first: the first pass found some that differ, the
        # second (nothing left to converge) finds every digest the same.
        assert _digests(first, "differ") > 0 and _digests(first, "failed") == 0, first
        second = _cluster_pass(c)
        assert _records(second, "converged") == _records(first, "converged"), second
        assert _digests(second, "differ") == _digests(first, "differ"), second
        assert _digests(second, "same") > _digests(first, "same"), second
    finally:
        c.stop()
    # Written by the scrub, before any read could repair it.
    assert _heads_on(core(3), b"aecheck") == len(objects) + 1
    assert {k: _records_on(core(3), k) for k in kinds} == held
    c.start()
    try:
        s3 = c.client(3)
        for k, v in objects.items():
            assert s3.get_object(Bucket="aecheck", Key=k)["Body"].read() == v
    finally:
        c.stop()


def _core_line(out, node):
    """The `percore status` line of node's core 0."""
    lines = [line for line in out.splitlines() if line.strip().startswith(f"core {node}/0 ")]
    assert len(lines) == 1, out
    return lines[0]


def _status_fragments(out, node):
    m = re.search(r": up, (\d+) fragments", _core_line(out, node))
    return int(m.group(1)) if m else -1


def test_a_storage_only_node_replays_its_hints_and_scrubs(tmp_path):
    # `percore node --config` runs a node's cores without an S3 endpoint (gateways serve S3
    # elsewhere). Its cores' background work must still run: nodes 1 and 2 replay to node 3
    # the writes it missed (their hints), and node 3 scrubs its core on SIGUSR1, with no
    # `percore serve` anywhere.
    from cluster import Lines, DevCluster, percore_bin

    c = DevCluster(tmp_path, nodes=3, cores_per_node=1)
    objects = _objects(61, n=10)
    try:
        s3 = c.client(1)
        s3.create_bucket(Bucket="storeonly")
        c.kill(3)
        for k, v in objects.items():
            s3.put_object(Bucket="storeonly", Key=k, Body=v)
    finally:
        c.stop()
    core = lambda node: os.path.join(c.dir, f"node-{node}", "core-0")  # noqa: E731
    assert _heads_on(core(3), b"storeonly") == 0
    assert _heads_on(core(1), b"storeonly") == len(objects)
    nodes = {}
    try:
        for node in (1, 2, 3):
            p = subprocess.Popen(
                [percore_bin(), "node", "--config", c.config(node)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                text=True, env={**os.environ, "RUST_LOG": "warn"},
            )
            nodes[node] = p
            Lines(p.stdout).until(r"^ready$", 60, f"percore node {node}")
        # Small objects have 3 replicas: node 3's core ends with as many fragments as node 1's.
        deadline = time.time() + 60
        while True:
            code, out = c.status()
            if code == 0 and _status_fragments(out, 3) == _status_fragments(out, 1) > 0:
                break
            assert time.time() < deadline, f"node 3 never got its missed writes:\n{out}"
            time.sleep(0.5)
        assert "scrub: no pass ended yet" in _core_line(out, 3), out
        nodes[3].send_signal(signal.SIGUSR1)
        deadline = time.time() + 60
        while "scrub: last pass ended" not in _core_line(out, 3):
            assert time.time() < deadline, f"no scrub pass on node 3:\n{out}"
            time.sleep(0.5)
            code, out = c.status()
    finally:
        for p in nodes.values():
            p.send_signal(signal.SIGTERM)
        for p in nodes.values():
            p.wait(timeout=60)
    assert _heads_on(core(3), b"storeonly") == len(objects)
