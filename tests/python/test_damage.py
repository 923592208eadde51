"""Damage is contained to its core: real bytes flipped or zeroed in one core's files while the
node is stopped; after the restart the node serves every object from the other cores (EC 2+2
and 3 replicas on a 4-core node) and its metrics name the damaged core and why.

Each case writes its own objects to its own node (`percore serve --cores 4`), stops it cleanly
(SIGTERM: final checkpoint), damages core 1's files, and starts it again on the same data.
"""
import os
import random
import re
import signal
import struct
import tempfile
import time
import urllib.request

import pytest

from conftest import Server

CORES = 4
DAMAGED = 1
LMDB_PAGE = 4096  # heed's default page size on x86-64
# Small objects get 3 replicas, large ones EC 2+2 on a 4-core node (cluster/src/ec.rs).
SIZES = [0, 1, 1000, 70_000, 300_000, 1 << 20, 3 * (1 << 20) + 17]


def _objects(seed):
    rng = random.Random(seed)
    out = {}
    for i in range(24):
        size = SIZES[i % len(SIZES)]
        out[f"obj/{i:03d}"] = rng.randbytes(size)
    return out


def _metrics(server):
    return urllib.request.urlopen(server.endpoint + "/-/metrics", timeout=10).read().decode()


def _wait_metric(server, pattern, what, timeout=30):
    deadline = time.time() + timeout
    text = ""
    while time.time() < deadline:
        text = _metrics(server)
        m = re.search(pattern, text, re.M)
        if m:
            return m
        time.sleep(0.5)
    raise AssertionError(f"{what}: no metric matching {pattern!r} in\n{text}")


@pytest.fixture
def node_dir():
    with tempfile.TemporaryDirectory() as d:
        yield os.path.join(d, "data")


def _fill_and_stop(data, seed):
    s = Server(data, cores=CORES)
    try:
        c = s.client()
        c.create_bucket(Bucket="dmg")
        objects = _objects(seed)
        for k, v in objects.items():
            c.put_object(Bucket="dmg", Key=k, Body=v)
    finally:
        assert s.stop() == 0
    return objects


def _restart_and_read_all(data, objects):
    s = Server(data, cores=CORES)
    c = s.client()
    for k, v in objects.items():
        got = c.get_object(Bucket="dmg", Key=k)["Body"].read()
        assert got == v, f"{k}: {len(got)} bytes back, {len(v)} written"
    listed = []
    for page in c.get_paginator("list_objects_v2").paginate(Bucket="dmg"):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert sorted(listed) == sorted(objects)
    return s, c


def _core_dir(data, core=DAMAGED):
    return os.path.join(data, f"core-{core}")


def _records(core_dir, magic=b"PCR1\x02"):
    """(segment path, record offset, segment bytes) of every log record of a core whose header
    starts with `magic` (the record magic, then format 2; b"PCR1\x02\x01": fragment records),
    at the 8-byte record alignment."""
    for name in sorted(os.listdir(core_dir)):
        if not name.startswith("seg-"):
            continue
        path = os.path.join(core_dir, name)
        with open(path, "rb") as f:
            data = f.read()
        for m in re.finditer(re.escape(magic), data):
            if m.start() % 8 == 0:
                yield path, m.start(), data


def _flip(path, offset, mask=0x5A):
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        assert b, f"{path} has no byte {offset}"
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


def _lmdb_newest_meta(path):
    """(page size, main tree root page, last page) of the meta page LMDB uses."""
    with open(path, "rb") as f:
        head = f.read(16 + 136)
        psize = struct.unpack_from("<I", head, 16 + 24)[0]
        f.seek(psize)
        second = f.read(16 + 136)
    metas = []
    for page in (head, second):
        m = 16
        root = struct.unpack_from("<Q", page, m + 72 + 40)[0]
        last = struct.unpack_from("<Q", page, m + 120)[0]
        txnid = struct.unpack_from("<Q", page, m + 128)[0]
        metas.append((txnid, root, last))
    txnid, root, last = metas[1] if metas[1][0] > metas[0][0] else metas[0]
    return psize, root, last


def _assert_offline(s, why):
    m = _wait_metric(
        s, r'^percore_core_offline\{core="core %d",reason="([^"]*)"\} 1' % DAMAGED,
        "the offline core in the metrics")
    assert why in m.group(1), m.group(1)
    text = _metrics(s)
    for core in range(CORES):
        if core != DAMAGED:
            assert f'percore_core_offline{{core="core {core}"' not in text


def test_damaged_checkpoint_is_rebuilt_from_the_log(node_dir):
    objects = _fill_and_stop(node_dir, 1)
    ckpt = os.path.join(_core_dir(node_dir), "checkpoint")
    size = os.path.getsize(ckpt)
    _flip(ckpt, size // 2)  # in the body: its checksum fails
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        _wait_metric(s, r'^percore_core_checkpoint_rebuilt\{core="core %d"\} 1' % DAMAGED,
                     "the rebuilt checkpoint in the metrics")
        assert 'percore_core_offline{' not in _metrics(s), "the core is online"
        # The rebuilt core serves writes and reads (a new object lands on it too).
        for i in range(8):
            c.put_object(Bucket="dmg", Key=f"after/{i}", Body=b"x" * 5000)
            assert c.get_object(Bucket="dmg", Key=f"after/{i}")["Body"].read() == b"x" * 5000
    finally:
        assert s.stop() == 0


def test_damaged_segment_record_headers_are_read_around(node_dir):
    objects = _fill_and_stop(node_dir, 2)
    assert _flip_record_headers(_core_dir(node_dir)) > 0
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        m = _wait_metric(s, r'^percore_core_corrupt_reads\{core="core %d"\} (\d+)' % DAMAGED,
                         "corrupt reads of the damaged core")
        assert int(m.group(1)) > 0
    finally:
        assert s.stop() == 0


def test_damaged_checkpoint_and_records_rebuild_without_them(node_dir):
    objects = _fill_and_stop(node_dir, 3)
    ckpt = os.path.join(_core_dir(node_dir), "checkpoint")
    _flip(ckpt, 20)  # the header: its checksum fails
    seg = os.path.join(_core_dir(node_dir), "seg-00000001.log")
    with open(seg, "rb") as f:
        data = f.read()
    first = data.index(b"PCR1\x02")
    _flip(seg, first + 40)  # the record's aux field: its crc fails
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        _wait_metric(s, r'^percore_core_checkpoint_rebuilt\{core="core %d"\} 1' % DAMAGED,
                     "the rebuilt checkpoint")
        m = _wait_metric(
            s, r'^percore_core_corrupt_records_replayed\{core="core %d"\} (\d+)' % DAMAGED,
            "records skipped at replay")
        assert int(m.group(1)) >= 1
    finally:
        assert s.stop() == 0


def test_zeroed_lmdb_page_takes_the_core_offline(node_dir):
    objects = _fill_and_stop(node_dir, 4)
    path = os.path.join(_core_dir(node_dir), "meta", "data.mdb")
    psize, root, _ = _lmdb_newest_meta(path)
    with open(path, "r+b") as f:
        f.seek(root * psize)
        f.write(bytes(psize))
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        _assert_offline(s, "LMDB")
        # Writes go on around the offline core (quorums of the other three).
        c.put_object(Bucket="dmg", Key="after", Body=b"y" * 100_000)
        assert c.get_object(Bucket="dmg", Key="after")["Body"].read() == b"y" * 100_000
    finally:
        assert s.stop() == 0


@pytest.mark.parametrize("seed", [5, 6, 7])
def test_garbled_lmdb_pages_never_crash_the_node(node_dir, seed):
    objects = _fill_and_stop(node_dir, seed)
    path = os.path.join(_core_dir(node_dir), "meta", "data.mdb")
    psize, _, last = _lmdb_newest_meta(path)
    rng = random.Random(seed)
    with open(path, "r+b") as f:
        for page in range(2, last + 1):
            f.seek(page * psize)
            f.write(rng.randbytes(psize))
    s, _ = _restart_and_read_all(node_dir, objects)
    try:
        _assert_offline(s, "LMDB")
    finally:
        assert s.stop() == 0


def test_lmdb_meta_page_past_the_file_takes_the_core_offline(node_dir):
    # The classic SIGBUS: the meta page believes in more pages than the file holds.
    objects = _fill_and_stop(node_dir, 8)
    path = os.path.join(_core_dir(node_dir), "meta", "data.mdb")
    psize, _, last = _lmdb_newest_meta(path)
    os.truncate(path, (last // 2 + 1) * psize)
    s, _ = _restart_and_read_all(node_dir, objects)
    try:
        _assert_offline(s, "outside the file")
    finally:
        assert s.stop() == 0


def test_a_metadata_store_rolled_back_to_an_older_state_takes_the_core_offline(node_dir):
    # LMDB opens the meta page with the higher transaction id and checks neither: one flipped
    # bit of the older one's id opens the tree before the last commit, every page of it sound.
    # The log is replayed from the newest checkpoint only, so what the older tree lacks would
    # never come back: the core would serve overwritten heads and deleted keys as current.
    # Here an older copy of the real file is put back, which opens an older state the same
    # way; each checkpoint marks the state it commits, and the core refuses to start on an
    # older one.
    objects = _fill_and_stop(node_dir, 10)
    path = os.path.join(_core_dir(node_dir), "meta", "data.mdb")
    with open(path, "rb") as f:
        older = f.read()
    s = Server(node_dir, cores=CORES)
    try:
        c = s.client()
        rng = random.Random(10)
        for key in list(objects)[::2]:
            objects[key] = rng.randbytes(len(objects[key]) + 1)
            c.put_object(Bucket="dmg", Key=key, Body=objects[key])
        gone = list(objects)[1]
        c.delete_object(Bucket="dmg", Key=gone)
        del objects[gone]
    finally:
        assert s.stop() == 0
    with open(path, "wb") as f:
        f.write(older)
    s, _ = _restart_and_read_all(node_dir, objects)
    try:
        _assert_offline(s, "rolled back")
    finally:
        assert s.stop() == 0


def test_damaged_lmdb_values_fail_their_checksum_and_are_repaired(node_dir):
    objects = _fill_and_stop(node_dir, 9)
    path = os.path.join(_core_dir(node_dir), "meta", "data.mdb")
    with open(path, "rb") as f:
        data = f.read()
    flipped = 0
    # Head keys: `O` ‖ the bucket's scope (name/incarnation id) ‖ 0 ‖ key.
    for m in re.finditer(rb"Odmg(?:/[0-9a-f]{32})?\x00obj/\d{3}", data):
        start = m.start()
        key_len = m.end() - m.start()
        lo, hi, flags, ksize = struct.unpack_from("<HHHH", data, start - 8)
        size = lo | hi << 16
        # Only nodes of leaf pages (page header flags at offset 10, P_LEAF = 2): a branch
        # node's key has the same shape, and damaging it is damage to the structure.
        base = start - start % LMDB_PAGE
        page_flags, lower = struct.unpack_from("<HH", data, base + 10)
        # Only live nodes, the ones the page's pointer array names: LMDB leaves old copies of
        # moved nodes in a page's free gap, and such a copy's value can run into live nodes.
        if not (page_flags & 2 and 16 <= lower <= LMDB_PAGE):
            continue
        live = struct.unpack_from("<%dH" % ((lower - 16) // 2), data, base + 16)
        # A leaf node holding its value inline: flip a byte of the value's crc.
        if (start - 8 - base) in live and flags == 0 and ksize == key_len and 13 <= size <= 4096:
            _flip(path, start + key_len + 10)
            flipped += 1
    assert flipped > 0
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        assert 'percore_core_offline{' not in _metrics(s), "the structure is sound: online"
        m = _wait_metric(s, r'^percore_core_corrupt_reads\{core="core %d"\} ([1-9]\d*)'
                         % DAMAGED, "metadata values that failed their checksum")
        assert int(m.group(1)) > 0
    finally:
        assert s.stop() == 0
    # The reads repaired the damaged copies: after another restart nothing fails its check.
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        time.sleep(3)
        assert re.search(r'^percore_core_corrupt_reads\{core="core %d"\} 0' % DAMAGED,
                         _metrics(s), re.M)
    finally:
        assert s.stop() == 0


def test_a_zeroed_sector_at_a_record_costs_that_record_alone(node_dir):
    # Zeroes where a record starts (a sector read back as zeroes), in a real segment file, and a
    # damaged checkpoint so that the restart replays the whole log: the replay finds every
    # record after the zeroes. It used to take them for unwritten space and skip the rest of
    # the segment a block at a time, losing every fragment after it on that core.
    objects = _fill_and_stop(node_dir, 4)
    core = _core_dir(node_dir)
    starts = [(path, at) for path, at, _ in _records(core, b"PCR1\x02\x01")]
    assert len(starts) > 8, starts
    # From the record's start to its sector's end (the next one's if that leaves less than a
    # header): the record before it stays whole.
    path, at = starts[len(starts) // 2]
    end = at - at % 512 + 512
    if end - at < 64:
        end += 512
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(bytes(end - at))
    _flip(os.path.join(core, "checkpoint"), 20)
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        m = _wait_metric(s, r'^percore_core_fragments\{core="core %d"\} (\d+)' % DAMAGED,
                         "the damaged core's fragments")
        # The record the zeroes start, alone (the reads above may have repaired it from
        # another replica already).
        assert int(m.group(1)) >= len(starts) - 1, (m.group(1), len(starts))
        m = _wait_metric(
            s, r'^percore_core_corrupt_records_replayed\{core="core %d"\} (\d+)' % DAMAGED,
            "records skipped at replay")
        assert int(m.group(1)) == 1, m.group(1)
    finally:
        assert s.stop() == 0


def test_a_damaged_data_record_takes_its_guarded_head_with_it(node_dir):
    # A small object's data, head and listing entry reach the log in one write where one set
    # of cores holds all three: the data's record, then a pair record guarded by it (its
    # payload starts with the data's fragment id). Bytes flipped in one such data record, in a
    # real segment file, and a damaged checkpoint so that the whole log replays: the replay
    # skips the data's record and drops the pair it guards (counted), so the core never takes
    # that head back without its data. Every object reads back whole from the other replicas.
    objects = {f"small/{i:03d}": random.Random(i).randbytes(1000) for i in range(48)}
    s = Server(node_dir, cores=CORES)
    try:
        c = s.client()
        c.create_bucket(Bucket="dmg")
        for k, v in objects.items():
            c.put_object(Bucket="dmg", Key=k, Body=v)
    finally:
        assert s.stop() == 0
    # The listing's cores follow the bucket's id (random): the damaged core is one of them.
    for damaged in range(CORES):
        core = _core_dir(node_dir, damaged)
        guarded = []
        for path, at, data in _records(core, b"PCR1\x02\x01"):
            payload, key = struct.unpack_from("<II", data, at + 32)
            pair = at + 64 + payload + key
            pair += -pair % 8
            if (data[pair:pair + 6] == b"PCR1\x02\x05"
                    and struct.unpack_from("<H", data, pair + 6)[0] & 4
                    and data[pair + 64:pair + 80] == data[at + 16:at + 32]):
                guarded.append((path, at, payload))
        if guarded:
            break
    assert guarded, "no object's data went with its head"
    path, at, payload = guarded[len(guarded) // 2]
    _flip(path, at + 64 + payload // 2)
    _flip(os.path.join(core, "checkpoint"), 20)
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        m = _wait_metric(
            s, r'^percore_core_guarded_pairs_dropped\{core="core %d"\} (\d+)' % damaged,
            "guarded pairs dropped at replay")
        assert int(m.group(1)) == 1, m.group(1)
        m = _wait_metric(
            s, r'^percore_core_corrupt_records_replayed\{core="core %d"\} (\d+)' % damaged,
            "records skipped at replay")
        assert int(m.group(1)) == 1, m.group(1)
        for other in range(CORES):
            if other != damaged:
                m = _wait_metric(
                    s, r'^percore_core_guarded_pairs_dropped\{core="core %d"\} (\d+)' % other,
                    "guarded pairs dropped at replay")
                assert int(m.group(1)) == 0, (other, m.group(1))
    finally:
        assert s.stop() == 0


def _flip_record_headers(core_dir):
    """Flips one byte in the header (the LSN) of every record of a core; returns how many."""
    flipped = 0
    for path, at, _ in _records(core_dir):
        _flip(path, at + 9)
        flipped += 1
    return flipped


def test_unreadable_object_fails_before_its_headers(node_dir):
    # Three cores of four lose every log record (the metadata stays in LMDB): one shard of
    # each EC 2+2 stripe is left, fewer than the two it takes. Which core holds which shard
    # follows the key, so among 16 keys the sound core holds the first data shard of some: a
    # GET that read only that shard before answering would start a 200 and cut it.
    s = Server(node_dir, cores=CORES)
    keys = [f"obj-{i}" for i in range(16)]
    try:
        c = s.client()
        c.create_bucket(Bucket="dmg")
        body = random.Random(10).randbytes(256 << 10)
        for key in keys:
            c.put_object(Bucket="dmg", Key=key, Body=body)
    finally:
        assert s.stop() == 0
    for core in (1, 2, 3):
        assert _flip_record_headers(_core_dir(node_dir, core)) > 0
    s = Server(node_dir, cores=CORES)
    try:
        c = s.client()
        for key in keys:
            # The metadata is intact (LMDB), so the object exists; its data cannot be read.
            # The answer is an error status, not a 200 with a cut body.
            with pytest.raises(c.exceptions.ClientError) as e:
                c.get_object(Bucket="dmg", Key=key)
            assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500, key
            assert c.head_object(Bucket="dmg", Key=key)["ContentLength"] == len(body)
    finally:
        assert s.stop() == 0


def test_failure_mid_body_is_an_error_for_the_client(node_dir):
    # The second 1 MiB stripe of a 3 MiB object loses its records on three of four cores:
    # the response has started (200, the first stripe sent) when the failure is found.
    s = Server(node_dir, cores=CORES)
    try:
        c = s.client()
        c.create_bucket(Bucket="dmg")
        body = random.Random(11).randbytes(3 << 20)
        c.put_object(Bucket="dmg", Key="big", Body=body)
    finally:
        assert s.stop() == 0
    flipped = 0
    for core in (1, 2, 3):
        for path, at, data in _records(_core_dir(node_dir, core), b"PCR1\x02\x01"):
            if int.from_bytes(data[at + 28:at + 31], "little") == 1:
                _flip(path, at + 9)
                flipped += 1
    assert flipped >= 3
    s = Server(node_dir, cores=CORES)
    try:
        c = s.client()
        resp = c.get_object(Bucket="dmg", Key="big")
        assert resp["ContentLength"] == len(body)
        # The connection is cut before Content-Length bytes: the client's read fails.
        with pytest.raises(Exception) as e:
            resp["Body"].read()
        # The first stripe always arrives; a data fragment of the second that sits on the one
        # sound core may too (placement follows the bucket's random incarnation id).
        got = re.search(r"IncompleteRead\((\d+) bytes read", str(e.value))
        assert got, e.value
        assert 1 << 20 <= int(got.group(1)) < len(body), e.value
    finally:
        assert s.stop() == 0


def test_status_names_the_offline_and_the_recovered_core(tmp_path):
    from cluster import DevCluster

    c = DevCluster(tmp_path, nodes=3, cores_per_node=2)
    try:
        w = c.client(1)
        w.create_bucket(Bucket="dmg")
        objects = _objects(12)
        for k, v in objects.items():
            w.put_object(Bucket="dmg", Key=k, Body=v)
        c.kill(3, sig=signal.SIGTERM)  # clean stop: final checkpoints
        node3 = os.path.join(c.dir, "node-3")
        lmdb = os.path.join(node3, "core-0", "meta", "data.mdb")
        psize, root, _ = _lmdb_newest_meta(lmdb)
        with open(lmdb, "r+b") as f:
            f.seek(root * psize)
            f.write(bytes(psize))
        ckpt = os.path.join(node3, "core-1", "checkpoint")
        _flip(ckpt, os.path.getsize(ckpt) // 2)
        c.restart(3)
        code, out = c.status()
        assert code == 1, out
        lines = {l.split(":", 1)[0].strip(): l for l in out.splitlines()
                 if l.strip().startswith("core 3/")}
        assert "OFFLINE, damaged partition" in lines["core 3/0 127.0.0.1"], out
        assert "LMDB" in lines["core 3/0 127.0.0.1"], out
        assert "RECOVERED FROM DAMAGE at start: checkpoint damaged" in \
            lines["core 3/1 127.0.0.1"], out
        assert "5/6 cores up" in out, out
        # Every object reads back through the damaged node.
        r = c.client(3)
        for k, v in objects.items():
            assert r.get_object(Bucket="dmg", Key=k)["Body"].read() == v, k
    finally:
        assert c.stop() == 0


def _counter(server, pattern):
    m = re.search(pattern, _metrics(server), re.M)
    return int(m.group(1)) if m else 0


def test_degraded_reads_repair_what_they_found(node_dir):
    objects = _fill_and_stop(node_dir, 12)
    # A byte in the payload of every fragment record (kind 1) on core 1: its checksum fails
    # when read (or the record is skipped at replay: missing). Either is damage to repair.
    flipped = 0
    for path, at, data in _records(_core_dir(node_dir), b"PCR1\x02\x01"):
        payload = int.from_bytes(data[at + 32:at + 36], "little")
        if payload > 16:
            _flip(path, at + 64 + payload // 2)
            flipped += 1
    assert flipped > 0
    repaired = r'^percore_read_repairs_total\{result="repaired"\} (\d+)'
    corrupt = r'^percore_core_corrupt_reads\{core="core %d"\} (\d+)' % DAMAGED
    s, c = _restart_and_read_all(node_dir, objects)
    try:
        _wait_metric(s, r'^percore_read_repairs_total\{result="repaired"\} [1-9]',
                     "fragments repaired after degraded reads")
        # Let the queued repairs finish: the count stays put for 2 s.
        last, stable_since, deadline = -1, time.time(), time.time() + 60
        while time.time() < deadline and time.time() - stable_since < 2:
            now = _counter(s, repaired)
            if now != last:
                last, stable_since = now, time.time()
            time.sleep(0.25)
        assert _counter(s, r'^percore_read_repairs_total\{result="failed"\} (\d+)') == 0
        before = (_counter(s, repaired), _counter(s, corrupt))
        # The same reads again: the copies they found damaged were rewritten, so nothing is
        # damaged or repaired any more.
        for k, v in objects.items():
            assert c.get_object(Bucket="dmg", Key=k)["Body"].read() == v
        time.sleep(2)
        assert (_counter(s, repaired), _counter(s, corrupt)) == before
    finally:
        assert s.stop() == 0
