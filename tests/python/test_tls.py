"""HTTPS: `percore serve --tls-cert --tls-key` against boto3, raw sockets and python's ssl.

A CA and server certificates are made at test time (the `cryptography` package); the server
certificates carry a known serial, which is how a test tells which one a connection got.
"""
import datetime
import json
import os
import random
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import ipaddress

import boto3
from botocore.exceptions import ClientError
import pytest
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ROOT, Server, free_port, percore_bin

HEADER_TIMEOUT_SECS = 2


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Pki:
    """A test CA in `dir` (ca.pem) that signs server certificates for 127.0.0.1."""

    def __init__(self, dir):
        self.dir = dir
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(_name("percore test CA"))
            .issuer_name(_name("percore test CA"))
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                              content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False,
                              encipher_only=False, decipher_only=False),
                critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.ca_file = os.path.join(dir, "ca.pem")
        with open(self.ca_file, "wb") as f:
            f.write(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def server_pem(self, serial):
        """(certificate PEM, key PEM) of a server certificate for 127.0.0.1 with `serial`."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1"))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(self.ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem

    def write_server(self, serial, cert_path, key_path):
        """Writes a new server certificate and key (each file replaced whole, atomically)."""
        cert_pem, key_pem = self.server_pem(serial)
        replace(cert_path, cert_pem)
        replace(key_path, key_pem)


def replace(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def pki():
    with tempfile.TemporaryDirectory() as d:
        yield Pki(d)


@pytest.fixture(scope="module")
def tls_server(pki):
    """A TLS server with a short header-read timeout; its log goes to `log_path`."""
    cert = os.path.join(pki.dir, "server-cert.pem")
    key = os.path.join(pki.dir, "server-key.pem")
    pki.write_server(1001, cert, key)
    with tempfile.TemporaryDirectory() as data:
        log_path = os.path.join(data, "stderr.log")
        with open(log_path, "w") as log:
            s = Server(os.path.join(data, "d"), cores=1, stderr=log, log_level="info",
                       extra=("--tls-cert", cert, "--tls-key", key,
                              "--header-read-timeout-secs", str(HEADER_TIMEOUT_SECS)))
        s.cert, s.key, s.log_path = cert, key, log_path
        yield s
        assert s.stop() == 0


def https_client(server, ca_file):
    return boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1", verify=ca_file,
        aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def peer_serial(port, ca_file):
    """The serial of the certificate a new, verified TLS connection to `port` gets."""
    ctx = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der).serial_number


def log_text(server):
    with open(server.log_path) as f:
        return f.read()


def test_boto3_over_https(tls_server, pki):
    assert tls_server.endpoint.startswith("https://127.0.0.1:")
    s3 = https_client(tls_server, pki.ca_file)
    s3.create_bucket(Bucket="tls-bucket")
    body = os.urandom(300_000)
    s3.put_object(Bucket="tls-bucket", Key="a/obj", Body=body)
    assert s3.get_object(Bucket="tls-bucket", Key="a/obj")["Body"].read() == body
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="tls-bucket")["Contents"]]
    assert keys == ["a/obj"]


def test_a_deny_without_tls_policy_lets_tls_requests_through(tls_server, pki):
    """aws:SecureTransport is true over TLS: the Deny of the README's TLS-only policy does not
    apply here (test_policy.py shows it applying over plain HTTP)."""
    s3 = https_client(tls_server, pki.ca_file)
    s3.create_bucket(Bucket="tls-only")
    s3.put_object(Bucket="tls-only", Key="k", Body=b"v")
    s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:*",
            "Resource": ["arn:aws:s3:::tls-only", "arn:aws:s3:::tls-only/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}))
    assert s3.get_object(Bucket="tls-only", Key="k")["Body"].read() == b"v"
    s3.put_bucket_policy(Bucket="tls-only", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::tls-only/*",
            "Condition": {"Bool": {"aws:SecureTransport": "true"}}}]}))
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="tls-only", Key="k")
    assert e.value.response["Error"]["Code"] == "AccessDenied"


def test_both_protocol_versions_and_alpn(tls_server, pki):
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=pki.ca_file)
        ctx.minimum_version = ctx.maximum_version = version
        ctx.set_alpn_protocols(["http/1.1"])
        with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2",
                                         ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
                assert tls.selected_alpn_protocol() == "http/1.1"
                # An unsigned request: an S3 error, over TLS.
                tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                head = tls.recv(4096)
        assert head.startswith(b"HTTP/1.1 403"), head[:100]
    # HTTP/2 by ALPN: the server answers the connection preface with its SETTINGS frame.
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert tls.selected_alpn_protocol() == "h2"
            empty_settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + empty_settings)
            frame = b""
            while len(frame) < 9:
                chunk = tls.recv(9 - len(frame))
                assert chunk, "connection closed before a frame"
                frame += chunk
    assert frame[3] == 0x04 and frame[5:9] == b"\x00\x00\x00\x00", frame  # SETTINGS, stream 0


def test_untrusted_client_is_refused(tls_server):
    """Without the CA the certificate does not verify: the client refuses (it is signed)."""
    ctx = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")


def test_plain_http_to_the_tls_port_fails(tls_server):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=10) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        got = b""
        while True:
            try:
                chunk = s.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    assert not got.startswith(b"HTTP/"), got[:100]
    # A plain-HTTP client gets no S3 answer either.
    plain = boto3.client(
        "s3", endpoint_url=f"http://127.0.0.1:{tls_server.port}", region_name="us-east-1",
        aws_access_key_id=tls_server.access_key, aws_secret_access_key=tls_server.secret_key,
        config=Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=5),
    )
    with pytest.raises(Exception) as e:
        plain.list_buckets()
    assert "ClientError" not in type(e.value).__name__


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01"],
                         ids=["nothing", "half-a-client-hello"])
def test_no_handshake_is_cut_at_the_header_timeout(tls_server, sent):
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as s:
        s.sendall(sent)
        start = time.monotonic()
        try:
            closed = s.recv(4096)
        except ConnectionResetError:
            closed = b""
        waited = time.monotonic() - start
    assert closed == b""
    # Cut by the header-read timeout, not by the 20 s idle timeout or never.
    assert HEADER_TIMEOUT_SECS - 0.5 <= waited < HEADER_TIMEOUT_SECS + 8, waited


def wait_for(what, check, timeout=20):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_sighup_reloads_the_certificate(tls_server, pki):
    s3 = https_client(tls_server, pki.ca_file)
    s3.create_bucket(Bucket="reload-bucket")
    # An established connection from before the reload (HTTP/1.1 keep-alive).
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    old = ctx.wrap_socket(socket.create_connection(("127.0.0.1", tls_server.port), timeout=10),
                          server_hostname="127.0.0.1")
    before = x509.load_der_x509_certificate(old.getpeercert(binary_form=True)).serial_number
    serial = random.randrange(10_000, 2**62)
    pki.write_server(serial, tls_server.cert, tls_server.key)
    tls_server.proc.send_signal(signal.SIGHUP)
    wait_for("the new certificate", lambda: peer_serial(tls_server.port, pki.ca_file) == serial)
    assert serial != before
    assert tls_server.proc.poll() is None
    # The old connection still serves, with its certificate.
    old.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert old.recv(4096).startswith(b"HTTP/1.1 403")
    assert x509.load_der_x509_certificate(old.getpeercert(binary_form=True)).serial_number \
        == before
    old.close()
    s3.put_object(Bucket="reload-bucket", Key="k", Body=b"after reload")
    assert s3.get_object(Bucket="reload-bucket", Key="k")["Body"].read() == b"after reload"
    assert "reloaded the TLS certificate" in log_text(tls_server)


def test_sighup_with_a_broken_key_keeps_the_old_certificate(tls_server, pki):
    current = peer_serial(tls_server.port, pki.ca_file)
    with open(tls_server.cert, "rb") as f:
        good_cert = f.read()
    with open(tls_server.key, "rb") as f:
        good_key = f.read()
    try:
        # A new certificate with a key that is not PEM at all.
        cert_pem, _ = pki.server_pem(current + 1)
        replace(tls_server.cert, cert_pem)
        replace(tls_server.key, b"-----BEGIN PRIVATE KEY-----\nnot base64!\n"
                                b"-----END PRIVATE KEY-----\n")
        errors = log_text(tls_server).count("TLS reload failed")
        tls_server.proc.send_signal(signal.SIGHUP)
        wait_for("the reload error",
                 lambda: log_text(tls_server).count("TLS reload failed") > errors)
        line = [l for l in log_text(tls_server).splitlines() if "TLS reload failed" in l][-1]
        assert "ERROR" in line and tls_server.key in line, line
        assert peer_serial(tls_server.port, pki.ca_file) == current
        # A valid key of another certificate: refused too, naming the key file.
        _, other_key = pki.server_pem(current + 2)
        replace(tls_server.key, other_key)
        tls_server.proc.send_signal(signal.SIGHUP)
        wait_for("the second reload error",
                 lambda: log_text(tls_server).count("TLS reload failed") > errors + 1)
        line = [l for l in log_text(tls_server).splitlines() if "TLS reload failed" in l][-1]
        assert "does not fit the certificate" in line and tls_server.key in line, line
        assert peer_serial(tls_server.port, pki.ca_file) == current
        s3 = https_client(tls_server, pki.ca_file)
        assert "Buckets" in s3.list_buckets()
        assert tls_server.proc.poll() is None
    finally:
        replace(tls_server.cert, good_cert)
        replace(tls_server.key, good_key)


def start_failure(args, timeout=30):
    """Runs `percore serve` expected to refuse to start; returns its stderr."""
    with tempfile.TemporaryDirectory() as data:
        p = subprocess.run(
            [percore_bin(), "serve", "--data", data, "--listen", f"127.0.0.1:{free_port()}",
             "--cores", "1", *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "RUST_LOG": "warn"})
    assert p.returncode != 0, p.stdout
    assert "panicked" not in p.stderr, p.stderr
    assert "endpoint:" not in p.stdout
    return p.stderr


def test_bad_files_are_a_clear_startup_error(pki):
    cert = os.path.join(pki.dir, "start-cert.pem")
    key = os.path.join(pki.dir, "start-key.pem")
    pki.write_server(7, cert, key)
    missing = os.path.join(pki.dir, "no-such-cert.pem")
    err = start_failure(["--tls-cert", missing, "--tls-key", key])
    assert missing in err and "cannot read the certificate file" in err, err
    garbage = os.path.join(pki.dir, "garbage-key.pem")
    with open(garbage, "w") as f:
        f.write("this is not a key\n")
    err = start_failure(["--tls-cert", cert, "--tls-key", garbage])
    assert garbage in err and "no private key" in err, err
    # The CA certificate as the server certificate: the key is not its key.
    err = start_failure(["--tls-cert", pki.ca_file, "--tls-key", key])
    assert key in err and "does not fit the certificate" in err, err
    err = start_failure(["--tls-cert", cert])
    assert "--tls-cert needs --tls-key" in err, err
    # The config file's [tls] table, relative to the file's directory.
    config = os.path.join(pki.dir, "node.toml")
    with open(config, "w") as f:
        f.write('[tls]\ncert_file = "nope.pem"\nkey_file = "start-key.pem"\n')
    err = start_failure(["--config", config])
    assert os.path.join(pki.dir, "nope.pem") in err, err


def loadgen_bin():
    path = os.environ.get("LOADGEN_BIN") or os.path.join(
        os.path.dirname(percore_bin()), "percore-loadgen")
    if not os.path.exists(path):
        subprocess.run(["cargo", "build", "--locked", "--bin", "percore-loadgen"],
                       cwd=ROOT, check=True)
    assert os.path.exists(path), f"build percore-loadgen first: {path} is missing"
    return path


def test_config_file_tls_and_loadgen_over_https(pki):
    """`[tls]` in the config file, then percore-loadgen against the https endpoint."""
    cert = os.path.join(pki.dir, "lg-cert.pem")
    key = os.path.join(pki.dir, "lg-key.pem")
    pki.write_server(4242, cert, key)
    config = os.path.join(pki.dir, "lg.toml")
    with open(config, "w") as f:
        f.write('[tls]\ncert_file = "lg-cert.pem"\nkey_file = "lg-key.pem"\n')
    with tempfile.TemporaryDirectory() as data:
        server = Server(os.path.join(data, "d"), cores=1, extra=("--config", config))
        try:
            assert server.endpoint.startswith("https://")
            assert peer_serial(server.port, pki.ca_file) == 4242
            report = os.path.join(data, "report.json")
            base = [loadgen_bin(), "--endpoint", server.endpoint,
                    "--access-key", server.access_key, "--secret-key", server.secret_key,
                    "--bucket", "loadgen-tls", "--keys", "20", "--size", "4KiB",
                    "--threads", "2", "--quiet", "--timeout", "20s"]
            run = subprocess.run(
                [*base, "--ca-file", pki.ca_file, "--prepare", "--workload", "get=3,put=1",
                 "--concurrency", "4", "--warmup", "0s", "--duration", "1s",
                 "--json", report],
                capture_output=True, text=True, timeout=120)
            assert run.returncode == 0, run.stdout + run.stderr
            with open(report) as f:
                endpoint = json.load(f)["endpoints"][0]
            assert endpoint["ok"] > 0 and endpoint["errors"] == 0, endpoint
            # Without the CA the system's roots do not trust the test CA: the prepare fails.
            run = subprocess.run([*base, "--prepare", "--no-run"],
                                 capture_output=True, text=True, timeout=120)
            assert run.returncode != 0
            assert "certificate" in (run.stdout + run.stderr).lower(), run.stdout + run.stderr
        finally:
            assert server.stop() == 0
