"""Authentication holes found on main, each refused now (s3api/src/access.rs): unsigned x-amz-*
headers, an unsigned host, unbounded presigned lifetimes, the credential scope's region, SigV2
dates, reserved bucket names, digests of XML bodies, malformed x-amz-content-sha256, aws-chunked
bodies cut before their final chunk or with a wrong chunk signature, SigV4 dated by Date, session
tokens (no temporary credentials here)."""
import base64
import email.utils
import hashlib
import hmac
import socket
import time

import boto3
import pytest
import urllib.error
import urllib.request
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError


def send(server, method, path, headers, body=b""):
    """Sends a request exactly as given (no client library fixing it up); returns status, body."""
    host = server.endpoint.split("//", 1)[1]
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items() if k.lower() != "host")
    head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    h, p = host.split(":")
    with socket.create_connection((h, int(p)), timeout=10) as c:
        c.sendall(head.encode() + body)
        reply = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            reply += chunk
    status = int(reply.split(b" ", 2)[1])
    return status, reply.split(b"\r\n\r\n", 1)[-1]


def fetch(url, method="GET", data=None, headers=None):
    """(status, body) of a plain HTTP request: presigned URLs need no client library."""
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def signed_headers(server, method, path, body=b"", headers=None, region="us-east-1"):
    req = AWSRequest(method=method, url=server.endpoint + path, data=body,
                     headers=dict(headers or {}, **{"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}))
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", region).add_auth(req)
    return dict(req.prepare().headers.items())


def test_unsigned_copy_source_is_refused(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="secret", Body=b"the secret")
    headers = signed_headers(server, "PUT", f"/{bucket}/innocent", b"hello")
    # Added after signing: on main this turned the PUT into a copy of another object.
    headers["x-amz-copy-source"] = f"/{bucket}/secret"
    status, body = send(server, "PUT", f"/{bucket}/innocent", headers, b"hello")
    assert status == 403 and b"AccessDenied" in body and b"not signed" in body, body
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="innocent")


@pytest.mark.parametrize("name,value", [
    ("x-amz-meta-owner", "mallory"),
    ("x-amz-storage-class", "STANDARD_IA"),
    ("x-amz-tagging", "a=b"),
])
def test_unsigned_amz_headers_are_refused(server, s3, bucket, name, value):
    headers = signed_headers(server, "PUT", f"/{bucket}/k", b"v")
    headers[name] = value
    status, body = send(server, "PUT", f"/{bucket}/k", headers, b"v")
    assert status == 403 and b"AccessDenied" in body, body
    # The same header, signed, works.
    headers = signed_headers(server, "PUT", f"/{bucket}/k", b"v", headers={name: value})
    status, body = send(server, "PUT", f"/{bucket}/k", headers, b"v")
    assert status == 200, body


def test_host_must_be_signed(server, bucket):
    class NoHost(S3SigV4Auth):
        def headers_to_sign(self, request):
            h = super().headers_to_sign(request)
            del h["host"]
            return h

    req = AWSRequest(method="GET", url=server.endpoint + f"/{bucket}?list-type=2",
                     headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    NoHost(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(req)
    status, body = send(server, "GET", f"/{bucket}?list-type=2", dict(req.prepare().headers.items()))
    assert status == 403 and b"AccessDenied" in body, body


def v4_client(server, region="us-east-1"):
    """boto3 presigns with SigV2 for a custom endpoint unless told otherwise."""
    import boto3
    return boto3.client("s3", endpoint_url=server.endpoint, region_name=region,
                        aws_access_key_id=server.access_key,
                        aws_secret_access_key=server.secret_key,
                        config=Config(signature_version="s3v4", retries={"max_attempts": 1},
                                      s3={"addressing_style": "path"}))


def test_presigned_lifetime_is_at_most_a_week(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    s3 = v4_client(server)
    ok = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"},
                                   ExpiresIn=604800)
    assert fetch(ok) == (200, b"v")
    for expires in [604801, 2**32 - 1]:
        url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"},
                                        ExpiresIn=expires)
        status, body = fetch(url)
        assert status == 400 and b"AuthorizationQueryParametersError" in body, body


def test_presigned_with_unsigned_amz_header_is_refused(server, bucket):
    s3 = v4_client(server)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "p"},
                                    ExpiresIn=60)
    status, body = fetch(url, "PUT", b"v", {"x-amz-storage-class": "GLACIER"})
    assert status == 403, body
    assert fetch(url, "PUT", b"v")[0] == 200


@pytest.mark.parametrize("region", ["eu-west-1", "us-west-2"])
def test_credential_scope_region_must_match(server, bucket, region):
    other = v4_client(server, region)
    with pytest.raises(ClientError) as e:
        other.list_objects_v2(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "AuthorizationHeaderMalformed"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    url = other.generate_presigned_url("list_objects_v2", Params={"Bucket": bucket})
    status, body = fetch(url)
    assert status == 400 and b"AuthorizationQueryParametersError" in body, body


def test_empty_region_in_scope_is_refused(server, bucket):
    headers = signed_headers(server, "GET", f"/{bucket}?list-type=2", region="")
    status, body = send(server, "GET", f"/{bucket}?list-type=2", headers)
    assert status == 400 and b"AuthorizationHeaderMalformed" in body, body


def sigv2(server, method, path, date):
    string_to_sign = f"{method}\n\n\n{date}\n{path}"
    sig = base64.b64encode(hmac.new(server.secret_key.encode(), string_to_sign.encode(),
                                    hashlib.sha1).digest()).decode()
    return {"Date": date, "Authorization": f"AWS {server.access_key}:{sig}"}


def test_sigv2_date_is_checked(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v2")
    now = email.utils.formatdate(time.time(), usegmt=True)
    status, body = send(server, "GET", f"/{bucket}/k", sigv2(server, "GET", f"/{bucket}/k", now))
    assert status == 200 and body == b"v2", body
    # A captured request replayed a year later: on main it still worked.
    old = email.utils.formatdate(time.time() - 365 * 86400, usegmt=True)
    status, body = send(server, "GET", f"/{bucket}/k", sigv2(server, "GET", f"/{bucket}/k", old))
    assert status == 403 and b"RequestTimeTooSkewed" in body, body


@pytest.mark.parametrize("name", ["sthree-abc", "abc-s3alias", "abc--ol-s3",
                                  "amzn-s3-demo-abc", "a.-b", "a-.b", "xn--abc"])
def test_reserved_bucket_names_are_invalid(s3, name):
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket=name)
    assert e.value.response["Error"]["Code"] == "InvalidBucketName"


def delete_xml(*keys):
    objs = "".join(f"<Object><Key>{k}</Key></Object>" for k in keys)
    return f"<Delete>{objs}</Delete>".encode()


def b64(raw):
    return base64.b64encode(raw).decode()


def test_delete_objects_with_wrong_content_md5_deletes_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    s3.put_object(Bucket=bucket, Key="b", Body=b"2")
    body = delete_xml("a", "b")
    path = f"/{bucket}?delete"
    # On main this deleted both objects.
    wrong = {"Content-MD5": b64(hashlib.md5(b"something else").digest())}
    status, reply = send(server, "POST", path, signed_headers(server, "POST", path, body, wrong), body)
    assert status == 400 and b"<Code>BadDigest</Code>" in reply and b"<RequestId>" in reply, reply
    assert sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]) == ["a", "b"]
    malformed = {"Content-MD5": "not base64!"}
    status, reply = send(server, "POST", path,
                         signed_headers(server, "POST", path, body, malformed), body)
    assert status == 400 and b"<Code>InvalidDigest</Code>" in reply, reply
    short = {"Content-MD5": b64(b"0123")}
    status, reply = send(server, "POST", path, signed_headers(server, "POST", path, body, short), body)
    assert status == 400 and b"<Code>InvalidDigest</Code>" in reply, reply
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 2
    right = {"Content-MD5": b64(hashlib.md5(body).digest())}
    status, reply = send(server, "POST", path, signed_headers(server, "POST", path, body, right), body)
    assert status == 200, reply
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("header,digest", [
    ("x-amz-checksum-sha256", lambda b: hashlib.sha256(b).digest()),
    ("x-amz-checksum-sha1", lambda b: hashlib.sha1(b).digest()),
    ("x-amz-checksum-crc32", lambda b: __import__("zlib").crc32(b).to_bytes(4, "big")),
])
def test_delete_objects_with_wrong_checksum_deletes_nothing(server, s3, bucket, header, digest):
    s3.put_object(Bucket=bucket, Key="a", Body=b"1")
    body = delete_xml("a")
    path = f"/{bucket}?delete"
    wrong = {header: b64(digest(b"other"))}
    status, reply = send(server, "POST", path, signed_headers(server, "POST", path, body, wrong), body)
    assert status == 400 and b"<Code>BadDigest</Code>" in reply, reply
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["a"]
    malformed = {header: b64(b"x")}
    status, reply = send(server, "POST", path,
                         signed_headers(server, "POST", path, body, malformed), body)
    assert status == 400 and b"<Code>InvalidRequest</Code>" in reply, reply
    right = {header: b64(digest(body))}
    status, reply = send(server, "POST", path, signed_headers(server, "POST", path, body, right), body)
    assert status == 200, reply
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_wrong_content_md5_on_tagging_changes_nothing(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    body = (b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>")
    path = f"/{bucket}/k?tagging"
    wrong = {"Content-MD5": b64(hashlib.md5(b"x").digest())}
    status, reply = send(server, "PUT", path, signed_headers(server, "PUT", path, body, wrong), body)
    assert status == 400 and b"BadDigest" in reply, reply
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    # boto3 itself (which sends a checksum of its own) still works.
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [{"Key": "a", "Value": "b"}]


def signed_with_content_sha256(server, method, path, value):
    class Fixed(S3SigV4Auth):
        def payload(self, request):
            return value

    req = AWSRequest(method=method, url=server.endpoint + path,
                     headers={"x-amz-content-sha256": value})
    Fixed(Credentials(server.access_key, server.secret_key), "s3", "us-east-1").add_auth(req)
    return dict(req.prepare().headers.items())


@pytest.mark.parametrize("value", ["notahash", "A" * 64, "unsigned-payload"])
def test_malformed_content_sha256_is_invalid_argument(server, bucket, value):
    path = f"/{bucket}?list-type=2"
    status, reply = send(server, "GET", path, signed_with_content_sha256(server, "GET", path, value))
    # s3s answered 403 SignatureDoesNotMatch, which blames the key.
    assert status == 400 and b"<Code>InvalidArgument</Code>" in reply, reply
    assert b"<RequestId>" in reply, reply
    ok = signed_with_content_sha256(server, "GET", path, "UNSIGNED-PAYLOAD")
    assert send(server, "GET", path, ok)[0] == 200


def streaming_put(server, path, chunks, mode="STREAMING-AWS4-HMAC-SHA256-PAYLOAD", cut=None,
                  tamper=False):
    """A hand-made aws-chunked PUT: `chunks` of data, then the zero-length chunk. botocore does
    not sign chunks, so the SigV4 chunk chain is computed here. `cut` drops the body from that
    many bytes before its end; `tamper` flips a byte of the first chunk after signing."""
    decoded = sum(len(c) for c in chunks)
    headers = {"x-amz-content-sha256": mode, "x-amz-decoded-content-length": str(decoded),
               "content-encoding": "aws-chunked"}

    class Fixed(S3SigV4Auth):
        def payload(self, request):
            return mode

    req = AWSRequest(method="PUT", url=server.endpoint + path, headers=headers)
    signer = Fixed(Credentials(server.access_key, server.secret_key), "s3", "us-east-1")
    signer.add_auth(req)
    headers = {k: v for k, v in req.prepare().headers.items() if k.lower() != "content-length"}
    amz_date = headers["X-Amz-Date"]
    prev = headers["Authorization"].rsplit("Signature=", 1)[1]
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"

    def h(key, msg):
        return hmac.new(key, msg.encode() if isinstance(msg, str) else msg, hashlib.sha256)

    key = h(h(h(h(("AWS4" + server.secret_key).encode(), amz_date[:8]).digest(),
                "us-east-1").digest(), "s3").digest(), "aws4_request").digest()
    empty = hashlib.sha256(b"").hexdigest()
    body = b""
    for i, data in enumerate(list(chunks) + [b""]):
        if mode.startswith("STREAMING-AWS4-HMAC"):
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty,
                             hashlib.sha256(data).hexdigest()])
            prev = h(key, sts).hexdigest()
            if tamper and i == 0:
                data = bytes([data[0] ^ 1]) + data[1:]
            body += f"{len(data):x};chunk-signature={prev}\r\n".encode() + data + b"\r\n"
        else:
            body += f"{len(data):x}\r\n".encode() + data + (b"\r\n" if data else b"")
    if not mode.startswith("STREAMING-AWS4-HMAC"):
        crc = __import__("zlib").crc32(b"".join(chunks)).to_bytes(4, "big")
        body += f"x-amz-checksum-crc32:{b64(crc)}\r\n\r\n".encode()
    if cut:
        body = body[:-cut]
    return send(server, "PUT", path, headers, body)


def missing(s3, bucket, key):
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket=bucket, Key=key)
    return e.value.response["Error"]["Code"] in ("404", "NoSuchKey")


def test_streaming_upload_works(server, s3, bucket):
    status, reply = streaming_put(server, f"/{bucket}/s", [b"a" * 1000, b"b" * 10])
    assert status == 200, reply
    assert s3.get_object(Bucket=bucket, Key="s")["Body"].read() == b"a" * 1000 + b"b" * 10


def test_streaming_upload_cut_before_final_chunk_stores_nothing(server, s3, bucket):
    # Every data chunk arrived, signed, but not the zero-length chunk that ends the body
    # (the final chunk line is "0;chunk-signature=<64 hex>\r\n\r\n", 86 bytes): on main the
    # object was stored.
    status, reply = streaming_put(server, f"/{bucket}/cut", [b"a" * 1000, b"b" * 10], cut=86)
    assert status == 400 and b"<Code>IncompleteBody</Code>" in reply, reply
    assert missing(s3, bucket, "cut")


def test_streaming_upload_cut_mid_chunk_stores_nothing(server, s3, bucket):
    status, reply = streaming_put(server, f"/{bucket}/cut", [b"a" * 1000, b"b" * 10], cut=100)
    assert status == 400 and b"<Code>IncompleteBody</Code>" in reply, reply
    assert missing(s3, bucket, "cut")


def test_sigv4_with_date_instead_of_x_amz_date(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"dated")
    now = email.utils.formatdate(time.time(), usegmt=True)
    # botocore signs Date and sends no X-Amz-Date when the request has a Date; AWS accepts it,
    # s3s answered 400 "missing header: x-amz-date".
    headers = signed_headers(server, "GET", f"/{bucket}/k", headers={"Date": now})
    assert "date" in headers["Authorization"] and "X-Amz-Date" not in headers, headers
    assert send(server, "GET", f"/{bucket}/k", headers) == (200, b"dated")
    # Both headers: x-amz-date is the one signed with.
    headers = signed_headers(server, "GET", f"/{bucket}/k")
    headers["Date"] = email.utils.formatdate(time.time() - 86400, usegmt=True)
    assert send(server, "GET", f"/{bucket}/k", headers) == (200, b"dated")
    # The x-amz-date made from Date is not a way around the unsigned-header rule.
    headers = signed_headers(server, "GET", f"/{bucket}/k", headers={"Date": now})
    headers["x-amz-meta-x"] = "y"
    assert send(server, "GET", f"/{bucket}/k", headers)[0] == 403


def test_bad_chunk_signature_is_signature_does_not_match(server, s3, bucket):
    # s3s found it and the upload failed, but as 400 IncompleteBody; AWS says 403.
    status, reply = streaming_put(server, f"/{bucket}/t", [b"a" * 1000, b"b" * 10], tamper=True)
    assert status == 403 and b"<Code>SignatureDoesNotMatch</Code>" in reply, reply
    assert b"<RequestId>" in reply, reply
    assert missing(s3, bucket, "t")


def test_session_tokens_are_refused_not_ignored(server, s3, bucket):
    # percore has no temporary credentials: a request carrying a session token (header or
    # presigned query) answers NotImplemented instead of being judged by its key alone.
    s3.put_object(Bucket=bucket, Key="t", Body=b"x")
    with_token = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        aws_session_token="FQoGZXIvYXdzEBogus",
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    for call in (lambda: with_token.get_object(Bucket=bucket, Key="t"),
                 lambda: with_token.put_object(Bucket=bucket, Key="u", Body=b"y"),
                 lambda: with_token.list_objects_v2(Bucket=bucket)):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == "NotImplemented"
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 501
    url = with_token.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "t"})
    assert "x-amz-security-token=" in url.lower()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(url, timeout=10)
    assert e.value.code == 501 and b"<Code>NotImplemented</Code>" in e.value.read()
    assert "u" not in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    # Without the token the same key works.
    assert s3.get_object(Bucket=bucket, Key="t")["Body"].read() == b"x"
