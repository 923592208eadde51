"""`percore user …` against a running `percore serve`: users created and deleted while it runs
(the server re-reads users.toml within a second, and on SIGHUP), and identity policies judged
with bucket policies (s3api/src/identity.rs gives the rule)."""
import json
import os
import re
import signal
import subprocess
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from conftest import Server, percore_bin

ALLOW_ALL = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as data:
        extra = os.path.join(data, "extra-users.toml")
        with open(extra, "w") as f:
            f.write('[[user]]\nname = "hup"\naccess_key = "HUPACCESSKEY00000001"\n'
                    'secret_key = "hup-secret-key-000000000000000000000001"\n')
        s = Server(os.path.join(data, "d"), cores=1, extra=("--users", extra))
        s.extra_users = extra
        yield s
        assert s.stop() == 0


def cli(server, *args, stdin=None):
    return subprocess.run([percore_bin(), *args, "--data", server.data], input=stdin,
                          capture_output=True, text=True, timeout=60)


def create_user(server, name):
    out = cli(server, "user", "create", name)
    assert out.returncode == 0, out.stderr
    fields = dict(re.findall(r"^(\w+): (.*)$", out.stdout, re.M))
    return fields["access_key"], fields["secret_key"]


def set_policy(server, name, *statements):
    doc = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    out = cli(server, "user", "policy", "set", name, "-", stdin=doc)
    assert out.returncode == 0, out.stderr


def code_of(call):
    try:
        call()
        return None
    except ClientError as e:
        return e.response["Error"]["Code"]


def wait_for(what, predicate, timeout=5.0):
    """Polls `predicate` until true; the server reloads users within about a second."""
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.1)


def wait_refused(what, call, code="AccessDenied"):
    wait_for(what, lambda: code_of(call) == code)


def new_bucket(client, name):
    client.create_bucket(Bucket=name)
    return name


def test_create_list_and_delete_users_while_serving(server):
    key, secret = create_user(server, "ann")
    ann = server.client(key, secret)
    t0 = time.time()
    wait_for("a new user's key works", lambda: code_of(ann.list_buckets) is None)
    assert time.time() - t0 < 3
    new_bucket(ann, "ann-bucket")
    ann.put_object(Bucket="ann-bucket", Key="k", Body=b"data")

    listed = cli(server, "user", "list")
    assert listed.returncode == 0, listed.stderr
    assert re.search(rf"^ann\t{key}\t-$", listed.stdout, re.M), listed.stdout
    assert secret not in listed.stdout
    assert oct(os.stat(os.path.join(server.data, "users.toml")).st_mode & 0o777) == "0o600"

    # Deleted: 403 InvalidAccessKeyId within about a second; the bucket and data stay.
    out = cli(server, "user", "delete", "ann")
    assert out.returncode == 0, out.stderr
    t0 = time.time()
    wait_refused("a deleted user's key stops", ann.list_buckets, "InvalidAccessKeyId")
    assert time.time() - t0 < 3
    with pytest.raises(ClientError) as e:
        ann.get_object(Bucket="ann-bucket", Key="k")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "ann" not in cli(server, "user", "list").stdout
    # `key create` is the old name of `user create`.
    out = subprocess.run([percore_bin(), "key", "create", "old-style", "--data", server.data],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "secret_key: " in out.stdout, out.stderr
    assert "old-style" in cli(server, "user", "list").stdout
    fields = dict(re.findall(r"^(\w+): (.*)$", out.stdout, re.M))
    old = server.client(fields["access_key"], fields["secret_key"])
    wait_for("the old-style user's key works", lambda: code_of(old.list_buckets) is None)


def test_sighup_reloads_a_file_the_watch_cannot_see_change(server):
    hup = server.client("HUPACCESSKEY00000001", "hup-secret-key-000000000000000000000001")
    assert code_of(hup.list_buckets) is None
    time.sleep(1.5)  # any reload of an earlier change is done
    # Same inode, same size, same modification time: only SIGHUP reloads it.
    st = os.stat(server.extra_users)
    with open(server.extra_users, "r+") as f:
        text = f.read()
        f.seek(0)
        f.write(text.replace("HUPACCESSKEY00000001", "HUPACCESSKEY00000002"))
    os.utime(server.extra_users, ns=(st.st_atime_ns, st.st_mtime_ns))
    time.sleep(2.5)
    assert code_of(hup.list_buckets) is None, "reloaded without SIGHUP: the test proves nothing"
    server.proc.send_signal(signal.SIGHUP)
    wait_refused("SIGHUP reloads the users", hup.list_buckets, "InvalidAccessKeyId")
    moved = server.client("HUPACCESSKEY00000002", "hup-secret-key-000000000000000000000001")
    assert code_of(moved.list_buckets) is None


def test_cli_refuses_bad_policies_and_root(server):
    create_user(server, "pat")
    with_principal = json.dumps({"Version": "2012-10-17", "Statement": [
        {**ALLOW_ALL, "Principal": "*"}]})
    out = cli(server, "user", "policy", "set", "pat", "-", stdin=with_principal)
    assert out.returncode != 0
    assert "MalformedPolicy" in out.stderr and "Principal" in out.stderr, out.stderr
    out = cli(server, "user", "policy", "set", "pat", "-", stdin='{"Version": "2012-10-17",')
    assert out.returncode != 0
    assert "MalformedPolicy" in out.stderr and "JSON" in out.stderr, out.stderr
    out = cli(server, "user", "policy", "get", "pat")
    assert out.returncode != 0 and "no identity policy" in out.stderr
    out = cli(server, "user", "policy", "set", "root", "-", stdin=json.dumps(
        {"Version": "2012-10-17", "Statement": [ALLOW_ALL]}))
    assert out.returncode != 0 and "root" in out.stderr
    assert cli(server, "user", "delete", "root").returncode != 0
    assert cli(server, "user", "create", "pat").returncode != 0
    assert cli(server, "user", "delete", "nobody").returncode != 0
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        doc = {"Version": "2012-10-17", "Statement": [ALLOW_ALL]}
        json.dump(doc, f)
        f.flush()
        out = cli(server, "user", "policy", "set", "pat", f.name)
        assert out.returncode == 0, out.stderr
    got = cli(server, "user", "policy", "get", "pat")
    assert json.loads(got.stdout) == doc
    assert re.search(r"^pat\t\w+\tidentity-policy$", cli(server, "user", "list").stdout, re.M)
    assert cli(server, "user", "policy", "delete", "pat").returncode == 0
    # The root's requests are never judged by identity policies.
    assert code_of(server.client().list_buckets) is None


def test_identity_deny_refuses_the_owner(server):
    bob = server.client(*create_user(server, "bob"))
    wait_for("bob's key works", lambda: code_of(bob.list_buckets) is None)
    new_bucket(bob, "bob-bucket")
    for k in ("a", "b"):
        bob.put_object(Bucket="bob-bucket", Key=k, Body=b"x")
    set_policy(server, "bob", ALLOW_ALL,
               {"Effect": "Deny", "Action": "s3:DeleteObject",
                "Resource": "arn:aws:s3:::bob-bucket/*"})
    # (Polled on a key that does not exist: a delete before the policy applies removes nothing.)
    wait_refused("the Deny applies",
                 lambda: bob.delete_object(Bucket="bob-bucket", Key="absent"))
    assert code_of(lambda: bob.delete_object(Bucket="bob-bucket", Key="a")) == "AccessDenied"
    out = bob.delete_objects(Bucket="bob-bucket", Delete={"Objects": [{"Key": "b"}]})
    assert [e["Code"] for e in out.get("Errors", [])] == ["AccessDenied"]
    assert bob.get_object(Bucket="bob-bucket", Key="a")["Body"].read() == b"x"
    bob.put_object(Bucket="bob-bucket", Key="c", Body=b"y")
    # Removed: the owner may delete again.
    assert cli(server, "user", "policy", "delete", "bob").returncode == 0
    wait_for("the Deny is gone",
             lambda: code_of(lambda: bob.delete_object(Bucket="bob-bucket", Key="a")) is None)


def test_own_bucket_needs_an_allow_in_either_policy(server):
    fay = server.client(*create_user(server, "fay"))
    wait_for("fay's key works", lambda: code_of(fay.list_buckets) is None)
    new_bucket(fay, "fay-bucket")
    fay.put_object(Bucket="fay-bucket", Key="k", Body=b"x")
    set_policy(server, "fay", {"Effect": "Allow", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::fay-bucket/*"})
    put = lambda: fay.put_object(Bucket="fay-bucket", Key="k2", Body=b"y")  # noqa: E731
    wait_refused("the identity policy restricts its owner", put)
    assert fay.get_object(Bucket="fay-bucket", Key="k")["Body"].read() == b"x"
    assert code_of(fay.list_buckets) == "AccessDenied"
    assert code_of(lambda: fay.create_bucket(Bucket="fay-two")) == "AccessDenied"
    # The policy operations stay the owner's, but need the identity policy's Allow too.
    bucket_policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "fay"}, "Action": "s3:PutObject",
         "Resource": "arn:aws:s3:::fay-bucket/*"}]}
    assert code_of(lambda: fay.put_bucket_policy(
        Bucket="fay-bucket", Policy=json.dumps(bucket_policy))) == "AccessDenied"
    set_policy(server, "fay",
               {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutBucketPolicy"],
                "Resource": ["arn:aws:s3:::fay-bucket/*", "arn:aws:s3:::fay-bucket"]})
    wait_for("fay may set the bucket policy", lambda: code_of(lambda: fay.put_bucket_policy(
        Bucket="fay-bucket", Policy=json.dumps(bucket_policy))) is None)
    # Same owner: the bucket policy's Allow is enough.
    assert code_of(put) is None


def test_another_users_bucket_needs_both_policies(server):
    dan = server.client(*create_user(server, "dan"))
    cat = server.client(*create_user(server, "cat"))
    eve = server.client(*create_user(server, "eve"))
    wait_for("the keys work", lambda: code_of(eve.list_buckets) is None)
    new_bucket(dan, "dan-bucket")
    dan.put_object(Bucket="dan-bucket", Key="k", Body=b"dan's")
    get = lambda c: lambda: c.get_object(Bucket="dan-bucket", Key="k")  # noqa: E731
    set_policy(server, "cat", {"Effect": "Allow", "Action": "s3:GetObject",
                               "Resource": "arn:aws:s3:::dan-bucket/*"})
    set_policy(server, "eve", {"Effect": "Allow", "Action": "s3:ListBucket",
                               "Resource": "arn:aws:s3:::dan-bucket"})
    wait_refused("eve's own bucket calls need an Allow", eve.list_buckets)
    # Identity Allow alone: not enough for another user's bucket.
    assert code_of(get(cat)) == "AccessDenied"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": ["cat", "eve", "root"]},
         "Action": "s3:GetObject", "Resource": "arn:aws:s3:::dan-bucket/*"}]}
    dan.put_bucket_policy(Bucket="dan-bucket", Policy=json.dumps(policy))
    # Both allow: served.
    assert cat.get_object(Bucket="dan-bucket", Key="k")["Body"].read() == b"dan's"
    # The bucket policy alone: not enough for a user whose identity policy does not allow it.
    assert code_of(get(eve)) == "AccessDenied"
    # A user without an identity policy: the bucket policy alone, as before.
    assert server.client().get_object(Bucket="dan-bucket", Key="k")["Body"].read() == b"dan's"
    # An identity Deny wins over the bucket policy's Allow.
    set_policy(server, "cat",
               {"Effect": "Allow", "Action": "s3:GetObject",
                "Resource": "arn:aws:s3:::dan-bucket/*"},
               {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*"})
    wait_refused("cat's Deny applies", get(cat))


def test_condition_keys_in_identity_policies(server):
    gil = server.client(*create_user(server, "gil"))
    wait_for("gil's key works", lambda: code_of(gil.list_buckets) is None)
    new_bucket(gil, "gil-bucket")
    set_policy(
        server, "gil",
        {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"],
         "Resource": "arn:aws:s3:::gil-bucket/${aws:username}/*"},
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::gil-bucket",
         "Condition": {"StringLike": {"s3:prefix": "${aws:username}/*"}}},
        {"Effect": "Deny", "Action": "s3:*", "Resource": "*",
         "Condition": {"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}},
    )
    wait_refused("gil's policy applies",
                 lambda: gil.put_object(Bucket="gil-bucket", Key="other/x", Body=b"x"))
    gil.put_object(Bucket="gil-bucket", Key="gil/x", Body=b"x")
    keys = [o["Key"] for o in gil.list_objects_v2(Bucket="gil-bucket", Prefix="gil/")["Contents"]]
    assert keys == ["gil/x"]
    assert code_of(lambda: gil.list_objects_v2(Bucket="gil-bucket")) == "AccessDenied"
    assert code_of(lambda: gil.list_objects_v2(Bucket="gil-bucket", Prefix="x/")) \
        == "AccessDenied"
    # aws:SourceIp: a Deny for this very address applies.
    set_policy(
        server, "gil",
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "Resource": "*",
         "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}},
    )
    wait_refused("the SourceIp Deny applies",
                 lambda: gil.get_object(Bucket="gil-bucket", Key="gil/x"))


def test_a_copy_needs_the_identity_allow_on_its_source(server):
    hal = server.client(*create_user(server, "hal"))
    wait_for("hal's key works", lambda: code_of(hal.list_buckets) is None)
    for b in ("hal-src", "hal-dst"):
        new_bucket(hal, b)
    hal.put_object(Bucket="hal-src", Key="k", Body=b"source")
    put_dst = {"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::hal-dst/*"}
    set_policy(server, "hal", put_dst)
    copy = lambda: hal.copy_object(  # noqa: E731
        Bucket="hal-dst", Key="c", CopySource={"Bucket": "hal-src", "Key": "k"})
    wait_refused("the source is not readable under hal's policy", copy)
    hal.put_object(Bucket="hal-dst", Key="plain", Body=b"x")
    set_policy(server, "hal", put_dst, {"Effect": "Allow", "Action": "s3:GetObject",
                                        "Resource": "arn:aws:s3:::hal-src/*"})
    wait_for("the copy is allowed", lambda: code_of(copy) is None)
    assert hal.get_object(Bucket="hal-src", Key="k")["Body"].read() == b"source"


def test_a_users_file_that_does_not_load_keeps_the_previous_users(server):
    ivy = server.client(*create_user(server, "ivy"))
    wait_for("ivy's key works", lambda: code_of(ivy.list_buckets) is None)
    path = os.path.join(server.data, "users.toml")
    with open(path) as f:
        good = f.read()
    with open(path, "w") as f:
        f.write(good + "\n[[user]\nbroken\n")
    time.sleep(2.5)
    assert code_of(ivy.list_buckets) is None
    server.proc.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    assert server.proc.poll() is None
    assert code_of(ivy.list_buckets) is None
    # Fixed by hand without ivy: the next change is read.
    with open(path, "w") as f:
        f.write(re.sub(r'\[\[user\]\]\nname = "ivy"\n[^\[]*', "", good))
    wait_refused("the fixed file is read", ivy.list_buckets, "InvalidAccessKeyId")


def test_key_rotation_keeps_the_users_buckets(server):
    first_key, first_secret = create_user(server, "kim")
    first = server.client(first_key, first_secret)
    wait_for("kim's key works", lambda: code_of(first.list_buckets) is None)
    new_bucket(first, "kim-bucket")
    first.put_object(Bucket="kim-bucket", Key="old", Body=b"1")
    out = cli(server, "user", "key", "create", "kim")
    assert out.returncode == 0, out.stderr
    fields = dict(re.findall(r"^(\w+): (.*)$", out.stdout, re.M))
    second = server.client(fields["access_key"], fields["secret_key"])
    wait_for("the second key works", lambda: code_of(second.list_buckets) is None)
    # The second key acts as the first: same buckets, same ownership.
    assert [b["Name"] for b in second.list_buckets()["Buckets"]] == ["kim-bucket"]
    second.put_object(Bucket="kim-bucket", Key="new", Body=b"2")
    second.put_bucket_policy(Bucket="kim-bucket", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteBucket",
             "Resource": "arn:aws:s3:::kim-bucket"}]}))
    assert first.get_bucket_policy(Bucket="kim-bucket")["Policy"]
    assert cli(server, "user", "key", "create", "kim").returncode != 0  # two at most
    listed = cli(server, "user", "list").stdout
    assert re.search(rf"^kim\t{first_key},{fields['access_key']}\t-$", listed, re.M), listed

    out = cli(server, "user", "key", "delete", first_key)
    assert out.returncode == 0, out.stderr
    wait_refused("the deleted key stops", first.list_buckets, "InvalidAccessKeyId")
    assert second.get_object(Bucket="kim-bucket", Key="old")["Body"].read() == b"1"
    assert [b["Name"] for b in second.list_buckets()["Buckets"]] == ["kim-bucket"]
    second.delete_bucket_policy(Bucket="kim-bucket")
    assert re.search(rf"^kim\t{fields['access_key']}\t-$", cli(server, "user", "list").stdout,
                     re.M)
    assert cli(server, "user", "key", "delete", first_key).returncode != 0


def test_concurrent_cli_runs_lose_no_user(server):
    names = [f"many{i}" for i in range(8)]
    procs = [subprocess.Popen([percore_bin(), "user", "create", n, "--data", server.data],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for n in names]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    listed = cli(server, "user", "list").stdout
    assert all(re.search(rf"^{n}\t", listed, re.M) for n in names), listed


def test_an_acl_grant_is_the_buckets_side_for_a_user_with_an_identity_policy(server):
    # A bucket ACL grant plays the bucket policy's part: a grantee without an identity policy
    # needs nothing more, one with an identity policy needs its Allow too (AWS's
    # cross-account rule, the ACL being the resource-based permission).
    ada = server.client(*create_user(server, "ada"))
    ben_keys = create_user(server, "ben")
    ben = server.client(*ben_keys)
    wait_for("the keys work", lambda: code_of(ben.list_buckets) is None)
    new_bucket(ada, "ada-shared")
    ada.put_bucket_acl(Bucket="ada-shared",
                       GrantWrite=f"id={ben_keys[0]}", GrantFullControl=f"id={server.access_key}")
    put = lambda: ben.put_object(Bucket="ada-shared", Key="b", Body=b"ben's")  # noqa: E731
    # Without an identity policy, the WRITE grant alone lets ben write.
    assert code_of(put) is None
    # With one that does not allow s3:PutObject there, the grant is not enough.
    set_policy(server, "ben", {"Effect": "Allow", "Action": "s3:ListAllMyBuckets",
                               "Resource": "*"})
    wait_refused("ben's identity policy applies", put)
    # A bucket policy's Allow does not stand in for the identity policy's (nor does the
    # grant make ben an owner, for whom either side would do).
    ada.put_bucket_policy(Bucket="ada-shared", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ["ben"]}, "Action": "s3:PutObject",
             "Resource": "arn:aws:s3:::ada-shared/*"}]}))
    assert code_of(put) == "AccessDenied"
    # With its Allow, the grant is the bucket's side: served.
    set_policy(server, "ben", {"Effect": "Allow", "Action": "s3:PutObject",
                               "Resource": "arn:aws:s3:::ada-shared/*"})
    wait_for("ben's Allow applies", lambda: code_of(put) is None)
