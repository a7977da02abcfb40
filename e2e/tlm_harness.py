"""tlm_harness.py - drives a tlm service from the outside for the e2e suites.

Target-agnostic: a Target is reached by URLs and shows its logshipper's stdout.
  TLM_E2E_TARGET=local (default)  LocalTarget starts the GAuth double, build/tlm-logshipper
                                  and build/tlm-ingest as real processes (free ports, socket
                                  in a temp dir, stdout/stderr in files) and can kill them.
  TLM_E2E_TARGET=external         ExternalTarget: TLM_INGEST_URL, TLM_METRICS_URL,
                                  TLM_GAUTH_URL, and TLM_LOGS_CMD (a shell command printing the
                                  logshipper's output, e.g. `podman logs pod-logshipper`);
                                  optional TLM_INGEST_LOGS_CMD for the ingest's stderr and
                                  TLM_E2E_CONFIG (JSON: the target's TELEMETRY_* overrides).
Other knobs: TLM_BUILD_DIR (default <repo>/build), TLM_E2E_KEEP=1 keeps temp dirs.

Tests find their own records by a unique marker (uniq()) because stdout is shared by
every test that runs against the same service.
"""
import atexit
import datetime
import gzip as gzip_mod
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import requests

E2E_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(E2E_DIR)
PYTHON = "/usr/bin/python3"
GAUTH_SCRIPT = os.path.join(E2E_DIR, "gauth", "gauth_double.py")
GAUTH_USERS = os.path.join(E2E_DIR, "gauth", "users.json")

PULSE_CC = "2868802f-1763-4ecd-94f6-203400001200"
ACME_CC = "11111111-2222-3333-4444-555555555555"
UNKNOWN_CC = "99999999-8888-7777-6666-000000000000"   # has a user in users.json, no tenant
TENANTS = {PULSE_CC: "pulse", ACME_CC: "acme"}
CORS = {
    PULSE_CC: {"urls": ["http://localhost:8080", "http://127.0.0.1:8080"], "domains": ["pulse.example.com"]},
    ACME_CC: {"urls": ["https://desktop.acme.example"], "domains": []},
}
# token -> (username, contactCenterId) as users.json has them
USERS = {
    "dev-token": ("agent1", PULSE_CC),
    "dev-token-2": ("agent2", PULSE_CC),
    "dev-token-3": ("agent3", PULSE_CC),
    "other-tenant-token": ("acme-agent1", ACME_CC),
    "unknown-cc-token": ("ghost1", UNKNOWN_CC),
}

RID_RE = re.compile(r"^[0-9a-f]{32}-[tem][0-9]+$")
TS_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# Test configuration of a local target (every value a string; None in overrides = unset).
CLIENT_SECRET = "e2e-client-secret-" + uuid.uuid4().hex[:12]
DEFAULT_TEST_ENV = {
    "TELEMETRY_LISTEN": "127.0.0.1",
    "TELEMETRY_CONFIG_SERVICE": "env",
    "TELEMETRY_CONFIG_TENANTS": json.dumps(TENANTS),
    "TELEMETRY_CONFIG_CORS": json.dumps(CORS),
    "TELEMETRY_AUTH_CLIENT_ID": "tlm-e2e",
    "TELEMETRY_AUTH_CLIENT_SECRET": CLIENT_SECRET,
    "TELEMETRY_AUTH_TIMEOUT_MS": "2000",
    "TELEMETRY_ACK_TIMEOUT_MS": "8000",
    "TELEMETRY_DRAIN_TIMEOUT": "5",
    "TELEMETRY_HEALTH_TIMER": "2",
    "TELEMETRY_TRACES_PROVIDER": "Console",
    "APP_LOG_LEVEL": "debug",   # the most logging: the token grep sees every log path
    "API_LOG_LEVEL": "debug",
}
_ENV_DROP = re.compile(r"^(TELEMETRY_.*|APP_LOG_LEVEL|API_LOG_LEVEL|https?_proxy|HTTPS?_PROXY|ALL_PROXY|all_proxy)$")

_NOTES = []            # lines printed in the pytest terminal summary
LIVE_TARGETS = []      # LocalTargets not yet closed (for failure reports and atexit)
_ALL_PROCS = []


def note(text):
    """Adds a line to the e2e summary printed at the end of the pytest run."""
    _NOTES.append(text)


def notes():
    return list(_NOTES)


# ---------------------------------------------------------------------------------------
# small helpers

def uniq(prefix="e2e"):
    """A marker unique to this call, safe inside any JSON string."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:16])


def free_port(host="127.0.0.1"):
    """A TCP port free right now on host (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def token_key(token):
    """How the GAuth double's /__stats names a token."""
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls pred() until it returns a truthy value (returned) or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
            last_exc = None
        except Exception as e:  # noqa: BLE001 - the predicate may poll a dead service
            last_exc = e
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s%s" % (
                timeout, what, (": last error %r" % last_exc) if last_exc else ""))
        time.sleep(interval)


def rfc3339_ms(epoch_ms):
    """The normalised form the service writes: 2026-11-24T10:00:00.123Z."""
    d = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=epoch_ms)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (epoch_ms % 1000)


def parse_rfc3339(s):
    """Epoch ms of a normalised timestamp."""
    d = datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return int(round(d.timestamp() * 1000))


def now_ms():
    return int(time.time() * 1000)


_LABEL_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"')
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def parse_prometheus(text):
    """Prometheus text format -> {(name, frozenset({(label, value), ...})): float}.
    Raises ValueError naming the line when a sample line is malformed."""
    out = {}
    for lineno, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _NAME_RE.match(line)
        if not m:
            raise ValueError("metrics line %d: no metric name: %r" % (lineno, raw))
        name, i = m.group(0), m.end()
        labels = []
        if i < len(line) and line[i] == "{":
            i += 1
            while True:
                while i < len(line) and line[i] in " \t":
                    i += 1
                if i >= len(line):
                    raise ValueError("metrics line %d: unterminated labels: %r" % (lineno, raw))
                if line[i] == "}":
                    i += 1
                    break
                lm = _LABEL_RE.match(line, i)
                if not lm:
                    raise ValueError("metrics line %d: bad label at column %d: %r" % (lineno, i + 1, raw))
                key, i = lm.group(1), lm.end()
                val = []
                while True:
                    if i >= len(line):
                        raise ValueError("metrics line %d: unterminated label value: %r" % (lineno, raw))
                    c = line[i]
                    if c == "\\" and i + 1 < len(line):
                        n = line[i + 1]
                        val.append({"n": "\n", "\\": "\\", '"': '"'}.get(n, "\\" + n))
                        i += 2
                    elif c == '"':
                        i += 1
                        break
                    else:
                        val.append(c)
                        i += 1
                labels.append((key, "".join(val)))
                while i < len(line) and line[i] in " \t":
                    i += 1
                if i < len(line) and line[i] == ",":
                    i += 1
        rest = line[i:].split()
        if not rest or len(rest) > 2:
            raise ValueError("metrics line %d: expected value [timestamp]: %r" % (lineno, raw))
        try:
            value = float(rest[0])
        except ValueError:
            raise ValueError("metrics line %d: bad value %r" % (lineno, rest[0])) from None
        out[(name, frozenset(labels))] = value
    return out


def _config_defaults():
    """TELEMETRY_* defaults read from common/config.c's table (integers only)."""
    d = {}
    try:
        with open(os.path.join(REPO, "common", "config.c"), encoding="utf-8") as f:
            src = f.read()
        for m in re.finditer(r'\bI\("([A-Z_]+)",\s*\w+,\s*"(-?\d+)"', src):
            d[m.group(1)] = m.group(2)
    except OSError:
        pass
    d.setdefault("TELEMETRY_MAX_BODY_BYTES", "1048576")
    d.setdefault("TELEMETRY_MAX_DECOMPRESSED_BYTES", "8388608")
    d.setdefault("TELEMETRY_MAX_RECORDS", "5000")
    d.setdefault("TELEMETRY_MAX_STRING_BYTES", "8192")
    d.setdefault("TELEMETRY_MAX_PROPERTIES", "64")
    d.setdefault("TELEMETRY_MAX_JSON_DEPTH", "16")
    d.setdefault("TELEMETRY_AUTH_TIMEOUT_MS", "5000")
    return d


CONFIG_DEFAULTS = _config_defaults()


def assert_error(resp, status, code=None):
    """Checks an error answer: status, JSON {"error":{"code","message"}}; returns the error."""
    body_txt = resp.text[:500]
    assert resp.status_code == status, "expected %d %s, got %d: %s" % (status, code or "", resp.status_code, body_txt)
    ctype = resp.headers.get("Content-Type", "")
    assert "application/json" in ctype, "error answer Content-Type is %r, not JSON: %s" % (ctype, body_txt)
    try:
        body = resp.json()
    except ValueError:
        raise AssertionError("error answer is not JSON: %r" % body_txt) from None
    assert isinstance(body, dict) and isinstance(body.get("error"), dict), "not {\"error\":{...}}: %s" % body_txt
    err = body["error"]
    assert isinstance(err.get("code"), str) and err["code"], "error.code missing: %s" % body_txt
    assert isinstance(err.get("message"), str) and err["message"], "error.message missing: %s" % body_txt
    if code is not None:
        assert err["code"] == code, "expected code %r, got %r: %s" % (code, err["code"], body_txt)
    return err


def http(method, url, timeout=10, **kw):
    """One request on a fresh connection, ignoring proxy variables."""
    with requests.Session() as s:
        s.trust_env = False
        return s.request(method, url, timeout=timeout, **kw)


# ---------------------------------------------------------------------------------------
# processes

class Proc:
    """A child process with stdout/stderr in files; stop() = signal, wait, SIGKILL."""

    def __init__(self, name, argv, env, stdout_path, stderr_path, append=True, cwd=REPO):
        self.name, self.argv, self.env = name, argv, env
        self.stdout_path, self.stderr_path = stdout_path, stderr_path
        self.append, self.cwd = append, cwd
        self.popen = None
        self.timed_out = False   # stop() had to SIGKILL it

    def start(self, stdout=None):
        mode = "ab" if self.append else "wb"
        out = stdout if stdout is not None else open(self.stdout_path, mode)
        err = open(self.stderr_path, mode)
        try:
            self.popen = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=err, close_fds=True,
                                          preexec_fn=_die_with_parent if threading.current_thread()
                                          is threading.main_thread() else None)
        finally:
            if stdout is None:
                out.close()
            err.close()
        _ALL_PROCS.append(self)
        return self

    @property
    def pid(self):
        return self.popen.pid if self.popen else None

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def returncode(self):
        return self.popen.poll() if self.popen else None

    def send_signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Sends sig (after SIGCONT, in case it was paused), waits up to timeout, then SIGKILL.
        Returns the exit code (negative = killed by that signal)."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(signal.SIGCONT)
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            rc = self.wait(timeout)
            if rc is None:
                self.timed_out = True
                self.popen.kill()
                rc = self.popen.wait(timeout=10)
        return self.popen.returncode

    def stderr_text(self):
        return _read(self.stderr_path)

    def stderr_tail(self, n=20):
        return "\n".join(self.stderr_text().splitlines()[-n:])


try:
    import ctypes
    _prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
except Exception:  # noqa: BLE001 - not Linux/glibc: children just lack the safety net
    _prctl = None


def _die_with_parent():
    """preexec_fn: the child gets SIGTERM when the test process dies (even by SIGKILL), so
    no daemon outlives an interrupted run (PR_SET_PDEATHSIG; loaded at import, no import
    or allocation-heavy work between fork and exec)."""
    if _prctl is not None:
        _prctl(1, int(signal.SIGTERM), 0, 0, 0)


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_leftovers():
    for p in _ALL_PROCS:
        try:
            if p.alive():
                p.popen.send_signal(signal.SIGCONT)
                p.popen.kill()
        except Exception:  # noqa: BLE001
            pass


atexit.register(_kill_leftovers)


# ---------------------------------------------------------------------------------------
# GAuth double

class GAuthClient:
    """Controls a GAuth double (local process or TLM_GAUTH_URL)."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def set_mode(self, mode, stall_ms=None):
        req = {"mode": mode}
        if stall_ms is not None:
            req["stall_ms"] = stall_ms
        r = http("POST", self.url + "/__control", json=req, timeout=5)
        r.raise_for_status()
        return r.json()

    def stats(self):
        r = http("GET", self.url + "/__stats", timeout=5)
        r.raise_for_status()
        return r.json()

    def calls_for(self, token):
        """userinfo calls GAuth saw for this token since the last reset."""
        return self.stats()["by_token"].get(token_key(token), 0)

    def reset(self):
        http("POST", self.url + "/__reset", timeout=5).raise_for_status()

    def add_users(self, users):
        http("POST", self.url + "/__users", json=users, timeout=5).raise_for_status()


class GAuthDouble(GAuthClient):
    """Starts e2e/gauth/gauth_double.py on a free port."""

    def __init__(self, workdir, users=GAUTH_USERS):
        self.workdir = workdir
        self.proc = Proc("gauth", [PYTHON, GAUTH_SCRIPT, "--host", "127.0.0.1", "--port", "0", "--users", users],
                         dict(os.environ), os.path.join(workdir, "gauth.stdout"),
                         os.path.join(workdir, "gauth.stderr"))
        self.port = None
        super().__init__("http://127.0.0.1:0")

    def start(self, timeout=10):
        self.proc.start(stdout=subprocess.PIPE)
        out = self.proc.popen.stdout
        buf = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not self.proc.alive():
                self.proc.stop(signal.SIGKILL)
                raise RuntimeError("GAuth double did not start: %r / %s" % (buf, self.proc.stderr_tail()))
            r, _, _ = select.select([out], [], [], left)
            if r:
                chunk = os.read(out.fileno(), 4096)
                if not chunk:
                    continue
                buf += chunk
        m = re.match(rb"listening on (\d+)", buf)
        if not m:
            raise RuntimeError("GAuth double said %r" % buf)
        self.port = int(m.group(1))
        self.url = "http://127.0.0.1:%d" % self.port
        # keep draining its stdout so it can never block on a full pipe
        threading.Thread(target=lambda: [None for _ in iter(lambda: out.read(4096), b"")], daemon=True).start()
        wait_until(lambda: http("GET", self.url + "/__control", timeout=2).status_code == 200, 5, what="GAuth double")
        return self

    def stop(self):
        return self.proc.stop(signal.SIGTERM, 5)

    def log_text(self):
        return self.proc.stderr_text()


# ---------------------------------------------------------------------------------------
# targets

class Target:
    """What tests use: URLs, requests, the logshipper's stdout, metrics."""

    local = False
    ingest_url = metrics_url = None
    gauth = None

    def __init__(self):
        self.tokens_used = set()

    # -- configuration -------------------------------------------------------------------
    def cfg(self, name):
        """Effective value (string) of a TELEMETRY_* variable of this target."""
        return self.config.get(name, CONFIG_DEFAULTS.get(name))

    def cfg_int(self, name):
        return int(self.cfg(name))

    # -- requests --------------------------------------------------------------------------
    def request(self, method, path, body=None, token=None, headers=None, timeout=15, port="ingest"):
        base = self.ingest_url if port == "ingest" else self.metrics_url
        h = {}
        if token is not None:
            h["Authorization"] = "Bearer " + token
            self.tokens_used.add(token)
        h.update(headers or {})
        return http(method, base + path, data=body, headers=h, timeout=timeout)

    def post(self, batch, token="dev-token", gzip=False, headers=None, content_type="application/json",
             path="/api/v1/telemetry", timeout=15, method="POST"):
        """Sends one batch: dict/list (JSON-encoded), str or bytes (as is). Returns the Response."""
        if isinstance(batch, (dict, list)):
            body = json.dumps(batch).encode()
        elif isinstance(batch, str):
            body = batch.encode()
        else:
            body = batch if batch is not None else b""
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if gzip:
            body = gzip_mod.compress(body)
            h["Content-Encoding"] = "gzip"
        h.update(headers or {})
        return self.request(method, path, body=body, token=token, headers=h, timeout=timeout)

    def get(self, path, port="ingest", timeout=10, **kw):
        return self.request("GET", path, port=port, timeout=timeout, **kw)

    # -- output ------------------------------------------------------------------------------
    def stdout_raw(self):
        raise NotImplementedError

    def stdout_lines(self, marker=None, bad=None):
        """Complete JSON lines of the logshipper's stdout (only those containing marker).
        A line that is not JSON fails the test, unless a list is given as bad: then it is
        appended there (e.g. a line cut by a SIGKILL)."""
        out = []
        for raw in self.stdout_raw():
            if marker is not None and marker not in raw:
                continue
            try:
                out.append(json.loads(raw))
            except ValueError:
                if bad is None:
                    self.bad_lines(raw)
                else:
                    bad.append(raw)
        return out

    def bad_lines(self, raw):
        raise AssertionError("logshipper stdout has a line that is not JSON: %r" % raw[:300])

    def wait_for_lines(self, predicate=None, timeout=5.0, count=1, marker=None):
        """Waits until at least count stdout lines match predicate (and marker); returns them."""
        last = []

        def check():
            nonlocal last
            lines = self.stdout_lines(marker)
            last = [ln for ln in lines if predicate is None or predicate(ln)]
            return len(last) >= count
        try:
            wait_until(check, timeout, interval=0.05, what="%d stdout lines" % count)
        except TimeoutError:
            raise AssertionError("expected >= %d matching stdout lines within %.1fs, found %d" % (
                count, timeout, len(last))) from None
        return last

    def metrics_text(self):
        r = http("GET", self.metrics_url + "/metrics", timeout=10)
        assert r.status_code == 200, "/metrics answered %d" % r.status_code
        return r.text

    def metrics(self):
        """{(name, frozenset(labels)): value} from the logshipper's /metrics."""
        return parse_prometheus(self.metrics_text())

    def metric_sum(self, name, metrics=None, **labels):
        """Sum of every series of name whose labels include the given ones (0 if none)."""
        m = self.metrics() if metrics is None else metrics
        want = set(labels.items())
        return sum(v for (n, ls), v in m.items() if n == name and want <= ls)

    def health(self, which="ingest", kind="live"):
        return http("GET", (self.ingest_url if which == "ingest" else self.metrics_url) + "/health/" + kind,
                    timeout=5)

    def daemon_logs(self):
        """Every line the daemons wrote (stdout and stderr) that this target can see."""
        raise NotImplementedError

    # -- local-only operations (ExternalTarget skips) ---------------------------------------
    def restart_logshipper(self, sig=signal.SIGKILL):
        raise NotImplementedError

    def kill_ingest(self, sig=signal.SIGTERM, timeout=10):
        raise NotImplementedError

    def start_ingest(self):
        raise NotImplementedError


class LocalTarget(Target):
    """The three processes on this machine. env overrides the test configuration
    (a value None removes the variable)."""

    local = True

    def __init__(self, env=None, gauth=None, build_dir=None, name="tlm"):
        super().__init__()
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix="tlm-e2e-")
        self.build_dir = build_dir or os.environ.get("TLM_BUILD_DIR") or os.path.join(REPO, "build")
        self.ingest_bin = os.path.join(self.build_dir, "tlm-ingest")
        self.shipper_bin = os.path.join(self.build_dir, "tlm-logshipper")
        self.overrides = dict(env or {})
        self.own_gauth = gauth is None
        self.gauth = gauth
        self.ingest = self.shipper = None
        self.ingest_port = self.overrides.get("TELEMETRY_PORT") or free_port()
        self.metrics_port = self.overrides.get("TELEMETRY_METRICS_PORT") or free_port()
        self.socket_path = self.overrides.get("TELEMETRY_SOCKET") or os.path.join(self.tmp, "tlm.sock")
        self.stdout_path = os.path.join(self.tmp, "logshipper.stdout")
        self.shipper_stderr = os.path.join(self.tmp, "logshipper.stderr")
        self.ingest_stdout = os.path.join(self.tmp, "ingest.stdout")
        self.ingest_stderr = os.path.join(self.tmp, "ingest.stderr")
        self.shipper_starts = 0
        self.closed = False
        LIVE_TARGETS.append(self)

    # -- configuration ----------------------------------------------------------------------
    @property
    def config(self):
        return self.env()

    def env(self):
        e = {k: v for k, v in os.environ.items() if not _ENV_DROP.match(k)}
        e["no_proxy"] = e["NO_PROXY"] = "127.0.0.1,localhost"
        e.update(DEFAULT_TEST_ENV)
        e["TELEMETRY_PORT"] = str(self.ingest_port)
        e["TELEMETRY_METRICS_PORT"] = str(self.metrics_port)
        e["TELEMETRY_SOCKET"] = self.socket_path
        if self.gauth is not None:
            e["TELEMETRY_SERVICES_AUTH"] = self.gauth.url
        for k, v in self.overrides.items():
            if v is None:
                e.pop(k, None)
            else:
                e[k] = str(v)
        return e

    @property
    def ingest_url(self):
        return "http://127.0.0.1:%s" % self.ingest_port

    @property
    def metrics_url(self):
        return "http://127.0.0.1:%s" % self.metrics_port

    def _check_bins(self):
        for b in (self.ingest_bin, self.shipper_bin):
            if not os.access(b, os.X_OK):
                raise RuntimeError("%s is missing: build it first (make all)" % b)

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self, ready_timeout=5.0):
        """GAuth double (if own), logshipper, ingest; waits for /health/live on both, then
        (softly) for the ingest's /health/ready."""
        self._check_bins()
        if self.gauth is None:
            self.gauth = GAuthDouble(self.tmp).start()
        self.start_logshipper()
        self.start_ingest()
        try:
            wait_until(lambda: self.health("ingest", "ready").status_code == 200, ready_timeout,
                       what="ingest ready")
        except TimeoutError:
            pass  # tests that need ready say so; a slow ready must not hide other results
        return self

    def _start_daemon(self, which, attempts=3):
        for attempt in range(attempts):
            if which == "logshipper":
                self.shipper_starts += 1
                proc = Proc("logshipper", [self.shipper_bin], self.env(), self.stdout_path, self.shipper_stderr)
                port_attr, url = "metrics_port", lambda: self.metrics_url
            else:
                proc = Proc("ingest", [self.ingest_bin], self.env(), self.ingest_stdout, self.ingest_stderr)
                port_attr, url = "ingest_port", lambda: self.ingest_url
            errlen = len(_read(proc.stderr_path))
            proc.start()

            def live():
                if not proc.alive():
                    return "exited"
                return http("GET", url() + "/health/live", timeout=2).status_code == 200
            try:
                state = wait_until(live, 10, what="%s /health/live" % which)
            except TimeoutError:
                proc.stop(signal.SIGKILL)
                raise RuntimeError("%s did not answer /health/live within 10s; stderr:\n%s" % (
                    which, proc.stderr_tail())) from None
            if state is True:
                return proc
            new_err = _read(proc.stderr_path)[errlen:]
            busy = re.search(r"in use|EADDRINUSE|bind|cannot listen|cannot serve", new_err, re.I)
            if busy and attempt + 1 < attempts and port_attr not in self.overrides:
                setattr(self, port_attr, free_port())   # lost a race for the port: next one
                continue
            raise RuntimeError("%s exited at start with code %s; stderr:\n%s" % (
                which, proc.returncode(), "\n".join(new_err.splitlines()[-20:])))

    def start_logshipper(self):
        """Starts the logshipper; its stdout is appended to the same file across restarts."""
        self.shipper = self._start_daemon("logshipper")
        return self.shipper

    def start_ingest(self):
        self.ingest = self._start_daemon("ingest")
        return self.ingest

    def stop_logshipper(self, sig=signal.SIGTERM, timeout=5.0):
        return self.shipper.stop(sig, timeout) if self.shipper else None

    def restart_logshipper(self, sig=signal.SIGKILL, timeout=5.0):
        """Kills the logshipper with sig, waits for it to end, starts a new one (same socket,
        same stdout file). Returns the old process's exit code."""
        rc = self.stop_logshipper(sig, timeout)
        self.start_logshipper()
        return rc

    def pause_logshipper(self):
        self.shipper.send_signal(signal.SIGSTOP)

    def resume_logshipper(self):
        self.shipper.send_signal(signal.SIGCONT)

    def kill_ingest(self, sig=signal.SIGTERM, timeout=10.0):
        """Signals the ingest and waits (SIGKILL after timeout). Returns its exit code."""
        return self.ingest.stop(sig, timeout) if self.ingest else None

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in (self.ingest, self.shipper):
            if p is not None:
                p.stop(signal.SIGTERM, 5)
        if self.own_gauth and self.gauth is not None:
            self.gauth.stop()
        if self in LIVE_TARGETS:
            LIVE_TARGETS.remove(self)
        if os.environ.get("TLM_E2E_KEEP") != "1":
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- output -----------------------------------------------------------------------------------
    def stdout_raw(self):
        data = _read(self.stdout_path)
        lines = data.split("\n")
        return [ln for ln in lines[:-1] if ln]   # the last piece is incomplete (or empty)

    def daemon_logs(self):
        parts = []
        for path in (self.stdout_path, self.shipper_stderr, self.ingest_stdout, self.ingest_stderr):
            parts.append(_read(path))
        return "\n".join(parts)

    def gauth_logs(self):
        return self.gauth.log_text() if isinstance(self.gauth, GAuthDouble) else ""

    def failure_report(self, n=25):
        out = ["--- %s (%s) ---" % (self.name, self.tmp)]
        for label, path in (("ingest stderr", self.ingest_stderr), ("logshipper stderr", self.shipper_stderr)):
            tail = "\n".join(_read(path).splitlines()[-n:])
            out.append("[%s]\n%s" % (label, tail or "(empty)"))
        return "\n".join(out)


class ExternalTarget(Target):
    """A service started by someone else (podman pod, kind cluster)."""

    def __init__(self):
        super().__init__()
        self.name = "external"

        def need(var):
            v = os.environ.get(var)
            if not v:
                raise RuntimeError("TLM_E2E_TARGET=external needs %s" % var)
            return v.rstrip("/")
        self.ingest_url = need("TLM_INGEST_URL")
        self.metrics_url = need("TLM_METRICS_URL")
        self.gauth = GAuthClient(need("TLM_GAUTH_URL"))
        self.logs_cmd = need("TLM_LOGS_CMD")
        self.ingest_logs_cmd = os.environ.get("TLM_INGEST_LOGS_CMD")
        self.config = json.loads(os.environ.get("TLM_E2E_CONFIG") or "{}")

    def _run(self, cmd):
        r = subprocess.run(cmd, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        return r.stdout.decode("utf-8", "replace") + "\n" + r.stderr.decode("utf-8", "replace")

    def stdout_raw(self):
        # podman/kubectl logs mix stdout and stderr: keep the record lines only
        out = []
        for ln in self._run(self.logs_cmd).split("\n"):
            ln = ln.strip()
            if ln.startswith("{") and '"rid"' in ln and '"kind"' in ln:
                out.append(ln)
        return out

    def bad_lines(self, raw):
        pass

    def daemon_logs(self):
        text = self._run(self.logs_cmd)
        if self.ingest_logs_cmd:
            text += "\n" + self._run(self.ingest_logs_cmd)
        return text

    def gauth_logs(self):
        return ""

    def failure_report(self, n=25):
        return ""

    def close(self):
        pass


def target_kind():
    return os.environ.get("TLM_E2E_TARGET", "local")


# ---------------------------------------------------------------------------------------
# running a daemon once (configuration errors)

def run_daemon_once(which, env_overrides, timeout=5.0, build_dir=None):
    """Starts build/tlm-<which> with the test configuration plus env_overrides and waits up to
    timeout for it to exit. Returns (exit code or None if it kept running, stderr, stdout)."""
    t = LocalTarget(env=env_overrides, gauth=GAuthClient("http://127.0.0.1:9"), build_dir=build_dir,
                    name="once-" + which)
    try:
        t._check_bins()
        binary = t.ingest_bin if which == "ingest" else t.shipper_bin
        p = Proc(which, [binary], t.env(), os.path.join(t.tmp, which + ".stdout"),
                 os.path.join(t.tmp, which + ".stderr")).start()
        rc = p.wait(timeout)
        if rc is None:
            p.stop(signal.SIGKILL)
        return rc, p.stderr_text(), _read(p.stdout_path)
    finally:
        t.close()
