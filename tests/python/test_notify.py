"""Bucket event notifications against a real `percore serve` with `[[webhook]]` targets in its
config file: the configuration's round trip and the errors S3 answers."""
import os
import tempfile

import botocore
import pytest

from conftest import Server

HOOK_ARN = "arn:percore:webhook::hook"


@pytest.fixture(scope="module")
def nserver():
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "node.toml")
        with open(config, "w") as f:
            f.write('[[webhook]]\nname = "hook"\nurl = "http://127.0.0.1:9/events"\n'
                    '[[webhook]]\nname = "other"\nurl = "http://127.0.0.1:9/other"\n')
        s = Server(os.path.join(d, "data"), extra=("--config", config))
        yield s
        assert s.stop() == 0


_n = [0]


@pytest.fixture
def nb(nserver):
    s3 = nserver.client()
    _n[0] += 1
    name = f"notify-{os.getpid()}-{_n[0]}"
    s3.create_bucket(Bucket=name)
    return s3, name


def queue(events, arn=HOOK_ARN, prefix=None, suffix=None, id=None):
    q = {"QueueArn": arn, "Events": events}
    rules = [{"Name": n, "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix)) if v]
    if rules:
        q["Filter"] = {"Key": {"FilterRules": rules}}
    if id:
        q["Id"] = id
    return q


def put(s3, bucket, **config):
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=config)


def error(s3, bucket, **config):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        put(s3, bucket, **config)
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_configuration_round_trips(nb):
    s3, b = nb
    got = s3.get_bucket_notification_configuration(Bucket=b)
    assert "QueueConfigurations" not in got
    put(s3, b, QueueConfigurations=[
        queue(["s3:ObjectCreated:*"], prefix="img/", suffix=".jpg", id="images"),
        queue(["s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"],
              arn="arn:percore:webhook::other"),
    ])
    got = s3.get_bucket_notification_configuration(Bucket=b)["QueueConfigurations"]
    assert len(got) == 2
    assert got[0]["Id"] == "images"
    assert got[0]["QueueArn"] == HOOK_ARN
    assert got[0]["Events"] == ["s3:ObjectCreated:*"]
    rules = {r["Name"].lower(): r["Value"] for r in got[0]["Filter"]["Key"]["FilterRules"]}
    assert rules == {"prefix": "img/", "suffix": ".jpg"}
    assert got[1]["QueueArn"] == "arn:percore:webhook::other"
    assert got[1]["Events"] == ["s3:ObjectRemoved:Delete", "s3:ObjectRemoved:DeleteMarkerCreated"]
    assert got[1]["Id"]  # assigned, as S3 does
    # An empty configuration removes it.
    put(s3, b)
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=b)


def test_errors_as_s3(nb):
    s3, b = nb
    assert error(s3, b, QueueConfigurations=[queue(["s3:ObjectCreated:Bogus"])]) == (
        "InvalidArgument", 400)
    assert error(s3, b, QueueConfigurations=[queue(["s3:ObjectCreated:*"],
                                                   arn="arn:percore:webhook::nope")]) == (
        "InvalidArgument", 400)
    overlapping = [queue(["s3:ObjectCreated:*"], prefix="a/"),
                   queue(["s3:ObjectCreated:Put"], prefix="a/b", arn="arn:percore:webhook::other")]
    assert error(s3, b, QueueConfigurations=overlapping) == ("InvalidArgument", 400)
    dup_prefix = queue(["s3:ObjectCreated:*"])
    dup_prefix["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "a"},
                                                    {"Name": "prefix", "Value": "b"}]}}
    assert error(s3, b, QueueConfigurations=[dup_prefix]) == ("InvalidArgument", 400)
    # Disjoint filters on the same events are fine.
    put(s3, b, QueueConfigurations=[
        queue(["s3:ObjectCreated:*"], prefix="a/"),
        queue(["s3:ObjectCreated:*"], prefix="b/", arn="arn:percore:webhook::other"),
    ])
    assert len(s3.get_bucket_notification_configuration(Bucket=b)["QueueConfigurations"]) == 2


def test_what_percore_does_not_do_is_refused(nb):
    s3, b = nb
    put(s3, b, QueueConfigurations=[queue(["s3:ObjectCreated:*"])])
    sqs = "arn:aws:sqs:us-east-1:123456789012:q"
    assert error(s3, b, QueueConfigurations=[queue(["s3:ObjectCreated:*"], arn=sqs)]) == (
        "NotImplemented", 501)
    assert error(s3, b, TopicConfigurations=[
        {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Events": ["s3:ObjectCreated:*"]}
    ]) == ("NotImplemented", 501)
    assert error(s3, b, LambdaFunctionConfigurations=[
        {"LambdaFunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
         "Events": ["s3:ObjectCreated:*"]}
    ]) == ("NotImplemented", 501)
    assert error(s3, b, EventBridgeConfiguration={}) == ("NotImplemented", 501)
    assert error(s3, b, QueueConfigurations=[queue(["s3:ObjectRestore:*"])]) == (
        "NotImplemented", 501)
    # A refused request changed nothing.
    got = s3.get_bucket_notification_configuration(Bucket=b)["QueueConfigurations"]
    assert [q["Events"] for q in got] == [["s3:ObjectCreated:*"]]


def test_only_the_owner_configures(nserver, nb):
    s3, b = nb
    other = nserver.client("AKIANOBODY0000000000", "x" * 40)
    with pytest.raises(botocore.exceptions.ClientError):
        other.get_bucket_notification_configuration(Bucket=b)
