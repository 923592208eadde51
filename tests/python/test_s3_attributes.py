"""GetObjectAttributes, per-part checksums, bucket tagging and x-amz-tagging-count (issue 17
item 3), against AWS's documented behaviour."""
import base64
import hashlib
import zlib

import pytest
from botocore.exceptions import ClientError

MIB = 1024 * 1024


def _code(e):
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def _crc32(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _multipart(s3, bucket, key, bodies, **create):
    up = s3.create_multipart_upload(Bucket=bucket, Key=key, **create)["UploadId"]
    parts = []
    algo = create.get("ChecksumAlgorithm")
    for n, body in enumerate(bodies, 1):
        extra = {"ChecksumAlgorithm": algo} if algo else {}
        out = s3.upload_part(Bucket=bucket, Key=key, UploadId=up, PartNumber=n, Body=body, **extra)
        part = {"PartNumber": n, "ETag": out["ETag"]}
        if algo:
            part[f"Checksum{algo}"] = out[f"Checksum{algo}"]
        parts.append(part)
    return s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=up,
                                        MultipartUpload={"Parts": parts})


def test_attributes_of_a_single_put(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"hello", ChecksumAlgorithm="SHA256")
    a = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=[
        "ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"])
    # S3 shows this ETag unquoted, and STANDARD as a class; no parts for a single PUT.
    assert a["ETag"] == hashlib.md5(b"hello").hexdigest()
    assert a["ObjectSize"] == 5
    assert a["StorageClass"] == "STANDARD"
    sha = base64.b64encode(hashlib.sha256(b"hello").digest()).decode()
    assert a["Checksum"] == {"ChecksumSHA256": sha, "ChecksumType": "FULL_OBJECT"}
    assert "ObjectParts" not in a
    assert "LastModified" in a
    # Only what was asked for.
    a = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert a["ObjectSize"] == 5 and "ETag" not in a and "StorageClass" not in a
    s3.put_object(Bucket=bucket, Key="cold", Body=b"x", StorageClass="GLACIER")
    a = s3.get_object_attributes(Bucket=bucket, Key="cold", ObjectAttributes=["StorageClass"])
    assert a["StorageClass"] == "GLACIER"


def test_attributes_refuse_unknown_names_and_missing_keys(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="none", ObjectAttributes=["ETag"])
    assert _code(e) == ("NoSuchKey", 404)
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    # boto3 sends the names as one comma-separated header line, and checks none of them.
    with pytest.raises(ClientError) as e:
        s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ETag", "Owner"])
    assert _code(e) == ("InvalidArgument", 400)


def test_attributes_of_versions(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"three")["VersionId"]
    a = s3.get_object_attributes(Bucket=bucket, Key="k", VersionId=v1,
                                 ObjectAttributes=["ObjectSize"])
    assert (a["ObjectSize"], a["VersionId"]) == (3, v1)
    a = s3.get_object_attributes(Bucket=bucket, Key="k", ObjectAttributes=["ObjectSize"])
    assert (a["ObjectSize"], a["VersionId"]) == (5, v2)


def test_multipart_parts_with_checksums_are_listed_and_paged(s3, bucket):
    bodies = [b"a" * 5 * MIB, b"b" * 5 * MIB, b"c" * 1000]
    _multipart(s3, bucket, "mp", bodies, ChecksumAlgorithm="CRC32")
    a = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts", "Checksum"])
    parts = a["ObjectParts"]
    assert parts["TotalPartsCount"] == 3
    assert [(p["PartNumber"], p["Size"], p["ChecksumCRC32"]) for p in parts["Parts"]] == [
        (n, len(b), _crc32(b)) for n, b in enumerate(bodies, 1)]
    assert parts["IsTruncated"] is False
    assert a["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert a["Checksum"]["ChecksumCRC32"].endswith("-3")
    page = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    MaxParts=1, PartNumberMarker=1)["ObjectParts"]
    assert [p["PartNumber"] for p in page["Parts"]] == [2]
    assert page["IsTruncated"] is True and page["NextPartNumberMarker"] == 2
    # GET and HEAD of one part show that part's checksum.
    head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=2, ChecksumMode="ENABLED")
    assert head["ChecksumCRC32"] == _crc32(bodies[1])
    got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=3, ChecksumMode="ENABLED")
    assert got["ChecksumCRC32"] == _crc32(bodies[2])
    assert got["Body"].read() == bodies[2]


def test_an_upload_without_an_algorithm_gets_crc64nvme(server, bucket):
    # S3's default integrity: each part's CRC64NVME is kept and the object gets a FULL_OBJECT
    # CRC64NVME combined from them, which GET shows and GetObjectAttributes lists per part.
    from test_s3_conformance import crc64nvme
    plain = server.client(request_checksum_calculation="when_required",
                          response_checksum_validation="when_required")
    bodies = [b"a" * 5 * MIB, b"b"]
    done = _multipart(plain, bucket, "mp", bodies)
    whole = base64.b64encode(crc64nvme(b"".join(bodies)).to_bytes(8, "big")).decode()
    assert (done["ChecksumCRC64NVME"], done["ChecksumType"]) == (whole, "FULL_OBJECT")
    head = plain.head_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (whole, "FULL_OBJECT")
    a = plain.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"])
    parts = a["ObjectParts"]["Parts"]
    assert [p["ChecksumCRC64NVME"] for p in parts] == [
        base64.b64encode(crc64nvme(b).to_bytes(8, "big")).decode() for b in bodies]
    assert a["ObjectParts"]["TotalPartsCount"] == 2


def test_bucket_tagging(s3, bucket):
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert _code(e) == ("NoSuchTagSet", 404)
    tags = [{"Key": f"k{i}", "Value": f"v{i}"} for i in range(50)]
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": tags})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == tags
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": ""}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": ""}]
    for bad in ([{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}],
                [{"Key": "aws:cost", "Value": "1"}],
                [{"Key": "x" * 129, "Value": ""}],
                [{"Key": f"k{i}", "Value": ""} for i in range(51)]):
        with pytest.raises(ClientError) as e:
            s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": bad})
        assert _code(e) == ("InvalidTag", 400)
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": ""}]
    s3.delete_bucket_tagging(Bucket=bucket)
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket=bucket)
    assert _code(e) == ("NoSuchTagSet", 404)


def test_bucket_tags_die_with_the_bucket_and_stay_with_the_owner(s3, alice):
    s3.create_bucket(Bucket="tagged-then-gone")
    s3.put_bucket_tagging(Bucket="tagged-then-gone",
                          Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    with pytest.raises(ClientError) as e:
        alice.get_bucket_tagging(Bucket="tagged-then-gone")
    assert _code(e) == ("AccessDenied", 403)
    s3.delete_bucket(Bucket="tagged-then-gone")
    s3.create_bucket(Bucket="tagged-then-gone")
    with pytest.raises(ClientError) as e:
        s3.get_bucket_tagging(Bucket="tagged-then-gone")
    assert _code(e) == ("NoSuchTagSet", 404)
    s3.delete_bucket(Bucket="tagged-then-gone")


def test_get_counts_tags(s3, bucket):
    s3.put_object(Bucket=bucket, Key="none", Body=b"x")
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="none")
    s3.put_object(Bucket=bucket, Key="two", Body=b"x", Tagging="a=1&b=")
    assert s3.get_object(Bucket=bucket, Key="two")["TagCount"] == 2
    # Tags changed after the upload are counted too.
    s3.put_object_tagging(Bucket=bucket, Key="two", Tagging={"TagSet": [
        {"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}, {"Key": "c", "Value": "3"}]})
    assert s3.get_object(Bucket=bucket, Key="two")["TagCount"] == 3
    s3.put_object_tagging(Bucket=bucket, Key="none", Tagging={"TagSet": [
        {"Key": "a", "Value": "1"}]})
    assert s3.get_object(Bucket=bucket, Key="none")["TagCount"] == 1
    s3.delete_object_tagging(Bucket=bucket, Key="two")
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="two")
    # A new version starts with the tags it is written with.
    s3.put_object(Bucket=bucket, Key="none", Body=b"y", Tagging="q=1&r=2")
    assert s3.get_object(Bucket=bucket, Key="none")["TagCount"] == 2
    # Tags given to CreateMultipartUpload are the object's.
    _multipart(s3, bucket, "mp", [b"z"], Tagging="m=1")
    assert s3.get_object(Bucket=bucket, Key="mp")["TagCount"] == 1


def test_noncurrent_versions_keep_their_own_tags(s3, bucket):
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=bucket, Key="k", Body=b"1", Tagging="w=1")["VersionId"]
    # Tags set on v1 while it is current, then v1 becomes noncurrent.
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    v2 = s3.put_object(Bucket=bucket, Key="k", Body=b"2")["VersionId"]
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    # Tagging v2 (current) must not take v1's tags away.
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "b", "Value": "2"}]})

    def tags(v):
        return s3.get_object_tagging(Bucket=bucket, Key="k", VersionId=v)["TagSet"]
    assert tags(v1) == [{"Key": "a", "Value": "1"}]
    assert tags(v2) == [{"Key": "b", "Value": "2"}]
    # A noncurrent version's tags set and removed by version id.
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1,
                          Tagging={"TagSet": [{"Key": "c", "Value": "3"}, {"Key": "d", "Value": ""}]})
    assert tags(v1) == [{"Key": "c", "Value": "3"}, {"Key": "d", "Value": ""}]
    assert tags(v2) == [{"Key": "b", "Value": "2"}]
    assert s3.get_object(Bucket=bucket, Key="k", VersionId=v1)["TagCount"] == 2
    s3.delete_object_tagging(Bucket=bucket, Key="k", VersionId=v1)
    assert tags(v1) == []
    assert "TagCount" not in s3.get_object(Bucket=bucket, Key="k", VersionId=v1)
    # Once v2 is deleted, v1 is current again, with its tags.
    s3.put_object_tagging(Bucket=bucket, Key="k", VersionId=v1,
                          Tagging={"TagSet": [{"Key": "e", "Value": "5"}]})
    s3.delete_object(Bucket=bucket, Key="k", VersionId=v2)
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "e", "Value": "5"}]
    assert s3.get_object(Bucket=bucket, Key="k")["TagCount"] == 1
