"""Browser POST uploads (POST /bucket, multipart/form-data): the form's signature, every
policy rule, the fields, the answers, anonymous uploads, and the bounds. Forms are signed the
way boto3's generate_presigned_post signs them (or by `sign` below, for policies boto3 will not
write) and sent with http.client."""
import base64
import datetime
import hashlib
import hmac
import http.client
import json
import os
import urllib.parse
import uuid
import zlib

import pytest
from botocore.exceptions import ClientError

from conftest import Server

REGION = "us-east-1"


def encode_form(fields, data, filename="upload.bin", file_type="application/octet-stream"):
    """A multipart/form-data body: `fields` (name, value) in order, then the file."""
    boundary = "----percore" + uuid.uuid4().hex
    out = []
    for name, value in fields:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                   .encode() + value.encode() + b"\r\n")
    out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
               f'filename="{filename}"\r\nContent-Type: {file_type}\r\n\r\n'.encode())
    out.append(data + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def post(server, bucket, fields, data=b"hello", filename="upload.bin", body=None, referer=None,
         headers=None, path=None):
    """POSTs a form to /bucket (or `path`); returns (status, lowercase headers, body)."""
    if body is None:
        body, ctype = encode_form(list(fields.items()) if isinstance(fields, dict) else fields,
                                  data, filename)
    else:
        body, ctype = body
    host, port = server.endpoint.split("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        try:
            headers = {"Content-Type": ctype, **({"Referer": referer} if referer else {}),
                       **(headers or {})}
            conn.request("POST", path or f"/{bucket}", body=body, headers=headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered before the whole body was sent; the answer is still readable
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def code_of(body):
    text = body.decode()
    return text.split("<Code>", 1)[1].split("</Code>", 1)[0] if "<Code>" in text else None


def presigned(server, bucket, key, fields=None, conditions=None, expires=3600, sigv="s3v4"):
    """boto3's form fields: SigV4 (`s3v4`) or SigV2 (`s3`)."""
    s3 = server.client(signature_version=sigv)
    p = s3.generate_presigned_post(bucket, key, Fields=fields, Conditions=conditions,
                                   ExpiresIn=expires)
    return dict(p["fields"])


def sign(server, conditions, expiration=None, date=None, region=REGION, secret=None,
         access_key=None):
    """The SigV4 form fields of a policy with `conditions` (the signature fields' own
    conditions added), as AWS documents the calculation."""
    now = date or datetime.datetime.now(datetime.timezone.utc)
    if expiration is None:
        expiration = (now + datetime.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    day, stamp = now.strftime("%Y%m%d"), now.strftime("%Y%m%dT%H%M%SZ")
    credential = f"{access_key or server.access_key}/{day}/{region}/s3/aws4_request"
    auth = {"x-amz-algorithm": "AWS4-HMAC-SHA256", "x-amz-credential": credential,
            "x-amz-date": stamp}
    doc = {"expiration": expiration, "conditions": list(conditions) + [{k: v} for k, v in
                                                                      auth.items()]}
    policy = base64.b64encode(json.dumps(doc).encode()).decode()
    signature = signature_of(policy, secret or server.secret_key, day, region)
    return {**auth, "policy": policy, "x-amz-signature": signature}


def signature_of(policy, secret, day, region=REGION):
    """SigV4's signature of a base64 POST policy."""
    key = ("AWS4" + secret).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, policy.encode(), hashlib.sha256).hexdigest()


def stored(s3, bucket, key):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        assert e.response["Error"]["Code"] == "NoSuchKey", e.response
        return None


# --- signatures and the default answer ----------------------------------------------------------


def test_presigned_post_round_trip_and_filename(server, s3, bucket):
    fields = presigned(server, bucket, "uploads/${filename}",
                       conditions=[["starts-with", "$key", "uploads/"],
                                   ["content-length-range", 1, 1000]])
    status, headers, _ = post(server, bucket, fields, b"browser bytes", filename="photo.jpg")
    assert status == 204, headers
    assert stored(s3, bucket, "uploads/photo.jpg") == b"browser bytes"
    assert headers["etag"] == '"%s"' % hashlib.md5(b"browser bytes").hexdigest()
    assert headers["location"].endswith(f"/{bucket}/uploads/photo.jpg")


def test_signature_checks(server, s3, bucket):
    fields = presigned(server, bucket, "k")
    bad = dict(fields, **{"x-amz-signature": "0" * 64})
    status, _, body = post(server, bucket, bad)
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch"), body
    # SigV2 forms (boto3's default signer writes them): checked too.
    v2 = presigned(server, bucket, "v2", sigv="s3")
    assert "signature" in v2 and "AWSAccessKeyId" in v2
    status, _, body = post(server, bucket, dict(v2, signature="AAAA" + v2["signature"][4:]))
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch"), body
    assert post(server, bucket, v2)[0] == 204 and stored(s3, bucket, "v2") == b"hello"
    # The policy is what is signed: changing it breaks the signature.
    doc = json.loads(base64.b64decode(fields["policy"]))
    doc["conditions"].append(["starts-with", "$x-amz-meta-a", ""])
    bad = dict(fields, policy=base64.b64encode(json.dumps(doc).encode()).decode())
    status, _, body = post(server, bucket, bad)
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch"), body
    # Another region in the credential scope.
    status, _, body = post(server, bucket, {"key": "k", **sign(server, [{"key": "k"}],
                                                                   region="eu-west-3")})
    assert status == 400, body
    # A SigV4 policy must pin its signature fields with exact-match conditions (AWS's rule).
    loose = {"key": "k", **sign(server, [{"key": "k"}])}
    doc = json.loads(base64.b64decode(loose["policy"]))
    doc["conditions"] = [c for c in doc["conditions"] if "x-amz-date" not in c]
    doc["conditions"].append(["starts-with", "$x-amz-date", ""])
    loose["policy"] = base64.b64encode(json.dumps(doc).encode()).decode()
    loose["x-amz-signature"] = signature_of(loose["policy"], server.secret_key,
                                            loose["x-amz-credential"].split("/")[1])
    status, _, body = post(server, bucket, loose)
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    assert b"x-amz-date" in body
    # An unknown key.
    status, _, body = post(server, bucket, {"key": "k", **sign(server, [{"key": "k"}],
                                                                   access_key="NOSUCHKEY")})
    assert (status, code_of(body)) == (403, "InvalidAccessKeyId")
    # A form hours old is still good until its policy expires (no 15-minute skew for POST).
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    late = (old + datetime.timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    status, _, body = post(server, bucket, {"key": "k", **sign(server, [{"key": "k"}, {"bucket": bucket}],
                                                                   expiration=late, date=old)})
    assert status == 204, body
    assert stored(s3, bucket, "k") == b"hello"


# --- the policy ---------------------------------------------------------------------------------


def test_expired_policy_is_403(server, s3, bucket):
    past = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1))
    fields = {"key": "k", **sign(server, [{"key": "k"}],
                                 expiration=past.strftime("%Y-%m-%dT%H:%M:%S.000Z"))}
    status, _, body = post(server, bucket, fields)
    assert (status, code_of(body)) == (403, "AccessDenied")
    assert b"Invalid according to Policy: Policy expired." in body
    assert stored(s3, bucket, "k") is None


@pytest.mark.parametrize("expiration", ["tomorrow", "2026-13-45T00:00:00Z", ""])
def test_malformed_expiration_is_400(server, s3, bucket, expiration):
    fields = {"key": "k", **sign(server, [{"key": "k"}], expiration=expiration)}
    status, _, body = post(server, bucket, fields)
    assert (status, code_of(body)) == (400, "InvalidPolicyDocument"), body
    assert stored(s3, bucket, "k") is None


def test_exact_match_both_forms(server, s3, bucket):
    for cond in ({"key": "exact"}, ["eq", "$key", "exact"]):
        status, _, body = post(server, bucket, {"key": "other", **sign(server, [cond])})
        assert (status, code_of(body)) == (403, "AccessDenied"), body
        assert b"Policy Condition failed" in body
        status, _, body = post(server, bucket, {"key": "exact", **sign(server, [cond])})
        assert status == 204, body
    assert stored(s3, bucket, "other") is None and stored(s3, bucket, "exact") == b"hello"


def test_starts_with(server, s3, bucket):
    conds = [["starts-with", "$key", "user/eric/"], ["starts-with", "$Content-Type", "image/"],
             ["starts-with", "$x-amz-meta-note", ""]]
    ok = {"key": "user/eric/a", "Content-Type": "image/png", "x-amz-meta-note": "anything at all"}
    status, _, body = post(server, bucket, {**ok, **sign(server, conds)})
    assert status == 204, body
    for field, value in [("key", "user/bob/a"), ("Content-Type", "text/html")]:
        status, _, body = post(server, bucket, {**ok, field: value, **sign(server, conds)})
        assert (status, code_of(body)) == (403, "AccessDenied"), body
    assert stored(s3, bucket, "user/bob/a") is None


def test_content_length_range(server, s3, bucket):
    fields = presigned(server, bucket, "sized", conditions=[["content-length-range", 5, 10]])
    status, _, body = post(server, bucket, fields, b"x" * 11)
    assert (status, code_of(body)) == (400, "EntityTooLarge"), body
    status, _, body = post(server, bucket, fields, b"x" * 4)
    assert (status, code_of(body)) == (400, "EntityTooSmall"), body
    assert stored(s3, bucket, "sized") is None
    status, _, _ = post(server, bucket, fields, b"x" * 10)
    assert status == 204 and stored(s3, bucket, "sized") == b"x" * 10


def test_every_field_must_be_covered(server, s3, bucket):
    fields = presigned(server, bucket, "k")
    status, _, body = post(server, bucket, {**fields, "x-amz-meta-extra": "1"})
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    assert b"Invalid according to Policy: Extra input fields: x-amz-meta-extra" in body
    assert stored(s3, bucket, "k") is None
    # x-ignore-* fields are exempt.
    status, _, body = post(server, bucket, {**fields, "x-ignore-anything": "1"})
    assert status == 204, body


def test_bucket_condition_is_the_url_bucket(server, s3, bucket):
    fields = {"key": "k", **sign(server, [{"key": "k"}, {"bucket": "some-other-bucket"}])}
    status, _, body = post(server, bucket, fields)
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    fields = {"key": "k", **sign(server, [{"key": "k"}, ["eq", "$bucket", bucket]])}
    assert post(server, bucket, fields)[0] == 204


# --- the fields ---------------------------------------------------------------------------------


def test_success_action_status_and_redirect(server, s3, bucket):
    f = presigned(server, bucket, "s200", fields={"success_action_status": "200"},
                  conditions=[{"success_action_status": "200"}])
    status, _, body = post(server, bucket, f)
    assert status == 200 and body == b""
    f = presigned(server, bucket, "s201", fields={"success_action_status": "201"},
                  conditions=[{"success_action_status": "201"}])
    status, headers, body = post(server, bucket, f, b"created")
    assert status == 201, body
    text = body.decode()
    assert "<PostResponse>" in text and f"<Bucket>{bucket}</Bucket>" in text
    assert "<Key>s201</Key>" in text and f"/{bucket}/s201</Location>" in text
    assert "<ETag>&quot;%s&quot;</ETag>" % hashlib.md5(b"created").hexdigest() in text
    url = "http://127.0.0.1:1/done?x=1"
    f = presigned(server, bucket, "r a", fields={"success_action_redirect": url},
                  conditions=[{"success_action_redirect": url}])
    status, headers, _ = post(server, bucket, f, b"redirected")
    assert status == 303
    loc = urllib.parse.urlsplit(headers["location"])
    q = urllib.parse.parse_qs(loc.query)
    assert loc.path == "/done" and q["x"] == ["1"] and q["bucket"] == [bucket]
    assert q["key"] == ["r a"] and q["etag"] == ['"%s"' % hashlib.md5(b"redirected").hexdigest()]
    assert stored(s3, bucket, "r a") == b"redirected"


def test_object_fields_are_applied(server, s3, bucket):
    tagging = ("<Tagging><TagSet><Tag><Key>team</Key><Value>web ui</Value></Tag>"
               "</TagSet></Tagging>")
    extra = {"Content-Type": "text/plain", "Content-Disposition": "attachment",
             "Cache-Control": "max-age=60", "x-amz-meta-owner": "eric",
             "x-amz-storage-class": "STANDARD_IA", "tagging": tagging}
    f = presigned(server, bucket, "fields", fields=extra,
                  conditions=[{k: v} for k, v in extra.items()])
    status, _, body = post(server, bucket, f, b"with fields")
    assert status == 204, body
    head = s3.head_object(Bucket=bucket, Key="fields")
    assert head["ContentType"] == "text/plain" and head["ContentDisposition"] == "attachment"
    assert head["CacheControl"] == "max-age=60" and head["Metadata"] == {"owner": "eric"}
    assert head["StorageClass"] == "STANDARD_IA"
    tags = s3.get_object_tagging(Bucket=bucket, Key="fields")["TagSet"]
    assert tags == [{"Key": "team", "Value": "web ui"}]
    # A malformed tagging document, an unknown storage class: what a PUT answers.
    for field, value, code in [("tagging", "<Tagging><TagSet>", "MalformedXML"),
                               ("x-amz-storage-class", "NO_SUCH_CLASS", "InvalidStorageClass")]:
        f = presigned(server, bucket, "bad", fields={field: value}, conditions=[{field: value}])
        status, _, body = post(server, bucket, f)
        assert status == 400 and code_of(body) == code, body
    assert stored(s3, bucket, "bad") is None


def test_checksum_and_md5_fields(server, s3, bucket):
    data = b"checked bytes"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    for field, good in [("x-amz-checksum-crc32", crc), ("Content-MD5", md5)]:
        wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode() \
            if field == "Content-MD5" else base64.b64encode(b"\0\0\0\0").decode()
        f = presigned(server, bucket, "sum", fields={field: wrong},
                      conditions=[{field: wrong}])
        status, _, body = post(server, bucket, f, data)
        assert (status, code_of(body)) == (400, "BadDigest"), body
        assert stored(s3, bucket, "sum") is None
        f = presigned(server, bucket, "sum", fields={field: good}, conditions=[{field: good}])
        status, _, body = post(server, bucket, f, data)
        assert status == 204, body
        assert stored(s3, bucket, "sum") == data
        s3.delete_object(Bucket=bucket, Key="sum")


@pytest.mark.parametrize("field,value,header", [
    ("acl", "aws-exec-read", "x-amz-acl"),
    ("x-amz-server-side-encryption-context", "eyJhIjoiYiJ9",
     "x-amz-server-side-encryption-context"),
    # Object Lock on a bucket without it: InvalidRequest, as a PUT (test_object_lock.py has
    # the lock itself).
    ("x-amz-object-lock-legal-hold", "ON", "x-amz-object-lock-legal-hold"),
])
def test_refused_fields_answer_what_put_answers(server, s3, bucket, field, value, header):
    """Fields asking for what percore refuses, or what the bucket cannot give, answer what
    a PUT with the same header answers."""
    def add_header(request, **kwargs):
        request.headers[header] = value
    s3.meta.events.register("before-sign.s3.PutObject", add_header)
    try:
        s3.put_object(Bucket=bucket, Key="refused", Body=b"x")
        put_error = None
    except ClientError as e:
        put_error = (e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"]["Code"])
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", add_header)
    assert put_error is not None
    f = presigned(server, bucket, "refused", fields={field: value}, conditions=[{field: value}])
    status, _, body = post(server, bucket, f)
    assert (status, code_of(body)) == put_error, body
    assert stored(s3, bucket, "refused") is None
    # What percore does is accepted.
    f = presigned(server, bucket, "private", fields={"acl": "private"},
                  conditions=[{"acl": "private"}])
    assert post(server, bucket, f)[0] == 204


def test_a_form_can_lock_what_it_uploads(server, s3):
    s3.create_bucket(Bucket="post-locked", ObjectLockEnabledForBucket=True)
    until = "2099-01-01T00:00:00Z"
    fields = {"x-amz-object-lock-mode": "GOVERNANCE",
              "x-amz-object-lock-retain-until-date": until,
              "x-amz-object-lock-legal-hold": "ON"}
    f = presigned(server, "post-locked", "held", fields=fields,
                  conditions=[{k: v} for k, v in fields.items()])
    status, _, body = post(server, "post-locked", f)
    assert status == 204, body
    assert s3.get_object_legal_hold(Bucket="post-locked", Key="held")["LegalHold"] == {
        "Status": "ON"}
    retention = s3.get_object_retention(Bucket="post-locked", Key="held")["Retention"]
    assert retention["Mode"] == "GOVERNANCE" and retention["RetainUntilDate"].year == 2099
    version = s3.head_object(Bucket="post-locked", Key="held")["VersionId"]
    with pytest.raises(ClientError) as e:
        s3.delete_object(Bucket="post-locked", Key="held", VersionId=version)
    assert e.value.response["Error"]["Code"] == "AccessDenied"


# --- anonymous uploads --------------------------------------------------------------------------


def test_anonymous_post_needs_a_bucket_policy(server, s3, bucket):
    status, _, body = post(server, bucket, {"key": "drop/a.txt"}, b"anon")
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject",
                       "Resource": f"arn:aws:s3:::{bucket}/drop/*"}]}))
    status, _, body = post(server, bucket, {"key": "drop/${filename}"}, b"anon",
                           filename="a.txt")
    assert status == 204, body
    assert stored(s3, bucket, "drop/a.txt") == b"anon"
    # Outside the allowed prefix: refused. With a public ACL the policy does not forbid: the
    # object is the bucket owner's, readable by anyone.
    status, _, body = post(server, bucket, {"key": "other/a.txt"}, b"anon")
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    status, _, body = post(server, bucket, {"key": "drop/b.txt", "acl": "public-read"}, b"anon")
    assert status == 204, body
    from conftest import anon_client
    got = anon_client(server).get_object(Bucket=bucket, Key="drop/b.txt")["Body"].read()
    assert got == b"anon"
    # An unsigned policy binds nobody: refused.
    status, _, body = post(server, bucket, {"key": "drop/c.txt", "policy": "e30="}, b"anon")
    assert status == 400, body
    assert stored(s3, bucket, "other/a.txt") is None and stored(s3, bucket, "drop/c.txt") is None


def test_another_users_form_needs_the_bucket_policy(server, s3, bucket):
    alice = dict(access_key="ALICEACCESSKEY000001",
                 secret="alice-secret-key-0000000000000000000001")
    fields = {"key": "k", **sign(server, [{"key": "k"}], **alice)}
    status, _, body = post(server, bucket, fields)
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::percore:user/alice"},
                       "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{bucket}/*",
                       "Condition": {"StringEquals": {"aws:Referer": "http://app.example/"}}}]}))
    status, _, body = post(server, bucket, fields)
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    status, _, body = post(server, bucket, fields, referer="http://app.example/")
    assert status == 204, body
    assert stored(s3, bucket, "k") == b"hello"


def test_unknown_amz_field_is_refused(server, s3, bucket):
    f = presigned(server, bucket, "k", fields={"x-amz-tagging": "a=b"},
                  conditions=[{"x-amz-tagging": "a=b"}])
    status, _, body = post(server, bucket, f)
    assert (status, code_of(body)) == (501, "NotImplemented"), body
    assert stored(s3, bucket, "k") is None


def test_anonymous_post_to_a_missing_bucket(server):
    status, _, body = post(server, "no-such-bucket-post", {"key": "k"})
    assert (status, code_of(body)) == (404, "NoSuchBucket"), body


# --- bounds and broken forms --------------------------------------------------------------------


def test_huge_field_is_400(server, s3, bucket):
    fields = presigned(server, bucket, "k")
    fields["x-amz-meta-big"] = "v" * (1024 * 1024)
    status, _, body = post(server, bucket, fields)
    assert (status, code_of(body)) == (400, "MaxPostPreDataLengthExceededError"), body
    assert stored(s3, bucket, "k") is None


def test_form_without_file_or_key(server, s3, bucket):
    fields = presigned(server, bucket, "k")
    boundary = "b0undary"
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n'
                   for n, v in fields.items()) + f"--{boundary}--\r\n"
    status, _, reply = post(server, bucket, None,
                            body=(body.encode(), f"multipart/form-data; boundary={boundary}"))
    assert (status, code_of(reply)) == (400, "InvalidArgument"), reply
    no_key = {k: v for k, v in fields.items() if k != "key"}
    status, _, reply = post(server, bucket, no_key)
    assert status in (400, 403), reply


def test_cut_file_is_never_stored(server, s3, bucket):
    fields = presigned(server, bucket, "cut")
    body, ctype = encode_form(list(fields.items()), b"z" * 100_000)
    cut = body[:-2000]  # inside the file: no closing boundary
    status, _, reply = post(server, bucket, None, body=(cut, ctype))
    assert status == 400, reply
    assert stored(s3, bucket, "cut") is None


def rss_peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_large_file_is_streamed_not_buffered(server, s3, bucket):
    size = 96 * 1024 * 1024
    data = os.urandom(1024 * 1024) * 96
    fields = presigned(server, bucket, "big")
    # Warm up the allocator and the store path with an upload of the same size first (the
    # first large write grows the process's pools by tens of MiB once, measured), then reset
    # the peak to the current RSS (Linux: clear_refs 5) so the next peak is this upload's.
    status, _, body = post(server, bucket, presigned(server, bucket, "warm"), data)
    assert status == 204, body
    with open(f"/proc/{server.proc.pid}/clear_refs", "w") as f:
        f.write("5")
    before = rss_kib(server.proc.pid)
    status, headers, body = post(server, bucket, fields, data)
    assert status == 204, body
    grown_mib = (rss_peak_kib(server.proc.pid) - before) / 1024
    # Held whole, the file alone would add 96 MiB; streamed, a few stripes are in flight.
    assert grown_mib < 48, grown_mib
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == size
    assert head["ETag"] == '"%s"' % hashlib.md5(data).hexdigest()


def test_virtual_host_style_and_header_auth(tmp_path):
    srv = Server(str(tmp_path / "d"), extra=("--domain", "s3.local"))
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="vhost-post")
        fields = presigned(srv, "vhost-post", "v/${filename}")
        port = srv.endpoint.rsplit(":", 1)[1]
        status, headers, body = post(srv, None, fields, b"by host", filename="x.txt", path="/",
                                     headers={"Host": f"vhost-post.s3.local:{port}"})
        assert status == 204, body
        assert headers["location"] == f"http://vhost-post.s3.local:{port}/v/x.txt"
        assert stored(s3, "vhost-post", "v/x.txt") == b"by host"
        # A form is signed by its fields: an Authorization header is refused, not trusted.
        status, _, body = post(srv, "vhost-post", fields,
                               headers={"Authorization": "AWS4-HMAC-SHA256 Credential=x"})
        assert (status, code_of(body)) == (400, "InvalidRequest"), body
    finally:
        assert srv.stop() == 0


def test_policies_see_the_forms_auth_type_and_signature_version(server, s3, bucket):
    # A signed form is s3:authType POST with s3:signatureversion AWS4-HMAC-SHA256 or AWS.
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
             "Resource": f"arn:aws:s3:::{bucket}/*",
             "Condition": {"StringNotEquals": {"s3:signatureversion": "AWS4-HMAC-SHA256"}}},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject",
             "Resource": f"arn:aws:s3:::{bucket}/nopost/*",
             "Condition": {"StringEquals": {"s3:authType": "POST"}}}]}))
    status, _, body = post(server, bucket, presigned(server, bucket, "v2", sigv="s3"))
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    status, _, body = post(server, bucket, presigned(server, bucket, "v4"))
    assert status == 204, body
    status, _, body = post(server, bucket, presigned(server, bucket, "nopost/k"))
    assert (status, code_of(body)) == (403, "AccessDenied"), body
    # The same key by a signed PUT (REST-HEADER) is not a POST.
    s3.put_object(Bucket=bucket, Key="nopost/k", Body=b"put")
    assert stored(s3, bucket, "v4") == b"hello"


def test_sse_c_fields_encrypt_the_upload(server, s3, bucket):
    # The form's SSE-C fields are a PUT's SSE-C headers: the object is stored encrypted under
    # the key, and read back only with it; a bad key MD5 stores nothing.
    raw = b"k" * 32
    key = base64.b64encode(raw).decode()
    md5 = base64.b64encode(hashlib.md5(raw).digest()).decode()
    sse = {"x-amz-server-side-encryption-customer-algorithm": "AES256",
           "x-amz-server-side-encryption-customer-key": key,
           "x-amz-server-side-encryption-customer-key-md5": md5}
    f = presigned(server, bucket, "k", fields=sse, conditions=[{k: v} for k, v in sse.items()])
    status, _, body = post(server, bucket, f, b"posted secret")
    assert status == 204, body
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=bucket, Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    got = s3.get_object(Bucket=bucket, Key="k", SSECustomerAlgorithm="AES256",
                        SSECustomerKey=raw)
    assert got["Body"].read() == b"posted secret"
    bad = dict(sse, **{"x-amz-server-side-encryption-customer-key-md5": key})
    f = presigned(server, bucket, "bad", fields=bad, conditions=[{k: v} for k, v in bad.items()])
    status, _, body = post(server, bucket, f)
    assert (status, code_of(body)) == (400, "InvalidArgument"), body
    assert stored(s3, bucket, "bad") is None
