"""S3 object versioning against a real `percore serve`, with boto3: bucket states, version ids,
the null version, delete markers, reads/deletes/copies by version id, ListObjectVersions."""
import os
import urllib.parse
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError


def code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def headers(e):
    return e.response["ResponseMetadata"]["HTTPHeaders"]


def enable(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def suspend(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})


def body(s3, bucket, key, **kw):
    return s3.get_object(Bucket=bucket, Key=key, **kw)["Body"].read()


def versions(s3, bucket, **kw):
    """(key, version id, is latest, 'obj' or 'dm') of every version, by key, newest first.
    boto3 parses versions and delete markers into two lists (and s3s writes them apart):
    within a key the latest comes first, then by LastModified (kept as written, to the
    millisecond, for ties)."""
    raw = []

    def keep(http_response, **_):
        raw.append(http_response.content)

    s3.meta.events.register("after-call.s3.ListObjectVersions", keep)
    try:
        for _ in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, **kw):
            pass
    finally:
        s3.meta.events.unregister("after-call.s3.ListObjectVersions", keep)
    found = []
    for xml in raw:
        root = ET.fromstring(xml)
        # botocore asks for encoding-type=url and decodes its own parse: do the same.
        url = any(c.tag.split("}")[-1] == "EncodingType" and c.text == "url" for c in root)
        for el in root:
            kind = {"Version": "obj", "DeleteMarker": "dm"}.get(el.tag.split("}")[-1])
            if kind:
                field = {c.tag.split("}")[-1]: c.text for c in el}
                key = urllib.parse.unquote(field["Key"]) if url else field["Key"]
                found.append((key, field["VersionId"], field["IsLatest"] == "true", kind,
                              field["LastModified"]))
    found.sort(key=lambda v: v[4], reverse=True)
    found.sort(key=lambda v: (v[0], not v[2]))
    return [v[:4] for v in found]


def test_bucket_versioning_states(server, s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    suspend(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    enable(s3, bucket)
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    with pytest.raises(ClientError) as e:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Bogus"})
    assert code(e.value) == ("IllegalVersioningConfigurationException", 400)
    alice = server.client("ALICEACCESSKEY000001", "alice-secret-key-0000000000000000000001")
    with pytest.raises(ClientError) as e:
        alice.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert code(e.value) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_versioning(Bucket="no-such-bucket-versioning")
    assert code(e.value) == ("NoSuchBucket", 404)
    # A bucket suspended without ever being enabled reports Suspended.
    s3.create_bucket(Bucket=bucket + "-s")
    suspend(s3, bucket + "-s")
    assert s3.get_bucket_versioning(Bucket=bucket + "-s")["Status"] == "Suspended"


def test_unversioned_bucket_has_only_the_null_version(s3, bucket):
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"one")
    assert "VersionId" not in r
    g = s3.get_object(Bucket=bucket, Key="k")
    assert "VersionId" not in g
    g = s3.get_object(Bucket=bucket, Key="k", VersionId="null")
    assert g["Body"].read() == b"one" and g["VersionId"] == "null"
    assert s3.head_object(Bucket=bucket, Key="k", VersionId="null")["ContentLength"] == 3
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId="0" * 24)
    assert code(e.value) == ("NoSuchVersion", 404)
    for bad in ["abc", "Z" * 24, "0" * 23, "0" * 25, "NULL"]:
        with pytest.raises(ClientError) as e:
            s3.get_object(Bucket=bucket, Key="k", VersionId=bad)
        assert code(e.value) == ("InvalidArgument", 400), bad
        with pytest.raises(ClientError) as e:
            s3.delete_object(Bucket=bucket, Key="k", VersionId=bad)
        assert code(e.value) == ("InvalidArgument", 400), bad
    assert versions(s3, bucket) == [("k", "null", True, "obj")]
    # Deleting the null version by id removes the object.
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert r["VersionId"] == "null" and "DeleteMarker" not in r
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(e.value) == ("NoSuchKey", 404)
    # A simple delete in an unversioned bucket makes no marker.
    s3.put_object(Bucket=bucket, Key="k", Body=b"two")
    r = s3.delete_object(Bucket=bucket, Key="k")
    assert "DeleteMarker" not in r and "VersionId" not in r
    assert versions(s3, bucket) == []


def test_enabled_bucket_keeps_every_version(s3, bucket):
    enable(s3, bucket)
    ids = []
    for i in range(3):
        r = s3.put_object(Bucket=bucket, Key="k", Body=b"v%d" % i)
        ids.append(r["VersionId"])
    assert len(set(ids)) == 3 and "null" not in ids
    assert body(s3, bucket, "k") == b"v2"
    g = s3.get_object(Bucket=bucket, Key="k")
    assert g["VersionId"] == ids[2]
    for i, v in enumerate(ids):
        g = s3.get_object(Bucket=bucket, Key="k", VersionId=v)
        assert g["Body"].read() == b"v%d" % i and g["VersionId"] == v
        h = s3.head_object(Bucket=bucket, Key="k", VersionId=v)
        assert h["VersionId"] == v and h["ContentLength"] == 2
    listed = versions(s3, bucket)
    assert [(k, v, latest, kind) for k, v, latest, kind in listed] == [
        ("k", ids[2], True, "obj"), ("k", ids[1], False, "obj"), ("k", ids[0], False, "obj")]
    # Conditions apply to the version read.
    old_tag = s3.head_object(Bucket=bucket, Key="k", VersionId=ids[0])["ETag"]
    assert body(s3, bucket, "k", VersionId=ids[0], IfMatch=old_tag) == b"v0"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId=ids[1], IfMatch=old_tag)
    assert code(e.value) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId="f" * 24)
    assert code(e.value) == ("NoSuchVersion", 404)
    # ListObjects shows only the current version.
    r = s3.list_objects_v2(Bucket=bucket)
    assert [(o["Key"], o["Size"]) for o in r["Contents"]] == [("k", 2)]
    assert s3.list_objects(Bucket=bucket)["Contents"][0]["ETag"] == s3.head_object(
        Bucket=bucket, Key="k")["ETag"]


def test_objects_written_before_versioning_are_null(s3, bucket):
    s3.put_object(Bucket=bucket, Key="old", Body=b"before")
    s3.put_object(Bucket=bucket, Key="untouched", Body=b"still null")
    enable(s3, bucket)
    assert s3.head_object(Bucket=bucket, Key="old")["VersionId"] == "null"
    new = s3.put_object(Bucket=bucket, Key="old", Body=b"after")["VersionId"]
    assert body(s3, bucket, "old") == b"after"
    assert body(s3, bucket, "old", VersionId="null") == b"before"
    listed = [(k, v, latest, kind) for k, v, latest, kind in versions(s3, bucket)]
    assert listed == [("old", new, True, "obj"), ("old", "null", False, "obj"),
                      ("untouched", "null", True, "obj")]
    assert body(s3, bucket, "untouched", VersionId="null") == b"still null"


def test_delete_marker_hides_and_deleting_it_restores(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"first")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"second")["VersionId"]
    r = s3.delete_object(Bucket=bucket, Key="k")
    assert r["DeleteMarker"] is True
    marker = r["VersionId"]
    assert marker not in (v1, v2, "null")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(e.value) == ("NoSuchKey", 404)
    assert headers(e.value)["x-amz-delete-marker"] == "true"
    assert headers(e.value)["x-amz-version-id"] == marker
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k")
    assert code(e.value)[1] == 404
    assert headers(e.value)["x-amz-delete-marker"] == "true"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId=marker)
    assert code(e.value) == ("MethodNotAllowed", 405)
    assert headers(e.value)["x-amz-delete-marker"] == "true"
    assert "last-modified" in headers(e.value)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="k", VersionId=marker)
    assert code(e.value)[1] == 405
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert "Contents" not in s3.list_objects(Bucket=bucket)
    listed = [(k, v, latest, kind) for k, v, latest, kind in versions(s3, bucket)]
    assert ("k", marker, True, "dm") in listed
    assert ("k", v2, False, "obj") in listed and ("k", v1, False, "obj") in listed
    # Older versions stay readable by id.
    assert body(s3, bucket, "k", VersionId=v1) == b"first"
    # Deleting the marker by id makes the previous version current again.
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=marker)
    assert r["DeleteMarker"] is True and r["VersionId"] == marker
    assert body(s3, bucket, "k") == b"second"
    assert s3.get_object(Bucket=bucket, Key="k")["VersionId"] == v2
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]
    # A second simple delete on top of a marker adds another marker.
    m1 = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    m2 = s3.delete_object(Bucket=bucket, Key="k")["VersionId"]
    assert m1 != m2
    kinds = [(v, latest, kind) for _, v, latest, kind in versions(s3, bucket)]
    assert (m2, True, "dm") in kinds and (m1, False, "dm") in kinds
    # Deleting the newest marker leaves the older one current: still deleted.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=m2)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert headers(e.value)["x-amz-version-id"] == m1


def test_delete_version_permanently(s3, bucket):
    enable(s3, bucket)
    ids = [s3.put_object(Bucket=bucket, Key="k", Body=b"v%d" % i)["VersionId"] for i in range(3)]
    # The current version: the previous becomes current.
    r = s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[2])
    assert r["VersionId"] == ids[2] and "DeleteMarker" not in r
    assert body(s3, bucket, "k") == b"v1"
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["Size"] == 2
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId=ids[2])
    assert code(e.value) == ("NoSuchVersion", 404)
    # A noncurrent version: the current one is untouched.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[0])
    assert body(s3, bucket, "k") == b"v1"
    assert [v for _, v, _, _ in versions(s3, bucket)] == [ids[1]]
    # Deleting a version that does not exist (any more) succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[0])
    s3.delete_object(Bucket=bucket, Key="k", VersionId=ids[1])
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert code(e.value) == ("NoSuchKey", 404)
    assert "x-amz-delete-marker" not in headers(e.value)
    assert versions(s3, bucket) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_suspended_writes_replace_the_null_version(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"enabled")["VersionId"]
    suspend(s3, bucket)
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"null one")
    assert r["VersionId"] == "null"
    assert s3.get_object(Bucket=bucket, Key="k")["VersionId"] == "null"
    r = s3.put_object(Bucket=bucket, Key="k", Body=b"null two")
    assert r["VersionId"] == "null"
    listed = [(v, latest) for _, v, latest, _ in versions(s3, bucket)]
    assert listed == [("null", True), (v1, False)]
    assert body(s3, bucket, "k", VersionId="null") == b"null two"
    assert body(s3, bucket, "k", VersionId=v1) == b"enabled"


def test_suspended_overwrite_of_a_null_version_that_is_not_the_latest(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"unversioned")
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"enabled")["VersionId"]
    listed = [(v, latest) for _, v, latest, _ in versions(s3, bucket)]
    assert listed == [(v1, True), ("null", False)]
    suspend(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended")
    # The old null version (below v1) is gone; the new null version is the latest.
    listed = [(v, latest) for _, v, latest, _ in versions(s3, bucket)]
    assert listed == [("null", True), (v1, False)]
    assert body(s3, bucket, "k", VersionId="null") == b"suspended"
    assert body(s3, bucket, "k") == b"suspended"
    # Same with a null version made while suspended, then buried under an enabled write.
    enable(s3, bucket)
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"enabled again")["VersionId"]
    suspend(s3, bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"suspended again")
    listed = [(v, latest) for _, v, latest, _ in versions(s3, bucket)]
    assert listed == [("null", True), (v2, False), (v1, False)]
    assert body(s3, bucket, "k", VersionId="null") == b"suspended again"


def test_suspended_delete_writes_a_null_marker(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"kept")["VersionId"]
    suspend(s3, bucket)
    # No null version yet: nothing is removed, a null marker is added.
    r = s3.delete_object(Bucket=bucket, Key="k")
    assert r["DeleteMarker"] is True and r["VersionId"] == "null"
    listed = [(v, latest, kind) for _, v, latest, kind in versions(s3, bucket)]
    assert listed == [("null", True, "dm"), (v1, False, "obj")]
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k", VersionId="null")
    assert code(e.value) == ("MethodNotAllowed", 405)
    # A null object version is replaced by the next marker.
    s3.put_object(Bucket=bucket, Key="k", Body=b"null data")
    listed = [(v, kind) for _, v, _, kind in versions(s3, bucket)]
    assert listed == [("null", "obj"), (v1, "obj")]
    s3.delete_object(Bucket=bucket, Key="k")
    listed = [(v, kind) for _, v, _, kind in versions(s3, bucket)]
    assert listed == [("null", "dm"), (v1, "obj")]
    # Deleting the null marker by id restores v1.
    s3.delete_object(Bucket=bucket, Key="k", VersionId="null")
    assert body(s3, bucket, "k") == b"kept"


def test_list_object_versions_pages_mix_heads_from_before_versioning(s3, bucket):
    """Keys written before versioning (listed from the listing index) between keys with
    version records, in pages smaller than a scan's batch: the version index is read only
    as far as the listing index was, and resumes there."""
    for key in ["a1", "a2", "a3", "a4", "c", "d", "x/p/1", "x/p/2", "x/p/3"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"old")
    enable(s3, bucket)
    for key in ["b", "b", "c", "x/q"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"new")
    s3.delete_object(Bucket=bucket, Key="d")
    full = [(k, v, latest) for k, v, latest, _ in versions(s3, bucket)]
    assert [k for k, _, _ in full] == ["a1", "a2", "a3", "a4", "b", "b", "c", "c", "d", "d",
                                       "x/p/1", "x/p/2", "x/p/3", "x/q"]
    assert [(v, latest) for k, v, latest in full[:4]] == [("null", True)] * 4
    assert [v for _, v, _ in full][7:10:2] == ["null", "null"]
    for max_keys in (1, 2, 3):
        seen, kw = [], {}
        for _ in range(len(full) + 1):
            r = s3.list_object_versions(Bucket=bucket, MaxKeys=max_keys, **kw)
            seen += [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r.get("Versions", [])]
            seen += [(m["Key"], m["VersionId"], m["IsLatest"])
                     for m in r.get("DeleteMarkers", [])]
            if not r["IsTruncated"]:
                break
            kw = {"KeyMarker": r["NextKeyMarker"], "VersionIdMarker": r["NextVersionIdMarker"]}
        assert sorted(seen) == sorted(full), max_keys
        assert len(seen) == len(full)
    # A common prefix takes one place on a page but skips many keys: the page goes past the
    # listing index's first batch, and the version index resumes where it was cut.
    r = s3.list_object_versions(Bucket=bucket, Prefix="x/", Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["x/p/"]
    assert r["IsTruncated"] and r["NextKeyMarker"] == "x/p/"
    r = s3.list_object_versions(Bucket=bucket, Prefix="x/", Delimiter="/", MaxKeys=1,
                                KeyMarker="x/p/")
    assert [v["Key"] for v in r["Versions"]] == ["x/q"] and not r["IsTruncated"]


def test_list_object_versions_paging_markers_and_delimiter(s3, bucket):
    enable(s3, bucket)
    expected = []
    for key in ["a/1", "a/2", "b", "c/x/1", "d"]:
        ids = [s3.put_object(Bucket=bucket, Key=key, Body=key.encode() * (i + 1))["VersionId"]
               for i in range(3)]
        expected += [(key, v, i == 0) for i, v in enumerate(reversed(ids))]
    marker = s3.delete_object(Bucket=bucket, Key="b")["VersionId"]
    b_at = [k for k, _, _ in expected].index("b")
    expected = [(k, v, latest and k != "b") for k, v, latest in expected]
    expected.insert(b_at, ("b", marker, True))
    full = [(k, v, latest) for k, v, latest, _ in versions(s3, bucket)]
    assert full == expected
    # Page by hand: 2 per page, markers from the previous page.
    seen, kw = [], {}
    pages = 0
    while True:
        r = s3.list_object_versions(Bucket=bucket, MaxKeys=2, **kw)
        page = [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r.get("Versions", [])]
        page += [(m["Key"], m["VersionId"], m["IsLatest"]) for m in r.get("DeleteMarkers", [])]
        assert len(page) <= 2
        seen += page
        pages += 1
        if not r["IsTruncated"]:
            break
        assert r["NextKeyMarker"] == max(k for k, _, _ in page)
        kw = {"KeyMarker": r["NextKeyMarker"], "VersionIdMarker": r["NextVersionIdMarker"]}
    assert pages == 8
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(expected)
    # Resuming in the middle of a key keeps IsLatest right.
    a1 = [e for e in expected if e[0] == "a/1"]
    r = s3.list_object_versions(Bucket=bucket, KeyMarker="a/1", VersionIdMarker=a1[0][1],
                                MaxKeys=3)
    got = [(v["Key"], v["VersionId"], v["IsLatest"]) for v in r["Versions"]]
    assert got == a1[1:] + [e for e in expected if e[0] == "a/2"][:1]
    # A key marker alone starts after every version of that key.
    r = s3.list_object_versions(Bucket=bucket, KeyMarker="a/2")
    keys = {v["Key"] for v in r["Versions"]} | {m["Key"] for m in r.get("DeleteMarkers", [])}
    assert keys == {"b", "c/x/1", "d"}
    # Prefix and delimiter.
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "c/"]
    assert {v["Key"] for v in r["Versions"]} == {"b", "d"}
    r = s3.list_object_versions(Bucket=bucket, Prefix="c/", Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["c/x/"]
    assert "Versions" not in r
    r = s3.list_object_versions(Bucket=bucket, Prefix="a/")
    assert {v["Key"] for v in r["Versions"]} == {"a/1", "a/2"} and len(r["Versions"]) == 6
    # Common prefixes page too, and are not repeated after the key marker.
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1)
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/"] and r["IsTruncated"]
    r = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=1,
                                KeyMarker=r["NextKeyMarker"])
    got = [(v["Key"]) for v in r.get("Versions", [])] + [m["Key"] for m in r.get("DeleteMarkers", [])]
    assert got == ["b"] and "CommonPrefixes" not in r
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=bucket, VersionIdMarker=marker)
    assert code(e.value) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as e:
        s3.list_object_versions(Bucket=bucket, KeyMarker="b", VersionIdMarker="nope")
    assert code(e.value) == ("InvalidArgument", 400)
    r = s3.list_object_versions(Bucket=bucket, MaxKeys=0)
    assert not r["IsTruncated"] and "Versions" not in r


def test_copy_from_an_old_version(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="src", Body=b"old bytes",
                       Metadata={"gen": "1"})["VersionId"]
    s3.put_object(Bucket=bucket, Key="src", Body=b"new bytes")
    r = s3.copy_object(Bucket=bucket, Key="dst",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert r["CopySourceVersionId"] == v1
    assert r["VersionId"] not in (None, "null", v1)
    g = s3.get_object(Bucket=bucket, Key="dst")
    assert g["Body"].read() == b"old bytes" and g["Metadata"] == {"gen": "1"}
    # Copying an old version onto its own key restores it as a new version.
    r = s3.copy_object(Bucket=bucket, Key="src",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert body(s3, bucket, "src") == b"old bytes"
    assert len([1 for k, _, _, _ in versions(s3, bucket) if k == "src"]) == 3
    # The current version's id is shown as the source version without ?versionId=.
    r = s3.copy_object(Bucket=bucket, Key="dst2", CopySource={"Bucket": bucket, "Key": "src"})
    assert r["CopySourceVersionId"] == s3.head_object(Bucket=bucket, Key="src")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="src")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst3",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": marker})
    assert code(e.value) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst3", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(e.value) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=bucket, Key="dst3",
                       CopySource={"Bucket": bucket, "Key": "src", "VersionId": "a" * 24})
    assert code(e.value) == ("NoSuchVersion", 404)
    # UploadPartCopy reads a version too.
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    r = s3.upload_part_copy(Bucket=bucket, Key="mp", UploadId=up, PartNumber=1,
                            CopySource={"Bucket": bucket, "Key": "src", "VersionId": v1})
    assert r["CopySourceVersionId"] == v1
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert body(s3, bucket, "mp") == b"old bytes"


def test_multipart_complete_creates_a_version(s3, bucket):
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="m", Body=b"single")["VersionId"]
    part = os.urandom(5 * 1024 * 1024)
    up = s3.create_multipart_upload(Bucket=bucket, Key="m")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=1, Body=part)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="m", UploadId=up, PartNumber=2, Body=b"tail")["ETag"]
    r = s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]})
    v2 = r["VersionId"]
    assert v2 not in (v1, "null")
    assert body(s3, bucket, "m") == part + b"tail"
    assert body(s3, bucket, "m", VersionId=v1) == b"single"
    assert body(s3, bucket, "m", VersionId=v2, PartNumber=2) == b"tail"
    assert [v for _, v, _, _ in versions(s3, bucket)] == [v2, v1]


def test_delete_objects_with_version_ids(s3, bucket):
    enable(s3, bucket)
    a1 = s3.put_object(Bucket=bucket, Key="a", Body=b"1")["VersionId"]
    a2 = s3.put_object(Bucket=bucket, Key="a", Body=b"2")["VersionId"]
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "a", "VersionId": a1}, {"Key": "b"}, {"Key": "c", "VersionId": "bad"}]})
    deleted = {d["Key"]: d for d in r["Deleted"]}
    assert deleted["a"]["VersionId"] == a1 and not deleted["a"].get("DeleteMarker")
    assert deleted["b"]["DeleteMarker"] is True and deleted["b"]["DeleteMarkerVersionId"]
    assert [(e["Key"], e["Code"], e.get("VersionId")) for e in r["Errors"]] == [
        ("c", "InvalidArgument", "bad")]
    marker = deleted["b"]["DeleteMarkerVersionId"]
    assert body(s3, bucket, "a") == b"2"
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [
        {"Key": "b", "VersionId": marker}, {"Key": "a", "VersionId": a2}]})
    deleted = {d["Key"]: d for d in r["Deleted"]}
    assert deleted["b"]["DeleteMarker"] is True and deleted["b"]["DeleteMarkerVersionId"] == marker
    assert body(s3, bucket, "b") == b"b"
    assert [k for k, _, _, _ in versions(s3, bucket)] == ["b"]


def test_bucket_with_only_delete_markers_is_not_empty(s3, bucket):
    enable(s3, bucket)
    v = s3.put_object(Bucket=bucket, Key="x", Body=b"1")["VersionId"]
    marker = s3.delete_object(Bucket=bucket, Key="x")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert code(e.value) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=bucket, Key="x", VersionId=v)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert code(e.value) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=bucket, Key="x", VersionId=marker)
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket=bucket)
    assert code(e.value)[1] == 404


def test_conditional_writes_in_a_versioned_bucket(s3, bucket):
    enable(s3, bucket)
    s3.put_object(Bucket=bucket, Key="c", Body=b"1", IfNoneMatch="*")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"2", IfNoneMatch="*")
    assert code(e.value) == ("PreconditionFailed", 412)
    assert len(versions(s3, bucket)) == 1, "a failed condition leaves no version"
    tag = s3.head_object(Bucket=bucket, Key="c")["ETag"]
    v2 = s3.put_object(Bucket=bucket, Key="c", Body=b"2", IfMatch=tag)["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"3", IfMatch=tag)
    assert code(e.value) == ("PreconditionFailed", 412)
    assert [v for _, v, _, _ in versions(s3, bucket)][0] == v2
    # Behind a delete marker the key has no current object: If-None-Match: * succeeds.
    s3.delete_object(Bucket=bucket, Key="c")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="c", Body=b"4", IfMatch=tag)
    assert code(e.value) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="c", Body=b"5", IfNoneMatch="*")
    assert body(s3, bucket, "c") == b"5"
    assert len(versions(s3, bucket)) == 4


def test_tagging_names_a_version(s3, bucket):
    # More cases (tags kept when a version becomes noncurrent): test_s3_attributes.py.
    enable(s3, bucket)
    v1 = s3.put_object(Bucket=bucket, Key="t", Body=b"1", Tagging="one=1")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="t", Body=b"2")["VersionId"]
    s3.put_object_tagging(Bucket=bucket, Key="t", VersionId=v2,
                          Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "k", "Value": "v"}]
    assert s3.get_object_tagging(Bucket=bucket, Key="t", VersionId=v1)["TagSet"] == [
        {"Key": "one", "Value": "1"}]
    marker = s3.delete_object(Bucket=bucket, Key="t")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=bucket, Key="t", VersionId=marker)
    assert code(e.value)[1] == 405


def test_versions_survive_a_restart(tmp_path):
    from conftest import Server
    s = Server(str(tmp_path / "data"))
    c = s.client()
    c.create_bucket(Bucket="restart-versions")
    enable(c, "restart-versions")
    v1 = c.put_object(Bucket="restart-versions", Key="k", Body=b"one")["VersionId"]
    marker = c.delete_object(Bucket="restart-versions", Key="k")["VersionId"]
    assert s.stop() == 0
    s2 = Server(str(tmp_path / "data"))
    try:
        c = s2.client()
        assert c.get_bucket_versioning(Bucket="restart-versions")["Status"] == "Enabled"
        listed = [(v, kind) for _, v, _, kind in versions(c, "restart-versions")]
        assert listed == [(marker, "dm"), (v1, "obj")]
        assert body(c, "restart-versions", "k", VersionId=v1) == b"one"
    finally:
        assert s2.stop() == 0


def test_noncurrent_versions_keep_their_chunks_past_the_retire_grace(s3, bucket):
    # Replaced versions' chunks are deleted 30 s after an unversioned overwrite; versions
    # that are kept must not be.
    import time
    s3.put_object(Bucket=bucket, Key="k", Body=b"n" * 300_000)
    enable(s3, bucket)
    big = os.urandom(1_500_000)
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=big)["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"small")["VersionId"]
    s3.copy_object(Bucket=bucket, Key="k", CopySource={"Bucket": bucket, "Key": "k", "VersionId": v1})
    s3.delete_object(Bucket=bucket, Key="k")
    suspend(s3, bucket)
    s3.put_object(Bucket=bucket, Key="other", Body=b"o" * 200_000)
    s3.put_object(Bucket=bucket, Key="other", Body=b"p" * 200_000)
    time.sleep(32)
    assert body(s3, bucket, "k", VersionId="null") == b"n" * 300_000
    assert body(s3, bucket, "k", VersionId=v1) == big
    assert body(s3, bucket, "k", VersionId=v2) == b"small"
    assert body(s3, bucket, "other") == b"p" * 200_000


def test_keys_with_nul_bytes_keep_their_versions_apart(s3, bucket):
    enable(s3, bucket)
    keys = ["n", "n\x00", "n\x00\x00x", "n\x00ul", "n\x01"]
    ids = {k: [s3.put_object(Bucket=bucket, Key=k, Body=(k + str(i)).encode())["VersionId"]
               for i in range(2)] for k in keys}
    listed = versions(s3, bucket)
    assert [(k, v) for k, v, _, _ in listed] == [(k, v) for k in keys for v in reversed(ids[k])]
    for k in keys:
        assert body(s3, bucket, k, VersionId=ids[k][0]) == (k + "0").encode()
    s3.delete_object(Bucket=bucket, Key="n", VersionId=ids["n"][1])
    assert body(s3, bucket, "n\x00") == b"n\x001"
    assert body(s3, bucket, "n") == b"n0"
    # A key whose version records would not fit a metadata key (NULs count twice).
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="\x00" * 800, Body=b"x")
    assert code(e.value) == ("KeyTooLongError", 400)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="\x00" * 800, VersionId="null")
    assert code(e.value) == ("KeyTooLongError", 400)
