"""A real browser against tlm (SPEC 2, 4; DESIGN "WebSocket stream", "CORS"): Debian's
chromium, driven by e2e/browser/test_browser.mjs (playwright-core), loads page.html from an
origin other than the API's, posts batches with fetch (JSON and gzip), streams over the
WebSocket while this wrapper SIGKILLs and restarts the logshipper and then the ingest,
and checks that a refused origin is refused (fetch: TypeError; WebSocket: 403).
Then every record the page saw acked must be on the logshipper's stdout, with one rid.

Needs /usr/bin/chromium (Debian package chromium), node and e2e/browser/node_modules
(`npm ci` in e2e/browser; done here when missing).
"""
import functools
import http.server
import json
import os
import queue
import shutil
import signal
import subprocess
import threading
import time

import pytest

import tlm_harness as H
from tlm_harness import ACME_CC, PULSE_CC, RID_RE

BROWSER_DIR = os.environ.get("TLM_BROWSER_DIR") or os.path.join(H.E2E_DIR, "browser")
CHROMIUM = os.environ.get("TLM_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node") or "/usr/bin/node"


@pytest.fixture(scope="module")
def browser_env():
    if not os.access(CHROMIUM, os.X_OK):
        if os.geteuid() == 0 and shutil.which("apt-get"):
            r = subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600,
                               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
            if r.returncode != 0 or not os.access(CHROMIUM, os.X_OK):
                pytest.skip("%s is absent and `apt-get install chromium` failed: %s" % (
                    CHROMIUM, r.stdout.decode(errors="replace")[-300:]))
        else:
            pytest.skip("%s is absent and cannot be installed here (not root): apt-get install chromium" % CHROMIUM)
    if not os.access(NODE, os.X_OK):
        pytest.fail("node is missing (Debian/NodeSource package nodejs)", pytrace=False)
    if not os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        if r.returncode != 0:
            pytest.fail("npm ci in e2e/browser failed:\n%s" % r.stdout.decode(errors="replace")[-2000:],
                        pytrace=False)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def serve_page(port):
    """A static server of e2e/browser on 127.0.0.1:port (another origin than the API)."""
    handler = functools.partial(_Quiet, directory=BROWSER_DIR)
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    return srv


@pytest.mark.local_only
@pytest.mark.timeout(75)
def test_browser_page_streams_posts_and_survives_restarts(browser_env, tlm_factory):
    page_port, bad_port, ingest_port = H.free_port(), H.free_port(), H.free_port()
    page_origin = "http://127.0.0.1:%d" % page_port
    bad_origin = "http://127.0.0.1:%d" % bad_port
    cors = {PULSE_CC: {"urls": [page_origin], "domains": []},
            ACME_CC: {"urls": ["https://desktop.acme.example"], "domains": []}}
    t = tlm_factory(env={"TELEMETRY_CONFIG_CORS": json.dumps(cors), "TELEMETRY_PORT": str(ingest_port),
                         "TELEMETRY_DRAIN_TIMEOUT": "2"})
    servers = [serve_page(page_port), serve_page(bad_port)]
    result_path = os.path.join(t.tmp, "browser-result.json")
    log_path = os.path.join(t.tmp, "browser.stderr")
    env = dict(os.environ, TLM_API=t.ingest_url, TLM_PAGE_URL=page_origin, TLM_BAD_PAGE_URL=bad_origin,
               TLM_STDOUT=t.stdout_path, TLM_RESULT=result_path, TLM_CHROMIUM=CHROMIUM,
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    steps_done = []
    with open(log_path, "wb") as errf:
        node = subprocess.Popen([NODE, "test_browser.mjs"], cwd=BROWSER_DIR, env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=errf)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in iter(node.stdout.readline, b"")] + [lines.put(None)],
                         daemon=True).start()
        deadline = time.monotonic() + 60
        try:
            while True:
                try:
                    ln = lines.get(timeout=max(0.1, deadline - time.monotonic()))
                except queue.Empty:
                    raise AssertionError("the browser test ran past 60 s") from None
                if ln is None:
                    break
                ln = ln.decode(errors="replace").strip()
                if ln == "TLM_STEP RESTART_LOGSHIPPER":
                    t.restart_logshipper(signal.SIGKILL)
                elif ln == "TLM_STEP RESTART_INGEST":
                    t.kill_ingest(signal.SIGKILL)
                    t.start_ingest()
                elif ln.startswith("TLM_STEP "):
                    raise AssertionError("unknown step from the browser test: %r" % ln)
                else:
                    continue
                steps_done.append(ln.split()[1])
                node.stdin.write(("DONE %s\n" % ln.split()[1]).encode())
                node.stdin.flush()
            rc = node.wait(timeout=10)
        finally:
            if node.poll() is None:
                node.kill()
                node.wait(5)
            for s in servers:
                s.shutdown()
                s.server_close()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    print(log)
    assert rc == 0, "test_browser.mjs exited %s:\n%s" % (rc, "\n".join(log.splitlines()[-40:]))
    assert steps_done == ["RESTART_LOGSHIPPER", "RESTART_INGEST"], steps_done

    # the wrapper's own accounting, from the page's acked batches and the stdout file
    res = json.load(open(result_path))
    assert not res.get("failures"), res.get("failures")
    acked = res["acked"]
    assert len(acked) >= 60, "only %d batches acked" % len(acked)
    by_msg = {}
    for ln in t.stdout_lines(res["prefix"]):
        assert RID_RE.match(ln["rid"]), ln
        assert ln["user"] == "agent1" and ln["tenantName"] == "pulse", ln
        by_msg.setdefault(ln["msg"], set()).add(ln["rid"])
    msgs = [m for a in acked for m in a["msgs"]]
    missing = [m for m in msgs if m not in by_msg]
    assert not missing, "%d of %d acked records are not on stdout, e.g. %r" % (len(missing), len(msgs), missing[:3])
    changed = {m: r for m, r in by_msg.items() if len(r) != 1}
    assert not changed, "records written twice with different rids: %r" % list(changed.items())[:3]
    for p in res["posted"]:
        assert all(m in {ln["msg"] for ln in t.stdout_lines(p["marker"])} for m in p["msgs"]), p
    assert t.stdout_lines(res["badMarker"]) == []
    dupes = sum(1 for ln in t.stdout_lines(res["prefix"])) - len(by_msg)
    H.note("browser: %d batches (%d records) acked across a logshipper and an ingest restart; %d connections "
           "closed %r; %d duplicate lines (same rid)" % (len(acked), len(msgs), len(res["closes"]),
                                                         sorted({c["code"] for c in res["closes"]}), dupes))
