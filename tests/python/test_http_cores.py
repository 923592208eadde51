"""A node's cores share the S3 port's connections (#16): every core accepts from the one port and
keeps what it accepted, so a burst of connections, as a client's pool opens them, must not land
on whichever core happened to be awake. `percore_http_connections{core}` shows what each holds.
"""
import os
import re
import socket
import tempfile
import time
import urllib.request

from conftest import Server

BURST = 64
ROUNDS = 3


def held_per_core(server):
    text = urllib.request.urlopen(server.endpoint + "/-/metrics", timeout=10).read().decode()
    return {int(core): int(n) for core, n in
            re.findall(r'^percore_http_connections\{core="core (\d+)"\} (\d+)', text, re.M)}


def wait_held(server, want, timeout=20):
    """The cores' counts once they add up to `want` (the metrics request's own connection is
    counted too while it is served)."""
    deadline = time.time() + timeout
    held = {}
    while time.time() < deadline:
        held = held_per_core(server)
        if sum(held.values()) - 1 == want:
            return held
        time.sleep(0.05)
    raise AssertionError(f"the cores hold {held}, not {want} connections")


def test_a_burst_of_connections_is_shared_by_the_cores():
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(os.path.join(tmp, "d"), cores=2)
        try:
            host, port = "127.0.0.1", int(server.endpoint.rsplit(":", 1)[1])
            for _ in range(ROUNDS):
                # Opened back to back from one thread, as fast as connect() returns: the core
                # that is awake sees the whole burst waiting in the listen queue.
                socks = [socket.create_connection((host, port), timeout=10)
                         for _ in range(BURST)]
                held = wait_held(server, BURST)
                assert set(held) == {0, 1}, held
                # The share allows a few connections of slack per core (accept_share.rs),
                # and a core may accept past it when the other does not take a connection
                # within 5 ms. Without the share, 6 of 8 bursts came out 65 to 0.
                assert min(held.values()) >= BURST // 2 - 8, held
                for s in socks:
                    s.close()
                wait_held(server, 0)
        finally:
            server.stop()
