"""test_faults.py - reliability under faults (issue 8; SPEC 4 and 6, DESIGN "Delivery
guarantee and acks"): real daemons, real signals, real sockets.

Every case that carries records ends with an exact accounting by rid (fault_helpers.account):
each acknowledged record (HTTP 202, WebSocket ack) is on stdout, every copy of a record has
the same rid, no rid names two records, no written record was never sent, no line is cut
(except at most one per logshipper SIGKILL). Each case adds a line to the e2e notes with
what it ran and what it counted.

Cases (HTTP under a logshipper SIGKILL is test_delivery.py's):
  logshipper SIGKILL x2 under WebSocket load   streams stay open, resent frames, no loss
  ingest SIGKILL + restart under HTTP+WS load  clients retry / reconnect, no acked loss
  ingest SIGTERM under HTTP+WS load            drain: 1001 to every stream, exit 0, no loss
  stdout blocked 10 s (pipe nobody reads)      memory of both daemons bounded by the
                                               configured buffers, 503 pipeline_full, WS
                                               flow control, everything acked written
  GAuth killed, slow, flapping                 cached tokens work, new ones 503
                                               auth_unavailable + Retry-After, never 401,
                                               recovery without restart
  socket file removed / wrong owner / a file   fails clearly (readiness, a log line naming
  in its place                                 the socket), recovers once fixed
  nothing written to disk                      no regular file open for writing, empty
                                               working and temp dirs (and strace if present)
"""
import collections
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time

import pytest

import fault_helpers as F
import tlm_harness as H
import ws_helpers as W
from tlm_harness import assert_error, uniq

pytestmark = pytest.mark.local_only


@pytest.fixture
def fault_factory(request):
    """make(env=..., **FaultTarget options) -> a started FaultTarget, closed after the test."""
    if H.target_kind() != "local":
        pytest.skip("needs processes of its own (local target only)")
    made = []

    def make(env=None, start=True, **kw):
        t = F.FaultTarget(env=env, name=request.node.name, **kw)
        made.append(t)
        if start:
            t.start()
        return t
    yield make
    for t in made:
        t.close()


def check_accounting(t, ledger, name, max_garbled=0):
    summary, problems = F.account(t, ledger, max_garbled=max_garbled)
    text = F.summary_text(name, summary, ledger)
    H.note("faults/" + text)
    print(text)
    assert not problems, "%s:\n%s" % (name, "\n".join(problems))
    assert not ledger.errors, "%s: unexpected answers: %s" % (name, ledger.errors[:5])
    return summary


# ---------------------------------------------------------------------------------------
# process faults under load

@pytest.mark.timeout(90)
def test_logshipper_sigkill_under_websocket_load(fault_factory):
    """Three WebSocket streams keep 4 batches in flight; the logshipper is SIGKILLed and
    restarted twice. The ingest keeps the un-acked frames and re-sends them: the streams
    are never closed (the stall is far below TELEMETRY_WS_STALL_TIMEOUT), acks resume
    after each restart, nothing acknowledged is lost."""
    t = fault_factory(env={"TELEMETRY_WS_STALL_TIMEOUT": "30"})
    ledger = F.Ledger(uniq("f-lsk"))
    ws = F.WsLoad(t, ledger, clients=3, per_batch=5, window=4).start()
    try:
        F.wait_for_progress(lambda: ws.acks, 20, 15, "20 WebSocket acks before the first kill")
        acks_at_kill = []
        for _ in range(2):
            time.sleep(0.5)
            acks_at_kill.append(ws.acks)
            rc = t.restart_logshipper(signal.SIGKILL)
            assert rc == -signal.SIGKILL, "logshipper exit %r" % rc
            F.wait_for_progress(lambda: ws.acks, ws.acks + 20, 20,
                                "20 more WebSocket acks after logshipper restart %d" % t.shipper_starts)
    finally:
        assert ws.stop(), "WebSocket client threads still running"
    summary = check_accounting(t, ledger, "logshipper SIGKILL x2 under 3 WebSocket streams", max_garbled=2)
    assert summary["acked_records"] >= 300, summary
    assert not ws.closes, "streams were closed by a logshipper restart: %s" % dict(ws.closes)
    assert ws.connects == 3, "streams reconnected %d times" % (ws.connects - 3)
    assert t.ingest.alive() and t.shipper_starts == 3


@pytest.mark.timeout(90)
def test_ingest_sigkill_and_restart_clients_retry(fault_factory):
    """HTTP clients (retrying the same batchId on errors) and WebSocket streams
    (reconnecting, re-sending every un-acked batch) while the ingest is SIGKILLed and
    started again: whatever was acknowledged before the kill is on stdout, clients get
    acknowledged again after the restart, duplicates keep their rid."""
    t = fault_factory()
    ledger = F.Ledger(uniq("f-isk"))
    http = F.HttpLoad(t, ledger, clients=3, per_batch=10).start()
    ws = F.WsLoad(t, ledger, clients=2, per_batch=5, window=4).start()
    try:
        F.wait_for_progress(lambda: ledger.events["acked_http"], 20, 15, "20 HTTP acks before the kill")
        F.wait_for_progress(lambda: ledger.events["acked_ws"], 20, 15, "20 WebSocket acks before the kill")
        old_pid = t.ingest.pid
        rc = t.kill_ingest(signal.SIGKILL)
        assert rc == -signal.SIGKILL, rc
        http_before, ws_before = ledger.events["acked_http"], ledger.events["acked_ws"]
        time.sleep(0.5)                         # clients meet a dead port for a while
        t.start_ingest()
        assert t.ingest.pid != old_pid
        F.wait_for_progress(lambda: ledger.events["acked_http"], http_before + 20, 20, "HTTP acks after the restart")
        F.wait_for_progress(lambda: ledger.events["acked_ws"], ws_before + 20, 20, "WebSocket acks after the restart")
        F.wait_for_progress(lambda: ws.connects, 3, 20, "both streams reconnected")
    finally:
        ok = http.stop() & ws.stop()
    assert ok, "client threads still running"
    check_accounting(t, ledger, "ingest SIGKILL + restart under 3 HTTP clients and 2 streams")
    assert ledger.events["http_conn_error"] > 0 or http.statuses.get(503), \
        "no client noticed the kill: the test proved nothing (%s)" % dict(http.statuses)
    assert ws.connects >= 4, "streams did not reconnect (%d connects)" % ws.connects
    assert set(k for k in http.statuses if isinstance(k, int)) <= {202, 503}, dict(http.statuses)


@pytest.mark.timeout(90)
def test_ingest_sigterm_under_load_drains(fault_factory):
    """SIGTERM while HTTP clients and WebSocket streams send: in-flight requests are
    answered (202 or 503 with Retry-After), every stream gets its acks then close 1001,
    the ingest exits 0 within TELEMETRY_DRAIN_TIMEOUT; after a restart the clients carry
    on and nothing acknowledged is lost."""
    t = fault_factory(env={"TELEMETRY_DRAIN_TIMEOUT": "10"})
    ledger = F.Ledger(uniq("f-term"))
    http = F.HttpLoad(t, ledger, clients=3, per_batch=10).start()
    ws = F.WsLoad(t, ledger, clients=3, per_batch=5, window=4).start()
    try:
        F.wait_for_progress(lambda: ledger.events["acked_ws"], 30, 15, "WebSocket acks before SIGTERM")
        F.wait_for_progress(lambda: ledger.events["acked_http"], 10, 15, "HTTP acks before SIGTERM")
        t.ingest.send_signal(signal.SIGTERM)
        rc = t.ingest.wait(10 + 5)
        assert rc is not None, "ingest still running 15 s after SIGTERM (TELEMETRY_DRAIN_TIMEOUT=10)"
        try:   # the client threads read the close frames they were sent before the exit
            H.wait_until(lambda: sum(v for k, v in ws.closes.items() if isinstance(k, int)) >= 3, 5,
                         what="the three streams to see their close")
        except TimeoutError:
            pass
        closes_at_exit = dict(ws.closes)
        http_after_exit = ledger.events["acked_http"]
        t.start_ingest()
        F.wait_for_progress(lambda: ledger.events["acked_http"], http_after_exit + 10, 20, "HTTP acks after the restart")
        F.wait_for_progress(lambda: ws.connects, 3, 20, "streams reconnected after the restart")
        F.wait_for_progress(lambda: ledger.events["acked_ws"], ledger.events["acked_ws"] + 10, 20,
                            "WebSocket acks after the restart")
    finally:
        ok = http.stop() & ws.stop()
    assert ok, "client threads still running"
    summary = check_accounting(t, ledger, "ingest SIGTERM under 3 HTTP clients and 3 streams (exit %s, closes %s)" % (
        rc, closes_at_exit))
    assert rc == 0, "ingest exit code after SIGTERM: %s" % rc
    assert closes_at_exit.get(1001, 0) >= 3, "every stream must be closed with 1001: %s" % closes_at_exit
    bad = {k: v for k, v in closes_at_exit.items() if k not in (1001,) and not str(k).startswith("connect:")}
    assert not bad, "streams closed otherwise than 1001 at shutdown: %s" % bad
    assert http.no_retry_after == 0, "503 answers without Retry-After"
    assert set(http.codes) <= {"shutting_down", "ack_timeout", "pipeline_full"}, dict(http.codes)
    assert summary["acked_records"] > 0


@pytest.mark.timeout(120)
def test_stdout_blocked_memory_bounded_then_everything_written(fault_factory):
    """The logshipper's stdout is a pipe nobody reads for 10 s, with small buffers
    (TELEMETRY_BUFFER_MAX_BYTES 1 MiB, TELEMETRY_SHIPPER_BUFFER_BYTES 64 KiB). Meanwhile
    6 clients hammer 200 KB batches without waiting (0.5 s timeouts, no back-off) and 2
    streams keep their window full. Checked: RSS growth of each daemon stays within a
    bound derived from its configured buffer while far more is offered, HTTP clients get
    503 pipeline_full with Retry-After, streams are paused (not closed: the stall is
    shorter than TELEMETRY_WS_STALL_TIMEOUT), and once the pipe is read again every
    acknowledged record is written and the logshipper is ready again."""
    buf, sbuf = 1 << 20, 64 << 10
    t = fault_factory(env={"TELEMETRY_BUFFER_MAX_BYTES": str(buf), "TELEMETRY_SHIPPER_BUFFER_BYTES": str(sbuf),
                           "TELEMETRY_WS_STALL_TIMEOUT": "30"}, pipe_stdout=True)
    ledger = F.Ledger(uniq("f-blk"))
    pad = "p" * 3000

    def fat(led, key, n):
        b = F.Ledger.new_batch(led, key, n)
        for r in b["traces"]:
            r["properties"] = {"agentSessionId": pad}
        return b
    http = F.HttpLoad(t, ledger, clients=2, per_batch=10).start()
    ws = F.WsLoad(t, ledger, clients=2, per_batch=10, window=4).start()
    ham = None
    try:
        F.wait_for_progress(lambda: ws.acks, 20, 15, "WebSocket acks before blocking stdout")
        pids = {"ingest": t.ingest.pid, "logshipper": t.shipper.pid}
        base = {n: F.proc_kb(p) for n, p in pids.items()}
        t.block_stdout()
        ham = F.HttpLoad(t, ledger, clients=6, per_batch=50, retry_cap=0.0, pause=0, timeout=0.5, name="x",
                         make_body=fat).start()
        with F.RssSampler(pids) as rss:
            time.sleep(10)
        ham.stop()
        acks_blocked = ws.acks
        closes_blocked = dict(ws.closes)
        ready_blocked = t.health("logshipper", "ready").status_code
        t.unblock_stdout()
        F.wait_for_progress(lambda: ws.acks, acks_blocked + 20, 30, "WebSocket acks after stdout is read again")
        H.wait_until(lambda: t.health("logshipper", "ready").status_code == 200, 15,
                     what="logshipper ready again after stdout drained")
    finally:
        t.unblock_stdout()
        ok = http.stop() & ws.stop() & (ham.stop() if ham else True)
    assert ok, "client threads still running"
    growth = {n: (rss.peaks[n] - base[n]) * 1024 for n in base}
    body = len(json.dumps(fat(F.Ledger("x"), "x", 50)))
    bound = {"ingest": 2 * buf + 6 * 2 * body + (8 << 20),
             "logshipper": 4 * sbuf + 2 * buf + (4 << 20)}
    summary = check_accounting(t, ledger, "stdout blocked 10 s: offered %.0f MB, RSS growth ingest %.1f MiB "
                               "(bound %.1f), logshipper %.1f MiB (bound %.1f); 503 codes %s; logshipper ready "
                               "while blocked: %s" % (ham.offered / 1e6, growth["ingest"] / 2**20,
                                                      bound["ingest"] / 2**20, growth["logshipper"] / 2**20,
                                                      bound["logshipper"] / 2**20, dict(ham.codes), ready_blocked))
    assert ham.codes.get("pipeline_full", 0) > 0, "no 503 pipeline_full while stdout was blocked: %s" % (
        dict(ham.statuses),)
    assert ham.no_retry_after == 0 and http.no_retry_after == 0, "503 without Retry-After"
    assert set(ham.codes) | set(http.codes) <= {"pipeline_full", "ack_timeout"}, (dict(ham.codes), dict(http.codes))
    assert not closes_blocked, "streams closed while stdout was blocked: %s" % closes_blocked
    assert summary["acked_records"] > 0
    if F.instrumented(t):
        H.note("faults/stdout blocked: memory bounds not checked on an instrumented build (ASan, valgrind)")
        return
    assert ham.offered > 10 * bound["ingest"], "offered only %d bytes: not enough to prove a bound" % ham.offered
    for n in ("ingest", "logshipper"):
        assert growth[n] <= bound[n], "%s RSS grew by %.1f MiB while stdout was blocked (bound %.1f MiB)" % (
            n, growth[n] / 2**20, bound[n] / 2**20)


# ---------------------------------------------------------------------------------------
# GAuth faults

def _fresh_users(n, tag):
    users = {}
    for i in range(n):
        tok = uniq("fresh-%s-%d" % (tag, i))
        users[tok] = {"username": "fresh%d" % i, "loginName": "fresh%d" % i, "contactCenterId": H.PULSE_CC,
                      "environmentId": "e2e", "dbid": 5000 + i, "authorities": ["ROLE_AGENT"]}
    return users


def _batch(marker):
    return {"appName": "wwe_ui", "traces": [{"msg": marker}]}


@pytest.mark.timeout(120)
def test_gauth_killed_slow_and_flapping(fault_factory, tmp_path):
    """GAuth is SIGKILLed (connection refused), then stalls past
    TELEMETRY_AUTH_TIMEOUT_MS, then flaps between up and down every 0.3 s. Throughout: a
    token cached before keeps getting 202, an open WebSocket stream keeps getting acks,
    a never-seen (valid) token gets 503 auth_unavailable with Retry-After or 202, never
    401 (an outage is no verdict). Afterwards, without any restart, every token that was
    refused for the outage is accepted."""
    timeout_ms = 500
    g = F.GAuthProcess(str(tmp_path)).start()
    try:
        t = fault_factory(env={"TELEMETRY_AUTH_TIMEOUT_MS": str(timeout_ms), "TELEMETRY_HEALTH_TIMER": "1",
                               "TELEMETRY_WS_IDLE_TIMEOUT": "600"}, gauth=g)
        pid = t.ingest.pid
        known = {}                  # every fresh user: a restarted GAuth double must learn them again
        n_post = collections.Counter()

        def new_tokens(n, tag):
            users = _fresh_users(n, tag)
            known.update(users)
            return users

        assert t.post(_batch(uniq("g-warm")), token="dev-token").status_code == 202
        ws = W.RawWS(t)
        ws.send_text(W.auth_msg("dev-token-2"))
        W.check_auth_answer(ws.recv_json(5, "auth answer"), t, user="agent2")
        ws_seq = [0]
        ws_marks = []

        def ws_batch():
            ws_seq[0] += 1
            m = uniq("g-ws")
            ws_marks.append(m)
            ws.send_text(json.dumps(W.batch(ws_seq[0], m)))
            W.check_ack(ws.recv_json(10, "ack %d" % ws_seq[0]), ws_seq[0], 1)

        def cached_ok(phase):
            m = uniq("g-cached")
            r = t.post(_batch(m), token="dev-token", timeout=timeout_ms / 1000 + 10)
            n_post["cached"] += 1
            assert r.status_code == 202, "%s: a cached token got %d %s" % (phase, r.status_code, r.text[:200])
            ws_batch()

        def fresh_unavailable(tok, phase):
            r = t.post(_batch(uniq("g-fresh")), token=tok, timeout=timeout_ms / 1000 + 10)
            n_post["fresh"] += 1
            assert r.status_code != 401, "%s: a valid token got 401 during an outage (outage cached as a verdict?)" % phase
            if r.status_code == 202:
                return True
            assert_error(r, 503, "auth_unavailable")
            assert r.headers.get("Retry-After", "").strip().isdigit(), "%s: 503 without Retry-After" % phase
            return False

        refused = []
        # 1. GAuth killed: connection refused
        users = new_tokens(3, "down")
        g.add_users(users)
        g.kill()
        for tok in users:
            assert not fresh_unavailable(tok, "GAuth killed"), "a never-seen token got 202 with GAuth dead"
            refused.append(tok)
        cached_ok("GAuth killed")
        H.wait_until(lambda: t.health("ingest", "ready").status_code == 503, 10,
                     what="ingest /health/ready 503 with GAuth dead")
        # both ports say it (SPEC 2): the logshipper hears GAuth's state from the ingest's STATS
        H.wait_until(lambda: t.health("logshipper", "ready").status_code == 503, 5,
                     what="logshipper /health/ready 503 with GAuth dead")
        shipper_ready = t.health("logshipper", "ready").json()
        assert shipper_ready["checks"] == {"ingest": True, "gauth": False, "output": True}, shipper_ready
        wsd = W.RawWS(t)
        wsd.send_text(W.auth_msg(next(iter(users))))
        code, reason, _ = wsd.wait_close(10)
        wsd.close()
        assert code == 1013, "a new stream authenticating while GAuth is dead: %s %r" % (code, reason)

        # 2. GAuth slow: answers after the timeout
        g.start()
        g.add_users(known)
        users = new_tokens(3, "slow")
        g.add_users(users)
        g.set_mode("stall", stall_ms=timeout_ms + 1500)
        for tok in users:
            assert not fresh_unavailable(tok, "GAuth slow"), "a token got 202 though GAuth answered too late"
            refused.append(tok)
        cached_ok("GAuth slow")

        # 3. GAuth flapping
        g.set_mode("ok")
        users = new_tokens(12, "flap")
        g.add_users(users)
        stop = threading.Event()
        flips = [0]

        def flap():
            mode = "down"
            while not stop.is_set():
                try:
                    g.set_mode(mode)
                    flips[0] += 1
                except Exception:  # noqa: BLE001
                    pass
                mode = "ok" if mode == "down" else "down"
                stop.wait(0.3)
        th = threading.Thread(target=flap, daemon=True)
        th.start()
        flap_ok = 0
        try:
            for tok in users:
                if fresh_unavailable(tok, "GAuth flapping"):
                    flap_ok += 1
                else:
                    refused.append(tok)
                cached_ok("GAuth flapping")
                time.sleep(0.25)            # 12 tokens over ~4 s: a dozen flips
        finally:
            stop.set()
            th.join(5)
        g.set_mode("ok")

        # 4. recovery without restart
        for tok in refused:
            r = t.post(_batch(uniq("g-after")), token=tok)
            assert r.status_code == 202, "after GAuth recovered, a token refused during the outage got %d %s" % (
                r.status_code, r.text[:200])
        H.wait_until(lambda: t.health("ingest", "ready").status_code == 200, 10,
                     what="ingest ready again after GAuth recovered")
        ws_batch()
        ws.close()
        assert t.ingest.pid == pid and t.ingest.alive(), "the ingest was restarted"
        H.note("faults/GAuth killed, slow (%d ms stall > %d ms timeout), flapping (%d flips): %d fresh tokens "
               "refused 503 then accepted after recovery, %d accepted while flapping, %d cached-token posts and "
               "%d stream acks all 202/acked" % (timeout_ms + 1500, timeout_ms, flips[0], len(refused), flap_ok,
                                                  n_post["cached"], len(ws_marks)))
        for m in ws_marks:
            assert len(t.stdout_lines(m)) == 1, "stream batch %s acked but not written once" % m
    finally:
        g.stop()


# ---------------------------------------------------------------------------------------
# the UNIX socket between the daemons


@pytest.mark.timeout(40)
def test_logshipper_notices_its_socket_file_vanished(fault_factory):
    """The logshipper owns the socket. When its file is deleted (or replaced) no ingest
    can ever connect again, so it must either create the socket again or stop saying it
    is ready (an orchestrator then restarts or reports it) within a few health periods."""
    t = fault_factory(env={"TELEMETRY_HEALTH_TIMER": "1"})
    os.unlink(t.socket_path)

    def noticed():
        if os.path.exists(t.socket_path):
            return "re-created"
        return "not ready" if t.health("logshipper", "ready").status_code == 503 else False
    try:
        how = H.wait_until(noticed, 10, interval=0.2, what="logshipper to notice")
    except TimeoutError:
        pytest.fail("10 s after its socket file was deleted the logshipper neither re-created it nor left "
                    "/health/ready (%d %s): a restarted ingest can never connect" % (
                        t.health("logshipper", "ready").status_code, t.health("logshipper", "ready").text[:200]))
    H.note("faults/socket file deleted: the logshipper %s" % how)


def _setpriv():
    return shutil.which("setpriv")


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0 or not _setpriv(), reason="needs root and setpriv to run the ingest as nobody")
def test_socket_of_wrong_owner_fails_clearly_then_recovers(fault_factory):
    """The ingest runs as nobody (as the two containers may run as different users); the
    logshipper (root) creates its socket 0660 root:root, so connect() is refused
    (EACCES): the ingest reports not ready naming the logshipper and logs the socket
    path with the reason; once the socket's group is fixed it connects by itself."""
    tmp = tempfile.mkdtemp(prefix="tlm-perm-")
    os.chmod(tmp, 0o755)
    sockdir = os.path.join(tmp, "run")
    os.mkdir(sockdir)
    os.chmod(sockdir, 0o755)
    sock = os.path.join(sockdir, "tlm.sock")
    try:
        t = fault_factory(env={"TELEMETRY_SOCKET": sock, "TELEMETRY_ACK_TIMEOUT_MS": "1500"}, start=False,
                          ingest_prefix=[_setpriv(), "--reuid=65534", "--regid=65534", "--clear-groups",
                                         "--pdeathsig=TERM", "--"])
        t.start()
        with open("/proc/%d/status" % t.ingest.pid) as f:
            uid_line = next(ln for ln in f if ln.startswith("Uid:"))
        assert uid_line.split()[1] == "65534", "the ingest does not run as nobody: %s" % uid_line
        assert oct(os.stat(sock).st_mode & 0o777) == "0o660", oct(os.stat(sock).st_mode)
        time.sleep(0.5)
        ready = t.health("ingest", "ready")
        assert ready.status_code == 503 and ready.json()["checks"]["logshipper"] is False, ready.text
        err = t.ingest.stderr_text()
        assert sock in err and "ermission denied" in err, "no log line names the socket and EACCES:\n%s" % err[-1500:]
        r = t.post(_batch(uniq("f-perm-early")))
        assert_error(r, 503)
        os.chown(sock, 0, 65534)               # what fsGroup does in the pod
        H.wait_until(lambda: t.health("ingest", "ready").status_code == 200, 10,
                     what="ingest ready once the socket's group is right")
        m = uniq("f-perm")
        assert t.post(_batch(m)).status_code == 202
        assert len(t.stdout_lines(m)) == 1
        H.note("faults/socket 0660 root:root, ingest as nobody: not ready + log naming %s (EACCES); "
               "recovered after chown :nogroup" % os.path.basename(sock))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("what", ["regular file", "directory", "parent is a file"])
def test_socket_path_taken_stops_the_logshipper_clearly(what, tmp_path):
    """Something other than a socket at TELEMETRY_SOCKET (or a parent that cannot be a
    directory): the logshipper exits 1 at start with a message naming the variable; the
    file is left alone."""
    path = str(tmp_path / "tlm.sock")
    if what == "regular file":
        with open(path, "w") as f:
            f.write("not a socket\n")
    elif what == "directory":
        os.mkdir(path)
    else:
        with open(str(tmp_path / "notadir"), "w") as f:
            f.write("x")
        path = str(tmp_path / "notadir" / "tlm.sock")
    rc, err, _ = H.run_daemon_once("logshipper", {"TELEMETRY_SOCKET": path}, timeout=5)
    assert rc == 1, "logshipper with %s at its socket path: exit %r\n%s" % (what, rc, err[-500:])
    assert "TELEMETRY_SOCKET" in err, "the error does not name TELEMETRY_SOCKET:\n%s" % err[-500:]
    if what == "regular file":
        with open(path) as f:
            assert f.read() == "not a socket\n", "the logshipper touched a file that is not its socket"


# ---------------------------------------------------------------------------------------
# nothing on disk

def _strace_attach(pid, out):
    exe = shutil.which("strace")
    if not exe:
        return None
    p = subprocess.Popen([exe, "-f", "-qq", "-p", str(pid), "-o", out, "-e",
                          "trace=open,openat,creat,truncate,ftruncate,rename,renameat,renameat2,unlink,unlinkat,"
                          "mkdir,mkdirat,link,linkat,symlink,symlinkat"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    if p.poll() is not None:        # could not attach (no CAP_SYS_PTRACE, yama): the /proc scan remains
        return None
    return p


_WRITE_OPEN = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC", "O_APPEND")


def _strace_writes(path, allowed):
    """Syscalls in an strace log that write to the file system (open for writing, create,
    rename, unlink...), except on the allowed paths."""
    bad = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return ["no strace output"]
    for ln in lines:
        call = ln.split(None, 1)[1] if ln.split(None, 1)[0].isdigit() and " " in ln else ln
        if call.startswith(("open(", "openat(", "creat(")):
            if not any(flag in call for flag in _WRITE_OPEN) and not call.startswith("creat("):
                continue
        elif not call.startswith(("truncate", "rename", "unlink", "mkdir", "link", "symlink")):
            continue
        if any(a in call for a in allowed):
            continue
        bad.append(call[:200])
    return bad


@pytest.mark.timeout(90)
def test_daemons_write_nothing_to_disk(fault_factory, tmp_path):
    """Both daemons run in an empty working directory with an empty TMPDIR and HOME
    while they take valid and invalid batches, streams, GAuth failures, a logshipper
    restart and an ingest restart. Every 50 ms their open files are read from /proc:
    no regular file may be open for writing (stdio, which the harness chose, aside).
    Afterwards the working, temp and home directories are still empty and the socket
    directory holds only the socket. With strace installed, both are also traced for
    every syscall that writes to the file system."""
    cwd, tmpd, home = (str(tmp_path / d) for d in ("cwd", "tmp", "home"))
    for d in (cwd, tmpd, home):
        os.mkdir(d)
    t = fault_factory(env={"TMPDIR": tmpd, "HOME": home}, cwd=cwd)
    found, scans = [], [0]
    stop = threading.Event()

    def scan():
        while not stop.is_set():
            for name, proc in (("ingest", t.ingest), ("logshipper", t.shipper)):
                if proc is not None and proc.alive():
                    for b in F.writable_regular_files(proc.pid):
                        found.append("%s: %s" % (name, b))
            scans[0] += 1
            stop.wait(0.05)
    th = threading.Thread(target=scan, daemon=True)
    th.start()
    traces, tracers = [], []
    try:
        for name, proc in (("ingest", t.ingest), ("logshipper", t.shipper)):
            out = str(tmp_path / ("strace-%s.txt" % name))
            p = _strace_attach(proc.pid, out)
            if p:
                tracers.append(p)
                traces.append(out)
        ledger = F.Ledger(uniq("f-disk"))
        http = F.HttpLoad(t, ledger, clients=2, per_batch=5).start()
        ws = F.WsLoad(t, ledger, clients=1, per_batch=5).start()
        try:
            for body in ('{"appName":"wwe_ui","traces":[', '{"appName":"nope"}', "[]"):
                assert t.post(body).status_code in (400, 403)
            assert t.post(_batch(uniq("f-disk-bad")), token=uniq("bogus")).status_code == 401
            t.gauth.set_mode("fail")
            assert t.post(_batch(uniq("f-disk-503")), token=uniq("unseen")).status_code == 503
            t.gauth.set_mode("ok")
            F.wait_for_progress(lambda: ledger.acked_batches(), 20, 15, "batches acked")
            for p in tracers:                   # the restarts below start untraced processes
                p.send_signal(signal.SIGINT)
                p.wait(10)
            tracers = []
            t.restart_logshipper(signal.SIGKILL)
            t.kill_ingest(signal.SIGTERM)
            t.start_ingest()
            F.wait_for_progress(lambda: ledger.acked_batches(), ledger.acked_batches() + 10, 20,
                                "batches acked after the restarts")
        finally:
            http.stop()
            ws.stop()
    finally:
        for p in tracers:
            p.send_signal(signal.SIGINT)
            p.wait(10)
        stop.set()
        th.join(5)
    check_accounting(t, ledger, "write-nothing-to-disk load", max_garbled=1)
    strace_bad = []
    for out in traces:
        strace_bad += _strace_writes(out, allowed=(t.socket_path, "/dev/", "/proc/"))
    leftovers = {d: os.listdir(d) for d in (cwd, tmpd, home) if os.listdir(d)}
    sockdir = sorted(os.listdir(os.path.dirname(t.socket_path)))
    H.note("faults/nothing on disk: %d /proc scans of both daemons, strace %s; files open for writing: %d, "
           "leftovers: %s" % (scans[0], "on %d processes" % len(traces) if traces else "not installed",
                              len(found), leftovers or "none"))
    assert scans[0] > 10, "too few scans"
    assert not found, "regular files open for writing: %s" % sorted(set(found))[:10]
    assert not leftovers, "files left in the working/temp/home directories: %s" % leftovers
    assert not [f for f in sockdir if f not in (os.path.basename(t.socket_path),) and f not in (
        os.path.basename(p) for p in (t.stdout_path, t.shipper_stderr, t.ingest_stdout, t.ingest_stderr))
        and not f.startswith(("gauth", "strace"))], "unexpected files next to the socket: %s" % sockdir
    assert not strace_bad, "file-system writes seen by strace: %s" % strace_bad[:10]
