"""S3 operations of the first gateway slice, against a real `percore serve`, with boto3."""
import hashlib
import os

import pytest
from botocore.exceptions import ClientError


def code(e):
    return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]


def test_buckets_lifecycle(s3):
    s3.create_bucket(Bucket="lifecycle-bkt")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "lifecycle-bkt" in names
    s3.head_bucket(Bucket="lifecycle-bkt")
    # us-east-1 (the server's default region): re-creating one's own bucket is 200, as AWS
    # answers there for legacy compatibility; the bucket and its objects are unchanged.
    s3.put_object(Bucket="lifecycle-bkt", Key="kept", Body=b"1")
    s3.create_bucket(Bucket="lifecycle-bkt")
    assert s3.get_object(Bucket="lifecycle-bkt", Key="kept")["Body"].read() == b"1"
    s3.delete_object(Bucket="lifecycle-bkt", Key="kept")
    s3.delete_bucket(Bucket="lifecycle-bkt")
    with pytest.raises(ClientError) as e:
        s3.head_bucket(Bucket="lifecycle-bkt")
    assert code(e.value)[1] == 404


def test_invalid_bucket_name(s3):
    for bad in ["ab", "UPPER", "a" * 64, "bad_name", "-start"]:
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=bad)
        assert code(e.value) == ("InvalidBucketName", 400), bad


def test_put_get_head_delete_round_trip(s3, bucket):
    data = os.urandom(2 * 1024 * 1024 + 12345)
    r = s3.put_object(Bucket=bucket, Key="obj", Body=data, ContentType="application/x-t",
                      Metadata={"color": "blue"})
    assert r["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()
    g = s3.get_object(Bucket=bucket, Key="obj")
    assert g["Body"].read() == data
    assert g["ContentType"] == "application/x-t"
    assert g["Metadata"] == {"color": "blue"}
    h = s3.head_object(Bucket=bucket, Key="obj")
    assert h["ContentLength"] == len(data)
    assert h["ETag"] == r["ETag"]
    s3.delete_object(Bucket=bucket, Key="obj")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="obj")
    assert code(e.value) == ("NoSuchKey", 404)
    # Deleting what is not there succeeds, as in S3.
    s3.delete_object(Bucket=bucket, Key="obj")


def test_empty_object_and_overwrite(s3, bucket):
    s3.put_object(Bucket=bucket, Key="e", Body=b"")
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == b""
    s3.put_object(Bucket=bucket, Key="e", Body=b"second")
    assert s3.get_object(Bucket=bucket, Key="e")["Body"].read() == b"second"


@pytest.mark.parametrize("rng,expect", [
    ("bytes=0-0", slice(0, 1)),
    ("bytes=1048570-1048590", slice(1048570, 1048591)),
    ("bytes=-10", slice(-10, None)),
    ("bytes=2000000-", slice(2000000, None)),
])
def test_ranges(s3, bucket, rng, expect):
    data = bytes(range(256)) * (2 * 1024 * 1024 // 256 + 7)
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    r = s3.get_object(Bucket=bucket, Key="r", Range=rng)
    assert r["Body"].read() == data[expect]
    assert r["ResponseMetadata"]["HTTPStatusCode"] == 206


def test_unsatisfiable_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"abc")
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=5-9")
    assert code(e.value) == ("InvalidRange", 416)


def test_nasty_keys(s3, bucket):
    keys = ["ünïcødé/ключ/鍵", "a b+c%20d", "..", "../x", "%", "ctrl\x01\x7f", "k" * 1024,
            "trailing/", "q?x=1&y=2", "#hash"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    for k in keys:
        assert s3.get_object(Bucket=bucket, Key=k)["Body"].read() == k.encode(), repr(k)
    listed = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        listed += [o["Key"] for o in page.get("Contents", [])]
    assert sorted(listed) == sorted(keys)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert code(e.value)[0] == "KeyTooLongError"


def test_list_prefix_delimiter_pagination(s3, bucket):
    keys = [f"a/{i:03}" for i in range(25)] + ["b/1", "b/2", "c", "d/e/f"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"x")
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in r.get("Contents", [])] == ["c"]
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["a/", "b/", "d/"]
    r = s3.list_objects_v2(Bucket=bucket, Prefix="a/", MaxKeys=10)
    assert r["IsTruncated"] and r["KeyCount"] == 10
    seen = [o["Key"] for o in r["Contents"]]
    while r["IsTruncated"]:
        r = s3.list_objects_v2(Bucket=bucket, Prefix="a/", MaxKeys=10,
                               ContinuationToken=r["NextContinuationToken"])
        seen += [o["Key"] for o in r.get("Contents", [])]
    assert seen == [f"a/{i:03}" for i in range(25)]
    r = s3.list_objects_v2(Bucket=bucket, StartAfter="b/1")
    assert [o["Key"] for o in r["Contents"]] == ["b/2", "c", "d/e/f"]
    # An empty delimiter means none.
    r = s3.list_objects_v2(Bucket=bucket, Delimiter="")
    assert r["KeyCount"] == len(keys)


def test_delete_bucket_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="x", Body=b"1")
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=bucket)
    assert code(e.value) == ("BucketNotEmpty", 409)


def test_bad_content_md5(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="m", Body=b"data", ContentMD5="1B2M2Y8AsgTpgAmY7PhCfg==")
    assert code(e.value) == ("BadDigest", 400)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="m")
    assert code(e.value)[0] == "NoSuchKey"


def test_wrong_secret_is_rejected(server):
    bad = server.client(secret_key="x" * 40)
    with pytest.raises(ClientError) as e:
        bad.list_buckets()
    assert code(e.value) == ("SignatureDoesNotMatch", 403)
    unknown = server.client(access_key="NOSUCHACCESSKEY00000")
    with pytest.raises(ClientError) as e:
        unknown.list_buckets()
    assert code(e.value) == ("InvalidAccessKeyId", 403)


def test_other_users_buckets_are_denied(server, s3, bucket):
    alice = server.client("ALICEACCESSKEY000001", "alice-secret-key-0000000000000000000001")
    assert bucket not in [b["Name"] for b in alice.list_buckets()["Buckets"]]
    with pytest.raises(ClientError) as e:
        alice.get_object(Bucket=bucket, Key="x")
    assert code(e.value) == ("AccessDenied", 403)
    with pytest.raises(ClientError) as e:
        alice.create_bucket(Bucket=bucket)
    assert code(e.value) == ("BucketAlreadyExists", 409)


def test_presigned_url(s3, bucket):
    import urllib.request
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    with urllib.request.urlopen(url) as r:
        assert r.read() == b"presigned body"


def test_presigned_url_expiry_and_tampering(s3, bucket):
    import time
    import urllib.error
    import urllib.request
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned body")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"}, ExpiresIn=60)
    # Another key under the same signature is refused.
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url.replace("/p?", "/q?"))
    assert e.value.code == 403 and b"SignatureDoesNotMatch" in e.value.read()
    short = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"},
                                      ExpiresIn=1)
    time.sleep(2.5)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(short)
    assert e.value.code == 403 and b"AccessDenied" in e.value.read()


def test_unsupported_operation_is_not_implemented(s3, bucket):
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration={
            "IndexDocument": {"Suffix": "index.html"}})
    assert code(e.value) == ("NotImplemented", 501)


def test_restart_keeps_objects(tmp_path):
    from conftest import Server
    s = Server(str(tmp_path / "data"))
    c = s.client()
    c.create_bucket(Bucket="restart-bkt")
    blobs = {f"k{i}": os.urandom(1000 * i + 1) for i in range(20)}
    for k, v in blobs.items():
        c.put_object(Bucket="restart-bkt", Key=k, Body=v)
    assert s.stop() == 0
    s2 = Server(str(tmp_path / "data"))
    assert s2.access_key == s.access_key, "root credentials persist"
    c = s2.client()
    for k, v in blobs.items():
        assert c.get_object(Bucket="restart-bkt", Key=k)["Body"].read() == v
    assert s2.stop() == 0


def test_copy_object_source_conditions(s3, bucket):
    """Each x-amz-copy-source-if-* header of CopyObject is checked against the source: a
    condition that holds copies, one that fails answers 412 and copies nothing."""
    import datetime
    tag = s3.put_object(Bucket=bucket, Key="src", Body=b"source")["ETag"]
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    src = {"Bucket": bucket, "Key": "src"}
    holds = [{"CopySourceIfMatch": tag}, {"CopySourceIfNoneMatch": '"0000"'},
             {"CopySourceIfModifiedSince": past}, {"CopySourceIfUnmodifiedSince": future}]
    fails = [{"CopySourceIfMatch": '"0000"'}, {"CopySourceIfNoneMatch": tag},
             {"CopySourceIfModifiedSince": future}, {"CopySourceIfUnmodifiedSince": past}]
    for i, cond in enumerate(holds):
        s3.copy_object(Bucket=bucket, Key=f"ok-{i}", CopySource=src, **cond)
        assert s3.get_object(Bucket=bucket, Key=f"ok-{i}")["Body"].read() == b"source"
    for i, cond in enumerate(fails):
        with pytest.raises(ClientError) as e:
            s3.copy_object(Bucket=bucket, Key=f"no-{i}", CopySource=src, **cond)
        assert code(e.value) == ("PreconditionFailed", 412), cond
        with pytest.raises(ClientError) as e:
            s3.head_object(Bucket=bucket, Key=f"no-{i}")
        assert code(e.value)[1] == 404


def test_conditional_get_and_head(s3, bucket):
    import datetime
    r = s3.put_object(Bucket=bucket, Key="c", Body=b"conditional")
    tag = r["ETag"]
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=tag)["Body"].read() == b"conditional"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert code(e.value) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=tag)
    assert code(e.value)[1] == 304
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=1)
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key="c", IfModifiedSince=future)
    assert code(e.value)[1] == 304
    s3.head_object(Bucket=bucket, Key="c", IfModifiedSince=past)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert code(e.value) == ("PreconditionFailed", 412)


def test_standard_headers_and_response_overrides(s3, bucket):
    s3.put_object(Bucket=bucket, Key="h", Body=b"x", CacheControl="no-cache",
                  ContentDisposition='attachment; filename="x.txt"', ContentEncoding="identity",
                  ContentLanguage="en")
    h = s3.head_object(Bucket=bucket, Key="h")
    assert h["CacheControl"] == "no-cache"
    assert h["ContentDisposition"] == 'attachment; filename="x.txt"'
    assert h["ContentLanguage"] == "en"
    g = s3.get_object(Bucket=bucket, Key="h", ResponseContentType="text/x-override",
                      ResponseCacheControl="max-age=5")
    assert g["ContentType"] == "text/x-override"
    assert g["CacheControl"] == "max-age=5"


def test_parallel_puts_to_one_key_never_tear(s3, bucket):
    from concurrent.futures import ThreadPoolExecutor
    bodies = [bytes([i]) * (1024 * 1024 + 4096 * i) for i in range(6)]

    def put(b):
        s3.put_object(Bucket=bucket, Key="contended", Body=b)

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(put, bodies))
    got = s3.get_object(Bucket=bucket, Key="contended")["Body"].read()
    assert got in bodies, "one whole version wins"
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Size"] for o in listed] == [len(got)]


def test_delete_objects_batch(s3, bucket):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"d{i}", Body=b"x")
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": f"d{i}"} for i in range(3)]
                                                  + [{"Key": "never-existed"}]})
    assert sorted(d["Key"] for d in r["Deleted"]) == ["d0", "d1", "d2", "never-existed"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["d3", "d4"]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d3"}], "Quiet": True})
    assert not r.get("Deleted")


def test_list_objects_v1(s3, bucket):
    keys = [f"p/{i:02}" for i in range(7)] + ["q"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=b"v")
    seen, marker = [], ""
    while True:
        r = s3.list_objects(Bucket=bucket, MaxKeys=3, Marker=marker)
        seen += [o["Key"] for o in r.get("Contents", [])]
        if not r["IsTruncated"]:
            break
        marker = r.get("NextMarker") or r["Contents"][-1]["Key"]
    assert seen == keys
    r = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in r["CommonPrefixes"]] == ["p/"]
    assert [o["Key"] for o in r["Contents"]] == ["q"]


@pytest.mark.parametrize("algo", ["CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"])
def test_flexible_checksums_are_verified(s3, bucket, algo):
    import base64
    import zlib
    from botocore.exceptions import MissingDependencyException
    body = os.urandom(300_000)
    try:
        r = s3.put_object(Bucket=bucket, Key=f"sum-{algo}", Body=body, ChecksumAlgorithm=algo)
    except MissingDependencyException:
        pytest.skip(f"{algo} needs awscrt in this botocore")
    assert r.get(f"Checksum{algo}"), "the server echoes the checksum it verified"
    if algo == "CRC32":
        assert r["ChecksumCRC32"] == base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    assert s3.get_object(Bucket=bucket, Key=f"sum-{algo}")["Body"].read() == body


def test_wrong_checksum_is_bad_digest(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="badsum", Body=b"payload", ChecksumSHA256=
                      "uU0nuZNNPgilLlLX2n2r+sSE7+N6U4DukIj3rOLvzek=")
    assert code(e.value) == ("BadDigest", 400)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="badsum")
    assert code(e.value)[0] == "NoSuchKey"
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="badsum", Body=b"payload", ChecksumCRC32="AAAAAA==")
    assert code(e.value) == ("BadDigest", 400)


def test_object_tagging(s3, bucket):
    s3.put_object(Bucket=bucket, Key="t", Body=b"x", Tagging="color=blue&shape=round%20ish")
    tags = s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("color", "blue"), ("shape", "round ish")]
    s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == [{"Key": "k", "Value": "v"}]
    s3.copy_object(Bucket=bucket, Key="t2", CopySource={"Bucket": bucket, "Key": "t"})
    assert s3.get_object_tagging(Bucket=bucket, Key="t2")["TagSet"] == [{"Key": "k", "Value": "v"}]
    s3.delete_object_tagging(Bucket=bucket, Key="t")
    assert s3.get_object_tagging(Bucket=bucket, Key="t")["TagSet"] == []
    # A new version starts untagged.
    s3.put_object_tagging(Bucket=bucket, Key="t2", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    s3.put_object(Bucket=bucket, Key="t2", Body=b"new")
    assert s3.get_object_tagging(Bucket=bucket, Key="t2")["TagSet"] == []
    with pytest.raises(ClientError) as e:
        s3.put_object_tagging(Bucket=bucket, Key="t", Tagging={"TagSet": [
            {"Key": f"k{i}", "Value": "v"} for i in range(11)]})
    assert code(e.value) == ("InvalidTag", 400)
    with pytest.raises(ClientError) as e:
        s3.get_object_tagging(Bucket=bucket, Key="missing")
    assert code(e.value) == ("NoSuchKey", 404)


def test_conditional_put_is_compare_and_swap(s3, bucket):
    from concurrent.futures import ThreadPoolExecutor

    def create(i):
        try:
            s3.put_object(Bucket=bucket, Key="once", Body=b"writer %d" % i, IfNoneMatch="*")
            return i
        except ClientError as e:
            assert code(e) == ("PreconditionFailed", 412)
            return None

    with ThreadPoolExecutor(8) as pool:
        winners = [w for w in pool.map(create, range(8)) if w is not None]
    assert len(winners) == 1, winners
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"writer %d" % winners[0]
    tag = s3.head_object(Bucket=bucket, Key="once")["ETag"]
    s3.put_object(Bucket=bucket, Key="once", Body=b"v2", IfMatch=tag)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="once", Body=b"v3", IfMatch=tag)
    assert code(e.value) == ("PreconditionFailed", 412)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="never", Body=b"v", IfMatch=tag)
    assert code(e.value) == ("NoSuchKey", 404)
    assert s3.get_object(Bucket=bucket, Key="once")["Body"].read() == b"v2"


def test_conditional_complete_multipart(s3, bucket):
    s3.put_object(Bucket=bucket, Key="exists", Body=b"x")
    up = s3.create_multipart_upload(Bucket=bucket, Key="exists")["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="exists", UploadId=up, PartNumber=1, Body=b"y")["ETag"]
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=bucket, Key="exists", UploadId=up, IfNoneMatch="*",
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert code(e.value) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == b"x"
    # The upload and its parts survive the failed condition: completing without it works.
    s3.complete_multipart_upload(Bucket=bucket, Key="exists", UploadId=up,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}]})
    assert s3.get_object(Bucket=bucket, Key="exists")["Body"].read() == b"y"


def test_core_count_is_kept_per_data_dir(tmp_path):
    import subprocess
    from conftest import Server, percore_bin
    s = Server(str(tmp_path / "d"), cores=2)
    assert s.stop() == 0
    r = subprocess.run([percore_bin(), "serve", "--data", str(tmp_path / "d"), "--cores", "3",
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "created with 2 cores" in r.stderr


def test_serve_config_file_places_each_core(tmp_path):
    # `percore serve --config FILE`: one [[core]] table per partition, each its own directory
    # (one per disk in production), as percore-tune suggests.
    import subprocess
    from conftest import Server, free_port, percore_bin
    port = free_port()
    config = tmp_path / "node.toml"
    config.write_text(
        f'data = "{tmp_path / "state"}"\nlisten = "127.0.0.1:{port}"\nio_memory_kib = 1024\n'
        f'[[core]]\ndir = "{tmp_path / "disk-a"}"\n[[core]]\ndir = "{tmp_path / "disk-b"}"\n')

    class ConfigServer(Server):
        def __init__(self):
            self.port = port
            self.proc = subprocess.Popen(
                [percore_bin(), "serve", "--config", str(config)],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            fields = {}
            while "cores" not in fields:
                line = self.proc.stdout.readline()
                assert line, "percore serve exited before printing its endpoint"
                name, _, value = line.strip().partition(": ")
                fields[name] = value
            self.endpoint = fields["endpoint"]
            self.access_key = fields["access_key"]
            self.secret_key = fields["secret_key"]
            assert fields["cores"] == "2"

    s = ConfigServer()
    try:
        assert s.endpoint == f"http://127.0.0.1:{port}"
        c = s.client()
        c.create_bucket(Bucket="placed")
        body = bytes(range(256)) * 4000
        c.put_object(Bucket="placed", Key="k", Body=body)
        assert c.get_object(Bucket="placed", Key="k")["Body"].read() == body
    finally:
        assert s.stop() == 0
    for disk in ("disk-a", "disk-b"):
        assert (tmp_path / disk / "superblock").exists(), disk
    assert (tmp_path / "state" / "credentials.toml").exists()
    assert not (tmp_path / "state" / "core-0").exists()

    bad = tmp_path / "bad.toml"
    bad.write_text(f'[[core]]\ndir = "{tmp_path / "x"}"\n[[core]]\ndir = "{tmp_path / "x"}"\n')
    r = subprocess.run([percore_bin(), "serve", "--config", str(bad)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "both name" in r.stderr, r.stderr


def test_list_owner_v1_always_v2_with_fetch_owner(s3, bucket):
    s3.put_object(Bucket=bucket, Key="owned", Body=b"x")
    v2 = s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert "Owner" not in v2
    v2 = s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]
    owner = v2["Owner"]
    assert owner["ID"] and owner["DisplayName"]
    v1 = s3.list_objects(Bucket=bucket)["Contents"][0]
    assert v1["Owner"] == owner
    assert s3.list_buckets()["Owner"]["ID"] == owner["ID"]


def test_virtual_host_style_requests(tmp_path):
    # With --domain, bucket.DOMAIN in the Host header names the bucket; path style still works.
    import socket
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    from conftest import Server
    s = Server(str(tmp_path / "d"), extra=("--domain", "s3.test"))
    try:
        s3 = s.client()
        s3.create_bucket(Bucket="vhost")
        port = s.endpoint.rsplit(":", 1)[1]

        def request(method, key, body=b""):
            url = f"http://vhost.s3.test:{port}/{key}"
            req = AWSRequest(method=method, url=url, data=body,
                             headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
            S3SigV4Auth(Credentials(s.access_key, s.secret_key), "s3", "us-east-1").add_auth(req)
            p = req.prepare()
            head = f"{method} /{key} HTTP/1.1\r\nHost: vhost.s3.test:{port}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in p.headers.items())
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as c:
                c.sendall(head.encode() + body)
                reply = b""
                while chunk := c.recv(65536):
                    reply += chunk
            return reply

        reply = request("PUT", "hello.txt", b"virtual host body")
        assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
        assert s3.get_object(Bucket="vhost", Key="hello.txt")["Body"].read() == b"virtual host body"
        reply = request("GET", "hello.txt")
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"virtual host body"), reply
    finally:
        assert s.stop() == 0


def test_recreating_an_owned_bucket_outside_us_east_1_is_409(tmp_path):
    from conftest import Server
    srv = Server(str(tmp_path / "d"), extra=("--region", "eu-central-1"))
    try:
        c = srv.client(region="eu-central-1")
        c.create_bucket(Bucket="regional",
                        CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        with pytest.raises(ClientError) as e:
            c.create_bucket(Bucket="regional",
                            CreateBucketConfiguration={"LocationConstraint": "eu-central-1"})
        assert code(e.value) == ("BucketAlreadyOwnedByYou", 409)
    finally:
        assert srv.stop() == 0
