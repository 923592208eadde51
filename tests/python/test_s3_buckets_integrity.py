"""Bucket integrity (issue #12): a deleted bucket leaks nothing to the next owner of its name,
listings never hold keys without objects, the write that commits last wins, CreateBucket is a
compare-and-swap and a retried CompleteMultipartUpload answers its first success."""
import http.client
import os
import threading
import time
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import ALICE

MIB = 1024 * 1024


def code(err):
    return err.value.response["Error"]["Code"]


def status(err):
    return err.value.response["ResponseMetadata"]["HTTPStatusCode"]


_names = [0]


def fresh_name():
    _names[0] += 1
    return f"integrity-{int(time.time() * 1000) % 10**9}-{_names[0]}"


class SlowPut:
    """A PUT through a presigned URL whose body is sent in two halves, the second when
    `finish` is called: the request is in flight, past its bucket check, in between."""

    def __init__(self, s3, bucket, key, body):
        url = s3.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
        u = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.conn.putrequest("PUT", f"{u.path}?{u.query}", skip_accept_encoding=True)
        self.conn.putheader("Content-Length", str(len(body)))
        self.conn.endheaders()
        half = len(body) // 2
        self.conn.send(body[:half])
        self.rest = body[half:]
        # Let the server read the headers, check the bucket and start storing the body.
        time.sleep(0.5)

    def finish(self):
        self.conn.send(self.rest)
        r = self.conn.getresponse()
        body = r.read()
        self.conn.close()
        return r.status, body


def test_delete_bucket_refused_while_an_upload_is_pending(s3, alice):
    name = fresh_name()
    s3.create_bucket(Bucket=name)
    up = s3.create_multipart_upload(Bucket=name, Key="secret")["UploadId"]
    part = s3.upload_part(Bucket=name, Key="secret", UploadId=up, PartNumber=1,
                          Body=b"first owner's bytes")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=name)
    assert (code(e), status(e)) == ("BucketNotEmpty", 409)
    s3.abort_multipart_upload(Bucket=name, Key="secret", UploadId=up)
    s3.delete_bucket(Bucket=name)
    alice.create_bucket(Bucket=name)
    try:
        assert alice.list_multipart_uploads(Bucket=name).get("Uploads", []) == []
        with pytest.raises(ClientError) as e:
            alice.complete_multipart_upload(
                Bucket=name, Key="secret", UploadId=up,
                MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
        assert code(e) == "NoSuchUpload"
        with pytest.raises(ClientError) as e:
            alice.get_object(Bucket=name, Key="secret")
        assert code(e) == "NoSuchKey"
    finally:
        alice.delete_bucket(Bucket=name)


def test_lifecycle_configuration_dies_with_its_bucket(s3, alice):
    name = fresh_name()
    s3.create_bucket(Bucket=name)
    s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": [
        {"ID": "expire-all", "Status": "Enabled", "Filter": {"Prefix": ""},
         "Expiration": {"Days": 1}}]})
    s3.delete_bucket(Bucket=name)
    alice.create_bucket(Bucket=name)
    try:
        with pytest.raises(ClientError) as e:
            alice.get_bucket_lifecycle_configuration(Bucket=name)
        assert code(e) == "NoSuchLifecycleConfiguration"
    finally:
        alice.delete_bucket(Bucket=name)


def test_put_in_flight_across_delete_bucket_is_not_inherited(s3, alice):
    name = fresh_name()
    s3.create_bucket(Bucket=name)
    body = b"first owner " * (200 * 1024)
    put = SlowPut(s3, name, "inflight", body)
    s3.delete_bucket(Bucket=name)
    alice.create_bucket(Bucket=name)
    try:
        st, answer = put.finish()
        assert st == 404 and b"NoSuchBucket" in answer, (st, answer[:300])
        assert alice.list_objects_v2(Bucket=name).get("KeyCount") == 0
        with pytest.raises(ClientError) as e:
            alice.get_object(Bucket=name, Key="inflight")
        assert code(e) == "NoSuchKey"
    finally:
        alice.delete_bucket(Bucket=name)


def test_a_failed_head_write_leaves_no_listed_key(s3, bucket):
    # Standard headers are stored in the object head, not in its listing entry: ~300 KB of
    # them make the head larger than a metadata record may be, so the head write fails (as a
    # full disk made it fail). Before the fix the listing entry was already written: a key
    # listed that 404'd and a bucket that could never be deleted.
    big = "x" * 60_000
    with pytest.raises(ClientError):
        s3.put_object(Bucket=bucket, Key="too-big-head", Body=b"data", ContentType=big,
                      CacheControl=big, ContentDisposition=big, ContentLanguage=big,
                      ContentEncoding=big)
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
    s3.delete_object(Bucket=bucket, Key="too-big-head")
    s3.delete_bucket(Bucket=bucket)


def test_the_put_that_completes_last_wins(s3, bucket):
    body_b = b"B" * (2 * MIB)
    slow = SlowPut(s3, bucket, "race", body_b)
    s3.put_object(Bucket=bucket, Key="race", Body=b"A" * 1000)
    st, answer = slow.finish()
    assert st == 200, answer[:300]
    got = s3.get_object(Bucket=bucket, Key="race")["Body"].read()
    assert got == body_b, f"got {got[:1]!r} x {len(got)}: the write that completed last lost"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("race", len(body_b))]


def test_concurrent_create_bucket_has_one_winner(server):
    clients = [server.client(), server.client(*ALICE)]
    both = []
    for _ in range(20):
        name = fresh_name()
        barrier = threading.Barrier(2)
        results = [None, None]

        def create(i):
            barrier.wait()
            try:
                clients[i].create_bucket(Bucket=name)
                results[i] = "ok"
            except ClientError as e:
                results[i] = e.response["Error"]["Code"]

        threads = [threading.Thread(target=create, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if results.count("ok") == 2:
            both.append(name)
        else:
            assert sorted(results) == ["BucketAlreadyExists", "ok"], results
        for c in clients:
            try:
                c.delete_bucket(Bucket=name)
            except ClientError:
                pass
    assert both == [], f"both creators got 200 for {len(both)} of 20 names"


def test_retried_complete_multipart_upload_answers_the_same(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                        Body=b"a" * (5 * MIB))
    p2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up, PartNumber=2, Body=b"b" * 10)
    parts = {"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]},
                       {"PartNumber": 2, "ETag": p2["ETag"]}]}
    first = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                         MultipartUpload=parts)
    again = s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up,
                                         MultipartUpload=parts)
    assert (again["ETag"], again["Location"], again["Key"]) == \
        (first["ETag"], first["Location"], first["Key"])
    # Another part list is not the completed upload.
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(
            Bucket=bucket, Key="mp", UploadId=up,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p1["ETag"]}]})
    assert code(e) == "NoSuchUpload"
    assert s3.get_object(Bucket=bucket, Key="mp")["ContentLength"] == 5 * MIB + 10


def _metric(endpoint, name):
    import re
    import urllib.request
    text = urllib.request.urlopen(endpoint + "/-/metrics", timeout=10).read().decode()
    return sum(int(float(v)) for v in re.findall(
        r"^" + re.escape(name) + r"(?:\{[^}]*\})? (\S+)", text, re.M))


def test_background_pass_reclaims_a_dead_incarnation(tmp_path):
    """A write that lands in a deleted incarnation (here: a PUT in flight across DeleteBucket)
    is removed by the background pass (its head, with its listing entry), shown in a counter."""
    from conftest import Server
    s = Server(str(tmp_path / "d"), extra=("--lifecycle-day-secs", "1"))
    try:
        c = s.client()
        name = fresh_name()
        c.create_bucket(Bucket=name)
        put = SlowPut(c, name, "late", b"x" * MIB)
        c.delete_bucket(Bucket=name)
        c.create_bucket(Bucket=name)
        st, _ = put.finish()
        assert st == 404
        metric = "percore_deleted_bucket_records_reclaimed_total"
        deadline = time.time() + 30
        while _metric(s.endpoint, metric) < 1:
            assert time.time() < deadline, "the dead incarnation's records were not reclaimed"
            time.sleep(0.5)
        assert c.list_objects_v2(Bucket=name).get("KeyCount") == 0
        c.delete_bucket(Bucket=name)
    finally:
        assert s.stop() == 0


@pytest.mark.skipif(not os.environ.get("PERCORE_OLD_BIN"),
                    reason="set PERCORE_OLD_BIN to a percore built before bucket incarnations")
def test_upgrade_keeps_old_buckets_and_repairs_their_strays(tmp_path):
    """Data written by a percore before incarnations (bucket records without an id): its
    objects stay readable where they are, and listing entries it left without a head (their
    head write failed after the entry was written) are removed by DeleteObject and no longer
    block DeleteBucket."""
    from conftest import Server
    data = str(tmp_path / "d")
    old_bin = os.environ["PERCORE_OLD_BIN"]
    saved = os.environ.get("PERCORE_BIN")
    os.environ["PERCORE_BIN"] = old_bin
    try:
        s = Server(data)
    finally:
        if saved is None:
            del os.environ["PERCORE_BIN"]
        else:
            os.environ["PERCORE_BIN"] = saved
    try:
        c = s.client()
        c.create_bucket(Bucket="old")
        c.put_object(Bucket="old", Key="kept", Body=b"old bytes")
        big = "x" * 60_000
        for key in ["stray", "stray2"]:
            with pytest.raises(ClientError):
                c.put_object(Bucket="old", Key=key, Body=b"d", ContentType=big,
                             CacheControl=big, ContentDisposition=big, ContentLanguage=big,
                             ContentEncoding=big)
        keys = [o["Key"] for o in c.list_objects_v2(Bucket="old")["Contents"]]
        assert keys == ["kept", "stray", "stray2"], "the old binary leaves stray entries"
    finally:
        assert s.stop() == 0
    s = Server(data)
    try:
        c = s.client()
        assert c.get_object(Bucket="old", Key="kept")["Body"].read() == b"old bytes"
        c.delete_object(Bucket="old", Key="stray")
        keys = [o["Key"] for o in c.list_objects_v2(Bucket="old")["Contents"]]
        assert keys == ["kept", "stray2"]
        c.delete_object(Bucket="old", Key="kept")
        # Only a stray entry is left: DeleteBucket removes it and succeeds.
        c.delete_bucket(Bucket="old")
    finally:
        assert s.stop() == 0


def _meta_calls(endpoint):
    import re
    import urllib.request
    text = urllib.request.urlopen(endpoint + "/-/metrics", timeout=10).read().decode()
    calls = {k: int(float(v)) for k, v in re.findall(
        r'^percore_meta_calls\{kind="([a-z_]+)"\} (\S+)', text, re.M)}
    calls.update({"bucket_cache_" + k: int(float(v)) for k, v in re.findall(
        r'^percore_bucket_cache_reads\{result="([a-z]+)"\} (\S+)', text, re.M)})
    return calls


def _tags(s3, bucket, key):
    return sorted((t["Key"], t["Value"])
                  for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"])


def test_a_put_commits_its_tags_with_its_head(tmp_path):
    # Its own node: no other request or pass makes metadata calls meanwhile.
    from conftest import Server
    s = Server(str(tmp_path / "d"))
    try:
        c = s.client()
        c.create_bucket(Bucket="tags")
        c.put_object(Bucket="tags", Key="warm", Body=b"x")
        before = _meta_calls(s.endpoint)
        c.put_object(Bucket="tags", Key="k", Body=b"abc", Tagging="a=1&b=two")
        after = _meta_calls(s.endpoint)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        # The head (its tags inside; the write answers what it replaced and whether it
        # won) with the listing entry and the data in the same call (on one node the head's
        # cores hold the bucket's listing and the data: one write, PutPaired): no write of
        # the tags after the commit, which could fail for an object that already exists, and
        # no read of the head before or after.
        assert delta["put_with_data"] == 1 and delta["put"] == 0, delta
        # The bucket before the data, and again (still live?) with the listing entry: a
        # single node finds its record in its bucket cache both times.
        assert delta["get"] == 0, delta
        assert delta["bucket_cache_hit"] == 2, delta
        assert delta["conditional_put"] == 0 and delta["delete"] == 0, delta
        assert _tags(c, "tags", "k") == [("a", "1"), ("b", "two")]
        # A body over 64 KiB is stored first, alone; then head and entry in one call.
        big = bytes(range(256)) * 257
        before = _meta_calls(s.endpoint)
        c.put_object(Bucket="tags", Key="big", Body=big, Tagging="a=2")
        after = _meta_calls(s.endpoint)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        assert delta["put_with_data"] == 0 and delta["put"] == 1, delta
        assert c.get_object(Bucket="tags", Key="big")["Body"].read() == big
        assert c.get_object(Bucket="tags", Key="k")["Body"].read() == b"abc"
    finally:
        assert s.stop() == 0


def test_tags_follow_their_version(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="v=1")
    # PutObjectTagging of this version wins over the tags it was written with.
    s3.put_object_tagging(Bucket=bucket, Key="k",
                          Tagging={"TagSet": [{"Key": "set", "Value": "later"}]})
    assert _tags(s3, bucket, "k") == [("set", "later")]
    # A copy keeps the source's current tags (COPY is the default directive).
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert _tags(s3, bucket, "copy") == [("set", "later")]
    # A new version without tags has none: the tag set of the old one does not carry over.
    s3.put_object(Bucket=bucket, Key="k", Body=b"2")
    assert _tags(s3, bucket, "k") == []
    # DeleteObjectTagging hides the tags a version was written with.
    s3.put_object(Bucket=bucket, Key="k", Body=b"3", Tagging="v=3")
    assert _tags(s3, bucket, "k") == [("v", "3")]
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert _tags(s3, bucket, "k") == []


def test_multipart_upload_keeps_the_tags_it_was_created_with(s3, bucket):
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="team=a&tier=hot")
    p = s3.upload_part(Bucket=bucket, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                       Body=b"x" * 1000)
    s3.complete_multipart_upload(
        Bucket=bucket, Key="mp", UploadId=up["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": p["ETag"]}]})
    assert _tags(s3, bucket, "mp") == [("team", "a"), ("tier", "hot")]
    # Bad tags are refused when the upload is created, not at Complete.
    with pytest.raises(ClientError) as e:
        s3.create_multipart_upload(Bucket=bucket, Key="bad", Tagging="=x")
    assert code(e) == "InvalidTag"
