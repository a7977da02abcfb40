"""test_hostile.py - hostile input (issue 8; SPEC 3 and 6, DESIGN "Error answers" and
"WebSocket stream"): every byte a client sends is untrusted. Real daemons, raw sockets.

  malformed HTTP       oversized headers, chunked / conflicting lengths, slowloris headers
                       and bodies under a small TELEMETRY_IDLE_TIMEOUT, two requests in one
                       write (pipelining)
  malformed WebSocket  reserved bits and opcodes, fragmented or oversized control frames,
                       bad continuations, unmasked client frames, invalid UTF-8, endless
                       fragments and absurd announced lengths
  JSON and gzip bombs  depth, 100k keys, huge numbers, long strings, invalid UTF-8, NUL,
                       nested and concatenated gzip
  injection            every client string in every field: each stdout line stays one JSON
                       object whose keys the client did not choose; stderr lines too;
                       metric labels (promtool) and a cardinality flood
  identity             tenantName / contactCenterId / user anywhere in a payload change
                       nothing; batchIds of two tenants never share rids
  secrets              no token or client secret in any daemon output or /metrics
  floods               connections past TELEMETRY_MAX_CONNECTIONS

After every refusal the service must still serve other clients (checked by the cases).
Each case adds a line to the e2e notes saying what it sent and what it checked.
"""
import gzip
import json
import os
import re
import select
import signal
import socket
import threading
import time
import unicodedata

import pytest

import fault_helpers as F
import tlm_harness as H
import ws_helpers as W
from tlm_harness import ACME_CC, PULSE_CC, assert_error, uniq

pytestmark = pytest.mark.local_only

IDLE = 2                     # TELEMETRY_IDLE_TIMEOUT of the module's service
HEADER_MAX = 2048            # TELEMETRY_MAX_HEADER_BYTES
WS_MAX = 65536               # TELEMETRY_WS_MAX_MESSAGE_BYTES
FREED_WITHIN = 2 * IDLE + 3  # a connection the idle timeout must free is gone by then (a bound, not a speed)

LINE_KEYS = {
    "trace": {"ts", "receivedAt", "kind", "level", "appName", "tenantName", "contactCenterId", "user", "msg",
              "properties", "rid"},
    "event": {"ts", "receivedAt", "kind", "appName", "tenantName", "contactCenterId", "user", "name", "properties",
              "rid"},
    "metric": {"ts", "receivedAt", "kind", "appName", "tenantName", "contactCenterId", "user", "name", "value",
               "properties", "rid"},
}
WWE_PROPS = {"connId", "agentSessionId", "browserSessionId", "interactionId", "POC_override"}
STDERR_KEYS = {"ts", "level", "logger", "component", "msg"}


@pytest.fixture(scope="module")
def hsvc(module_factory):
    t = module_factory(env={"TELEMETRY_MAX_HEADER_BYTES": str(HEADER_MAX), "TELEMETRY_IDLE_TIMEOUT": str(IDLE),
                            "TELEMETRY_WS_MAX_MESSAGE_BYTES": str(WS_MAX), "TELEMETRY_AUTH_TIMEOUT_MS": "500"},
                       name="hostile")
    if t is None:
        pytest.skip("local target only")
    return t


def healthy(t, what):
    """The service still answers others: /health/live, a POST written once, a stream ack."""
    assert t.ingest.alive() and t.shipper.alive(), "%s: a daemon died" % what
    r = H.http("GET", t.ingest_url + "/health/live", timeout=5)
    assert r.status_code == 200, "%s: /health/live %d" % (what, r.status_code)
    m = uniq("healthy")
    r = t.post({"appName": "wwe_ui", "traces": [{"msg": m}]}, timeout=10)
    assert r.status_code == 202, "%s: a normal batch got %d %s" % (what, r.status_code, r.text[:200])
    ws = W.RawWS(t)
    try:
        ws.send_text(W.auth_msg("dev-token"))
        ws.recv_json(5, "auth answer")
        ws.send_text(json.dumps(W.batch(1, m + "-ws")))
        W.check_ack(ws.recv_json(10, "ack"), 1, 1)
    finally:
        ws.close()
    assert len(t.stdout_lines(m)) == 2, "%s: the health batches were not written once each" % what


def no_control_chars(raw):
    """Characters a line may not hold raw: C0/C1 controls, DEL, U+2028/U+2029."""
    return [hex(ord(c)) for c in raw if unicodedata.category(c) == "Cc" or c in "\u2028\u2029"]


def strict_json(text):
    def bad_constant(c):
        raise ValueError("non-JSON constant %s" % c)
    return json.loads(text, parse_constant=bad_constant)


# ---------------------------------------------------------------------------------------
# malformed HTTP over raw sockets

def _get(path=b"/health/live", extra=b""):
    return b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["one long known header", "one long unknown header", "many headers",
                                  "header name prefix of a known one"])
def test_oversized_or_odd_headers_refused(hsvc, case):
    """Headers over TELEMETRY_MAX_HEADER_BYTES get a 4xx answer or a closed connection,
    promptly (within the idle bound: a request that cannot be served must not hold a
    connection longer than a slow client may). A header name lws's lexer stalls on (a
    strict prefix of a name it knows) is bounded the same way."""
    if case == "one long known header":
        data = _get(extra=b"User-Agent: " + b"a" * (HEADER_MAX + 500) + b"\r\n")
    elif case == "one long unknown header":
        data = _get(extra=b"X-Long: " + b"a" * (HEADER_MAX + 500) + b"\r\n")
    elif case == "many headers":
        data = _get(extra=b"".join(b"X-H%03d: %s\r\n" % (i, b"v" * 20) for i in range((HEADER_MAX // 28) + 20)))
    else:
        data = _get(extra=b"Authoriz: x\r\n")
    s = F.connect(hsvc)
    try:
        s.sendall(data)
        how, got, took = F.read_until_close(s, FREED_WITHIN + 1)
    finally:
        s.close()
    answers = F.responses(got)
    H.note("hostile/http %s: %s after %.1fs, answers %s" % (case, how, took, [a[0] for a in answers]))
    if case == "header name prefix of a known one" and answers:
        assert answers[0][0] in (200, 400), "answered %d" % answers[0][0]
    else:
        assert not answers or 400 <= answers[0][0] < 500, (
            "%d bytes of headers with TELEMETRY_MAX_HEADER_BYTES=%d answered %d" % (len(data), HEADER_MAX,
                                                                                answers[0][0]))
    assert answers or (how != "open" and took <= FREED_WITHIN), (
        "no answer and the connection held %.1fs (%s) with TELEMETRY_IDLE_TIMEOUT=%d" % (took, how, IDLE))
    healthy(hsvc, case)


def test_header_just_under_the_limit_is_served(hsvc):
    r = F.exchange(hsvc, _get(extra=b"User-Agent: " + b"u" * (HEADER_MAX - 200) + b"\r\nConnection: close\r\n"), 5)
    answers = F.responses(r[1])
    assert answers and answers[0][0] == 200, "a request under TELEMETRY_MAX_HEADER_BYTES: %r" % (r[1][:200],)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["chunked", "bad chunk size", "chunked with Content-Length",
                                  "conflicting Content-Length", "negative Content-Length"])
def test_body_framing_attacks_refused(tlm_factory, case):
    """Bodies whose length is ambiguous are refused with one JSON 4xx and the connection
    is closed: nothing of them is written, and no bytes of the body are read as a second
    request (request smuggling behind a proxy that frames differently). An instance of
    its own: bytes read as a pipelined request must not harm the other cases."""
    hsvc = tlm_factory(env={"TELEMETRY_IDLE_TIMEOUT": str(IDLE)})
    m = uniq("frame")
    body = json.dumps({"appName": "wwe_ui", "traces": [{"msg": m}]}).encode()
    smuggled = _get(b"/smuggled-" + m.encode())
    if case == "chunked":
        data = F.post_bytes(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body), content_length=False,
                            extra=b"Transfer-Encoding: chunked\r\n")
    elif case == "bad chunk size":
        data = F.post_bytes(b"fffffffffffffffffffff\r\n" + body + b"\r\n0\r\n\r\n", content_length=False,
                            extra=b"Transfer-Encoding: chunked\r\n")
    elif case == "chunked with Content-Length":
        data = F.post_bytes(body + smuggled, content_length=len(body), extra=b"Transfer-Encoding: chunked\r\n")
    elif case == "conflicting Content-Length":
        data = F.post_bytes(body + smuggled, content_length=len(body), extra=b"Content-Length: 5\r\n")
        data = data.replace(b"Content-Length: %d\r\nContent-Length: 5\r\n" % len(body),
                            b"Content-Length: 5\r\nContent-Length: %d\r\n" % len(body))
    else:
        data = F.post_bytes(body + smuggled, content_length=-5)
    how, got = F.exchange(hsvc, data, 4)
    answers = F.responses(got)
    H.note("hostile/http %s: answers %s, then %s" % (case, [a[0] for a in answers], how))
    assert answers, "no answer to %s: %r" % (case, got[:200])
    status, hdrs, first = answers[0]
    assert 400 <= status < 500, "%s answered %d %r" % (case, status, first[:200])
    assert "application/json" in hdrs.get("content-type", ""), "%s: %d answer is not JSON: %r" % (case, status, first[:200])
    assert len(answers) == 1, "%s: the body was read as another request: %s" % (case, [a[:1] for a in answers])
    assert hsvc.stdout_lines(m) == [], "%s: the batch was written" % case
    assert how != "open", "%s: the connection stayed open after the refusal" % case


@pytest.mark.timeout(45)
@pytest.mark.parametrize("part", ["headers", "body"])
def test_slowloris_freed_by_the_idle_timeout(hsvc, part):
    """10 clients send a request one byte every 0.3 s (never idle, never done). With
    TELEMETRY_IDLE_TIMEOUT=2 each connection is freed (answered or closed) within the
    idle bound, other clients are served meanwhile, and a body cut short is never
    written."""
    m = uniq("slow")
    body = json.dumps({"appName": "wwe_ui", "traces": [{"msg": m}]}).encode() + b" " * 400
    if part == "headers":
        head, trickle = b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"s" * 400
    else:
        head, trickle = F.post_bytes(b"", content_length=len(body)), body
    stop = threading.Event()
    socks = []

    def drip(s):
        for i in range(len(trickle)):
            if stop.is_set():
                return
            try:
                s.send(trickle[i:i + 1])
            except OSError:
                return
            stop.wait(0.3)
    threads = []
    for _ in range(10):
        s = F.connect(hsvc)
        s.sendall(head)
        socks.append(s)
        th = threading.Thread(target=drip, args=(s,), daemon=True)
        th.start()
        threads.append(th)
    try:
        served = H.http("GET", hsvc.ingest_url + "/health/live", timeout=5).status_code
        results = [None] * len(socks)

        def watch(i, s):
            results[i] = F.read_until_close(s, FREED_WITHIN + 1)
        ws = [threading.Thread(target=watch, args=(i, s), daemon=True) for i, s in enumerate(socks)]
        for th in ws:
            th.start()
        for th in ws:
            th.join(FREED_WITHIN + 5)
    finally:
        stop.set()
        for s in socks:
            s.close()
    held = [(how, round(took, 1)) for how, got, took in results if how == "open" or (took > FREED_WITHIN and not got)]
    H.note("hostile/slowloris %s: 10 connections, freed after %s s" % (
        part, sorted(round(r[2], 1) for r in results)))
    assert served == 200, "another client was not served during the slowloris"
    assert not held, "%d of 10 slow %s connections held past %ds with TELEMETRY_IDLE_TIMEOUT=%d: %s" % (
        len(held), part, FREED_WITHIN, IDLE, held[:3])
    assert hsvc.stdout_lines(m) == [], "a body cut short was written"


@pytest.mark.timeout(40)
@pytest.mark.parametrize("case", ["GET+GET", "POST+POST", "GET+POST", "POST+GET", "401 POST+POST"])
def test_pipelined_requests_in_one_write(tlm_factory, case):
    """Two requests in one write. Pipelining is not supported (SECURITY.md, known limits:
    lws 4.1 cannot hold a request back behind one that waits for its ack), so what is
    checked is what must hold anyway: the ingest stays responsive for everyone, any answer
    that comes is the right one in order, and no batch is written more than once (an
    instance of its own: a server that loops here must not take the other cases down)."""
    t = tlm_factory(env={"TELEMETRY_IDLE_TIMEOUT": str(IDLE)})
    m = [uniq("pipe-a"), uniq("pipe-b")]
    reqs, want = [], []
    for i, kind in enumerate(case.split("+")):
        if kind == "GET":
            reqs.append(_get())
            want.append(200)
        else:
            tok = "dev-token"
            if kind == "401 POST":
                tok, kind = uniq("bogus"), "POST"
            body = json.dumps({"appName": "wwe_ui", "traces": [{"msg": m[i]}]}).encode()
            reqs.append(F.post_bytes(body, token=tok))
            want.append(401 if tok != "dev-token" else 202)
    s = F.connect(t)
    try:
        s.sendall(b"".join(reqs))
        got = b""
        deadline = time.monotonic() + 3
        s.settimeout(0.2)
        while len(F.responses(got)) < 2 and time.monotonic() < deadline:
            try:
                c = s.recv(65536)
            except socket.timeout:
                continue
            if not c:
                break
            got += c
    finally:
        s.close()
    statuses = [a[0] for a in F.responses(got)]
    try:
        live = H.http("GET", t.ingest_url + "/health/live", timeout=2).status_code
    except Exception as e:  # noqa: BLE001 - a wedged ingest times out
        live = "no answer (%s)" % type(e).__name__
    time.sleep(0.5)
    written = [len(t.stdout_lines(x)) for x in m]
    if live != 200:
        t.ingest.stop(signal.SIGKILL)      # a spinning ingest ignores SIGTERM: spare the teardown its wait
    H.note("hostile/pipelining %s: answers %s, lines written %s, /health/live %s" % (case, statuses, written, live))
    assert live == 200, "after %s pipelined, the ingest no longer answers /health/live: %s" % (case, live)
    assert statuses == want[:len(statuses)], "%s pipelined: answers %s, expected a prefix of %s" % (case, statuses, want)
    for i, kind in enumerate(case.split("+")):
        n = 1 if want[i] == 202 else 0
        assert written[i] <= n, "%s: request %d written %d times (at most %d)" % (case, i + 1, written[i], n)
        if i < len(statuses) and statuses[i] == 202:
            assert written[i] == 1, "%s: request %d answered 202 but written %d times" % (case, i + 1, written[i])


# ---------------------------------------------------------------------------------------
# malformed WebSocket frames over a raw socket

def _authed_raw(t, token="dev-token"):
    ws = W.RawWS(t)
    ws.send_text(W.auth_msg(token))
    ans = ws.recv_json(5, "auth answer")
    assert ans.get("ok") is True, ans
    return ws


def _ws_send_raw(ws, data):
    ws.out += data
    ws.flush()


def _ws_outcome(ws, timeout=5.0):
    """(close code or 'open', [messages before])."""
    try:
        code, reason, msgs = ws.wait_close(timeout)
        return code, reason, msgs
    except AssertionError:
        return "open", "", []


WS_VIOLATIONS = {
    "RSV1 set": lambda good: F.ws_frame(0x81 | 0x40, good),
    "RSV2 and RSV3 set": lambda good: F.ws_frame(0x81 | 0x30, good),
    "fragmented ping": lambda good: F.ws_frame(0x09, b"ping"),
    "ping over 125 bytes": lambda good: F.ws_frame(0x89, b"p" * 200),
    "fragmented close": lambda good: F.ws_frame(0x08, b"\x03\xe8"),
    "reserved data opcode 0x3": lambda good: F.ws_frame(0x83, good),
    "reserved control opcode 0xB": lambda good: F.ws_frame(0x8B, b"x"),
    "continuation without a start": lambda good: F.ws_frame(0x80, good),
    "new text inside a fragmented message": lambda good: F.ws_frame(0x01, good[:10]) + F.ws_frame(0x81, good),
    "close code 999": lambda good: F.ws_frame(0x88, (999).to_bytes(2, "big")),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", list(WS_VIOLATIONS))
def test_ws_protocol_violation_closes(hsvc, case):
    """RFC 6455 violations after authentication: the server fails the connection (close
    1002, or drops it), writes nothing of the frame, and serves other clients."""
    m = uniq("wsv")
    good = json.dumps(W.batch(1, m)).encode()
    ws = _authed_raw(hsvc)
    try:
        _ws_send_raw(ws, WS_VIOLATIONS[case](good))
        code, reason, msgs = _ws_outcome(ws)
    finally:
        ws.close()
    H.note("hostile/ws %s: close %s %r" % (case, code, reason))
    assert code in (1002, 1006), "%s: expected close 1002 (or a dropped connection), got %s %r %r" % (
        case, code, reason, msgs[:2])
    assert not [x for x in msgs if isinstance(x, dict) and x.get("type") == "ack"], msgs
    assert hsvc.stdout_lines(m) == [], "%s: the batch was written" % case
    if case in ("RSV1 set", "fragmented ping", "continuation without a start"):
        healthy(hsvc, "after ws " + case)


@pytest.mark.timeout(30)
@pytest.mark.xfail(strict=True, reason="libwebsockets 4.1 does not check that client frames are masked "
                                       "(RFC 6455 5.1); see SECURITY.md, known limitations")
def test_ws_unmasked_client_frame_closes_1002(hsvc):
    m = uniq("wsunmasked")
    ws = _authed_raw(hsvc)
    try:
        _ws_send_raw(ws, F.ws_frame(0x81, json.dumps(W.batch(1, m)).encode(), masked=False))
        code, reason, msgs = _ws_outcome(ws)
    finally:
        ws.close()
    assert code in (1002, 1006), "an unmasked client frame: %s %r %r" % (code, reason, msgs[:2])
    assert hsvc.stdout_lines(m) == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", ["0xFF in a string", "0xFF outside strings", "overlong /", "UTF-16 surrogate",
                                  "truncated sequence split over fragments"])
def test_ws_invalid_utf8_text_never_reaches_stdout(hsvc, case):
    """A text message that is not UTF-8: the server may fail the connection (1007, RFC
    6455 8.1), answer an error, or take it with the bad bytes replaced (SPEC 3: invalid
    UTF-8 is replaced). Whatever it does, no invalid byte reaches stdout, a written line
    is valid JSON holding U+FFFD where the bad bytes were, and an open stream still
    works."""
    m = uniq("wsutf")
    good = json.dumps(W.batch(1, m)).encode()
    if case == "0xFF in a string":
        frames = [F.ws_frame(0x81, good.replace(m.encode(), m.encode() + b"\xff"))]
    elif case == "0xFF outside strings":
        frames = [F.ws_frame(0x81, good.replace(b'"seq"', b'\xff"seq"'))]
    elif case == "overlong /":
        frames = [F.ws_frame(0x81, good.replace(m.encode(), m.encode() + b"\xc0\xaf"))]
    elif case == "UTF-16 surrogate":
        frames = [F.ws_frame(0x81, good.replace(m.encode(), m.encode() + b"\xed\xa0\x80"))]
    else:
        bad = good.replace(m.encode(), m.encode() + "é".encode())
        cut = bad.index("é".encode()) + 1
        frames = [F.ws_frame(0x01, bad[:cut]), F.ws_frame(0x80, b"\x41" + bad[cut + 1:])]
    ws = _authed_raw(hsvc)
    try:
        _ws_send_raw(ws, b"".join(frames))
        try:
            first = ws.recv_json(5, "an answer")
            code, reason = "open", ""
        except W.RawClosed as c:
            first, code, reason = None, c.code, c.reason
        if code == "open":
            assert first.get("type") in ("error", "ack"), "%s: %r" % (case, first)
            ws.send_text(json.dumps(W.batch(2, uniq("wsutf-after"))))
            W.check_ack(ws.recv_json(10, "ack after the invalid message"), 2, 1)
    finally:
        ws.close()
    outcome = "close %s %r" % (code, reason) if code != "open" else "%s %s" % (
        first.get("type"), first.get("code") or "accepted %s" % first.get("accepted"))
    H.note("hostile/ws invalid UTF-8 (%s): %s" % (case, outcome))
    assert code in ("open", 1007, 1002), "%s: close %s %r" % (case, code, reason)
    with open(hsvc.stdout_path, "rb") as f:
        mine = [raw for raw in f.read().split(b"\n") if m.encode() in raw]
    if code == "open" and first.get("type") == "ack":
        assert len(mine) == first.get("accepted") == 1, "%s: acked %r, %d lines" % (case, first, len(mine))
    else:
        assert mine == [], "%s: refused but written" % case
    for raw in mine:
        text = raw.decode("utf-8")               # strict
        ln = strict_json(text)
        assert "\ufffd" in ln["msg"] or case == "0xFF outside strings", "%s: no U+FFFD in %r" % (case, ln["msg"])


@pytest.mark.timeout(40)
@pytest.mark.parametrize("case", ["endless fragments", "announced 2^62 bytes", "one frame over the limit"])
def test_ws_oversized_messages_close_1009_without_growing(hsvc, case):
    """Messages past TELEMETRY_WS_MAX_MESSAGE_BYTES (64 KiB here) close with 1009 however
    they come (a never-ending fragmented message, a frame announcing 2^62 bytes, one big
    frame), and the ingest does not grow by more than a few times the limit."""
    ws = _authed_raw(hsvc)
    pid = hsvc.ingest.pid
    rss0 = F.proc_kb(pid)
    # 4 x the limit: far past it, yet what the kernel buffers take at once, so the server
    # has read all we sent when it closes (more unread bytes would turn its close into a
    # TCP reset that hides the close frame)
    try:
        if case == "endless fragments":
            ws.out += F.ws_frame(0x01, b'{"appName":"wwe_ui","seq":1,"traces":[')
            for _ in range(4 * WS_MAX // 4096):       # continuation frames, never a final one
                ws.out += F.ws_frame(0x00, b"x" * 4096)
        elif case == "announced 2^62 bytes":
            mask = os.urandom(4)
            ws.out += bytes([0x81, 0x80 | 127]) + (1 << 62).to_bytes(8, "big") + mask
            ws.out += W._mask_fast(b"y" * (4 * WS_MAX), mask)
        else:
            ws.out += F.ws_frame(0x81, b"z" * (4 * WS_MAX))
        deadline = time.monotonic() + 5
        while ws.flush() and not ws.broken and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            code, reason, _ = ws.wait_close(5)
        except AssertionError:
            code, reason = "still open", ""
    finally:
        ws.close()
    grew = (F.proc_kb(pid) - rss0) * 1024
    H.note("hostile/ws %s: close %s %r, ingest RSS +%d KiB" % (case, code, reason, grew // 1024))
    assert code == 1009, "%s: expected close 1009, got %r %r" % (case, code, reason)
    if not F.instrumented(hsvc):
        assert grew <= 8 * WS_MAX + (4 << 20), "%s: the ingest grew by %d bytes" % (case, grew)
    healthy(hsvc, "after ws " + case)


# ---------------------------------------------------------------------------------------
# JSON and gzip bombs

@pytest.mark.timeout(30)
@pytest.mark.parametrize("depth", [17, 1000, 200000])
def test_json_depth_bomb(hsvc, depth):
    """Nesting past TELEMETRY_MAX_JSON_DEPTH (16) is refused with 400 too_deep or
    invalid_json, whatever the depth (no stack overflow at 200000)."""
    m = uniq("deep")
    body = '{"appName":"wwe_ui","traces":[{"msg":"%s","properties":{"connId":%s1%s}}]}' % (
        m, "[" * depth, "]" * depth)
    r = hsvc.post(body, timeout=20)
    err = assert_error(r, 400)
    assert err["code"] in ("too_deep", "invalid_json"), err
    assert hsvc.stdout_lines(m) == []
    H.note("hostile/json depth %d: 400 %s" % (depth, err["code"]))
    if depth == 200000:
        healthy(hsvc, "after a 200000-deep body")


@pytest.mark.timeout(40)
@pytest.mark.parametrize("where", ["envelope properties", "record properties", "a property value"])
def test_json_width_bomb_100k_keys(hsvc, where):
    """100 000 keys (sent gzipped, ~1.5 MB inflated): the service answers (202 with the
    record rejected too_many_properties, or a 4xx), never writes more properties than
    the contract allows, and stays healthy."""
    m = uniq("wide")
    wide = {"k%06d" % i: i for i in range(100000)}
    rec = {"msg": m}
    env = {"appName": "wwe_ui", "traces": [rec]}
    if where == "envelope properties":
        env["properties"] = wide
    elif where == "record properties":
        rec["properties"] = wide
    else:
        rec["properties"] = {"connId": wide}
    r = hsvc.post(env, gzip=True, timeout=30)
    assert r.status_code in (202, 400, 413), "%d %s" % (r.status_code, r.text[:300])
    lines = hsvc.stdout_lines(m)
    if r.status_code == 202:
        body = r.json()
        assert body["accepted"] + len(body["rejected"]) == 1, body
        if body["rejected"]:
            assert body["rejected"][0]["code"] == "too_many_properties", body
        for ln in lines:
            assert set(ln["properties"]) <= WWE_PROPS, ln["properties"]
    else:
        assert_error(r, r.status_code)
        assert lines == []
    H.note("hostile/json 100k keys in %s: %d, %d lines" % (where, r.status_code, len(lines)))
    healthy(hsvc, "after 100k keys")


HUGE = [
    ("value 1e400", '"metrics":[{"name":"%s","value":1e400}]'),
    ("value -1e400", '"metrics":[{"name":"%s","value":-1e400}]'),
    ("value 2^70", '"metrics":[{"name":"%s","value":1180591620717411303424}]'),
    ("value 1e308", '"metrics":[{"name":"%s","value":1e308}]'),
    ("value 1e-400", '"metrics":[{"name":"%s","value":1e-400}]'),
    ("value 4.9e-324", '"metrics":[{"name":"%s","value":4.9e-324}]'),
    ("value NaN", '"metrics":[{"name":"%s","value":NaN}]'),
    ("value Infinity", '"metrics":[{"name":"%s","value":Infinity}]'),
    ("value -0.0", '"metrics":[{"name":"%s","value":-0.0}]'),
    ("value as a 400-digit string", '"metrics":[{"name":"%s","value":"' + "9" * 400 + '"}]'),
    ("ts 2^70", '"traces":[{"msg":"%s","ts":1180591620717411303424}]'),
    ("ts 1e20", '"traces":[{"msg":"%s","ts":1e20}]'),
    ("ts -1", '"traces":[{"msg":"%s","ts":-1}]'),
    ("ts 9e15", '"traces":[{"msg":"%s","ts":9000000000000000}]'),
    ("ts year 99999", '"traces":[{"msg":"%s","ts":"99999-01-01T00:00:00Z"}]'),
    ("ts leap second", '"traces":[{"msg":"%s","ts":"2016-12-31T23:59:60Z"}]'),
    ("property 2^64", '"traces":[{"msg":"%s","properties":{"connId":18446744073709551616}}]'),
    ("property -2^63", '"traces":[{"msg":"%s","properties":{"connId":-9223372036854775808}}]'),
    ("property 1e308*10", '"traces":[{"msg":"%s","properties":{"connId":1e309}}]'),
    ("seq 2^70 over HTTP", '"seq":1180591620717411303424,"traces":[{"msg":"%s"}]'),
]


@pytest.mark.parametrize("case,fragment", HUGE, ids=[c for c, _ in HUGE])
def test_huge_and_odd_numbers(hsvc, case, fragment):
    """Numbers out of range anywhere: a 400 JSON error or a 202 whose verdicts and lines
    are valid JSON (no inf, nan, or a broken line); never a 5xx or a crash."""
    m = uniq("num")
    body = '{"appName":"wwe_ui",%s}' % (fragment % m)
    r = hsvc.post(body)
    assert r.status_code in (202, 400), "%s: %d %s" % (case, r.status_code, r.text[:300])
    strict_json(r.text)
    if r.status_code == 400:
        assert_error(r, 400)
        assert hsvc.stdout_lines(m) == []
        return
    for raw in hsvc.stdout_raw():
        if m in raw:
            ln = strict_json(raw)
            if "value" in ln:
                assert isinstance(ln["value"], (int, float)), ln
            assert H.TS_RE.match(ln["ts"]), "%s: ts %r" % (case, ln["ts"])


def test_integer_past_int64_costs_no_record(hsvc):
    """JavaScript writes numbers below 1e21 without an exponent, so an integer past 2^63 is
    valid JSON a desktop can send: the batch is kept and such a number is read as a double.
    Only a number no double holds (1e400) makes the batch a 400, with its position."""
    m = uniq("bigint")
    body = ('{"appName":"wwe_ui","traces":[{"msg":"%s ok"},'
            '{"msg":"%s big","properties":{"connId":123456789012345678901}}],'
            '"metrics":[{"name":"%s_m","value":1180591620717411303424}]}') % (m, m, m)
    r = hsvc.post(body)
    assert r.status_code == 202, r.text[:300]
    assert r.json()["accepted"] == 3 and r.json()["rejected"] == [], r.text
    lines = {ln.get("msg") or ln["name"]: ln for ln in (strict_json(raw) for raw in hsvc.stdout_raw() if m in raw)}
    assert set(lines) == {m + " ok", m + " big", m + "_m"}, lines
    assert lines[m + " big"]["properties"]["connId"] == pytest.approx(123456789012345678901, rel=1e-15), lines
    assert lines[m + "_m"]["value"] == pytest.approx(2.0 ** 70, rel=1e-15), lines
    r = hsvc.post('{"appName":"wwe_ui","traces":[{"msg":"%s inf","properties":{"connId":1e400}}]}' % m)
    assert_error(r, 400)
    assert r.json()["error"]["code"] == "invalid_json" and "column" in r.json()["error"]["message"], r.text
    assert not [raw for raw in hsvc.stdout_raw() if m + " inf" in raw]

@pytest.mark.timeout(30)
def test_long_strings_cut_to_the_line_limit(hsvc):
    """A msg of exactly TELEMETRY_MAX_STRING_BYTES is kept, one byte more is rejected
    string_too_long; a record whose strings add up past TELEMETRY_LINE_MAX_BYTES is cut
    to a line within the limit marked "truncated":true, still valid JSON and UTF-8 (a cut
    never splits a multi-byte character)."""
    smax = hsvc.cfg_int("TELEMETRY_MAX_STRING_BYTES")
    lmax = hsvc.cfg_int("TELEMETRY_LINE_MAX_BYTES")
    m = uniq("long")
    exact = m + " " + "a" * (smax - len(m) - 1)
    over = m + "o" + "b" * (smax - len(m))
    euro = "€" * ((smax - 64) // 3)
    big = {"appName": "wwe_ui", "properties": {"agentSessionId": euro, "connId": euro, "browserSessionId": euro},
           "traces": [{"msg": exact}, {"msg": over}, {"msg": m + " multi " + euro}]}
    r = hsvc.post(big)
    assert r.status_code == 202, r.text[:300]
    body = r.json()
    assert body["accepted"] == 2 and [x["index"] for x in body["rejected"]] == [1], body
    assert body["rejected"][0]["code"] == "string_too_long", body
    raws = [raw for raw in hsvc.stdout_raw() if m in raw]
    assert len(raws) == 2, raws
    for raw in raws:
        assert len(raw.encode()) + 1 <= lmax, "line of %d bytes (TELEMETRY_LINE_MAX_BYTES %d)" % (len(raw.encode()), lmax)
        ln = strict_json(raw)
        assert ln.get("truncated") is True, "a record longer than the line limit is not marked truncated"
        assert "\ufffd" not in ln["msg"], "a cut split a UTF-8 character"
    H.note("hostile/long strings: %d-byte msg kept, %d rejected, lines cut to %s bytes" % (
        len(exact), len(over), [len(x.encode()) for x in raws]))


ENCODING_CASES = [
    ("raw 0xFF", b'"' + b"MARK" + b'\xff"'),
    ("overlong NUL", b'"' + b"MARK" + b'\xc0\x80"'),
    ("CESU surrogate", b'"' + b"MARK" + b'\xed\xa0\x80"'),
    ("raw NUL", b'"' + b"MARK" + b'\x00x"'),
    ("raw newline", b'"' + b"MARK" + b'\nx"'),
    ("escaped NUL", b'"' + b"MARK" + b'\\u0000x"'),
    ("lone surrogate escape", b'"' + b"MARK" + b'\\ud800x"'),
    ("escaped ESC", b'"' + b"MARK" + b'\\u001b[2J"'),
    ("BOM before the body", None),
]


@pytest.mark.parametrize("case,value", ENCODING_CASES, ids=[c for c, _ in ENCODING_CASES])
def test_invalid_utf8_nul_and_control_bytes(hsvc, case, value):
    """Bytes that are not valid JSON text are refused (400 invalid_json naming line and
    column) or, for invalid UTF-8 inside a string, replaced by U+FFFD (SPEC 3); escaped
    NUL and controls are accepted and written escaped. A written line is valid JSON,
    valid UTF-8, with no raw control character."""
    m = uniq("enc")
    if value is None:
        body = b"\xef\xbb\xbf" + json.dumps({"appName": "wwe_ui", "traces": [{"msg": m}]}).encode()
    else:
        body = b'{"appName":"wwe_ui","traces":[{"msg":' + value.replace(b"MARK", m.encode()) + b"}]}"
    r = hsvc.post(body)
    assert r.status_code in (202, 400), "%s: %d %s" % (case, r.status_code, r.text[:200])
    if r.status_code == 400:
        err = assert_error(r, 400, "invalid_json")
        assert re.search(r"line \d+, column \d+", err["message"]), err
    with open(hsvc.stdout_path, "rb") as f:
        mine = [raw for raw in f.read().split(b"\n") if m.encode() in raw]
    assert len(mine) == (1 if r.status_code == 202 else 0), "%s: %d answered, %d lines" % (case, r.status_code, len(mine))
    for raw in mine:
        text = raw.decode("utf-8")          # strict: raises on invalid UTF-8
        assert not no_control_chars(text), "%s: raw control characters %s" % (case, no_control_chars(text))
        msg = strict_json(text)["msg"]
        if value is not None and b"\\u" not in value:
            assert "\ufffd" in msg, "%s: invalid bytes taken without replacement: %r" % (case, msg)
    H.note("hostile/encoding %s: %d%s" % (case, r.status_code, " (replaced)" if mine and "\ufffd" in text else ""))


GZ_CASES = ["nested gzip", "concatenated members", "concatenated bomb", "trailing garbage", "gzip, gzip",
            "deflate", "truncated"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", GZ_CASES)
def test_gzip_nested_and_concatenated(hsvc, case):
    """Nested gzip is inflated once (the inner gzip is not JSON: 400), concatenated
    members are one body (all of it or nothing), members adding up past
    TELEMETRY_MAX_DECOMPRESSED_BYTES are 413, stacked or other encodings 415, corrupt or
    truncated streams 400."""
    m = uniq("gz")
    j = json.dumps({"appName": "wwe_ui", "traces": [{"msg": m + " %d" % i} for i in range(4)]}).encode()
    enc = "gzip"
    if case == "nested gzip":
        body, want = gzip.compress(gzip.compress(j)), {400}
    elif case == "concatenated members":
        half = len(j) // 2
        body, want = gzip.compress(j[:half]) + gzip.compress(j[half:]), {202, 400}
    elif case == "concatenated bomb":
        lim = hsvc.cfg_int("TELEMETRY_MAX_DECOMPRESSED_BYTES")
        one = gzip.compress(b" " * (1 << 20))
        body, want = gzip.compress(j[:-2]) + one * (lim // (1 << 20) + 2) + gzip.compress(j[-2:]), {413}
    elif case == "trailing garbage":
        body, want = gzip.compress(j) + b"garbage", {400}
    elif case == "gzip, gzip":
        body, want, enc = gzip.compress(gzip.compress(j)), {415}, "gzip, gzip"
    elif case == "deflate":
        import zlib
        body, want, enc = zlib.compress(j), {415}, "deflate"
    else:
        body, want = gzip.compress(j)[:-12], {400}
    r = hsvc.post(body, headers={"Content-Encoding": enc})
    assert r.status_code in want, "%s: %d %s" % (case, r.status_code, r.text[:200])
    n = len(hsvc.stdout_lines(m))
    if r.status_code == 202:
        assert r.json()["accepted"] == 4 and n == 4, "%s: partial body taken (%s, %d lines)" % (case, r.text, n)
    else:
        assert_error(r, r.status_code)
        assert n == 0
    H.note("hostile/gzip %s: %d" % (case, r.status_code))


# ---------------------------------------------------------------------------------------
# injection into lines, logs and labels

EVIL = ('"}\n{"forged":true,"tenantName":"evil"}\r\n\x1b[2J\x1b]0;title\x07 \u2028\u2029 \x00\x7f\x85\x9f '
        '\\"\\\\\\n </script> ${jndi:ldap://x} %s%n {{7*7}} \ufeff\u202e')
EVIL_SHORT = '"}\n{"x":1}\r\x1b[2J\u2028\x00\x85\\'      # fits the 64-byte level


@pytest.mark.timeout(60)
def test_every_client_string_stays_inside_its_field(hsvc):
    """The same hostile string (quotes, newlines, CR, ANSI and OSC escapes, U+2028/2029,
    NUL, DEL, C1 controls, backslashes, bidi override) in every client string: msg,
    level, event and metric names, property keys and values, batchId, appName, seq, the
    WebSocket auth token and envelope, Origin and other headers. Every stdout line of the
    run is one JSON object with exactly the keys of its kind (properties only the
    contract's), no raw control character; every stderr line of both daemons is one JSON
    object with the diagnostic keys; every answer is valid JSON."""
    m = uniq("inj")
    ev = m + EVIL
    evk = ev.replace("\x00", "")          # jansson refuses NUL in object keys (400): tested below
    answers = []
    evid = m + '"}\n\x1b[2J\u2028\\'            # a batchId (at most 128 bytes)
    batches = [
        {"appName": "wwe_ui", "batchId": evid, "traces": [{"msg": ev, "level": EVIL_SHORT}]},
        {"appName": "wwe_ui", "batchId": ev, "traces": [{"msg": m + " long batchId"}]},
        {"appName": "wwe_ui", "traces": [{"msg": m + " lvl", "level": "info\n" + EVIL_SHORT}]},
        {"appName": "wwe_ui", "traces": [{"msg": m + " lvl long", "level": ev}]},
        {"appName": "wwe_ui", "events": [{"name": "error_" + ev}, {"name": ev}]},
        {"appName": "wwe_ui", "metrics": [{"name": ev, "value": 1}]},
        {"appName": "softphone", "metrics": [{"name": "sip_call_mos", "value": 4, "properties": {"region": ev}}]},
        {"appName": "wwe_ui", "properties": {evk: ev, "connId": ev}, "traces": [{"msg": m + " props",
                                                                               "properties": {evk: ev, "agentSessionId": ev}}]},
        {"appName": "wwe_ui", "traces": [{"msg": m + " nulkey", "properties": {ev: 1}}]},
        {"appName": ev, "traces": [{"msg": m + " app"}]},
        {"appName": "wwe_ui", ev.replace("\x00", ""): ev, "traces": [{"msg": m + " extra", ev.replace("\x00", ""): ev}]},
        {"appName": "wwe_ui", "traces": [{"msg": m + " ts", "ts": ev}]},
    ]
    for b in batches:
        r = hsvc.post(b)
        answers.append(r)
        assert r.status_code in (202, 400, 403), "%d %s" % (r.status_code, r.text[:300])
    hdr_ev = ev.encode("utf-8").replace(b"\n", b" ").replace(b"\r", b" ").replace(b"\x00", b" ")
    raw = F.post_bytes(json.dumps({"appName": "wwe_ui", "traces": [{"msg": m + " hdrs"}]}).encode(),
                       extra=b"Origin: https://" + hdr_ev[:100] + b"\r\nUser-Agent: " + hdr_ev + b"\r\nX-Request-Id: " +
                       hdr_ev + b"\r\nConnection: close\r\n")
    how, got = F.exchange(hsvc, raw, 5)
    for status, hdrs, body in F.responses(got):
        assert status < 500, "hostile headers answered %d" % status
        if "json" in hdrs.get("content-type", ""):
            strict_json(body.decode())
    ws = W.RawWS(hsvc, headers={"Origin": "http://localhost:8080"})
    try:
        ws.send_text(json.dumps({"type": "auth", "token": ev}))
        try:
            ws.wait_close(5)
        except AssertionError:
            pass
    finally:
        ws.close()
    ws = _authed_raw(hsvc)
    try:
        ws.send_text(json.dumps({"appName": "wwe_ui", "seq": ev, "traces": [{"msg": ev}]}))
        strict_json(json.dumps(ws.recv_json(5, "answer to a string seq")))
        ws.send_text(json.dumps({"appName": "wwe_ui", "seq": 7, "batchId": evid, "traces": [{"msg": ev + " ws"}]}))
        W.check_ack(ws.recv_json(10, "ack"), 7, 1)
    finally:
        ws.close()
    for r in answers:
        strict_json(r.text)
    time.sleep(0.3)
    lines = [raw for raw in hsvc.stdout_raw() if m in raw]
    assert len(lines) >= 8, "too few lines to prove anything: %d" % len(lines)
    for raw in lines:
        assert not no_control_chars(raw), "raw control characters %s in %r" % (no_control_chars(raw), raw[:200])
        ln = strict_json(raw)
        assert isinstance(ln, dict), raw[:200]
        keys = set(ln) - {"truncated"}
        assert keys == LINE_KEYS[ln["kind"]], "keys %s on a %s line" % (sorted(keys ^ LINE_KEYS[ln["kind"]]), ln["kind"])
        allowed = WWE_PROPS if ln["appName"] == "wwe_ui" else {"ThisDN", "call_id", "call_uuid", "region", "level",
                                                                 "msgId", "sepsessionid", "value"}
        assert set(ln["properties"]) <= allowed, "client-chosen property keys kept: %s" % set(ln["properties"])
        assert (ln["tenantName"], ln["contactCenterId"], ln["user"]) == ("pulse", PULSE_CC, "agent1"), ln
        assert ln["appName"] in ("wwe_ui", "softphone"), ln["appName"]
    diag = 0
    for which in ("ingest", "logshipper"):
        path = hsvc.ingest_stderr if which == "ingest" else hsvc.shipper_stderr
        with open(path, "rb") as f:
            for rawb in f.read().split(b"\n"):
                if not rawb:
                    continue
                text = rawb.decode("utf-8")
                assert not no_control_chars(text), "%s stderr: raw control characters in %r" % (which, text[:200])
                d = strict_json(text)
                assert isinstance(d, dict) and set(d) <= STDERR_KEYS | {"error", "detail"}, \
                    "%s stderr line with keys %s: %r" % (which, sorted(d) if isinstance(d, dict) else d, text[:200])
                diag += 1
    H.note("hostile/injection: %d requests, %d stdout lines of the run, %d stderr lines of both daemons: every "
           "one a single JSON object with fixed keys" % (len(batches) + 4, len(lines), diag))


@pytest.mark.local_only
@pytest.mark.timeout(60)
def test_metric_label_injection_and_cardinality_flood(tlm_factory):
    """3000 monitored event names (default contract 'error_.*'), a third of them holding
    quotes, backslashes, braces, '=', ',', '#', non-ASCII, the rest plain and unique, with
    TELEMETRY_METRICS_THRESHOLD=200: the scrape stays parseable and promtool accepts it,
    at most 200 wwe_ui_events series exist, the dropped ones are counted, no sample is
    forged, /metrics stays small; every record is still written."""
    cap = 200
    t = tlm_factory(env={"TELEMETRY_METRICS_THRESHOLD": str(cap)})
    m = uniq("lbl")
    names = []
    for i in range(3000):
        if i % 3 == 0:
            names.append('error_%s_%d"}\\ {x="1"} 999 # TYPE =,# é😀' % (m, i))
        else:
            names.append("error_%s_%d" % (m, i))
    for i in range(0, len(names), 500):
        r = t.post({"appName": "wwe_ui", "events": [{"name": n} for n in names[i:i + 500]]}, timeout=30)
        assert r.status_code == 202 and r.json()["accepted"] == 500, r.text[:300]
    H.wait_until(lambda: t.metric_sum("tlm_records_written_total", kind="event") >= 3000, 15, interval=0.3,
                 what="3000 events written")
    text = t.metrics_text()
    parsed = H.parse_prometheus(text)
    series = [ls for (n, ls) in parsed if n == "wwe_ui_events"]
    dropped = sum(v for (n, _), v in parsed.items() if n == "telemetry_metric_series_dropped_total")
    problems = F.promtool_problems(text, allowed=('counter metrics should have "_total" suffix',
                                                  "label names should be written in 'snake_case' not 'camelCase'"))
    H.note("hostile/labels: 3000 client event names, cap %d: %d series, %d dropped, /metrics %d bytes, promtool %s" % (
        cap, len(series), dropped, len(text), "not installed" if problems is None else (problems or "ok")))
    assert 0 < len(series) <= cap, len(series)
    assert dropped >= 3000 - cap, dropped
    assert len(text) < 2 << 20, "/metrics is %d bytes" % len(text)
    for line in text.split("\n"):
        assert not line.startswith(("x=", '{x="1"}', "999")), "a forged line: %r" % line
        if line.startswith("# TYPE"):
            assert len(line.split(" ")) == 4, "a forged TYPE line: %r" % line
    for ls in series:
        d = dict(ls)
        assert set(d) == {"tenantName", "eventName", "contactCenterId"}, d
        assert d["eventName"] in names, d["eventName"][:100]
    assert problems in (None, []), "promtool check metrics: %s" % problems[:10]
    assert len(t.stdout_lines(m)) == 3000


# ---------------------------------------------------------------------------------------
# identity

SPOOF = {"tenantName": "acme", "contactCenterId": ACME_CC, "user": "root"}


def test_identity_fields_in_payloads_are_ignored(hsvc):
    """tenantName, contactCenterId and user in the envelope, its properties, a record and
    its properties (and rid, kind, receivedAt, appName in a record) change nothing: the
    identity is GAuth's, the rid the service's, the kind the array's."""
    m = uniq("spoof")
    forged = dict(SPOOF, rid="0" * 32 + "-t0", kind="metric", receivedAt="2000-01-01T00:00:00.000Z",
                  appName="softphone")
    b = dict(SPOOF, appName="wwe_ui", properties=dict(SPOOF, connId="c1"),
             traces=[dict(forged, msg=m, properties=dict(SPOOF, agentSessionId="s1"))],
             events=[dict(forged, name="ev_" + m)])
    r = hsvc.post(b)
    assert r.status_code == 202 and r.json()["accepted"] == 2, r.text
    lines = hsvc.wait_for_lines(marker=m, count=2)
    for ln in lines:
        assert (ln["tenantName"], ln["contactCenterId"], ln["user"]) == ("pulse", PULSE_CC, "agent1"), ln
        assert ln["appName"] == "wwe_ui" and ln["rid"] != forged["rid"], ln
        assert not set(ln["properties"]) & set(SPOOF), ln["properties"]
        assert ln["receivedAt"] != forged["receivedAt"]
    assert sorted(ln["kind"] for ln in lines) == ["event", "trace"]


def test_identity_keys_dropped_even_when_a_contract_allows_them(tlm_factory):
    """DESIGN: tenantName, contactCenterId and user are never taken from a payload, even
    as properties a (careless) contract allow-list names."""
    contracts = [{"appName": "wwe_ui", "properties": ["tenantName", "contactCenterId", "user", "connId"]}]
    t = tlm_factory(env={"TELEMETRY_CONFIG_CONTRACTS": json.dumps(contracts)})
    m = uniq("spoof2")
    r = t.post({"appName": "wwe_ui", "properties": dict(SPOOF, connId="c"), "traces": [{"msg": m,
                                                                                        "properties": SPOOF}]})
    assert r.status_code == 202, r.text
    (ln,) = t.wait_for_lines(marker=m)
    assert ln["properties"] == {"connId": "c"}, ln["properties"]


@pytest.mark.timeout(30)
def test_websocket_identity_spoofing(hsvc):
    """Identity fields in the auth message and in stream batches change nothing."""
    m = uniq("wsspoof")
    ws = W.RawWS(hsvc)
    try:
        ws.send_text(json.dumps(dict(SPOOF, type="auth", token="dev-token", tenant="acme")))
        ans = ws.recv_json(5, "auth answer")
        assert ans.get("tenantName") == "pulse" and ans.get("user") == "agent1", ans
        ws.send_text(json.dumps(dict(SPOOF, appName="wwe_ui", seq=1, properties=SPOOF,
                                     traces=[dict(SPOOF, msg=m, properties=SPOOF)])))
        W.check_ack(ws.recv_json(10, "ack"), 1, 1)
    finally:
        ws.close()
    (ln,) = hsvc.wait_for_lines(marker=m)
    assert (ln["tenantName"], ln["contactCenterId"], ln["user"]) == ("pulse", PULSE_CC, "agent1"), ln
    assert not set(ln["properties"]) & set(SPOOF)


def test_same_batch_id_of_two_tenants_never_shares_rids(hsvc):
    """rids hash the contact center (from GAuth) with the batchId: a client cannot make
    its records collide with (and be de-duplicated against) another tenant's."""
    bid = uniq("shared-batch")
    m1, m2 = uniq("tenant-a"), uniq("tenant-b")
    assert hsvc.post({"appName": "wwe_ui", "batchId": bid, "traces": [{"msg": m1}]}).status_code == 202
    assert hsvc.post({"appName": "wwe_ui", "batchId": bid, "traces": [{"msg": m2}]},
                     token="other-tenant-token").status_code == 202
    (a,) = hsvc.wait_for_lines(marker=m1)
    (b,) = hsvc.wait_for_lines(marker=m2)
    assert a["tenantName"] == "pulse" and b["tenantName"] == "acme"
    assert a["rid"] != b["rid"], "two tenants' records share rid %s" % a["rid"]


# ---------------------------------------------------------------------------------------
# connection floods

@pytest.mark.timeout(60)
def test_connection_flood_capped_then_recovers(tlm_factory):
    """TELEMETRY_MAX_CONNECTIONS=64 and 192 clients connect and each sends a request
    while every other connection stays open: at most 64 are served at the same time (the
    others are refused or wait), the ingest stays up, and once they leave it serves
    requests and streams again."""
    cap = 64
    W.raise_nofile(4096)
    t = tlm_factory(env={"TELEMETRY_MAX_CONNECTIONS": str(cap), "TELEMETRY_IDLE_TIMEOUT": "30"})
    socks = []
    try:
        for _ in range(3 * cap):
            try:
                socks.append(F.connect(t, timeout=3))
            except OSError:
                break
        # a POST: its connection stays open after the answer (other answers close theirs)
        req = F.post_bytes(json.dumps({"appName": "wwe_ui", "traces": [{"msg": uniq("flood")}]}).encode())
        for s in socks:
            try:
                s.sendall(req)
            except OSError:
                pass
        got = {s: b"" for s in socks}
        closed = set()
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            live = [s for s in socks if s not in closed]
            if not live:
                break
            r, _, _ = select.select(live, [], [], 0.2)
            for s in r:
                try:
                    c = s.recv(65536)
                except OSError:
                    c = b""
                if not c:
                    closed.add(s)
                else:
                    got[s] += c
        served = sum(1 for s in socks if got[s].startswith(b"HTTP/1.1 202"))
        refused = sum(1 for s in socks if not got[s].startswith(b"HTTP/1.1 202") and (got[s] or s in closed))
        waiting = len(socks) - served - refused
        alive_during = t.ingest.alive()
    finally:
        for s in socks:
            s.close()
    time.sleep(0.5)
    H.note("hostile/connection flood: %d connections with TELEMETRY_MAX_CONNECTIONS=%d: %d served at once, "
           "%d refused, %d waiting" % (len(socks), cap, served, refused, waiting))
    assert alive_during, "the ingest died under the flood"
    healthy(t, "after the connection flood")
    assert served <= cap, "%d connections served at the same time with TELEMETRY_MAX_CONNECTIONS=%d" % (served, cap)
    assert served > 0


# ---------------------------------------------------------------------------------------
# secrets (last: the cases above have exercised the error paths by then)

@pytest.mark.timeout(60)
def test_no_token_or_secret_in_any_output(hsvc):
    """Tokens sent every way a client can (valid, refused, malformed schemes, huge, in a
    cookie, in WebSocket auth messages and handshake headers, in query strings) and
    through GAuth failures (500, dropped, too slow): none of them, nor the GAuth client
    secret, appears in any stdout or stderr line of either daemon or in /metrics."""
    g = hsvc.gauth
    secret_tokens = []

    def tok(tag):
        x = uniq("secret-%s" % tag)
        secret_tokens.append(x)
        return x
    b = json.dumps({"appName": "wwe_ui", "traces": [{"msg": uniq("tokleak")}]}).encode()
    valid = tok("valid")
    g.add_users({valid: {"username": "leak1", "loginName": "leak1", "contactCenterId": PULSE_CC,
                         "environmentId": "e2e", "dbid": 7001, "authorities": []}})
    assert hsvc.post(b, token=valid).status_code == 202
    assert hsvc.post(b, token=tok("bogus")).status_code == 401
    for scheme in (b"Basic ", b"bearer ", b"Bearer  ", b"Token ", b""):
        F.exchange(hsvc, F.post_bytes(b, token=None, extra=b"Authorization: " + scheme + tok("scheme").encode() +
                                      b"\r\nConnection: close\r\n"), 3)
    F.exchange(hsvc, F.post_bytes(b, token=None, extra=b"Authorization: Bearer " + tok("long").encode() * 200 +
                                  b"\r\nConnection: close\r\n"), 3)
    F.exchange(hsvc, F.post_bytes(b, token=tok("junk") + " trailing junk", extra=b"Connection: close\r\n"), 3)
    F.exchange(hsvc, F.post_bytes(b, token=None, extra=b"Cookie: tlm_token=" + tok("cookie").encode() +
                                  b"\r\nConnection: close\r\n"), 3)
    for path in (b"/api/v1/telemetry?access_token=", b"/nope?token=", b"/api/v1/stream?token="):
        F.exchange(hsvc, F.post_bytes(b, path=path + tok("query").encode(), extra=b"Connection: close\r\n"), 3)
        F.exchange(hsvc, _get(path + tok("query").encode(), extra=b"Connection: close\r\n"), 3)
    for mode in ("fail", "down", "stall"):
        g.set_mode(mode, stall_ms=1500)
        try:
            r = hsvc.post(b, token=tok("gauth-" + mode), timeout=10)
            assert r.status_code == 503, r.text
            ws = W.RawWS(hsvc)
            try:
                ws.send_text(W.auth_msg(tok("ws-gauth-" + mode)))
                ws.wait_close(10)
            finally:
                ws.close()
        finally:
            g.set_mode("ok")
    for first in (W.auth_msg(tok("ws-bogus")), '{"type":"auth","token":"%s"' % tok("ws-badjson"),
                  json.dumps({"type": "auth", "token": [tok("ws-list")]})):
        ws = W.RawWS(hsvc)
        try:
            ws.send_text(first)
            try:
                ws.wait_close(5)
            except AssertionError:
                pass
        finally:
            ws.close()
    for hdrs in ({"Authorization": "Bearer " + tok("ws-hdr")}, {"Cookie": "tlm_token=" + tok("ws-cookie")}):
        try:
            ws = W.RawWS(hsvc, headers=hdrs)
            try:
                ws.wait_close(5)
            except AssertionError:
                pass
            ws.close()
        except W.RawHandshakeError:
            pass
    ws = _authed_raw(hsvc, valid)
    ws.send_text(W.auth_msg(tok("ws-reauth-bogus")))
    try:
        ws.wait_close(5)
    except AssertionError:
        pass
    ws.close()
    time.sleep(1.5)          # a STATS frame carries the ingest's counters to /metrics
    secrets = set(secret_tokens) | set(H.USERS) | set(hsvc.tokens_used) | {H.CLIENT_SECRET}
    texts = [hsvc.daemon_logs(), hsvc.metrics_text()]
    hits = F.grep_secrets(texts, secrets)
    H.note("hostile/secrets: %d tokens sent %d ways plus the client secret; grep of %d bytes of daemon output and "
           "/metrics: %d hits" % (len(secrets), 20, sum(len(x) for x in texts), len(hits)))
    assert not hits, "secrets in daemon output or /metrics: %s" % hits[:5]
