"""Starts a real `percore serve` on 127.0.0.1 for the S3 tests and stops it by pid."""
import contextlib
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time

import boto3
import botocore
import pytest
from botocore.config import Config

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def percore_bin():
    path = os.environ.get("PERCORE_BIN") or os.path.join(ROOT, "target", "debug", "percore")
    assert os.path.exists(path), f"build percore first (cargo build): {path} is missing"
    return path


# Ports for the servers a run starts. A port the kernel picks (bind to 0) comes from the
# ephemeral range, the one it also hands to every outgoing connection: with pytest-xdist's
# workers side by side, a port found free and bound by a server a moment later, or a killed
# node's port before its restart, can be taken in between by another worker's client. So the
# servers' ports come from below the ephemeral range, each worker its own slice, each port
# handed out once per worker (a slice holds thousands; a whole run takes a few hundred).
PORTS_LOW = 10000


def _port_slice():
    """(first, end) of this worker's ports: its share of PORTS_LOW up to the ephemeral range."""
    with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
        ephemeral_low = int(f.read().split()[0])
    assert ephemeral_low > PORTS_LOW + 4000, f"ephemeral ports from {ephemeral_low}: too low"
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
    width = (ephemeral_low - PORTS_LOW) // workers
    first = PORTS_LOW + worker * width
    return first, first + width


_ports = {}


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def port_block(count, spare=0):
    """A base port such that base .. base + count - 1 are all free right now, none handed out
    before by this worker; the `spare` ports after the block are not handed out later either
    (a test may add a node on them)."""
    if not _ports:
        first, end = _port_slice()
        # A random start: two runs side by side (two checkouts) seldom meet.
        _ports.update(first=first, end=end, next=random.randrange(first, end))
    for _ in range(2000):
        base = _ports["next"]
        if base + count + spare > _ports["end"]:
            base = _ports["first"]
        _ports["next"] = base + count + spare
        if all(_port_free(p) for p in range(base, base + count)):
            return base
    raise RuntimeError(f"no block of {count} free ports in {_ports}")


def free_port():
    return port_block(1)


class Server:
    """A real `percore serve` on a free port. `stderr` is where its log goes (a file to read it
    back, default nowhere), `log_level` its RUST_LOG."""

    def __init__(self, data, extra=(), cores=2, stderr=subprocess.DEVNULL, log_level="warn"):
        self.data = data
        self.port = free_port()
        self.proc = subprocess.Popen(
            [percore_bin(), "serve", "--data", data, "--listen", f"127.0.0.1:{self.port}",
             "--cores", str(cores), *extra],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "RUST_LOG": log_level},
        )
        fields = {}
        deadline = time.time() + 60
        while "cores" not in fields:
            assert time.time() < deadline, "percore serve did not start within 60 s"
            line = self.proc.stdout.readline()
            assert line, "percore serve exited before printing its endpoint"
            m = re.match(r"(\w+): (.*)", line.strip())
            if m:
                fields[m.group(1)] = m.group(2)
        self.endpoint = fields["endpoint"]
        self.access_key = fields["access_key"]
        self.secret_key = fields["secret_key"]

    def client(self, access_key=None, secret_key=None, region="us-east-1", **config):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=region,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"},
                          **config),
        )

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@contextlib.contextmanager
def running(data, **kwargs):
    """A `Server` on the data directory `data` (`kwargs` as `Server` takes them), stopped on
    leaving; it must exit with status 0."""
    s = Server(data, **kwargs)
    try:
        yield s
    finally:
        assert s.stop() == 0


# The second user of the session server (`server`): another owner for cross-user tests.
ALICE = ("ALICEACCESSKEY000001", "alice-secret-key-0000000000000000000001")


def anon_client(server):
    """A client that signs nothing."""
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1},
                      s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory() as data:
        users = os.path.join(data, "extra-users.toml")
        with open(users, "w") as f:
            f.write('[[user]]\nname = "alice"\naccess_key = "%s"\nsecret_key = "%s"\n' % ALICE)
        s = Server(os.path.join(data, "d"), extra=("--users", users))
        yield s
        assert s.stop() == 0


@pytest.fixture
def s3(server):
    return server.client()


@pytest.fixture
def alice(server):
    return server.client(*ALICE)


@pytest.fixture
def anon(server):
    return anon_client(server)


_counter = [0]


@pytest.fixture
def bucket(s3):
    _counter[0] += 1
    name = f"test-bucket-{os.getpid()}-{_counter[0]}"
    s3.create_bucket(Bucket=name)
    return name
