"""Bucket event notifications against a real `percore serve` with `[[webhook]]` targets in its
config file: the configuration's round trip and the errors S3 answers; events POSTed to a
receiver on 127.0.0.1 for each kind of write, through a receiver outage and a kill -9."""
import json
import os
import signal
import tempfile
import threading
import time
import types
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore
import pytest

from cluster import DevCluster, start_gateway, stop_process
from conftest import ALICE, Server, free_port, running

HOOK_ARN = "arn:percore:webhook::hook"


@pytest.fixture(scope="module")
def nserver():
    with tempfile.TemporaryDirectory() as d:
        config = os.path.join(d, "node.toml")
        with open(config, "w") as f:
            f.write('[[webhook]]\nname = "hook"\nurl = "http://127.0.0.1:9/events"\n'
                    '[[webhook]]\nname = "other"\nurl = "http://127.0.0.1:9/other"\n')
        users = os.path.join(d, "users.toml")
        with open(users, "w") as f:
            f.write('[[user]]\nname = "alice"\naccess_key = "%s"\nsecret_key = "%s"\n' % ALICE)
        with running(os.path.join(d, "data"), extra=("--config", config, "--users", users)) as s:
            yield s


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


def configured(s3, bucket, *queues):
    """Creates `bucket` with the notification configuration `queues`."""
    s3.create_bucket(Bucket=bucket)
    put(s3, bucket, QueueConfigurations=list(queues))


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
    alice = nserver.client(*ALICE)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        alice.get_bucket_notification_configuration(Bucket=b)
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(botocore.exceptions.ClientError) as e:
        put(alice, b, QueueConfigurations=[queue(["s3:ObjectCreated:*"])])
    assert e.value.response["Error"]["Code"] == "AccessDenied"
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=b)


class Receiver:
    """A webhook on 127.0.0.1:`port` that keeps every event it is POSTed; `stop` closes it
    (connections refused) and `start` opens it again on the same port."""

    def __init__(self, port):
        self.port = port
        self.records = []
        self.lock = threading.Lock()
        self.httpd = None

    def start(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.records.extend(json.loads(body)["Records"])
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.httpd = None

    def got(self):
        with self.lock:
            return [(r["eventName"], r["s3"]["object"]["key"]) for r in self.records]

    def wait_for(self, expected, timeout=60):
        """Waits until every (eventName, key) of `expected` arrived; the records of them."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = self.got()
            if all(e in got for e in expected):
                return [r for r in self.records
                        if (r["eventName"], r["s3"]["object"]["key"]) in expected]
            time.sleep(0.1)
        raise AssertionError(f"missing events: {[e for e in expected if e not in self.got()]}")


def hook_config(dir, port):
    config = os.path.join(dir, "node.toml")
    with open(config, "w") as f:
        f.write(f'[[webhook]]\nname = "hook"\nurl = "http://127.0.0.1:{port}/events"\n')
    return config


@pytest.fixture(scope="module")
def live():
    """A server whose webhook `hook` is a running receiver."""
    port = free_port()
    receiver = Receiver(port)
    receiver.start()
    with tempfile.TemporaryDirectory() as d:
        with running(os.path.join(d, "data"), extra=("--config", hook_config(d, port))) as s:
            yield s, receiver
    receiver.stop()


@pytest.fixture
def offline(tmp_path):
    """For a server of the test's own: its data directory, the arguments naming the webhook
    `hook`, and that webhook's receiver, not started (stopped at the end if the test starts
    it)."""
    port = free_port()
    receiver = Receiver(port)
    yield str(tmp_path / "data"), ("--config", hook_config(str(tmp_path), port)), receiver
    if receiver.httpd is not None:
        receiver.stop()


def metric(server, name):
    text = urllib.request.urlopen(server.endpoint + "/-/metrics").read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_drained(server):
    """Waits until the server's event queue is empty."""
    deadline = time.time() + 30
    while metric(server, "percore_notify_queued") != 0:
        assert time.time() < deadline, "the queue does not drain"
        time.sleep(0.1)


def test_each_write_sends_its_event_through_the_filters(live):
    server, receiver = live
    s3 = server.client()
    b = f"events-{os.getpid()}"
    configured(s3, b, queue(["s3:ObjectCreated:*"], prefix="in/", suffix=".txt"),
               queue(["s3:ObjectRemoved:*"], prefix="in/"))
    body = b"hello events"
    etag = s3.put_object(Bucket=b, Key="in/a b.txt", Body=body)["ETag"].strip('"')
    s3.put_object(Bucket=b, Key="in/skip.bin", Body=b"x")   # suffix filtered out
    s3.put_object(Bucket=b, Key="out/skip.txt", Body=b"x")  # prefix filtered out
    s3.copy_object(Bucket=b, Key="in/copy.txt", CopySource={"Bucket": b, "Key": "in/a b.txt"})
    up = s3.create_multipart_upload(Bucket=b, Key="in/mp.txt")["UploadId"]
    part = s3.upload_part(Bucket=b, Key="in/mp.txt", UploadId=up, PartNumber=1, Body=b"m" * 100)
    s3.complete_multipart_upload(Bucket=b, Key="in/mp.txt", UploadId=up, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    s3.delete_object(Bucket=b, Key="in/a b.txt")
    s3.delete_objects(Bucket=b, Delete={"Objects": [{"Key": "in/copy.txt"}]})
    expected = [("ObjectCreated:Put", "in/a+b.txt"), ("ObjectCreated:Copy", "in/copy.txt"),
                ("ObjectCreated:CompleteMultipartUpload", "in/mp.txt"),
                ("ObjectRemoved:Delete", "in/a+b.txt"), ("ObjectRemoved:Delete", "in/copy.txt")]
    records = receiver.wait_for(expected)
    put_record = next(r for r in records if r["eventName"] == "ObjectCreated:Put")
    assert put_record["eventSource"] == "aws:s3"
    assert put_record["awsRegion"] == "us-east-1"
    assert put_record["eventTime"].endswith("Z")
    assert put_record["s3"]["bucket"]["name"] == b
    assert put_record["s3"]["object"]["size"] == len(body)
    assert put_record["s3"]["object"]["eTag"] == etag
    assert put_record["s3"]["object"]["sequencer"]
    time.sleep(1)  # the filtered writes had time to arrive, had they matched
    keys = [k for _, k in receiver.got()]
    assert "in/skip.bin" not in keys and "out/skip.txt" not in keys


def test_versioned_deletes_name_the_marker(live):
    server, receiver = live
    s3 = server.client()
    b = f"versioned-events-{os.getpid()}"
    configured(s3, b,
               queue(["s3:ObjectCreated:Put", "s3:ObjectRemoved:DeleteMarkerCreated"], prefix="v/"),
               queue(["s3:ObjectRemoved:Delete"], prefix="w/"))
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    v1 = s3.put_object(Bucket=b, Key="v/k", Body=b"1")["VersionId"]
    marker = s3.delete_object(Bucket=b, Key="v/k")["VersionId"]
    s3.delete_object(Bucket=b, Key="v/k", VersionId=v1)  # Delete: not asked for under v/
    w1 = s3.put_object(Bucket=b, Key="w/k", Body=b"2")["VersionId"]
    s3.delete_object(Bucket=b, Key="w/k", VersionId=w1)
    records = receiver.wait_for([("ObjectCreated:Put", "v/k"),
                                 ("ObjectRemoved:DeleteMarkerCreated", "v/k"),
                                 ("ObjectRemoved:Delete", "w/k")])
    by_name = {r["eventName"]: r["s3"]["object"] for r in records}
    assert by_name["ObjectCreated:Put"]["versionId"] == v1
    assert by_name["ObjectRemoved:DeleteMarkerCreated"]["versionId"] == marker
    assert by_name["ObjectRemoved:Delete"]["versionId"] == w1
    time.sleep(1)
    assert ("ObjectRemoved:Delete", "v/k") not in receiver.got()
    assert ("ObjectCreated:Put", "w/k") not in receiver.got()


def test_a_receiver_that_was_down_gets_every_event(live):
    server, receiver = live
    s3 = server.client()
    b = f"outage-{os.getpid()}"
    configured(s3, b, queue(["s3:ObjectCreated:*"]))
    failed_before = metric(server, 'percore_notify_events_total{result="failed_attempts"}')
    receiver.stop()
    try:
        for i in range(20):
            s3.put_object(Bucket=b, Key=f"down-{i}", Body=b"x")
        deadline = time.time() + 30
        while metric(server, 'percore_notify_events_total{result="failed_attempts"}') \
                < failed_before + 2:
            assert time.time() < deadline, "no failed delivery attempt counted"
            time.sleep(0.1)
        assert metric(server, "percore_notify_queued") >= 20
    finally:
        receiver.start()
    receiver.wait_for([("ObjectCreated:Put", f"down-{i}") for i in range(20)])


def test_events_queued_survive_kill_9(offline):
    data, extra, receiver = offline
    s = Server(data, extra=extra)
    try:
        s3 = s.client()
        configured(s3, "crash", queue(["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]))
        for i in range(30):
            s3.put_object(Bucket="crash", Key=f"k{i}", Body=b"x")
        s3.delete_object(Bucket="crash", Key="k0")
    finally:
        s.proc.send_signal(signal.SIGKILL)
        s.proc.wait()
    assert receiver.got() == []
    receiver.start()
    with running(data, extra=extra) as s:
        expected = [("ObjectCreated:Put", f"k{i}") for i in range(30)]
        receiver.wait_for(expected + [("ObjectRemoved:Delete", "k0")])
        wait_drained(s)


def test_a_browser_post_upload_is_a_post_event(live):
    from test_post_upload import post, presigned

    server, receiver = live
    s3 = server.client()
    b = f"post-events-{os.getpid()}"
    configured(s3, b, queue(["s3:ObjectCreated:Post"]))
    s3.put_object(Bucket=b, Key="by-put", Body=b"x")  # a Put: not asked for
    status, _, _ = post(server, b, presigned(server, b, "by-post"), data=b"posted")
    assert status == 204
    record = receiver.wait_for([("ObjectCreated:Post", "by-post")])[0]
    assert record["s3"]["object"]["size"] == len(b"posted")
    time.sleep(1)
    assert ("ObjectCreated:Put", "by-put") not in receiver.got()


def test_a_damaged_queue_file_is_set_aside_and_the_rest_delivered(offline):
    data, extra, receiver = offline
    with running(data, extra=extra) as s:
        s3 = s.client()
        configured(s3, "damage", queue(["s3:ObjectCreated:*"]))
        for i in range(5):
            s3.put_object(Bucket="damage", Key=f"k{i}", Body=b"x")
    queue_dir = os.path.join(data, "notify")
    files = sorted(f for f in os.listdir(queue_dir) if f.endswith(".json"))
    assert len(files) == 5
    victim = os.path.join(queue_dir, files[2])
    with open(victim, "r+b") as f:  # real bytes flipped: the JSON no longer parses
        f.seek(0)
        f.write(bytes(b ^ 0xFF for b in f.read(8)))
    receiver.start()
    with running(data, extra=extra) as s:
        receiver.wait_for([("ObjectCreated:Put", f"k{i}") for i in (0, 1, 3, 4)])
        wait_drained(s)
        assert metric(s, 'percore_notify_events_total{result="dropped"}') == 1
    assert os.path.exists(victim[:-len(".json")] + ".bad")
    assert ("ObjectCreated:Put", "k2") not in receiver.got()


def test_a_gateway_sends_events_and_a_process_without_the_webhook_counts_them_dropped(
        tmp_path):
    # A cluster: `percore dev` nodes that serve S3 without webhooks, and a `percore gateway`
    # whose config defines `hook`. A configuration set through the gateway holds for writes
    # through any process: the gateway queues and sends its writes' events; a node without
    # the webhook cannot, and counts each such event as dropped instead of ignoring it.
    port = free_port()
    receiver = Receiver(port)
    receiver.start()
    c = DevCluster(tmp_path, nodes=3, cores_per_node=1)
    gw = None
    try:
        gw, data = start_gateway(c, tmp_path, extra=(
            f'[[webhook]]\nname = "hook"\nurl = "http://127.0.0.1:{port}/events"\n'))
        via_gw, via_node = c.client("gw"), c.client(1)
        configured(via_gw, "cev", queue(["s3:ObjectCreated:*"]))
        via_gw.put_object(Bucket="cev", Key="through-gateway", Body=b"g")
        receiver.wait_for([("ObjectCreated:Put", "through-gateway")])
        # The gateway's queue lives in its data directory.
        assert os.path.isdir(data / "notify")
        node = types.SimpleNamespace(endpoint=c.endpoints[1])
        dropped = 'percore_notify_events_total{result="dropped"}'
        before = metric(node, dropped)
        via_node.put_object(Bucket="cev", Key="through-node", Body=b"n")
        deadline = time.time() + 30
        while metric(node, dropped) < before + 1:
            assert time.time() < deadline, "the node did not count the event it cannot send"
            time.sleep(0.2)
        assert ("ObjectCreated:Put", "through-node") not in receiver.got()
    finally:
        if gw is not None:
            stop_process(gw)
        assert c.stop() == 0
        receiver.stop()
