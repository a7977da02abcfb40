"""fault_helpers.py - what the fault and hostile-input suites (test_faults.py,
test_hostile.py) need beyond tlm_harness.py and ws_helpers.py:

  FaultTarget        a LocalTarget whose logshipper can write its stdout into a pipe we
                     stop reading (block_stdout), whose daemons run in a chosen working
                     directory, and whose ingest can run under a prefix (setpriv).
  Ledger, account()  an exact accounting by rid of what clients were acknowledged and
                     what the logshipper wrote (lost, duplicated, forged, unstable rids).
  HttpLoad, WsLoad   client threads that send uniquely marked batches (HTTP POST with
                     retries on 503 and dropped connections; WebSocket streams with a
                     window, re-sending un-acked batches after a reconnect) into a Ledger.
  GAuthProcess       a GAuth double on a fixed port that can be SIGKILLed and restarted
                     (a real "connection refused", not a fault mode).
  raw HTTP/WebSocket helpers, /proc readers (RSS, open fds, writable regular files).

Every wait is bounded; nothing here reaches beyond 127.0.0.1.
"""
import collections
import fcntl
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import tlm_harness as H
import ws_helpers as W

F_SETPIPE_SZ = 1031   # fcntl.F_SETPIPE_SZ (Linux), missing from older Python modules
LOOPBACK = "127.0.0.1"


# ---------------------------------------------------------------------------------------
# /proc readers

def proc_kb(pid, key="VmRSS"):
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM); None if the process is gone."""
    try:
        return W.proc_status(pid, key)
    except OSError:
        return None


def open_fd_targets(pid):
    """{fd: (target, flags)} of /proc/<pid>/fd (flags from fdinfo, octal)."""
    out = {}
    base = "/proc/%d/fd" % pid
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for name in names:
        try:
            target = os.readlink(os.path.join(base, name))
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                flags = next((int(ln.split()[1], 8) for ln in f if ln.startswith("flags:")), 0)
        except (OSError, ValueError):
            continue
        out[int(name)] = (target, flags)
    return out


def writable_regular_files(pid, skip_fds=(0, 1, 2)):
    """Regular files (not sockets, pipes, devices, anon inodes) the process holds open
    for writing, except skip_fds (stdio, which the harness chose) and their duplicates."""
    bad = []
    fds = open_fd_targets(pid)
    stdio = {fds[fd][0] for fd in skip_fds if fd in fds}
    for fd, (target, flags) in sorted(fds.items()):
        if fd in skip_fds or target in stdio:      # stdio, or a dup of it
            continue
        if flags & 0o3 == os.O_RDONLY:
            continue
        if not target.startswith("/") or target.startswith(("/dev/", "/proc/", "/sys/")):
            continue   # socket:[..], pipe:[..], anon_inode:[..], devices
        bad.append("fd %d -> %s (flags %o)" % (fd, target, flags))
    return bad


def instrumented(target):
    """True when the daemons are an ASan build or wrapped (valgrind, a script): RSS then
    measures the tool as much as the daemon, so memory bounds are not checked."""
    for b in (target.ingest_bin, target.shipper_bin):
        try:
            with open(b, "rb") as f:
                data = f.read()
        except OSError:
            return True
        if data[:2] == b"#!" or b"__asan_init" in data:
            return True
    return False


class RssSampler:
    """Samples VmRSS of some pids every interval seconds in a thread; peak() per pid."""

    def __init__(self, pids, interval=0.1):
        self.pids = dict(pids)          # name -> pid
        self.peaks = {n: 0 for n in self.pids}
        self.interval = interval
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for n, pid in self.pids.items():
                v = proc_kb(pid, "VmRSS")
                if v and v > self.peaks[n]:
                    self.peaks[n] = v
            self._stop.wait(self.interval)

    def __enter__(self):
        self._th.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._th.join(5)


# ---------------------------------------------------------------------------------------
# a service we can start in unusual ways

class FaultTarget(H.LocalTarget):
    """A LocalTarget with three extra knobs:
      pipe_stdout   the logshipper's stdout is a pipe (shrunk to pipe_size bytes so it
                    fills at once) that a pump thread copies to self.stdout_path, so every
                    stdout helper works unchanged; block_stdout() stops the pump (the
                    pipe fills and the logshipper's writes get EAGAIN, as when a container
                    runtime stops reading), unblock_stdout() lets it flow again.
      cwd           working directory of both daemons (default: the repository).
      ingest_prefix argv put before the ingest binary (e.g. setpriv to run it as nobody).
    """

    def __init__(self, env=None, gauth=None, build_dir=None, name="fault", pipe_stdout=False, pipe_size=4096,
                 cwd=None, ingest_prefix=None):
        super().__init__(env=env, gauth=gauth, build_dir=build_dir, name=name)
        self.pipe_stdout, self.pipe_size = pipe_stdout, pipe_size
        self.cwd = cwd or H.REPO
        # a relative TLM_BUILD_DIR means the repository's: keep it so from another cwd
        self.ingest_bin = os.path.join(H.REPO, self.ingest_bin)
        self.shipper_bin = os.path.join(H.REPO, self.shipper_bin)
        self.ingest_prefix = list(ingest_prefix or [])
        self._flowing = threading.Event()
        self._flowing.set()
        self._pumps = []

    def block_stdout(self):
        self._flowing.clear()

    def unblock_stdout(self):
        self._flowing.set()

    def _pump(self, rfd):
        with open(self.stdout_path, "ab", buffering=0) as out:
            while True:
                self._flowing.wait()
                r, _, _ = select.select([rfd], [], [], 0.2)
                if not r or not self._flowing.is_set():
                    continue     # blocked while we waited: leave the bytes in the pipe
                try:
                    chunk = os.read(rfd, 1 << 16)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                out.write(chunk)
        os.close(rfd)

    def _start(self, which):
        self._check_bins()
        env = self.env()
        if which == "logshipper":
            self.shipper_starts += 1
            argv, url = [self.shipper_bin], self.metrics_url
            proc = H.Proc("logshipper", argv, env, self.stdout_path, self.shipper_stderr, cwd=self.cwd)
        else:
            argv, url = self.ingest_prefix + [self.ingest_bin], self.ingest_url
            proc = H.Proc("ingest", argv, env, self.ingest_stdout, self.ingest_stderr, cwd=self.cwd)
        if which == "logshipper" and self.pipe_stdout:
            rfd, wfd = os.pipe()
            try:
                fcntl.fcntl(wfd, F_SETPIPE_SZ, self.pipe_size)
            except OSError:
                pass   # the default size: blocking takes a little longer to bite
            try:
                proc.start(stdout=wfd)
            finally:
                os.close(wfd)
            th = threading.Thread(target=self._pump, args=(rfd,), daemon=True)
            th.start()
            self._pumps.append(th)
        else:
            proc.start()

        def live():
            if not proc.alive():
                return "exited"
            return H.http("GET", url + "/health/live", timeout=2).status_code == 200
        try:
            state = H.wait_until(live, 10, what="%s /health/live" % which)
        except TimeoutError:
            proc.stop(signal.SIGKILL)
            raise RuntimeError("%s did not answer /health/live: %s" % (which, proc.stderr_tail())) from None
        if state is not True:
            raise RuntimeError("%s exited at start (%s): %s" % (which, proc.returncode(), proc.stderr_tail()))
        return proc

    def start_logshipper(self):
        self.shipper = self._start("logshipper")
        return self.shipper

    def start_ingest(self):
        self.ingest = self._start("ingest")
        return self.ingest

    def close(self):
        self.unblock_stdout()
        super().close()
        for th in self._pumps:
            th.join(5)


# ---------------------------------------------------------------------------------------
# accounting by rid

class Ledger:
    """What clients sent and were acknowledged. Each batch has a client-chosen batchId
    and n traces whose msg is '<run> <batch key> <i>' (so the rid of msg i must end in
    '-t<i>' and every record of a batch shares the rid's hex part)."""

    def __init__(self, run):
        self.run = run
        self.lock = threading.Lock()
        self.batches = {}               # key -> {"n": n, "acked": bool, "via": set()}
        self.events = collections.Counter()
        self.errors = []                # unexpected answers (text)

    def new_batch(self, key, n):
        with self.lock:
            self.batches[key] = {"n": n, "acked": False, "via": set()}
        msgs = ["%s %s %d" % (self.run, key, i) for i in range(n)]
        body = {"appName": "wwe_ui", "batchId": "%s-%s" % (self.run, key),
                "traces": [{"msg": m} for m in msgs]}
        return body

    def acked(self, key, via):
        with self.lock:
            self.batches[key]["acked"] = True
            self.batches[key]["via"].add(via)
            self.events["acked_" + via] += 1

    def count(self, what, n=1):
        with self.lock:
            self.events[what] += n

    def error(self, text):
        with self.lock:
            self.errors.append(text)

    def acked_records(self):
        with self.lock:
            return sum(b["n"] for b in self.batches.values() if b["acked"])

    def acked_batches(self):
        with self.lock:
            return sum(1 for b in self.batches.values() if b["acked"])

    def snapshot(self):
        with self.lock:
            return {k: dict(v, via=set(v["via"])) for k, v in self.batches.items()}


_RID = re.compile(r"^([0-9a-f]{32})-t(\d+)$")


def account(target, ledger, max_garbled=0, settle=10.0):
    """Exact accounting of the ledger's run against the logshipper's stdout. Waits up to
    settle seconds for every acknowledged record to appear (they must already be there:
    the wait only absorbs the pump's copy delay). Returns (summary dict, [problems])."""
    batches = ledger.snapshot()
    marker = ledger.run + " "
    want = {}
    for key, b in batches.items():
        for i in range(b["n"]):
            want["%s %s %d" % (ledger.run, key, i)] = (key, i, b["acked"])
    acked_msgs = {m for m, (_, _, a) in want.items() if a}

    def read():
        garbled = []
        lines = target.stdout_lines(marker, bad=garbled)
        return lines, garbled

    deadline = time.monotonic() + settle
    while True:
        lines, garbled = read()
        written = {ln.get("msg") for ln in lines}
        if acked_msgs <= written or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    problems = []
    if len(garbled) > max_garbled:
        problems.append("%d stdout lines of this run are not JSON (at most %d allowed): %r" % (
            len(garbled), max_garbled, [g[:120] for g in garbled[:3]]))
    rids_of = collections.defaultdict(set)
    msg_of_rid = {}
    prefix_of_batch = collections.defaultdict(set)
    forged = []
    for ln in lines:
        msg, rid = ln.get("msg"), ln.get("rid")
        if msg not in want:
            forged.append(msg)
            continue
        key, i, _ = want[msg]
        m = _RID.match(rid or "")
        if not m:
            problems.append("bad rid %r on %r" % (rid, msg))
            continue
        if int(m.group(2)) != i:
            problems.append("rid %s of record %d of batch %s has the wrong index" % (rid, i, key))
        prefix_of_batch[key].add(m.group(1))
        rids_of[msg].add(rid)
        if msg_of_rid.setdefault(rid, msg) != msg:
            problems.append("rid %s names two records: %r and %r" % (rid, msg_of_rid[rid], msg))
    if forged:
        problems.append("%d written records were never sent: %r" % (len(forged), forged[:3]))
    unstable = {m: r for m, r in rids_of.items() if len(r) > 1}
    if unstable:
        problems.append("%d records were written with different rids: %r" % (
            len(unstable), list(unstable.items())[:3]))
    split = {k: p for k, p in prefix_of_batch.items() if len(p) > 1}
    if split:
        problems.append("%d batches have records under different rid prefixes: %r" % (len(split), list(split.items())[:3]))
    missing = sorted(acked_msgs - set(rids_of))
    if missing:
        problems.append("LOST: %d of %d acknowledged records are not on stdout, e.g. %r" % (
            len(missing), len(acked_msgs), missing[:5]))
    distinct = len(rids_of)
    summary = {
        "batches": len(batches),
        "acked_batches": sum(1 for b in batches.values() if b["acked"]),
        "acked_records": len(acked_msgs),
        "lines": len(lines),
        "distinct_rids": len(set(msg_of_rid)),
        "duplicates": len(lines) - distinct - len(forged),
        "written_not_acked": len(set(rids_of) - acked_msgs),
        "lost": len(missing),
        "garbled": len(garbled),
    }
    return summary, problems


def summary_text(name, summary, ledger=None):
    s = "%s: %d batches, %d acked (%d records); %d lines, %d distinct rids, %d duplicates (same rid), " \
        "%d written but never acked, %d lost" % (
            name, summary["batches"], summary["acked_batches"], summary["acked_records"], summary["lines"],
            summary["distinct_rids"], summary["duplicates"], summary["written_not_acked"], summary["lost"])
    if ledger is not None and ledger.events:
        s += "; client events %s" % dict(sorted(ledger.events.items()))
    return s


# ---------------------------------------------------------------------------------------
# load generators

class HttpLoad:
    """clients threads POSTing batches of per_batch traces. A batch is retried (same
    batchId: same rids) on 503, 429 and dropped connections until it is acknowledged or
    the load is stopped; any other answer is recorded as an error. The URL is read from
    the target at each attempt (a restarted ingest may have a new port)."""

    def __init__(self, target, ledger, clients=3, per_batch=10, pause=0.01, token="dev-token",
                 retry_cap=0.5, timeout=20, name="h", make_body=None):
        self.t, self.ledger, self.name = target, ledger, name
        self.make_body = make_body          # make_body(ledger, key, n) -> batch dict
        self.offered = 0                    # bytes of bodies sent (every attempt)
        self.clients, self.per_batch, self.pause = clients, per_batch, pause
        self.token, self.retry_cap, self.timeout = token, retry_cap, timeout
        self.stop_ev = threading.Event()
        self.threads = []
        self.statuses = collections.Counter()
        self.codes = collections.Counter()
        self.lock = threading.Lock()
        self.no_retry_after = 0

    def _one(self, cid):
        n = 0
        while not self.stop_ev.is_set():
            n += 1
            key = "%s%d-%d" % (self.name, cid, n)
            body = (self.make_body or Ledger.new_batch)(self.ledger, key, self.per_batch)
            data = json.dumps(body).encode()
            while not self.stop_ev.is_set():
                with self.lock:
                    self.offered += len(data)
                try:
                    r = self.t.post(data, token=self.token, timeout=self.timeout)
                except Exception as e:  # noqa: BLE001 - a killed ingest drops connections
                    self.ledger.count("http_conn_error")
                    with self.lock:
                        self.statuses[type(e).__name__] += 1
                    time.sleep(0.1)
                    continue
                with self.lock:
                    self.statuses[r.status_code] += 1
                if r.status_code == 202:
                    try:
                        acc = r.json().get("accepted")
                    except ValueError:
                        acc = None
                    if acc != self.per_batch:
                        self.ledger.error("202 with accepted %r: %s" % (acc, r.text[:200]))
                    self.ledger.acked(key, "http")
                    break
                if r.status_code in (503, 429):
                    code = None
                    try:
                        code = r.json()["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        self.ledger.error("%d without a JSON error: %r" % (r.status_code, r.text[:200]))
                    ra = r.headers.get("Retry-After", "")
                    with self.lock:
                        self.codes[code] += 1
                        if not ra.strip().isdigit():
                            self.no_retry_after += 1
                    time.sleep(min(float(ra) if ra.strip().isdigit() else 1.0, self.retry_cap))
                    continue
                self.ledger.error("unexpected %d: %s" % (r.status_code, r.text[:200]))
                break
            time.sleep(self.pause)

    def start(self):
        for c in range(self.clients):
            th = threading.Thread(target=self._one, args=(c,), daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self, join=30):
        self.stop_ev.set()
        for th in self.threads:
            th.join(join)
        return not any(th.is_alive() for th in self.threads)


class WsLoad:
    """clients threads, each one WebSocket stream (raw frames, masked): authenticate, keep
    up to window batches un-acked, read acks. When the server closes (1001, 1013) or the
    connection drops, reconnect and re-send every un-acked batch (same batchId) until
    stopped. Sends never block the thread: while the server does not read, frames wait in
    our buffer (flow control is observed, not fought)."""

    def __init__(self, target, ledger, clients=2, per_batch=5, window=4, token="dev-token", pause=0.005,
                 name="w", make_body=None):
        self.t, self.ledger, self.name = target, ledger, name
        self.make_body = make_body
        self.clients, self.per_batch, self.window = clients, per_batch, window
        self.token, self.pause = token, pause
        self.stop_ev = threading.Event()
        self.threads = []
        self.lock = threading.Lock()
        self.closes = collections.Counter()     # close code -> count
        self.connects = 0
        self.acks = 0
        self.last_ack = {}                      # cid -> monotonic time of the last ack

    def _conn(self):
        ws = W.RawWS(self.t, timeout=5)
        ws.send_text(W.auth_msg(self.token))
        ans = ws.recv_json(10, "the auth answer")
        if ans.get("type") != "auth" or ans.get("ok") is not True:
            ws.close()
            raise W.RawClosed(0, "auth refused: %r" % ans)
        with self.lock:
            self.connects += 1
        return ws

    def _one(self, cid):
        pending = collections.OrderedDict()     # key -> body (un-acked, in order)
        n = 0
        while not self.stop_ev.is_set():
            try:
                ws = self._conn()
            except (OSError, W.RawClosed, W.RawHandshakeError, AssertionError, ValueError) as e:
                with self.lock:
                    self.closes["connect:" + type(e).__name__] += 1
                time.sleep(0.2)
                continue
            seq_key = {}
            seq = 0
            try:
                for key, body in pending.items():      # re-send what was never acked
                    seq += 1
                    seq_key[seq] = key
                    ws.queue(0x1, json.dumps(dict(body, seq=seq)))
                    self.ledger.count("ws_resent")
                while not self.stop_ev.is_set():
                    while (not ws.broken and len(pending) < self.window and not self.stop_ev.is_set()
                           and len(ws.out) < (1 << 20)):
                        n += 1
                        key = "%s%d-%d" % (self.name, cid, n)
                        body = (self.make_body or Ledger.new_batch)(self.ledger, key, self.per_batch)
                        pending[key] = body
                        seq += 1
                        seq_key[seq] = key
                        ws.queue(0x1, json.dumps(dict(body, seq=seq)))
                    if not ws.broken:
                        ws.flush()      # once the server closed, only read: its close frame may wait
                    f = ws.recv_frame(0.2)
                    if f is None:
                        continue
                    op, payload = f
                    if op == 0x8:
                        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                        raise W.RawClosed(code, payload[2:].decode("utf-8", "replace"))
                    if op != 0x1:
                        continue
                    msg = json.loads(payload.decode())
                    if msg.get("type") == "ack":
                        key = seq_key.pop(msg.get("seq"), None)
                        if key is None or key not in pending:
                            self.ledger.error("ack of unknown seq %r" % msg.get("seq"))
                            continue
                        if msg.get("accepted") != self.per_batch:
                            self.ledger.error("ws ack accepted %r: %r" % (msg.get("accepted"), msg))
                        del pending[key]
                        self.ledger.acked(key, "ws")
                        with self.lock:
                            self.acks += 1
                            self.last_ack[cid] = time.monotonic()
                        if self.pause:
                            time.sleep(self.pause)
                    else:
                        self.ledger.error("ws answer %r" % msg)
            except W.RawClosed as c:
                with self.lock:
                    self.closes[c.code] += 1
            except (OSError, ValueError) as e:
                with self.lock:
                    self.closes["error:" + type(e).__name__] += 1
            finally:
                ws.close()
            if not self.stop_ev.is_set():
                time.sleep(0.1)

    def start(self):
        for c in range(self.clients):
            th = threading.Thread(target=self._one, args=(c,), daemon=True)
            th.start()
            self.threads.append(th)
        return self

    def stop(self, join=30):
        self.stop_ev.set()
        for th in self.threads:
            th.join(join)
        return not any(th.is_alive() for th in self.threads)


def wait_for_progress(get, more_than, timeout, what):
    """Waits until get() > more_than (an acked count, say)."""
    H.wait_until(lambda: get() > more_than, timeout, interval=0.05, what=what)


# ---------------------------------------------------------------------------------------
# a GAuth double we can kill for real

class GAuthProcess(H.GAuthClient):
    """e2e/gauth/gauth_double.py on a fixed free port; kill() = SIGKILL (clients then get
    connection refused), start() again on the same port."""

    def __init__(self, workdir, port=None):
        self.workdir = workdir
        self.port = port or H.free_port()
        super().__init__("http://%s:%d" % (LOOPBACK, self.port))
        self.proc = None

    def start(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            self.proc = H.Proc("gauth", [H.PYTHON, H.GAUTH_SCRIPT, "--host", LOOPBACK, "--port", str(self.port),
                                         "--users", H.GAUTH_USERS, "--quiet"], dict(os.environ),
                               os.path.join(self.workdir, "gauth-fixed.stdout"),
                               os.path.join(self.workdir, "gauth-fixed.stderr")).start()
            try:
                H.wait_until(lambda: H.http("GET", self.url + "/__control", timeout=1).status_code == 200,
                             3, what="GAuth double on port %d" % self.port)
                return self
            except TimeoutError:
                self.proc.stop(signal.SIGKILL)
                if time.monotonic() > deadline:     # the port may linger briefly after a kill
                    raise RuntimeError("GAuth double did not start on %d: %s" % (
                        self.port, self.proc.stderr_tail())) from None
                time.sleep(0.3)

    def kill(self):
        if self.proc:
            self.proc.stop(signal.SIGKILL)

    def stop(self):
        if self.proc:
            self.proc.stop(signal.SIGTERM, 5)

    def log_text(self):
        return self.proc.stderr_text() if self.proc else ""


# ---------------------------------------------------------------------------------------
# raw sockets

def port_of(url):
    return int(url.rsplit(":", 1)[1].split("/")[0])


def connect(target, timeout=5.0):
    return socket.create_connection((LOOPBACK, port_of(target.ingest_url)), timeout)


def read_until_close(sock, limit):
    """Reads until EOF/reset or limit seconds. Returns (how, bytes, seconds) where how is
    'eof', 'reset' or 'open'."""
    t0 = time.monotonic()
    got = b""
    sock.settimeout(0.1)
    while time.monotonic() - t0 < limit:
        try:
            c = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return "reset", got, time.monotonic() - t0
        except OSError:
            return "reset", got, time.monotonic() - t0
        if not c:
            return "eof", got, time.monotonic() - t0
        got += c
    return "open", got, time.monotonic() - t0


def exchange(target, data, limit=5.0):
    """Sends data on a fresh connection and reads until the server closes or limit
    passes. Returns (how, bytes)."""
    s = connect(target)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        how, got, _ = read_until_close(s, limit)
        return how, got
    finally:
        s.close()


def responses(raw):
    """Splits raw HTTP/1.1 response bytes into [(status, headers dict lower-case, body)]
    using Content-Length; stops at anything it cannot parse."""
    out = []
    while raw.startswith(b"HTTP/1."):
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            break
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b":")
            hdrs[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
        n = int(hdrs.get("content-length", "0") or 0)
        out.append((status, hdrs, rest[:n]))
        raw = rest[n:]
    return out


def post_bytes(body, token="dev-token", extra=b"", content_length=None, path=b"/api/v1/telemetry"):
    """A raw HTTP/1.1 POST of body (bytes) with our usual headers."""
    cl = len(body) if content_length is None else content_length
    head = (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" +
            (b"Authorization: Bearer " + token.encode() + b"\r\n" if token else b"") +
            b"Content-Type: application/json\r\n" +
            (b"Content-Length: %d\r\n" % cl if cl is not None and cl is not False else b"") + extra + b"\r\n")
    return head + body


def ws_frame(b0, payload, masked=True, length=None):
    """One WebSocket frame with first byte b0 (FIN, RSV, opcode as given). length
    overrides the announced payload length (the payload sent is still payload)."""
    n = len(payload) if length is None else length
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes([b0, mbit | n])
    elif n < 65536:
        head = bytes([b0, mbit | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, mbit | 127]) + n.to_bytes(8, "big")
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + (W._mask_fast(payload, mask) if payload else b"")


def grep_secrets(texts, secrets):
    """[(secret, line)] for every secret found in any line of texts."""
    hits = []
    for text in texts:
        for line in text.splitlines():
            for s in secrets:
                if s and s in line:
                    hits.append((s, line[:200]))
    return hits


def promtool_problems(text, allowed=()):
    """`promtool check metrics` on text: [problem lines] except the allowed lints; None
    when /usr/bin/promtool is missing."""
    if not os.access("/usr/bin/promtool", os.X_OK):
        return None
    p = subprocess.run(["/usr/bin/promtool", "check", "metrics"], input=text.encode(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = p.stdout.decode("utf-8", "replace")
    problems = [ln for ln in out.splitlines() if ln.strip() and not any(a in ln for a in allowed)]
    if p.returncode != 0 and not problems and not out.strip():
        problems.append("promtool exited %d" % p.returncode)
    return problems
