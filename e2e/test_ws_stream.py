"""WebSocket stream (SPEC 2, 4, 6; DESIGN "WebSocket stream", "Sessions and throttles"):
GET /api/v1/stream with real clients (python3-websockets, and a raw socket client where the
bytes on the wire matter). Every close code and rule of the DESIGN section has a test here.

Most tests share one service configured with a small window and message limit; tests that
stop, kill or specially configure processes get a service of their own (local only).
Acks imply "written": after an ack the test reads the logshipper's stdout at once, without
waiting, and every accepted record of the batch must already be there.
"""
import asyncio
import json
import re
import signal
import socket
import time

import pytest

import tlm_harness as H
import ws_helpers as W
from tlm_harness import RID_RE, assert_error, uniq
from ws_helpers import (RawClosed, RawWS, auth_msg, batch, check_ack, check_auth_answer, check_error,
                        connect, expect_close, open_authed, recv_json, run)

WS_ENV = {
    "TELEMETRY_WS_WINDOW": "2",
    "TELEMETRY_WS_MAX_MESSAGE_BYTES": "8192",
    "TELEMETRY_MAX_HEADER_BYTES": "4096",  # auth messages up to 5 KiB
    "TELEMETRY_WS_AUTH_TIMEOUT": "2",
    "TELEMETRY_AUTH_TIMEOUT_MS": "1000",
}


@pytest.fixture(scope="module")
def ws_svc(module_factory, request):
    t = module_factory(env=WS_ENV, name="ws-stream")
    return t if t is not None else request.getfixturevalue("tlm")


def check_lines(lines, marker, n, user="agent1", tenant="pulse"):
    """The stdout lines of one batch whose n traces carry '<marker> r<i>' (i = array index)."""
    assert len(lines) == n, "expected %d stdout lines for %s, found %d: %r" % (n, marker, len(lines), lines[:3])
    rids = [ln["rid"] for ln in lines]
    assert len(set(rids)) == n, "rids are not unique within a batch: %r" % rids
    for ln in lines:
        assert RID_RE.match(ln["rid"]), ln
        assert ln["user"] == user and ln["tenantName"] == tenant, ln
        if ln["kind"] == "trace":
            idx = int(re.search(r" r(\d+)", ln["msg"]).group(1))
            assert ln["rid"].endswith("-t%d" % idx), "rid %s does not name trace index %d" % (ln["rid"], idx)
    assert len({r.split("-")[0] for r in rids}) == 1, "records of one batch have different rid prefixes: %r" % rids
    return lines


def stdout_now(t, marker):
    """Lines of marker present right now (the caller just got an ack: no waiting allowed)."""
    return t.stdout_lines(marker)


# ---------------------------------------------------------------------------------------
# authentication

@pytest.mark.smoke
def test_auth_by_first_message_answer_shape_and_ack(ws_svc):
    t = ws_svc
    m = uniq("ws-first")

    async def go():
        ws, ans = await open_authed(t)
        assert set(ans) >= {"type", "ok", "user", "tenantName", "window", "maxMessageBytes"}, ans
        await ws.send(json.dumps(batch(1, m, n=3, batch_id=m)))
        check_ack(await recv_json(ws, 10, "the ack of seq 1"), 1, 3)
        lines = stdout_now(t, m)
        await ws.close()
        return lines
    check_lines(run(go()), m, 3)


@pytest.mark.parametrize("how", ["header", "cookie"])
def test_auth_at_handshake(ws_svc, how):
    """Authorization: Bearer or the cookie tlm_token authenticate without an auth message. A
    batch sent right after the handshake must be taken as authenticated (not 'data before
    auth'), even if the GAuth call is still running. The server may send its auth answer
    first; if it does, it has the documented shape."""
    t = ws_svc
    m = uniq("ws-" + how)
    kw = {"token_header": "dev-token-2"} if how == "header" else \
         {"cookie": "theme=dark; tlm_token=dev-token-2; lang=en"}

    async def go():
        ws = await connect(t, **kw)
        await ws.send(json.dumps(batch(1, m, n=2)))
        msg = await recv_json(ws, 10, "an answer")
        if msg["type"] == "auth":
            check_auth_answer(msg, t, user="agent2")
            msg = await recv_json(ws, 10, "the ack")
        check_ack(msg, 1, 2)
        lines = stdout_now(t, m)
        await ws.close()
        return lines
    check_lines(run(go()), m, 2, user="agent2")


def test_bad_token_at_handshake_is_refused(ws_svc):
    """A refused Authorization header: HTTP 401 at the handshake or close 1008."""
    t = ws_svc
    m = uniq("ws-badhdr")

    async def go():
        try:
            ws = await connect(t, token_header=uniq("bogus-token"))
        except W._HANDSHAKE_ERRORS as e:
            return ("http", W.status_of(e))
        try:
            await ws.send(json.dumps(batch(1, m)))
        except W.ConnectionClosed:
            pass
        code, reason, msgs = await expect_close(ws, 5)
        assert not any(isinstance(x, dict) and x.get("type") == "ack" for x in msgs), msgs
        return ("close", code, reason)
    res = run(go())
    assert res in (("http", 401),) or res[:2] == ("close", 1008), res
    assert t.stdout_lines(m) == []


def test_reauth_message_refreshes_identity(ws_svc):
    """A later auth message re-authenticates: the answer names the new user and the next
    batches are attributed to it."""
    t = ws_svc
    m1, m2 = uniq("ws-reauth1"), uniq("ws-reauth2")

    async def go():
        ws, _ = await open_authed(t, "dev-token")
        await ws.send(json.dumps(batch(1, m1)))
        check_ack(await recv_json(ws, 10), 1, 1)
        await ws.send(auth_msg("dev-token-3"))
        check_auth_answer(await recv_json(ws, 5, "the re-auth answer"), t, user="agent3")
        await ws.send(json.dumps(batch(2, m2)))
        check_ack(await recv_json(ws, 10), 2, 1)
        await ws.close()
    run(go())
    check_lines(t.stdout_lines(m1), m1, 1, user="agent1")
    check_lines(t.stdout_lines(m2), m2, 1, user="agent3")


def test_auth_message_longer_than_a_header_is_a_batch(ws_svc):
    """An auth message is at most TELEMETRY_MAX_HEADER_BYTES + 1 KiB (its token must fit in an
    Authorization header too): a longer one is refused as a batch, and the session keeps
    its identity."""
    t = ws_svc
    m = uniq("ws-longauth")

    async def go():
        ws, _ = await open_authed(t, "dev-token")
        await ws.send(json.dumps({"type": "auth", "token": "dev-token-3" + "x" * 6000}))
        err = await recv_json(ws, 5, "the answer to a long auth message")
        await ws.send(json.dumps(batch(1, m)))
        check_ack(await recv_json(ws, 10), 1, 1)
        await ws.close()
        return err
    err = run(go())
    assert err.get("type") == "error" and err.get("code") == "invalid_envelope", err
    check_lines(t.stdout_lines(m), m, 1, user="agent1")


# ---------------------------------------------------------------------------------------
# acks, answers and rids

def test_acks_in_arrival_order_with_verdicts_and_every_record_written(ws_svc):
    """Six batches sent without waiting, seqs not sorted: answers come in arrival order,
    counts and rejections are right, and at each ack the batch's records are on stdout."""
    t = ws_svc
    marks = [uniq("ws-ord%d" % i) for i in range(6)]
    seqs = [10, 3, 7, 100, 1, 42]
    batches = [
        batch(10, marks[0], n=1),
        batch(3, marks[1], n=3, batch_id=marks[1]),
        dict(batch(7, marks[2], n=0), traces=[{"msg": marks[2] + " r0"}, {"level": "info"},
                                             {"msg": marks[2] + " r2"}]),
        dict(batch(100, marks[3], n=0), traces=[{"level": "info", "properties": {"connId": marks[3]}}]),
        {"appName": "wwe_ui", "seq": 1, "events": [{"name": "ev_" + marks[4]}],
         "metrics": [{"name": "sip_call_mos", "value": 4.1, "properties": {"connId": marks[4]}}]},
        batch(42, marks[5], n=2),
    ]
    expect_acc = [1, 3, 2, 0, 2, 2]

    async def go():
        ws, _ = await open_authed(t)
        for b in batches:
            await asyncio.wait_for(ws.send(json.dumps(b)), 5)
        seen = []
        for seq, acc, mk in zip(seqs, expect_acc, marks):
            ack = check_ack(await recv_json(ws, 15, "the ack of seq %d" % seq), seq, acc)
            seen.append((ack, stdout_now(t, mk)))
        await ws.close()
        return seen
    seen = run(go(), 40)
    for (ack, lines), mk, acc in zip(seen, marks, expect_acc):
        assert len(lines) == acc, "seq %s acked with %d accepted, but %d lines on stdout at the ack" % (
            ack["seq"], acc, len(lines))
    assert seen[0][0]["rejected"] == []
    check_lines(seen[1][1], marks[1], 3)
    rej = seen[2][0]["rejected"]
    assert len(rej) == 1 and rej[0].get("kind") == "traces" and rej[0].get("index") == 1 \
        and rej[0].get("code") == "missing_msg", rej
    assert sorted(ln["rid"][-2:] for ln in seen[2][1]) == ["t0", "t2"], seen[2][1]
    assert len(seen[3][0]["rejected"]) == 1, seen[3][0]
    kinds = sorted((ln["kind"], ln["rid"].rsplit("-", 1)[1]) for ln in seen[4][1])
    assert kinds == [("event", "e0"), ("metric", "m0")], seen[4][1]


def test_same_batch_id_gives_same_rids(ws_svc):
    """A re-sent batch (same batchId) is written again with the same rids (SPEC 3)."""
    t = ws_svc
    m = uniq("ws-resend")

    async def go():
        ws, _ = await open_authed(t)
        for seq in (1, 2):
            await ws.send(json.dumps(batch(seq, m, n=2, batch_id=m)))
        check_ack(await recv_json(ws, 10), 1, 2)
        check_ack(await recv_json(ws, 10), 2, 2)
        await ws.close()
    run(go())
    lines = t.stdout_lines(m)
    assert len(lines) == 4, lines
    by_msg = {}
    for ln in lines:
        by_msg.setdefault(ln["msg"], set()).add(ln["rid"])
    assert all(len(r) == 1 for r in by_msg.values()), "a re-sent record got a new rid: %r" % by_msg


def test_error_answers_keep_the_stream_open(ws_svc):
    """Bad envelopes get an error answer (in arrival order, between the acks) and the
    stream goes on."""
    t = ws_svc
    m = uniq("ws-errs")
    good1, good2 = batch(1, m + "-a", n=2), batch(9, m + "-b", n=1)
    sends = [
        json.dumps(good1),
        '{"appName":"wwe_ui","seq":2,"traces":[{"msg":"x"}',                   # invalid_json
        json.dumps({"appName": "wwe_ui", "traces": [{"msg": m + " noseq"}]}),    # missing_seq
        json.dumps({"appName": "wwe_ui", "seq": "3", "traces": [{"msg": m + " strseq"}]}),
        json.dumps({"appName": "wwe_ui", "seq": 3.5, "traces": [{"msg": m + " floatseq"}]}),
        json.dumps({"appName": "no_such_app", "seq": 6, "traces": [{"msg": m + " app"}]}),
        json.dumps({"seq": 7, "traces": [{"msg": m + " noapp"}]}),
        json.dumps({"appName": "wwe_ui", "seq": 8, "traces": "nope"}),
        json.dumps(good2),
    ]

    async def go():
        ws, _ = await open_authed(t)
        for s in sends:
            await asyncio.wait_for(ws.send(s), 5)
        answers = [await recv_json(ws, 15, "answer %d" % i) for i in range(len(sends))]
        await ws.close()
        return answers
    a = run(go(), 40)
    check_ack(a[0], 1, 2)
    check_error(a[1], "invalid_json")
    check_error(a[2], "missing_seq")
    check_error(a[3], "missing_seq")
    check_error(a[4], "missing_seq")
    check_error(a[5], "unknown_app", seq=6)
    check_error(a[6], "invalid_envelope", seq=7)
    check_error(a[7], "invalid_envelope", seq=8)
    check_ack(a[8], 9, 1)
    assert len(t.stdout_lines(m + "-a")) == 2 and len(t.stdout_lines(m + "-b")) == 1
    for tag in ("noseq", "strseq", "floatseq", "app", "noapp"):
        assert t.stdout_lines("%s %s" % (m, tag)) == [], "a refused batch was written (%s)" % tag


@pytest.mark.local_only
def test_ack_waits_for_the_write_but_nothing_accepted_is_acked_at_once(ws_svc):
    """Logshipper stopped: a batch whose records are all rejected is acked at once (nothing
    to write); a batch with a good record is acked only after the logshipper runs again."""
    t = ws_svc
    m = uniq("ws-ackwait")

    async def go():
        ws, _ = await open_authed(t)
        t.pause_logshipper()
        try:
            await ws.send(json.dumps({"appName": "wwe_ui", "seq": 1, "traces": [{"level": "info"}]}))
            first = check_ack(await recv_json(ws, 3, "the ack of a batch with nothing accepted"), 1, 0)
            await ws.send(json.dumps(batch(2, m)))
            early = await W.still_open(ws, 1.0)
            assert t.stdout_lines(m) == []
        finally:
            t.resume_logshipper()
        check_ack(await recv_json(ws, 10, "the ack after SIGCONT"), 2, 1)
        lines = stdout_now(t, m)
        await ws.close()
        return first, early, lines
    first, early, lines = run(go())
    assert first["rejected"] and first["rejected"][0].get("code") == "missing_msg", first
    assert early, "closed while the logshipper was stopped"
    check_lines(lines, m, 1)


# ---------------------------------------------------------------------------------------
# message-level closes

def test_binary_message_closes_1003(ws_svc):
    t = ws_svc

    async def go():
        ws, _ = await open_authed(t)
        await ws.send(b"\x00\x01binary")
        return await expect_close(ws, 5)
    code, reason, msgs = run(go())
    assert code == 1003, (code, reason, msgs)


def test_message_size_limit_1009_and_fragments(ws_svc):
    """A message up to TELEMETRY_WS_MAX_MESSAGE_BYTES is taken, in one frame or in
    fragments; one byte more (whole or fragmented) closes 1009."""
    t = ws_svc
    limit = t.cfg_int("TELEMETRY_WS_MAX_MESSAGE_BYTES")
    max_str = t.cfg_int("TELEMETRY_MAX_STRING_BYTES")

    def sized(seq, marker, size):
        """A batch whose JSON text is exactly size bytes (padding spread over records so no
        string passes TELEMETRY_MAX_STRING_BYTES). Returns (text, number of records)."""
        out = {"appName": "wwe_ui", "seq": seq, "traces": []}
        while True:
            rec = {"msg": "%s r%d" % (marker, len(out["traces"]))}
            out["traces"].append(rec)
            room = size - len(json.dumps(out))
            assert room >= 0, "cannot size the batch"
            cap = max_str - 64 - len(rec["msg"])
            if room <= cap:
                rec["msg"] += "x" * room
                text = json.dumps(out)
                assert len(text) == size, (len(text), size)
                return text, len(out["traces"])
            rec["msg"] += "x" * (cap if room - cap >= 100 else room - 100)

    m_ok, m_frag, m_big, m_bigfrag = (uniq("ws-size") for _ in range(4))
    ok_text, ok_n = sized(1, m_ok, limit)
    frag_text, frag_n = sized(2, m_frag, limit)
    big_text, _ = sized(3, m_big, limit + 1)
    bigfrag_text, _ = sized(4, m_bigfrag, limit + 1)

    async def go():
        ws, _ = await open_authed(t)
        await ws.send(ok_text)
        check_ack(await recv_json(ws, 10, "the ack of a message at the limit"), 1, ok_n)
        third = len(frag_text) // 3
        await ws.send([frag_text[:third], frag_text[third:2 * third], frag_text[2 * third:]])
        check_ack(await recv_json(ws, 10, "the ack of a fragmented message"), 2, frag_n)
        await ws.send(big_text)
        one = await expect_close(ws, 5)
        ws2, _ = await open_authed(t)
        half = len(bigfrag_text) // 2
        await ws2.send([bigfrag_text[:half], bigfrag_text[half:]])
        two = await expect_close(ws2, 5)
        return one, two
    one, two = run(go())
    assert one[0] == 1009, "message of limit+1 bytes: %r" % (one,)
    assert two[0] == 1009, "fragmented message of limit+1 bytes: %r" % (two,)
    assert len(t.stdout_lines(m_ok)) == ok_n and len(t.stdout_lines(m_frag)) == frag_n
    assert t.stdout_lines(m_big) == [] and t.stdout_lines(m_bigfrag) == []


# ---------------------------------------------------------------------------------------
# authentication closes

def test_auth_timeout_closes_1008(ws_svc):
    t = ws_svc
    limit = t.cfg_int("TELEMETRY_WS_AUTH_TIMEOUT")

    async def go():
        ws = await connect(t)
        t0 = time.monotonic()
        code, reason, msgs = await expect_close(ws, limit + 4)
        return code, reason, msgs, time.monotonic() - t0
    code, reason, msgs, took = run(go(), limit + 10)
    assert (code, reason) == (1008, "authentication timeout"), (code, reason, msgs)
    assert took >= limit * 0.5, "closed after %.2fs, before the %ds auth timeout" % (took, limit)


def test_data_before_auth_closes_1008(ws_svc):
    t = ws_svc
    m = uniq("ws-noauth")

    async def go():
        ws = await connect(t)
        await ws.send(json.dumps(batch(1, m)))
        return await expect_close(ws, 5)
    code, reason, msgs = run(go())
    assert code == 1008, (code, reason, msgs)
    assert not any(isinstance(x, dict) and x.get("type") == "ack" for x in msgs), msgs
    assert t.stdout_lines(m) == []


@pytest.mark.parametrize("token,reason", [("bogus", "invalid token"), ("unknown-cc-token", "unknown tenant")])
def test_refused_token_closes_1008(ws_svc, token, reason):
    t = ws_svc
    tok = uniq("bogus-token") if token == "bogus" else token

    async def go():
        ws = await connect(t)
        await ws.send(auth_msg(tok))
        return await expect_close(ws, 5)
    code, why, msgs = run(go())
    assert (code, why) == (1008, reason), (code, why, msgs)
    assert not any(isinstance(x, dict) and x.get("ok") is True for x in msgs), msgs


@pytest.mark.local_only
@pytest.mark.parametrize("mode", ["down", "fail", "stall"])
def test_gauth_unavailable_closes_1013(ws_svc, mode):
    """GAuth refusing connections, answering 500, or slower than TELEMETRY_AUTH_TIMEOUT_MS
    (which this module keeps under TELEMETRY_WS_AUTH_TIMEOUT): try again later."""
    t = ws_svc
    tok = uniq("never-seen-token")
    t.gauth.set_mode(mode, stall_ms=t.cfg_int("TELEMETRY_AUTH_TIMEOUT_MS") + 3000 if mode == "stall" else None)
    try:
        async def go():
            ws = await connect(t)
            await ws.send(auth_msg(tok))
            return await expect_close(ws, t.cfg_int("TELEMETRY_AUTH_TIMEOUT_MS") / 1000 + 5)
        code, reason, msgs = run(go())
    finally:
        t.gauth.set_mode("ok")
    assert code == 1013, (code, reason, msgs)


# ---------------------------------------------------------------------------------------
# handshake checks and origins (harness CORS: pulse = http://localhost:8080,
# http://127.0.0.1:8080, *.pulse.example.com; acme = https://desktop.acme.example)

@pytest.mark.parametrize("origin,token,user,tenant", [
    ("http://localhost:8080", "dev-token", "agent1", "pulse"),
    ("https://a.pulse.example.com", "dev-token", "agent1", "pulse"),
    ("https://desktop.acme.example", "other-tenant-token", "acme-agent1", "acme"),
])
def test_origin_allowed_for_the_tenant(ws_svc, origin, token, user, tenant):
    t = ws_svc
    m = uniq("ws-origin")

    async def go():
        ws, _ = await open_authed(t, token, user, tenant, origin=origin)
        await ws.send(json.dumps(batch(1, m)))
        check_ack(await recv_json(ws, 10), 1, 1)
        await ws.close()
    run(go())
    check_lines(t.stdout_lines(m), m, 1, user=user, tenant=tenant)


@pytest.mark.parametrize("how", ["message", "header"])
def test_origin_of_another_tenant_closes_1008_after_auth(ws_svc, how):
    """The acme desktop's origin passes the handshake (allowed for some tenant) but a pulse
    token from it is refused once known (cross-site WebSocket hijacking)."""
    t = ws_svc
    m = uniq("ws-xorigin")

    async def go():
        if how == "header":
            ws = await connect(t, origin="https://desktop.acme.example", token_header="dev-token")
        else:
            ws = await connect(t, origin="https://desktop.acme.example")
            await ws.send(auth_msg("dev-token"))
        try:
            await ws.send(json.dumps(batch(1, m)))
        except W.ConnectionClosed:
            pass
        return await expect_close(ws, 5)
    code, reason, msgs = run(go())
    assert (code, reason) == (1008, "origin not allowed for tenant"), (code, reason, msgs)
    assert not any(isinstance(x, dict) and (x.get("ok") is True or x.get("type") == "ack") for x in msgs), msgs
    assert t.stdout_lines(m) == []


def _raw_upgrade(t, path, headers):
    """The handshake as a plain HTTP request (to read a refusal's JSON body)."""
    h = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
         "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    h.update(headers)
    return H.http("GET", t.ingest_url + path, headers=h, timeout=5)


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:8081",
                                    "https://pulse.example.com.evil.example"])
def test_origin_allowed_for_no_tenant_403_at_handshake(ws_svc, origin):
    t = ws_svc
    assert run(W.handshake_status(t, origin=origin)) == 403
    assert_error(_raw_upgrade(t, W.STREAM_PATH, {"Origin": origin}), 403, "origin_not_allowed")


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/streams", "/api/v1/stream/x", "/"])
def test_wrong_path_404_at_handshake(ws_svc, path):
    t = ws_svc
    assert run(W.handshake_status(t, path=path)) == 404
    assert_error(_raw_upgrade(t, path, {}), 404, "not_found")


# ---------------------------------------------------------------------------------------
# window and flow control (raw client: bytes on the wire are counted exactly)

@pytest.mark.local_only
@pytest.mark.timeout(40)
def test_window_stops_reading_and_all_batches_are_acked_in_order(ws_svc):
    """With the logshipper stopped nothing can be acked, so the server may hold at most
    TELEMETRY_WS_WINDOW batches and must stop reading the socket. Observed from the kernel:
    bytes the server application consumed = bytes we sent - our send queue - its receive
    queue; that must stay under window + 1 batches plus a read-ahead allowance (64 KiB),
    while we sent far more. After SIGCONT every batch is acked, in order, and written."""
    t = ws_svc
    win = t.cfg_int("TELEMETRY_WS_WINDOW")
    size = min(6000, t.cfg_int("TELEMETRY_WS_MAX_MESSAGE_BYTES") - 200)
    n = 40
    readahead = 65536
    mk = [uniq("ws-win%02d" % i) for i in range(n)]
    frames = [json.dumps(batch(i + 1, mk[i], n=1, pad=size - 120)) for i in range(n)]
    ws = RawWS(t)
    try:
        ws.send_text(auth_msg("dev-token"))
        check_auth_answer(ws.recv_json(5, "the auth answer"), t)
        base = ws.sent_bytes
        t.pause_logshipper()
        try:
            for f in frames:
                ws.queue(0x1, f)
            total = len(ws.out)
            deadline = time.monotonic() + 5
            last = -1
            while time.monotonic() < deadline:        # push until everything is out or we are blocked
                if not ws.flush():
                    break
                if ws.sent_bytes == last:
                    time.sleep(0.2)
                last = ws.sent_bytes
            f = ws.recv_frame(1.0)                   # settle; nothing may be acked meanwhile
            assert f is None, "got %r while the logshipper is stopped: acks must wait for the write" % (f,)
            sent = ws.sent_bytes - base
            txq, rxq = ws.tcp_queues()
            consumed = sent - txq - rxq
            H.note("ws window: sent %d of %d bytes, server consumed %d (window %d x %d-byte batches), "
                   "unread in its socket %d" % (sent, total, consumed, win, len(frames[0]), rxq))
            bound = (win + 1) * (len(frames[0]) + 14) + readahead
            assert consumed <= bound, (
                "the server read %d bytes while %d batches were un-acked (window %d): it did not stop "
                "reading (bound %d)" % (consumed, win, win, bound))
            assert sent > bound, "test could not send enough to observe the window (sent %d)" % sent
        finally:
            t.resume_logshipper()
        acked = []
        deadline = time.monotonic() + 20
        while len(acked) < n and time.monotonic() < deadline:
            ws.flush()
            try:
                msg = ws.recv_json(deadline - time.monotonic(), "ack %d" % (len(acked) + 1))
            except RawClosed as c:
                raise AssertionError("closed %s %r after %d acks" % (c.code, c.reason, len(acked))) from None
            i = len(acked)
            check_ack(msg, i + 1, 1)
            assert len(stdout_now(t, mk[i])) == 1, "seq %d acked but its record is not on stdout" % (i + 1)
            acked.append(msg)
        assert len(acked) == n, "only %d of %d batches acked" % (len(acked), n)
    finally:
        ws.close()


@pytest.mark.timeout(40)
@pytest.mark.parametrize("why", ["window", "pipeline"])
def test_stalled_pipeline_blocks_the_client_then_closes_1013(tlm_factory, why):
    """Logshipper stopped: the server stops reading (our sends block: the kernel takes no
    more), and after TELEMETRY_WS_STALL_TIMEOUT it closes 1013. 'window': the window fills
    because nothing is acked. 'pipeline': the ingest's buffer (TELEMETRY_TRACES_THRESHOLD
    records) is full before the window is."""
    env = {"TELEMETRY_WS_STALL_TIMEOUT": "2", "TELEMETRY_WS_MAX_MESSAGE_BYTES": "65536"}
    if why == "window":
        env["TELEMETRY_WS_WINDOW"] = "2"
    else:
        env.update({"TELEMETRY_WS_WINDOW": "64", "TELEMETRY_TRACES_THRESHOLD": "10"})
    t = tlm_factory(env=env)
    m = uniq("ws-stall")
    ws = RawWS(t)
    try:
        ws.send_text(auth_msg("dev-token"))
        check_auth_answer(ws.recv_json(5, "the auth answer"), t)
        t.pause_logshipper()
        one = json.dumps(batch(1, m, n=4, pad=3000))
        seq, blocked_at, limit_bytes = 0, None, 256 << 20
        t0 = time.monotonic()
        while time.monotonic() - t0 < 15 and ws.sent_bytes < limit_bytes:
            while len(ws.out) < (1 << 20):
                seq += 1
                ws.queue(0x1, one.replace('"seq": 1', '"seq": %d' % seq, 1))
            before = ws.sent_bytes
            ws.flush()
            if ws.broken:                       # closed already (stall timeout passed)
                blocked_at = blocked_at or time.monotonic()
                break
            if ws.sent_bytes == before:
                if blocked_at is None:
                    blocked_at = time.monotonic()
                elif time.monotonic() - blocked_at >= 0.5:
                    break
                time.sleep(0.1)
            else:
                blocked_at = None
        assert blocked_at is not None, ("the server kept reading: %d bytes taken in %.1fs with the logshipper "
                                        "stopped" % (ws.sent_bytes, time.monotonic() - t0))
        code, reason, msgs = ws.wait_close(2 + 6)
        waited = time.monotonic() - t0
        H.note("ws stall (%s): blocked after %d bytes, closed %s %r after %.1fs" % (
            why, ws.sent_bytes, code, reason, waited))
        assert code == 1013, (code, reason, msgs[:3])
        assert not any(isinstance(x, dict) and x.get("type") == "ack" for x in msgs), msgs[:3]
    finally:
        ws.close()
        t.resume_logshipper()
    assert t.health("ingest", "live").status_code == 200


@pytest.mark.timeout(60)
def test_client_that_never_reads_its_acks_is_paused_then_dropped(tlm_factory):
    """A client that sends and never reads, not even its auth answer: its acks cannot
    leave, so they stay in its window (SPEC 2: a window of unacknowledged batches; 6: slow
    clients get a timeout, the service no crash). The server stops reading it instead of
    queueing its acks without end (it grew ~30 MB a second), and drops it at the idle
    timeout: it sends nothing more and no ping reaches it."""
    t = tlm_factory(env={"TELEMETRY_WS_PING_INTERVAL": "1", "TELEMETRY_WS_IDLE_TIMEOUT": "3"})
    pid = t.ingest.pid
    m = uniq("ws-noread")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)   # before connect: a small window
    sock.settimeout(5)
    sock.connect(("127.0.0.1", int(t.ingest_url.rsplit(":", 1)[1])))
    local_port, server_port = sock.getsockname()[1], sock.getpeername()[1]
    try:
        sock.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)                     # the handshake only, byte by byte
        assert head.startswith(b"HTTP/1.1 101"), head
        sock.sendall(RawWS.frame(0x1, auth_msg("dev-token").encode()))
        rss0 = W.proc_status(pid, "VmRSS")
        sock.setblocking(False)
        seq, pending, t0, blocked_at = 0, b"", time.monotonic(), None
        while time.monotonic() - t0 < 20:
            if not pending:
                seq += 1
                pending = RawWS.frame(0x1, json.dumps(batch(seq, m)).encode())
            try:
                n = sock.send(pending)
                pending, blocked_at = pending[n:], None
            except BlockingIOError:
                if blocked_at is None:
                    blocked_at = time.monotonic()
                elif time.monotonic() - blocked_at >= 1.0:
                    break
                time.sleep(0.01)
        rss1 = W.proc_status(pid, "VmRSS")
        H.note("ws never reading: blocked after %d batches in %.1fs, ingest RSS %d -> %d kB" % (
            seq, time.monotonic() - t0, rss0, rss1))
        assert blocked_at is not None, "the server kept reading a client that reads none of its acks: %d batches" % seq
        assert rss1 - rss0 < 32 * 1024, "ingest RSS grew %d kB for one client that does not read" % (rss1 - rss0)
        # dropped without our reading a byte: the ingest's side of the connection leaves
        # ESTABLISHED (its FIN waits in the kernel behind the acks we never read)
        H.wait_until(lambda: W.tcp_rx_queue(server_port, local_port) is None, 10, interval=0.2,
                     what="the ingest to drop a client that reads nothing")
    finally:
        sock.close()
    assert t.health("ingest", "live").status_code == 200


# ---------------------------------------------------------------------------------------
# shutdown, sessions, throttles, idle

@pytest.mark.timeout(40)
def test_sigterm_acks_accepted_batches_then_closes_1001(tlm_factory):
    t = tlm_factory(env={"TELEMETRY_DRAIN_TIMEOUT": "10"})
    m1, m2, m3 = uniq("ws-term1"), uniq("ws-term2"), uniq("ws-term3")

    async def go():
        ws, _ = await open_authed(t)
        t.pause_logshipper()
        try:
            await ws.send(json.dumps(batch(1, m1, n=2)))
            await ws.send(json.dumps(batch(2, m2, n=1)))
            await asyncio.sleep(0.5)                  # the server reads both (not acked yet)
            t.ingest.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            try:
                await ws.send(json.dumps(batch(3, m3, n=1)))   # after SIGTERM: must not be read
            except W.ConnectionClosed:
                pass
        finally:
            t.resume_logshipper()
        return await expect_close(ws, 15)
    code, reason, msgs = run(go(), 30)
    acks = [x for x in msgs if isinstance(x, dict) and x.get("type") == "ack"]
    assert [a.get("seq") for a in acks] == [1, 2], "expected acks of seq 1 and 2 before the close: %r" % msgs
    assert code == 1001, (code, reason, msgs)
    assert len(t.stdout_lines(m1)) == 2 and len(t.stdout_lines(m2)) == 1
    assert t.stdout_lines(m3) == [], "a batch sent after SIGTERM was read and written"
    rc = t.ingest.wait(10)
    assert rc == 0, "ingest exit code %r after SIGTERM" % rc


@pytest.mark.timeout(30)
def test_draining_instance_refuses_new_streams_503(tlm_factory):
    """Between SIGTERM and exit (kept draining here by an un-acked batch), a new WebSocket
    handshake is answered 503 (DESIGN: 'a draining instance answers 503')."""
    t = tlm_factory(env={"TELEMETRY_DRAIN_TIMEOUT": "10"})
    m = uniq("ws-drain")

    async def go():
        ws, _ = await open_authed(t)
        t.pause_logshipper()
        try:
            await ws.send(json.dumps(batch(1, m)))
            await asyncio.sleep(0.3)
            t.ingest.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            try:
                status = await W.handshake_status(t, timeout=3)
            except (OSError, asyncio.TimeoutError) as e:
                status = "no answer: %r" % e
        finally:
            t.resume_logshipper()
        await expect_close(ws, 12)
        return status
    status = run(go(), 25)
    assert status == 503, "handshake while draining: %r" % (status,)
    assert len(t.stdout_lines(m)) == 1


@pytest.mark.timeout(40)
def test_max_session_third_connection_closes_1013(tlm_factory):
    t = tlm_factory(env={"TELEMETRY_MAX_SESSION": "2"})
    m = uniq("ws-sess")

    async def go():
        a, _ = await open_authed(t, "dev-token")
        b, _ = await open_authed(t, "dev-token-2", user="agent2")
        c = await connect(t)
        await c.send(auth_msg("dev-token-3"))
        third = await expect_close(c, 5)
        for i, ws in enumerate((a, b)):           # existing sessions go on
            await ws.send(json.dumps(batch(1, "%s-%d" % (m, i))))
            check_ack(await recv_json(ws, 10), 1, 1)
        await a.close()
        # a freed session can be taken again (the server may need a moment to count the close)
        deadline = time.monotonic() + 5
        while True:
            d = await connect(t)
            await d.send(auth_msg("dev-token-3"))
            try:
                ans = await recv_json(d, 5, "the auth answer")
                break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
        check_auth_answer(ans, t, user="agent3")
        await b.close()
        await d.close()
        return third
    code, reason, msgs = run(go(), 35)
    assert (code, reason) == (1013, "too many sessions"), (code, reason, msgs)
    assert not any(isinstance(x, dict) and x.get("ok") is True for x in msgs), msgs


@pytest.mark.timeout(30)
def test_record_and_auth_min_interval_throttle(tlm_factory):
    t = tlm_factory(env={"TELEMETRY_RECORD_MIN_INTERVAL": "1000", "TELEMETRY_AUTH_MIN_INTERVAL": "1000"})
    m = [uniq("ws-thr%d" % i) for i in range(3)]

    async def go():
        ws, _ = await open_authed(t)
        await ws.send(auth_msg("dev-token"))                     # re-auth at once: too soon
        check_error(await recv_json(ws, 5, "the re-auth answer"), "throttled")
        await ws.send(json.dumps(batch(1, m[0])))
        check_ack(await recv_json(ws, 10), 1, 1)
        await ws.send(json.dumps(batch(2, m[1])))                # batch at once: too soon
        check_error(await recv_json(ws, 5), "throttled", seq=2)
        await asyncio.sleep(1.2)
        await ws.send(auth_msg("dev-token"))
        check_auth_answer(await recv_json(ws, 5, "the re-auth answer"), t)
        await ws.send(json.dumps(batch(3, m[2])))
        check_ack(await recv_json(ws, 10), 3, 1)
        await ws.close()
    run(go(), 25)
    assert len(t.stdout_lines(m[0])) == 1 and len(t.stdout_lines(m[2])) == 1
    assert t.stdout_lines(m[1]) == [], "a throttled batch was written"


@pytest.mark.timeout(30)
def test_idle_timeout_closes_a_silent_peer_but_not_one_answering_pings(tlm_factory):
    """Server pings every second; a client that answers them stays open past
    TELEMETRY_WS_IDLE_TIMEOUT, one that does not (pongs disabled) is closed."""
    t = tlm_factory(env={"TELEMETRY_WS_PING_INTERVAL": "1", "TELEMETRY_WS_IDLE_TIMEOUT": "2"})
    m = uniq("ws-idle")

    async def go():
        alive, _ = await open_authed(t, protocol=W.CountingClient)
        silent, _ = await open_authed(t, "dev-token-2", user="agent2", protocol=W.SilentClient)
        t0 = time.monotonic()
        code, reason, _ = await expect_close(silent, 2 + 5)
        took = time.monotonic() - t0
        await asyncio.sleep(max(0, 4.5 - took))        # the answering client is past 2 x idle timeout
        assert alive.open, "the client answering pings was closed: %s %r" % (alive.close_code, alive.close_reason)
        await alive.send(json.dumps(batch(1, m)))
        check_ack(await recv_json(alive, 10), 1, 1)
        pings = (alive.pings_seen, silent.pings_seen)
        await alive.close()
        return code, reason, took, pings
    code, reason, took, pings = run(go(), 25)
    H.note("ws idle: silent peer closed %s %r after %.1fs; pings seen (answering, silent) = %r" % (
        code, reason, took, pings))
    assert took >= 1.0, "silent peer closed after %.2fs, before the idle timeout" % took
    assert pings[1] >= 1, "the server sent no ping before closing the silent peer"
    assert pings[0] >= 2, "the server pinged the quiet client %d times in ~4.5s (interval 1s)" % pings[0]


def test_idle_timeout_counts_messages_as_heard_from(tlm_factory):
    """A client that never answers pings but sends a message every half second stays open
    past TELEMETRY_WS_IDLE_TIMEOUT: any message, not only a pong, shows the peer is there.
    Once it stops sending it is closed within the idle timeout (plus the loop's slack)."""
    t = tlm_factory(env={"TELEMETRY_WS_PING_INTERVAL": "1", "TELEMETRY_WS_IDLE_TIMEOUT": "2"})
    m = uniq("ws-idle-msgs")

    async def go():
        ws, _ = await open_authed(t, protocol=W.SilentClient)
        for i in range(1, 10):                 # 4.5 s of traffic, more than twice the timeout
            await ws.send(json.dumps(batch(i, m)))
            check_ack(await recv_json(ws, 10), i, 1)
            await asyncio.sleep(0.5)
        assert ws.open, "a client sending messages was closed: %s %r" % (ws.close_code, ws.close_reason)
        t0 = time.monotonic()
        code, _, _ = await expect_close(ws, 2 + 5)
        return code, time.monotonic() - t0, ws.pings_seen
    code, took, pings = run(go(), 30)
    H.note("ws idle: a client sending messages but no pongs, then silent: closed %s after %.1fs (%d pings seen)" % (
        code, took, pings))
    assert 1.0 <= took <= 4.0, "closed %.2fs after its last message (idle timeout 2 s)" % took


# ---------------------------------------------------------------------------------------
# scale: many idle sessions

@pytest.mark.timeout(60)
def test_thousand_idle_authenticated_connections(tlm_factory):
    n = 1000
    W.raise_nofile(n * 2 + 512)          # before the service starts: the ingest inherits it
    t = tlm_factory()
    pid = t.ingest.pid
    rss0, fds0 = W.proc_status(pid, "VmRSS"), W.open_fds(pid)
    m = uniq("ws-1000")

    async def one(sem, i):
        async with sem:
            ws = await connect(t, timeout=20)
            await ws.send(auth_msg("dev-token"))
            ans = await recv_json(ws, 20, "auth answer %d" % i)
            return ws, ans

    async def go():
        sem = asyncio.Semaphore(100)
        t0 = time.monotonic()
        res = await asyncio.gather(*(one(sem, i) for i in range(n)), return_exceptions=True)
        took = time.monotonic() - t0
        conns = [r[0] for r in res if not isinstance(r, BaseException)]
        errors = [r for r in res if isinstance(r, BaseException)]
        try:
            ok = sum(1 for r in res if not isinstance(r, BaseException) and r[1].get("ok") is True)
            rss1, fds1 = W.proc_status(pid, "VmRSS"), W.open_fds(pid)
            await asyncio.sleep(0.5)
            still = sum(1 for ws in conns if ws.open)
            health = t.health("ingest", "live").status_code
            # the service still serves new work
            ws, _ = await open_authed(t, "dev-token-2", user="agent2")
            await ws.send(json.dumps(batch(1, m)))
            check_ack(await recv_json(ws, 10), 1, 1)
            await ws.close()
        finally:
            await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True), 20)
        return ok, errors, still, health, took, rss1, fds1
    ok, errors, still, health, took, rss1, fds1 = run(go(), 55)
    per = (rss1 - rss0) / max(ok, 1)
    msg = ("ws 1000 idle sessions: %d authenticated in %.1fs; ingest RSS %d kB -> %d kB (%.1f kB per connection), "
           "fds %d -> %d" % (ok, took, rss0, rss1, per, fds0, fds1))
    print(msg)
    H.note(msg)
    assert not errors, "%d connections failed, e.g. %r" % (len(errors), errors[:3])
    assert ok == n, "%d of %d got an auth ok answer" % (ok, n)
    assert still == n, "%d of %d idle connections were closed" % (n - still, n)
    assert health == 200
    assert t.ingest.alive()
