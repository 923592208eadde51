"""CORS: Put/Get/DeleteBucketCors, preflight OPTIONS, the Access-Control-* headers of actual
responses, and a real browser (headless Chromium) doing a preflighted PUT and a GET from a page
of another origin."""
import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.parse

import pytest
from botocore.exceptions import ClientError

from conftest import Server, free_port

ORIGIN = "http://app.example"


def error_of(call):
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["Error"]["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]


def put_cors(s3, bucket, *rules):
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": list(rules)})


def request(server, method, path, headers=None, body=None, host=None):
    """One raw request; returns (status, headers as a dict of lists, lowercase names, body)."""
    port = int(server.endpoint.rsplit(":", 1)[1])
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        if host:
            c.putrequest(method, path, skip_host=True)
            c.putheader("Host", host)
        else:
            c.putrequest(method, path)
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.putheader("Content-Length", str(len(body or b"")))
        c.endheaders(body)
        r = c.getresponse()
        got = {}
        for k, v in r.getheaders():
            got.setdefault(k.lower(), []).append(v)
        return r.status, got, r.read()
    finally:
        c.close()


def preflight(server, path, origin=ORIGIN, method="PUT", req_headers=None, host=None):
    h = {}
    if origin is not None:
        h["Origin"] = origin
    if method is not None:
        h["Access-Control-Request-Method"] = method
    if req_headers is not None:
        h["Access-Control-Request-Headers"] = req_headers
    return request(server, "OPTIONS", path, h, host=host)


def one(headers, name):
    values = headers.get(name, [])
    assert len(values) <= 1, (name, values)
    return values[0] if values else None


def path_of(url):
    u = urllib.parse.urlsplit(url)
    return u.path + ("?" + u.query if u.query else "")


# --- the configuration ------------------------------------------------------------------------


def test_put_get_delete_round_trip(s3, bucket):
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == ("NoSuchCORSConfiguration", 404)
    rules = [
        {"ID": "uploads", "AllowedOrigins": ["http://a.example", "https://*.b.example"],
         "AllowedMethods": ["PUT", "POST"], "AllowedHeaders": ["x-amz-*", "Content-Type"],
         "ExposeHeaders": ["ETag", "x-amz-version-id"], "MaxAgeSeconds": 600},
        {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]},
    ]
    put_cors(s3, bucket, *rules)
    got = s3.get_bucket_cors(Bucket=bucket)["CORSRules"]
    assert got == rules
    # A second put replaces the whole configuration.
    put_cors(s3, bucket, {"AllowedOrigins": ["*"], "AllowedMethods": ["DELETE"]})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [
        {"AllowedOrigins": ["*"], "AllowedMethods": ["DELETE"]}]
    s3.delete_bucket_cors(Bucket=bucket)
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == ("NoSuchCORSConfiguration", 404)
    s3.delete_bucket_cors(Bucket=bucket)  # deleting nothing succeeds, as in S3


@pytest.mark.parametrize("rule,code", [
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["PATCH"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["get"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["http://*.*.example"], "AllowedMethods": ["GET"]}, "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "AllowedHeaders": ["x-*-*"]},
     "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ExposeHeaders": ["*"]},
     "InvalidRequest"),
    ({"AllowedOrigins": ["*"], "AllowedMethods": ["GET"], "ID": "i" * 256}, "InvalidRequest"),
])
def test_invalid_rules_are_refused(s3, bucket, rule, code):
    assert error_of(lambda: put_cors(s3, bucket, rule)) == (code, 400)
    assert error_of(lambda: s3.get_bucket_cors(Bucket=bucket)) == ("NoSuchCORSConfiguration", 404)


def test_too_many_or_no_rules_are_malformed(s3, bucket):
    rule = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}
    assert error_of(lambda: put_cors(s3, bucket, *[rule] * 101)) == ("MalformedXML", 400)
    assert error_of(lambda: put_cors(s3, bucket)) == ("MalformedXML", 400)
    put_cors(s3, bucket, *[rule] * 100)
    assert len(s3.get_bucket_cors(Bucket=bucket)["CORSRules"]) == 100


def test_only_the_owner_manages_cors(server, s3, bucket):
    alice = server.client("ALICEACCESSKEY000001", "alice-secret-key-0000000000000000000001")
    rule = {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]}
    assert error_of(lambda: put_cors(alice, bucket, rule)) == ("AccessDenied", 403)
    put_cors(s3, bucket, rule)
    assert error_of(lambda: alice.get_bucket_cors(Bucket=bucket)) == ("AccessDenied", 403)
    assert error_of(lambda: alice.delete_bucket_cors(Bucket=bucket)) == ("AccessDenied", 403)
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == [rule]
    assert error_of(lambda: s3.get_bucket_cors(Bucket="no-such-bucket-cors")) == (
        "NoSuchBucket", 404)


def test_configuration_dies_with_the_bucket(s3):
    name = f"cors-reborn-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    put_cors(s3, name, {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]})
    s3.delete_bucket(Bucket=name)
    s3.create_bucket(Bucket=name)
    assert error_of(lambda: s3.get_bucket_cors(Bucket=name)) == ("NoSuchCORSConfiguration", 404)
    s3.delete_bucket(Bucket=name)


def test_background_pass_reclaims_a_dead_configuration(tmp_path):
    """The configuration of a deleted bucket is the only record it leaves: the background pass
    removes it (counted in percore_deleted_bucket_records_reclaimed_total)."""
    import re
    import time
    import urllib.request
    s = Server(str(tmp_path / "d"), extra=("--lifecycle-day-secs", "1"))

    def reclaimed():
        text = urllib.request.urlopen(s.endpoint + "/-/metrics", timeout=10).read().decode()
        return sum(int(float(v)) for v in re.findall(
            r"^percore_deleted_bucket_records_reclaimed_total(?:\{[^}]*\})? (\S+)", text, re.M))

    try:
        c = s.client()
        c.create_bucket(Bucket="gone")
        put_cors(c, "gone", {"AllowedOrigins": ["*"], "AllowedMethods": ["GET"]})
        time.sleep(3)
        assert reclaimed() == 0  # live: kept
        c.delete_bucket(Bucket="gone")
        deadline = time.time() + 30
        while reclaimed() < 1:
            assert time.time() < deadline, "the dead bucket's CORS record was not reclaimed"
            time.sleep(0.5)
        assert reclaimed() == 1
    finally:
        assert s.stop() == 0


# --- preflight --------------------------------------------------------------------------------


def test_preflight_allowed(server, s3, bucket):
    put_cors(s3, bucket,
             {"AllowedOrigins": ["http://other.example"], "AllowedMethods": ["GET"]},
             {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PUT", "GET"],
              "AllowedHeaders": ["x-amz-*", "Content-Type"], "ExposeHeaders": ["ETag"],
              "MaxAgeSeconds": 1234})
    status, h, body = preflight(server, f"/{bucket}/some/key.txt",
                                req_headers="Content-Type, X-Amz-Meta-Color")
    assert status == 200, body
    assert one(h, "access-control-allow-origin") == ORIGIN
    assert one(h, "access-control-allow-methods") == "PUT, GET"
    assert one(h, "access-control-allow-headers") == "content-type, x-amz-meta-color"
    assert one(h, "access-control-expose-headers") == "ETag"
    assert one(h, "access-control-max-age") == "1234"
    assert one(h, "access-control-allow-credentials") == "true"
    vary = ", ".join(h.get("vary", []))
    for v in ["Origin", "Access-Control-Request-Headers", "Access-Control-Request-Method"]:
        assert v in vary
    # The bucket itself (a browser POST form, a listing) is preflighted the same way.
    status, h, _ = preflight(server, f"/{bucket}", method="GET")
    assert status == 200 and one(h, "access-control-allow-origin") == ORIGIN
    assert one(h, "access-control-max-age") == "1234"
    # A preflight with a body (never read) closes its connection.
    status, h, _ = request(server, "OPTIONS", f"/{bucket}/k",
                           {"Origin": ORIGIN, "Access-Control-Request-Method": "PUT"}, b"junk")
    assert status == 200 and one(h, "connection") == "close"
    # Without Access-Control-Request-Headers: no Allow-Headers.
    status, h, _ = preflight(server, f"/{bucket}/k")
    assert status == 200 and "access-control-allow-headers" not in h


def assert_forbidden(reply):
    status, h, body = reply
    assert status == 403, body
    assert b"<Code>AccessForbidden</Code>" in body and b"CORSResponse" in body, body
    assert "access-control-allow-origin" not in h


def test_preflight_refused(server, s3, bucket):
    assert_forbidden(preflight(server, f"/{bucket}/k"))  # no configuration
    put_cors(s3, bucket, {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PUT"],
                          "AllowedHeaders": ["x-amz-meta-*"]})
    assert preflight(server, f"/{bucket}/k", req_headers="x-amz-meta-a")[0] == 200
    assert_forbidden(preflight(server, f"/{bucket}/k", origin="http://evil.example"))
    assert_forbidden(preflight(server, f"/{bucket}/k", origin=ORIGIN + ".evil"))
    assert_forbidden(preflight(server, f"/{bucket}/k", method="DELETE"))
    assert_forbidden(preflight(server, f"/{bucket}/k", method="put"))
    assert_forbidden(preflight(server, f"/{bucket}/k", req_headers="x-amz-meta-a, authorization"))
    assert_forbidden(preflight(server, "/no-such-bucket-for-cors/k"))
    # Missing Origin or method: 400.
    for reply in [preflight(server, f"/{bucket}/k", origin=None),
                  preflight(server, f"/{bucket}/k", method=None)]:
        assert reply[0] == 400 and b"<Code>BadRequest</Code>" in reply[2], reply


def test_preflight_wildcards(server, s3, bucket):
    put_cors(s3, bucket,
             {"AllowedOrigins": ["https://*.apps.example"], "AllowedMethods": ["DELETE"],
              "AllowedHeaders": ["*"]},
             {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"]})
    status, h, _ = preflight(server, f"/{bucket}/k", origin="https://x.apps.example",
                             method="DELETE", req_headers="X-Anything, x-other")
    assert status == 200
    assert one(h, "access-control-allow-origin") == "https://x.apps.example"
    assert one(h, "access-control-allow-headers") == "x-anything, x-other"
    assert_forbidden(preflight(server, f"/{bucket}/k", origin="http://x.apps.example",
                               method="DELETE"))
    # A rule whose origin is exactly `*` answers `*`, without credentials.
    status, h, _ = preflight(server, f"/{bucket}/k", origin="http://anyone.example", method="GET")
    assert status == 200
    assert one(h, "access-control-allow-origin") == "*"
    assert "access-control-allow-credentials" not in h
    assert "access-control-max-age" not in h
    # The `*` rule allows no header.
    assert_forbidden(preflight(server, f"/{bucket}/k", origin="http://anyone.example",
                               method="GET", req_headers="x-a"))


def test_preflight_virtual_host_style(tmp_path):
    s = Server(str(tmp_path / "d"), extra=("--domain", "s3.test"))
    try:
        s3 = s.client()
        s3.create_bucket(Bucket="vcors")
        put_cors(s3, "vcors", {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["PUT"]})
        port = s.endpoint.rsplit(":", 1)[1]
        status, h, body = preflight(s, "/key.txt", host=f"vcors.s3.test:{port}")
        assert status == 200, body
        assert one(h, "access-control-allow-origin") == ORIGIN
        assert_forbidden(preflight(s, "/key.txt", host=f"vcors.s3.test:{port}",
                                   origin="http://evil.example"))
    finally:
        assert s.stop() == 0


# --- actual requests --------------------------------------------------------------------------


def test_actual_requests_get_the_headers(server, s3, bucket):
    put_cors(s3, bucket, {"AllowedOrigins": [ORIGIN], "AllowedMethods": ["GET", "PUT"],
                          "ExposeHeaders": ["ETag", "x-amz-request-id"]})
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "a.txt"})
    status, h, body = request(server, "PUT", path_of(put_url), {"Origin": ORIGIN}, b"cross")
    assert status == 200, body
    assert one(h, "access-control-allow-origin") == ORIGIN
    assert one(h, "access-control-expose-headers") == "ETag, x-amz-request-id"
    assert one(h, "access-control-allow-credentials") == "true"
    assert "Origin" in ", ".join(h["vary"])
    assert s3.get_object(Bucket=bucket, Key="a.txt")["Body"].read() == b"cross"

    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "a.txt"})
    status, h, body = request(server, "GET", path_of(get_url), {"Origin": ORIGIN})
    assert (status, body) == (200, b"cross")
    assert one(h, "access-control-allow-origin") == ORIGIN
    # Error responses carry them too.
    missing = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "nope"})
    status, h, body = request(server, "GET", path_of(missing), {"Origin": ORIGIN})
    assert status == 404 and b"NoSuchKey" in body
    assert one(h, "access-control-allow-origin") == ORIGIN
    # Another origin, or a method no rule allows: served, without Allow-Origin, with Vary.
    status, h, _ = request(server, "GET", path_of(get_url), {"Origin": "http://evil.example"})
    assert status == 200 and "access-control-allow-origin" not in h
    assert "Origin" in ", ".join(h["vary"])
    del_url = s3.generate_presigned_url("delete_object",
                                        Params={"Bucket": bucket, "Key": "a.txt"})
    status, h, _ = request(server, "DELETE", path_of(del_url), {"Origin": ORIGIN})
    assert status == 204 and "access-control-allow-origin" not in h
    # No Origin: no CORS headers at all.
    status, h, _ = request(server, "GET", path_of(missing))
    assert status == 404
    assert not [k for k in h if k.startswith("access-control-")] and "vary" not in h
    # The configuration deleted: the headers go at once (this gateway forgets its copy).
    s3.delete_bucket_cors(Bucket=bucket)
    status, h, _ = request(server, "GET", path_of(missing), {"Origin": ORIGIN})
    assert status == 404 and "access-control-allow-origin" not in h and "vary" not in h


# --- a real browser ---------------------------------------------------------------------------


def chromium():
    """The Chromium binary, installed from Debian's package when missing (CI runs as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                       env=env, check=False, stdout=subprocess.DEVNULL)
        found = shutil.which("chromium")
        if found:
            return found
        pytest.fail("apt-get install chromium failed")
    pytest.skip("chromium is not installed and cannot be (apt-get needs root): "
                "apt-get install chromium to run the browser tests")


PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const job = %s;
(async () => {
  const out = document.getElementById("out");
  try {
    // The custom header (and PUT itself) makes the browser send a preflight first.
    const put = await fetch(job.put, {method: "PUT", body: job.body,
                                      headers: {"x-percore-test": "browser"}});
    if (!put.ok) throw new Error("PUT answered " + put.status);
    const etag = put.headers.get("ETag");
    const got = await fetch(job.get);
    const text = await got.text();
    out.textContent = "RESULT " + JSON.stringify({ok: true, status: got.status, etag, text});
  } catch (e) {
    out.textContent = "RESULT " + JSON.stringify({ok: false, error: String(e)});
  }
})();
</script></body></html>"""


class Page:
    """A one-page site on its own 127.0.0.1 port: another origin than percore's."""

    def __init__(self, html):
        self.set_html(html)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                page = outer.page
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def set_html(self, html):
        """What every GET answers from now on (any path)."""
        self.page = html.encode()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_in_browser(server, bucket, key, body, origin_for_rule=None,
                   allowed_headers=("x-percore-test",)):
    """Serves the page, sets the bucket's rule (for the page's origin unless told otherwise),
    loads it in headless Chromium and returns what the page wrote."""
    browser = chromium()
    # SigV4 query auth signs the host only: the browser's Content-Type stays out of it.
    s3 = server.client(signature_version="s3v4")
    job = {
        "put": s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key}),
        "get": s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}),
        "body": body,
    }
    page = Page(PAGE % json.dumps(job))
    try:
        put_cors(s3, bucket, {"AllowedOrigins": [origin_for_rule or page.origin],
                              "AllowedMethods": ["PUT", "GET"],
                              "AllowedHeaders": list(allowed_headers),
                              "ExposeHeaders": ["ETag"]})
        return load_page(browser, page)
    finally:
        page.close()


def load_page(browser, page):
    """Loads `page` in headless Chromium and returns the JSON it wrote after `RESULT `."""
    with tempfile.TemporaryDirectory() as profile:
        out = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-dev-shm-usage", f"--user-data-dir={profile}",
             "--virtual-time-budget=20000", "--dump-dom", page.origin + "/"],
            capture_output=True, text=True, timeout=120,
        )
    dom = out.stdout
    assert "RESULT " in dom, (out.returncode, dom[-2000:], out.stderr[-2000:])
    text = dom.split("RESULT ", 1)[1].split("</pre>", 1)[0]
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&")
                      .replace("&lt;", "<").replace("&gt;", ">"))


def test_browser_put_and_get_across_origins(server, s3, bucket):
    body = "written by a browser on another origin"
    result = run_in_browser(server, bucket, "from-browser.txt", body)
    assert result["ok"], result
    assert result["status"] == 200 and result["text"] == body
    got = s3.get_object(Bucket=bucket, Key="from-browser.txt")
    assert got["Body"].read() == body.encode()
    # The ETag came through Access-Control-Expose-Headers.
    assert result["etag"] == got["ETag"]


def test_browser_refused_when_the_origin_is_not_allowed(server, s3, bucket):
    result = run_in_browser(server, bucket, "refused.txt", "never stored",
                            origin_for_rule="http://127.0.0.1:1")
    assert not result["ok"] and "Failed to fetch" in result["error"], result
    # The preflight failed, so the PUT was never sent.
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="refused.txt"))[1] == 404


def test_browser_refused_when_the_header_is_not_allowed(server, s3, bucket):
    result = run_in_browser(server, bucket, "refused.txt", "never stored",
                            allowed_headers=("x-other",))
    assert not result["ok"] and "Failed to fetch" in result["error"], result
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key="refused.txt"))[1] == 404


POST_PAGE = """<!doctype html><html><body><pre id="out">pending</pre>
<iframe name="sink"></iframe><script>
const job = %s;
const out = document.getElementById("out");
const finish = (result) => { out.textContent = "RESULT " + JSON.stringify(result); };
if (window.top === window) (async () => {
  try {
    // 1. fetch() with FormData: a cross-origin POST the bucket's CORS rule lets the page read.
    const fd = new FormData();
    for (const [k, v] of Object.entries(job.fetchFields)) fd.append(k, v);
    fd.append("file", new Blob([job.fetchBody], {type: "text/plain"}), "via-fetch.txt");
    const r = await fetch(job.url, {method: "POST", body: fd});
    const fetched = {status: r.status, etag: r.headers.get("ETag")};
    // 2. A plain HTML form with a file input, submitted into the frame; percore's 303
    // (success_action_redirect) brings the frame back to this origin.
    const form = document.createElement("form");
    form.method = "POST";
    form.action = job.url;
    form.enctype = "multipart/form-data";
    form.target = "sink";
    for (const [k, v] of Object.entries(job.formFields)) {
      const input = document.createElement("input");
      input.type = "hidden"; input.name = k; input.value = v;
      form.appendChild(input);
    }
    const file = document.createElement("input");
    file.type = "file"; file.name = "file";
    const dt = new DataTransfer();
    dt.items.add(new File([job.formBody], "via-form.txt", {type: "text/plain"}));
    file.files = dt.files;
    form.appendChild(file);
    document.body.appendChild(form);
    form.submit();
    const frame = document.querySelector("iframe");
    for (let i = 0; i < 100; i++) {
      await new Promise((done) => setTimeout(done, 100));
      let search = "";
      try { search = frame.contentWindow.location.search; } catch (e) { continue; }
      if (search.includes("etag=")) {
        return finish({ok: true, fetched,
                       redirected: Object.fromEntries(new URLSearchParams(search))});
      }
    }
    finish({ok: false, fetched, error: "the form's redirect never came back"});
  } catch (e) {
    finish({ok: false, error: String(e)});
  }
})();
</script></body></html>"""


def test_browser_post_uploads(server, s3, bucket):
    """A page on another origin uploads with POST twice: fetch(FormData), then an HTML form
    whose success_action_redirect brings the browser back to the page."""
    browser = chromium()
    signer = server.client(signature_version="s3v4")
    page = Page("")
    try:
        redirect = page.origin + "/done"
        fetch_post = signer.generate_presigned_post(
            bucket, "browser/${filename}", Conditions=[["starts-with", "$key", "browser/"]])
        form_post = signer.generate_presigned_post(
            bucket, "browser/${filename}", Fields={"success_action_redirect": redirect},
            Conditions=[["starts-with", "$key", "browser/"],
                        {"success_action_redirect": redirect}])
        job = {"url": fetch_post["url"], "fetchFields": fetch_post["fields"],
               "formFields": form_post["fields"],
               "fetchBody": "sent by fetch", "formBody": "sent by a form"}
        page.set_html(POST_PAGE % json.dumps(job))
        put_cors(s3, bucket, {"AllowedOrigins": [page.origin], "AllowedMethods": ["POST"],
                              "ExposeHeaders": ["ETag"]})
        result = load_page(browser, page)
    finally:
        page.close()
    assert result["ok"], result
    fetched = s3.get_object(Bucket=bucket, Key="browser/via-fetch.txt")
    assert fetched["Body"].read() == b"sent by fetch"
    assert result["fetched"] == {"status": 204, "etag": fetched["ETag"]}
    formed = s3.get_object(Bucket=bucket, Key="browser/via-form.txt")
    assert formed["Body"].read() == b"sent by a form"
    assert result["redirected"] == {"bucket": bucket, "key": "browser/via-form.txt",
                                    "etag": formed["ETag"]}
