"""Storage classes, lifecycle rules, archive restore and intelligent tiering, end to end against
`percore serve` with the test clock: a lifecycle "day" lasts one second
(--lifecycle-day-secs 1) and INTELLIGENT_TIERING objects go infrequent after 3 idle days.

Twelve cores, so the classes really differ: STANDARD is EC 4+2, STANDARD_IA, GLACIER and
DEEP_ARCHIVE are EC 8+4 (one node: every class on the nvme tier, the documented fallback).
HEAD's x-percore-placement header shows how an object's data is stored now."""
import os
import shutil
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def tiered(tmp_path_factory):
    base = tmp_path_factory.mktemp("lifecycle")
    s = Server(str(base / "d"), cores=12, extra=("--io-memory-kib", "512", "--lifecycle-day-secs", "1",
                                      "--intelligent-tiering-days", "3"))
    yield s
    assert s.stop() == 0
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def c(tiered):
    return tiered.client()


_n = [0]


@pytest.fixture
def bkt(c):
    _n[0] += 1
    name = f"lc-{os.getpid()}-{_n[0]}"
    c.create_bucket(Bucket=name)
    return name


def head_headers(c, bucket, key):
    return c.head_object(Bucket=bucket, Key=key)["ResponseMetadata"]["HTTPHeaders"]


def wait_for(predicate, timeout=40, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} not reached within {timeout} s")


def error_code(fn):
    with pytest.raises(ClientError) as e:
        fn()
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_storage_classes_are_policies(c, bkt):
    body = os.urandom(MiB + 3)
    c.put_object(Bucket=bkt, Key="std", Body=body)
    c.put_object(Bucket=bkt, Key="ia", Body=body, StorageClass="STANDARD_IA")
    h = head_headers(c, bkt, "std")
    assert "x-amz-storage-class" not in h, "STANDARD is not shown, as in S3"
    assert h["x-percore-placement"] == "ec-4+2/nvme"
    h = head_headers(c, bkt, "ia")
    assert h["x-amz-storage-class"] == "STANDARD_IA"
    assert h["x-percore-placement"] == "ec-8+4/nvme"
    assert c.get_object(Bucket=bkt, Key="ia")["Body"].read() == body
    classes = {o["Key"]: o["StorageClass"] for o in c.list_objects_v2(Bucket=bkt)["Contents"]}
    assert classes == {"std": "STANDARD", "ia": "STANDARD_IA"}
    # Copy to another class, in place.
    c.copy_object(Bucket=bkt, Key="std", CopySource={"Bucket": bkt, "Key": "std"},
                  StorageClass="STANDARD_IA")
    assert head_headers(c, bkt, "std")["x-percore-placement"] == "ec-8+4/nvme"
    assert c.get_object(Bucket=bkt, Key="std")["Body"].read() == body
    # Multipart uploads keep the class they were created with.
    up = c.create_multipart_upload(Bucket=bkt, Key="mp", StorageClass="STANDARD_IA")
    part = c.upload_part(Bucket=bkt, Key="mp", UploadId=up["UploadId"], PartNumber=1, Body=body)
    assert c.list_parts(Bucket=bkt, Key="mp", UploadId=up["UploadId"])["StorageClass"] == \
        "STANDARD_IA"
    uploads = c.list_multipart_uploads(Bucket=bkt)["Uploads"]
    assert [u["StorageClass"] for u in uploads] == ["STANDARD_IA"]
    c.complete_multipart_upload(Bucket=bkt, Key="mp", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    assert head_headers(c, bkt, "mp")["x-amz-storage-class"] == "STANDARD_IA"
    assert c.get_object(Bucket=bkt, Key="mp")["Body"].read() == body
    code, status = error_code(lambda: c.put_object(Bucket=bkt, Key="x", Body=b"1",
                                                   StorageClass="REDUCED_REDUNDANCY"))
    assert (code, status) == ("InvalidStorageClass", 400)


def test_archive_needs_a_restore(c, bkt):
    body = os.urandom(300_000)
    c.put_object(Bucket=bkt, Key="cold", Body=body, StorageClass="GLACIER")
    h = head_headers(c, bkt, "cold")
    assert h["x-amz-storage-class"] == "GLACIER"
    assert "x-amz-restore" not in h
    assert error_code(lambda: c.get_object(Bucket=bkt, Key="cold")) == ("InvalidObjectState", 403)
    code, _ = error_code(lambda: c.copy_object(Bucket=bkt, Key="copy",
                                               CopySource={"Bucket": bkt, "Key": "cold"}))
    assert code == "InvalidObjectState"
    code, _ = error_code(lambda: c.restore_object(Bucket=bkt, Key="cold", RestoreRequest={}))
    assert code == "MalformedXML"
    r = c.restore_object(Bucket=bkt, Key="cold", RestoreRequest={"Days": 5})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 202
    wait_for(lambda: 'ongoing-request="false"' in head_headers(c, bkt, "cold").get("x-amz-restore", ""),
             what="restore completed")
    assert c.get_object(Bucket=bkt, Key="cold")["Body"].read() == body
    r = c.restore_object(Bucket=bkt, Key="cold", RestoreRequest={"Days": 5})
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 200, "an existing copy is extended"
    # Five one-second days later the copy expires and is removed.
    wait_for(lambda: "x-amz-restore" not in head_headers(c, bkt, "cold"), what="restore expired")
    assert error_code(lambda: c.get_object(Bucket=bkt, Key="cold")) == ("InvalidObjectState", 403)
    c.put_object(Bucket=bkt, Key="warm", Body=b"x")
    code, status = error_code(lambda: c.restore_object(Bucket=bkt, Key="warm",
                                                       RestoreRequest={"Days": 1}))
    assert (code, status) == ("InvalidObjectState", 403)


def test_encrypted_multipart_objects_move_between_classes(c, bkt):
    # Sealed parts are moved as they are stored (a transition, a restore) and read back with
    # their keys afterwards; a copy onto itself to another class seals its copy anew.
    key = bytes(range(32))
    sse = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=key)
    parts = [os.urandom(5 * MiB + 7), os.urandom(70_000)]
    whole = b"".join(parts)
    for name, extra in [("c", sse), ("s", dict(ServerSideEncryption="AES256"))]:
        for obj in (f"{name}/move", f"{name}/copy"):
            up = c.create_multipart_upload(Bucket=bkt, Key=obj, **extra)["UploadId"]
            etags = []
            for n, body in enumerate(parts, 1):
                on_part = sse if name == "c" else {}
                r = c.upload_part(Bucket=bkt, Key=obj, UploadId=up, PartNumber=n, Body=body,
                                  **on_part)
                etags.append({"PartNumber": n, "ETag": r["ETag"]})
            c.complete_multipart_upload(Bucket=bkt, Key=obj, UploadId=up,
                                        MultipartUpload={"Parts": etags},
                                        **(sse if name == "c" else {}))
    # The copy onto itself to another class (the source opened, the copy sealed again).
    c.copy_object(Bucket=bkt, Key="c/copy", CopySource={"Bucket": bkt, "Key": "c/copy"},
                  StorageClass="STANDARD_IA", CopySourceSSECustomerAlgorithm="AES256",
                  CopySourceSSECustomerKey=key, **sse)
    c.copy_object(Bucket=bkt, Key="s/copy", CopySource={"Bucket": bkt, "Key": "s/copy"},
                  StorageClass="STANDARD_IA", ServerSideEncryption="AES256")
    for obj, extra in [("c/copy", sse), ("s/copy", {})]:
        h = c.head_object(Bucket=bkt, Key=obj, **extra)["ResponseMetadata"]["HTTPHeaders"]
        assert h["x-percore-placement"] == "ec-8+4/nvme"
        assert c.get_object(Bucket=bkt, Key=obj, **extra)["Body"].read() == whole
    # A transition moves the sealed parts; a restore brings them back readable.
    c.put_bucket_lifecycle_configuration(Bucket=bkt, LifecycleConfiguration={"Rules": [
        {"ID": "cold", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}]})
    for obj, extra in [("c/move", sse), ("s/move", {})]:
        wait_for(lambda: c.head_object(Bucket=bkt, Key=obj, **extra).get("StorageClass")
                 == "GLACIER", what=f"{obj} transitioned")
        c.restore_object(Bucket=bkt, Key=obj, RestoreRequest={"Days": 5})
        wait_for(lambda: 'ongoing-request="false"' in c.head_object(
            Bucket=bkt, Key=obj, **extra)["ResponseMetadata"]["HTTPHeaders"].get(
            "x-amz-restore", ""), what=f"{obj} restored")
        got = c.get_object(Bucket=bkt, Key=obj, Range=f"bytes={5 * MiB}-{5 * MiB + 20}", **extra)
        assert got["Body"].read() == whole[5 * MiB:5 * MiB + 21]
        assert c.get_object(Bucket=bkt, Key=obj, **extra)["Body"].read() == whole
    c.delete_bucket_lifecycle(Bucket=bkt)


def test_lifecycle_configuration_api(c, bkt):
    assert error_code(lambda: c.get_bucket_lifecycle_configuration(Bucket=bkt))[0] == \
        "NoSuchLifecycleConfiguration"
    rules = [{
        "ID": "logs",
        "Filter": {"And": {"Prefix": "logs/", "Tags": [{"Key": "k", "Value": "v"}],
                           "ObjectSizeGreaterThan": 10}},
        "Status": "Enabled",
        "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"},
                        {"Days": 90, "StorageClass": "GLACIER"}],
        "Expiration": {"Days": 365},
        "NoncurrentVersionExpiration": {"NoncurrentDays": 7, "NewerNoncurrentVersions": 2},
    }, {
        "ID": "uploads",
        "Filter": {"Prefix": ""},
        "Status": "Disabled",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 3},
    }]
    c.put_bucket_lifecycle_configuration(Bucket=bkt, LifecycleConfiguration={"Rules": rules})
    got = c.get_bucket_lifecycle_configuration(Bucket=bkt)["Rules"]
    assert [r["ID"] for r in got] == ["logs", "uploads"]
    assert got[0]["Transitions"] == rules[0]["Transitions"]
    assert got[0]["NoncurrentVersionExpiration"] == rules[0]["NoncurrentVersionExpiration"]
    assert got[0]["Filter"]["And"]["Tags"] == [{"Key": "k", "Value": "v"}]
    bad = [
        ({"ID": "a", "Filter": {"Prefix": ""}, "Status": "Enabled"}, "InvalidRequest"),
        ({"ID": "a", "Filter": {"Prefix": ""}, "Status": "Enabled",
          "Expiration": {"Days": 0}}, "InvalidArgument"),
        ({"ID": "a", "Filter": {"Prefix": ""}, "Status": "Enabled",
          "Transitions": [{"Days": 5, "StorageClass": "STANDARD_IA"}]}, "InvalidArgument"),
        ({"ID": "a", "Filter": {"Prefix": ""}, "Status": "Enabled",
          "Transitions": [{"Days": 5, "StorageClass": "GLACIER"}],
          "Expiration": {"Days": 5}}, "InvalidArgument"),
    ]
    for rule, code in bad:
        got_code, status = error_code(lambda: c.put_bucket_lifecycle_configuration(
            Bucket=bkt, LifecycleConfiguration={"Rules": [rule]}))
        assert (got_code, status) == (code, 400), rule
    c.delete_bucket_lifecycle(Bucket=bkt)
    assert error_code(lambda: c.get_bucket_lifecycle_configuration(Bucket=bkt))[0] == \
        "NoSuchLifecycleConfiguration"


def test_expiration_and_transition_run(c, bkt):
    body = os.urandom(2 * MiB + 5)
    c.put_object(Bucket=bkt, Key="tmp/a", Body=b"short-lived")
    c.put_object(Bucket=bkt, Key="keep/a", Body=b"stays")
    c.put_object(Bucket=bkt, Key="big/a", Body=body)
    c.put_object(Bucket=bkt, Key="big/tiny", Body=b"small")
    assert head_headers(c, bkt, "big/a")["x-percore-placement"] == "ec-4+2/nvme"
    c.put_bucket_lifecycle_configuration(Bucket=bkt, LifecycleConfiguration={"Rules": [
        {"ID": "tmp", "Filter": {"Prefix": "tmp/"}, "Status": "Enabled",
         "Expiration": {"Days": 2}},
        {"ID": "cold", "Filter": {"And": {"Prefix": "big/", "ObjectSizeGreaterThan": 1000}},
         "Status": "Enabled", "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]},
    ]})

    def keys():
        return sorted(o["Key"] for o in c.list_objects_v2(Bucket=bkt).get("Contents", []))

    wait_for(lambda: "tmp/a" not in keys(), what="expiration")
    wait_for(lambda: head_headers(c, bkt, "big/a").get("x-amz-storage-class") == "GLACIER",
             what="transition")
    assert keys() == ["big/a", "big/tiny", "keep/a"]
    assert head_headers(c, bkt, "big/a")["x-percore-placement"] == "ec-8+4/nvme", "re-encoded"
    assert "x-amz-storage-class" not in head_headers(c, bkt, "big/tiny"), "size filter"
    classes = {o["Key"]: o["StorageClass"] for o in c.list_objects_v2(Bucket=bkt)["Contents"]}
    assert classes["big/a"] == "GLACIER"
    # What moved shows in the node's metrics (Prometheus text on the S3 listener).
    import re
    import urllib.request
    metrics_url = c.meta.endpoint_url + "/-/metrics"

    def metric(name):
        text = urllib.request.urlopen(metrics_url, timeout=10).read().decode()
        m = re.search(r"^" + re.escape(name) + r" (\d+)", text, re.M)
        return int(m.group(1)) if m else None

    # A pass adds its counts to the metrics when it ends, and what it did shows at once: the
    # checks above may run mid-pass, so these wait for the pass (a run on a loaded machine read
    # expired 0 right after seeing tmp/a gone).
    for name, least in (('percore_lifecycle_transitions_total{result="done"}', 1),
                        ("percore_lifecycle_transitioned_bytes_total", len(body)),
                        ("percore_lifecycle_expired_total", 1)):
        wait_for(lambda name=name, least=least: (metric(name) or 0) >= least,
                 what=f"{name} >= {least}")
    wait_for(lambda: (metric('percore_objects{class="GLACIER"}') or 0) >= 1,
             what="inventory by class")
    c.restore_object(Bucket=bkt, Key="big/a", RestoreRequest={"Days": 3})
    wait_for(lambda: 'ongoing-request="false"' in head_headers(c, bkt, "big/a").get("x-amz-restore", ""),
             what="restore")
    assert c.get_object(Bucket=bkt, Key="big/a")["Body"].read() == body, "the data survived"


def test_versioned_expiration_and_noncurrent_versions(c, bkt):
    c.put_bucket_versioning(Bucket=bkt, VersioningConfiguration={"Status": "Enabled"})
    for i in range(4):
        c.put_object(Bucket=bkt, Key="doc", Body=f"v{i}".encode())
    c.put_object(Bucket=bkt, Key="gone", Body=b"x")
    c.put_bucket_lifecycle_configuration(Bucket=bkt, LifecycleConfiguration={"Rules": [
        {"ID": "old", "Filter": {"Prefix": "doc"}, "Status": "Enabled",
         "NoncurrentVersionExpiration": {"NoncurrentDays": 1, "NewerNoncurrentVersions": 1}},
        {"ID": "gone", "Filter": {"Prefix": "gone"}, "Status": "Enabled",
         "Expiration": {"Days": 1}},
        {"ID": "markers", "Filter": {"Prefix": "gone"}, "Status": "Enabled",
         "Expiration": {"ExpiredObjectDeleteMarker": True}},
    ]})

    def versions(key):
        r = c.list_object_versions(Bucket=bkt, Prefix=key)
        return len(r.get("Versions", [])), len(r.get("DeleteMarkers", []))

    # doc: the current version and one newer noncurrent version are kept.
    wait_for(lambda: versions("doc") == (2, 0), what="noncurrent expiration")
    assert c.get_object(Bucket=bkt, Key="doc")["Body"].read() == b"v3"
    # gone: expiration in a versioned bucket adds a delete marker.
    wait_for(lambda: versions("gone")[1] == 1, what="delete marker")
    assert error_code(lambda: c.get_object(Bucket=bkt, Key="gone"))[1] == 404


def test_abort_incomplete_uploads(c, bkt):
    up = c.create_multipart_upload(Bucket=bkt, Key="half")
    c.upload_part(Bucket=bkt, Key="half", UploadId=up["UploadId"], PartNumber=1, Body=b"p")
    c.put_bucket_lifecycle_configuration(Bucket=bkt, LifecycleConfiguration={"Rules": [
        {"ID": "mpu", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]})
    wait_for(lambda: not c.list_multipart_uploads(Bucket=bkt).get("Uploads"), what="abort")
    code, _ = error_code(lambda: c.list_parts(Bucket=bkt, Key="half", UploadId=up["UploadId"]))
    assert code == "NoSuchUpload"


def test_intelligent_tiering_both_ways(c, bkt):
    body = os.urandom(MiB)
    c.put_object(Bucket=bkt, Key="it", Body=body, StorageClass="INTELLIGENT_TIERING")
    h = head_headers(c, bkt, "it")
    assert h["x-amz-storage-class"] == "INTELLIGENT_TIERING"
    assert h["x-percore-access-tier"] == "FREQUENT"
    assert h["x-percore-placement"] == "ec-4+2/nvme"
    # Three idle one-second days: the infrequent tier (STANDARD_IA's policy).
    wait_for(lambda: head_headers(c, bkt, "it")["x-percore-access-tier"] == "INFREQUENT",
             what="infrequent tier")
    assert head_headers(c, bkt, "it")["x-percore-placement"] == "ec-8+4/nvme"
    # A read brings it back.
    assert c.get_object(Bucket=bkt, Key="it")["Body"].read() == body
    wait_for(lambda: head_headers(c, bkt, "it")["x-percore-access-tier"] == "FREQUENT",
             what="frequent tier")
    assert head_headers(c, bkt, "it")["x-percore-placement"] == "ec-4+2/nvme"
    assert c.get_object(Bucket=bkt, Key="it")["Body"].read() == body


def test_kill_during_transitions_loses_nothing(tmp_path):
    """kill -9 while the lifecycle worker moves objects to GLACIER: after a restart every
    object reads back byte-identical, from its old copy or (restored) from its new one."""
    data = str(tmp_path / "d")
    extra = ("--io-memory-kib", "512", "--lifecycle-day-secs", "1")
    s = Server(data, cores=12, extra=extra)
    c = s.client()
    c.create_bucket(Bucket="crash")
    blobs = {f"o{i}": os.urandom(3 * MiB + i) for i in range(10)}
    for k, v in blobs.items():
        c.put_object(Bucket="crash", Key=k, Body=v)
    c.put_bucket_lifecycle_configuration(Bucket="crash", LifecycleConfiguration={"Rules": [
        {"ID": "cold", "Filter": {"Prefix": ""}, "Status": "Enabled",
         "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}]})

    def moved():
        return sum(head_headers(c, "crash", k).get("x-amz-storage-class") == "GLACIER"
                   for k in blobs)

    wait_for(lambda: moved() >= 1, what="first transition")
    s.proc.kill()
    s.proc.wait()
    s = Server(data, cores=12, extra=extra)
    c = s.client()
    try:
        # Stop further moves (a pass under way may finish one more) so each object's class
        # stays what its HEAD says while it is read.
        c.delete_bucket_lifecycle(Bucket="crash")
        time.sleep(3)
        for k, v in blobs.items():
            if head_headers(c, "crash", k).get("x-amz-storage-class") == "GLACIER":
                c.restore_object(Bucket="crash", Key=k, RestoreRequest={"Days": 30})
                wait_for(lambda: 'ongoing-request="false"' in
                         head_headers(c, "crash", k).get("x-amz-restore", ""), what="restore")
            assert c.get_object(Bucket="crash", Key=k)["Body"].read() == v, k
    finally:
        assert s.stop() == 0


def _metrics(endpoint):
    import urllib.request
    return urllib.request.urlopen(endpoint + "/-/metrics", timeout=10).read().decode()


def _sum_metric(text, name):
    import re
    return sum(int(v) for v in re.findall(r"^" + re.escape(name) + r"\{[^}]*\} (\d+)", text, re.M))


def test_transition_reclaims_the_old_fragments(tmp_path):
    """A transition writes the new copy, then retires the old fragments: the cores' fragment
    count ends at exactly the new copy's. 2 MiB + 5 bytes = 3 stripes: EC 4+2 is 18 fragments,
    EC 8+4 (GLACIER on 12 cores) is 36."""
    s = Server(str(tmp_path / "d"), cores=12,
               extra=("--io-memory-kib", "512", "--lifecycle-day-secs", "1"))
    try:
        c = s.client()
        c.create_bucket(Bucket="reclaim")
        body = os.urandom(2 * MiB + 5)
        c.put_object(Bucket="reclaim", Key="obj", Body=body)
        fragments = lambda: _sum_metric(_metrics(s.endpoint), "percore_core_fragments")
        wait_for(lambda: fragments() == 18, what="the EC 4+2 copy counted")
        bytes_by_tier = lambda: _sum_metric(_metrics(s.endpoint), "percore_tier_object_bytes")
        wait_for(lambda: bytes_by_tier() == len(body), what="bytes by tier")
        c.put_bucket_lifecycle_configuration(Bucket="reclaim", LifecycleConfiguration={"Rules": [
            {"ID": "cold", "Filter": {"Prefix": ""}, "Status": "Enabled",
             "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]}]})
        wait_for(lambda: head_headers(c, "reclaim", "obj").get("x-amz-storage-class") == "GLACIER",
                 what="transition")
        assert head_headers(c, "reclaim", "obj")["x-percore-placement"] == "ec-8+4/nvme"
        wait_for(lambda: fragments() == 36, what="old fragments reclaimed")
        c.restore_object(Bucket="reclaim", Key="obj", RestoreRequest={"Days": 2})
        wait_for(lambda: 'ongoing-request="false"' in
                 head_headers(c, "reclaim", "obj").get("x-amz-restore", ""), what="restore")
        assert c.get_object(Bucket="reclaim", Key="obj")["Body"].read() == body
        # The restored copy (EC 4+2 again: 18 more) goes when it expires.
        wait_for(lambda: fragments() == 54, what="restored copy stored")
        wait_for(lambda: "x-amz-restore" not in head_headers(c, "reclaim", "obj"),
                 what="restore expired")
        wait_for(lambda: fragments() == 36, what="restored copy reclaimed")
    finally:
        assert s.stop() == 0


def test_encrypted_objects_move_with_their_encryption(c, bkt):
    # An SSE-C object is transitioned (re-encoded) and restored with its encryption, and the
    # size filter sees its plaintext size: stored, it is 17 tags of 16 bytes longer.
    sse = dict(SSECustomerAlgorithm="AES256", SSECustomerKey=bytes(range(32)))
    body = os.urandom(MiB + 7)
    c.put_object(Bucket=bkt, Key="enc", Body=body, **sse)
    c.put_object(Bucket=bkt, Key="plain", Body=os.urandom(len(body) + 17 * 16))
    c.put_bucket_lifecycle_configuration(Bucket=bkt, LifecycleConfiguration={"Rules": [
        {"ID": "cold", "Filter": {"ObjectSizeLessThan": len(body) + 1}, "Status": "Enabled",
         "Transitions": [{"Days": 1, "StorageClass": "GLACIER"}]},
    ]})

    def class_of(key, **extra):
        return c.head_object(Bucket=bkt, Key=key, **extra).get("StorageClass")

    wait_for(lambda: class_of("enc", **sse) == "GLACIER", what="transition")
    assert class_of("plain") is None, "the size filter holds"
    c.restore_object(Bucket=bkt, Key="enc", RestoreRequest={"Days": 3})
    wait_for(lambda: 'ongoing-request="false"' in c.head_object(
        Bucket=bkt, Key="enc", **sse)["ResponseMetadata"]["HTTPHeaders"].get("x-amz-restore", ""),
        what="restore")
    assert c.get_object(Bucket=bkt, Key="enc", **sse)["Body"].read() == body
    assert error_code(lambda: c.get_object(Bucket=bkt, Key="enc"))[1] == 400
