"""ws_helpers.py - WebSocket client helpers for the stream suites (test_ws_stream.py,
test_browser.py). Built on Debian's python3-websockets (10.4, legacy asyncio API) and run
with asyncio.run() inside plain sync tests (no pytest-asyncio in Debian 12).

Every wait here has a timeout: a helper raises AssertionError (or TimeoutError) instead of
hanging. See docs/DESIGN.md "WebSocket stream" for the protocol these helpers speak.
"""
import asyncio
import base64
import hashlib
import json
import os
import resource
import select
import socket
import time

import websockets
from websockets.exceptions import ConnectionClosed

try:  # websockets >= 10.0 legacy API
    from websockets.legacy.client import WebSocketClientProtocol
except ImportError:  # pragma: no cover - older layouts
    from websockets.client import WebSocketClientProtocol

# InvalidStatusCode (legacy API, <= 13) and InvalidStatus (new API) both mean "the
# handshake got an HTTP answer other than 101"; status_of() reads either.
_HANDSHAKE_ERRORS = tuple(c for c in (getattr(websockets.exceptions, "InvalidStatusCode", None),
                                      getattr(websockets.exceptions, "InvalidStatus", None)) if c)

STREAM_PATH = "/api/v1/stream"


def run(coro, timeout=30):
    """Runs one coroutine on a fresh event loop, bounded by timeout seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def ws_url(target, path=STREAM_PATH):
    return target.ingest_url.replace("https://", "wss://").replace("http://", "ws://") + path


class CountingClient(WebSocketClientProtocol):
    """A client protocol that counts the server's pings and answers them only when
    answer_pings is true (the library answers every ping by calling pong())."""

    answer_pings = True

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.pings_seen = 0

    async def pong(self, data=b""):
        self.pings_seen += 1
        if self.answer_pings:
            await super().pong(data)


class SilentClient(CountingClient):
    """Never answers a ping: a peer that went away without closing."""

    answer_pings = False


def status_of(exc):
    """HTTP status of a refused handshake exception."""
    if hasattr(exc, "status_code"):
        return exc.status_code
    return exc.response.status_code


async def connect(target, token_header=None, cookie=None, origin=None, path=STREAM_PATH, headers=None,
                  protocol=CountingClient, timeout=10, **kw):
    """Opens a WebSocket to the target's stream (no client pings, no compression, no size
    limit on what the server sends). token_header / cookie authenticate at the handshake."""
    h = dict(headers or {})
    if token_header is not None:
        h["Authorization"] = "Bearer " + token_header
    if cookie is not None:
        h["Cookie"] = cookie
    opts = dict(origin=origin, extra_headers=h, ping_interval=None, close_timeout=2, max_size=None,
                compression=None, open_timeout=timeout, create_protocol=protocol)
    opts.update(kw)
    return await asyncio.wait_for(websockets.connect(ws_url(target, path), **opts), timeout + 1)


async def handshake_status(target, timeout=10, **kw):
    """Tries a handshake that should be refused; returns the HTTP status. Fails if it opens."""
    try:
        ws = await connect(target, timeout=timeout, **kw)
    except _HANDSHAKE_ERRORS as e:
        return status_of(e)
    await ws.close()
    raise AssertionError("the WebSocket handshake was accepted (101); expected an HTTP refusal")


async def recv_json(ws, timeout=5.0, what="a message"):
    """Next message as JSON (a dict). Fails on timeout, on a binary or non-JSON message and
    on a close (with its code and reason)."""
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError("no %s from the server within %.1fs" % (what, timeout)) from None
    except ConnectionClosed:
        await _settle(ws)
        raise AssertionError("connection closed while waiting for %s: code %s reason %r" % (
            what, ws.close_code, ws.close_reason)) from None
    assert isinstance(raw, str), "server sent a binary message: %r" % raw[:100]
    try:
        msg = json.loads(raw)
    except ValueError:
        raise AssertionError("server sent a message that is not JSON: %r" % raw[:300]) from None
    assert isinstance(msg, dict), "server message is not an object: %r" % raw[:300]
    assert isinstance(msg.get("type"), str), "server message without a type: %r" % raw[:300]
    return msg


async def _settle(ws, timeout=5.0):
    try:
        await asyncio.wait_for(ws.wait_closed(), timeout)
    except asyncio.TimeoutError:
        pass


async def expect_close(ws, timeout=5.0):
    """Reads until the server closes (messages before the close are returned).
    Returns (code, reason, [messages as parsed JSON or raw]). Fails if still open at timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    msgs = []
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError("the server did not close the connection within %.1fs (got %r)" % (
                timeout, msgs[-5:]))
        try:
            raw = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            continue
        except ConnectionClosed:
            break
        try:
            msgs.append(json.loads(raw))
        except (ValueError, TypeError):
            msgs.append(raw)
    await _settle(ws)
    return ws.close_code, ws.close_reason, msgs


async def still_open(ws, quiet_for=0.5):
    """True when the connection stays open and silent for quiet_for seconds."""
    try:
        raw = await asyncio.wait_for(ws.recv(), quiet_for)
    except asyncio.TimeoutError:
        return True
    except ConnectionClosed:
        return False
    raise AssertionError("unexpected message from the server: %r" % (raw[:300],))


def auth_msg(token):
    return json.dumps({"type": "auth", "token": token})


def check_auth_answer(msg, target, user="agent1", tenant="pulse"):
    """The auth answer of DESIGN 'WebSocket stream'."""
    assert msg.get("type") == "auth" and msg.get("ok") is True, "not an auth ok answer: %r" % msg
    assert msg.get("user") == user, msg
    assert msg.get("tenantName") == tenant, msg
    assert msg.get("window") == target.cfg_int("TELEMETRY_WS_WINDOW"), \
        "window %r, configured %s" % (msg.get("window"), target.cfg("TELEMETRY_WS_WINDOW"))
    assert msg.get("maxMessageBytes") == target.cfg_int("TELEMETRY_WS_MAX_MESSAGE_BYTES"), \
        "maxMessageBytes %r, configured %s" % (msg.get("maxMessageBytes"), target.cfg("TELEMETRY_WS_MAX_MESSAGE_BYTES"))
    return msg


async def open_authed(target, token="dev-token", user="agent1", tenant="pulse", timeout=5.0, **kw):
    """Connects and authenticates by first message; returns (ws, auth answer)."""
    ws = await connect(target, **kw)
    await ws.send(auth_msg(token))
    ans = await recv_json(ws, timeout, "the auth answer")
    check_auth_answer(ans, target, user, tenant)
    return ws, ans


def batch(seq, marker, n=1, app="wwe_ui", batch_id=None, pad=0, extra=None):
    """A batch envelope with n traces whose msg is '<marker> r<i>' (plus pad 'x's)."""
    b = {"appName": app, "seq": seq,
         "traces": [{"msg": "%s r%d%s" % (marker, i, "x" * pad)} for i in range(n)]}
    if batch_id is not None:
        b["batchId"] = batch_id
    if extra:
        b.update(extra)
    return b


def check_ack(msg, seq, accepted=None):
    assert msg.get("type") == "ack", "expected an ack of seq %s, got %r" % (seq, msg)
    assert msg.get("seq") == seq, "ack out of order: expected seq %s, got %r" % (seq, msg)
    assert isinstance(msg.get("accepted"), int), msg
    assert isinstance(msg.get("rejected"), list), msg
    if accepted is not None:
        assert msg["accepted"] == accepted, "seq %s: expected %d accepted: %r" % (seq, accepted, msg)
    return msg


def check_error(msg, code, seq="any"):
    assert msg.get("type") == "error", "expected an error %s, got %r" % (code, msg)
    assert msg.get("code") == code, "expected error code %r, got %r" % (code, msg)
    assert isinstance(msg.get("message"), str) and msg["message"], msg
    if seq != "any":
        assert msg.get("seq") == seq, "error answers seq %r, expected %r: %r" % (msg.get("seq"), seq, msg)
    return msg


# ---------------------------------------------------------------------------------------
# observing the server from the outside

def tcp_rx_queue(local_port, remote_port):
    """Bytes the kernel holds unread in the receive queue of the TCP socket
    127.0.0.1:local_port <-> remote_port (i.e. what its owner has not read yet), from
    /proc/net/tcp. None if there is no such socket."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport = int(p[1].rsplit(":", 1)[1], 16)
                    rport = int(p[2].rsplit(":", 1)[1], 16)
                    if lport == local_port and rport == remote_port and p[3] == "01":  # ESTABLISHED
                        return int(p[4].split(":")[1], 16)
        except OSError:
            continue
    return None


def proc_status(pid, key):
    """A field of /proc/<pid>/status in kB (VmRSS, VmHWM) or as text."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                v = line.split(":", 1)[1].strip()
                return int(v.split()[0]) if v.endswith("kB") else v
    return None


def open_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def raise_nofile(want):
    """Raises this process's RLIMIT_NOFILE soft limit to at least want (bounded by the hard
    limit; root may raise the hard limit too). Children started afterwards inherit it.
    Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---------------------------------------------------------------------------------------
# a raw, synchronous WebSocket client: exact control of bytes on the wire (flow control,
# unanswered pings). Client frames are masked as RFC 6455 requires.

class RawClosed(Exception):
    def __init__(self, code, reason):
        super().__init__("closed %s %r" % (code, reason))
        self.code, self.reason = code, reason


class RawHandshakeError(Exception):
    def __init__(self, status, head):
        super().__init__("handshake answered HTTP %s" % status)
        self.status, self.head = status, head


class RawWS:
    """One WebSocket connection over a plain socket. Outgoing frames go through an output
    buffer that flush() pushes without blocking, so the test sees exactly how many bytes the
    kernel accepted (sent_bytes) while the server does not read."""

    def __init__(self, target, path=STREAM_PATH, headers=None, timeout=5.0, answer_pings=True):
        host, port = "127.0.0.1", int(target.ingest_url.rsplit(":", 1)[1].split("/")[0])
        self.server_port = port
        self.answer_pings = answer_pings
        self.pings_seen = 0
        self.sock = socket.create_connection((host, port), timeout)
        self.local_port = self.sock.getsockname()[1]
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET %s HTTP/1.1" % path, "Host: %s:%d" % (host, port), "Upgrade: websocket",
                 "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        lines += ["%s: %s" % kv for kv in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RawHandshakeError(None, buf)
            buf += chunk
            if len(buf) > 65536:
                raise RawHandshakeError(None, buf[:500])
        head, self.inbuf = buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        if status != 101:
            self.sock.close()
            raise RawHandshakeError(status, head)
        want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        assert want.lower() in head.lower(), "bad Sec-WebSocket-Accept in %r" % head
        self.sock.setblocking(False)
        self.out = b""
        self.broken = False
        self.sent_bytes = 0      # bytes the kernel accepted after the handshake

    # -- sending --------------------------------------------------------------------------
    @staticmethod
    def frame(opcode, payload, fin=True):
        n = len(payload)
        head = bytes([(0x80 if fin else 0) | opcode])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + n.to_bytes(2, "big")
        else:
            head += bytes([0x80 | 127]) + n.to_bytes(8, "big")
        mask = os.urandom(4)
        body = _mask_fast(payload, mask)
        return head + mask + body

    def queue(self, opcode, payload, fin=True):
        if isinstance(payload, str):
            payload = payload.encode()
        self.out += self.frame(opcode, payload, fin)

    def flush(self):
        """Pushes what the kernel takes now; returns the bytes still waiting."""
        while self.out:
            try:
                n = self.sock.send(self.out[:1 << 20])
            except (BlockingIOError, InterruptedError):
                break
            except (BrokenPipeError, ConnectionResetError):
                self.broken = True          # the server closed; what it sent is still readable
                break
            self.out = self.out[n:]
            self.sent_bytes += n
        return len(self.out)

    def send_text(self, text, timeout=5.0):
        self.queue(0x1, text)
        self.drain(timeout)

    def drain(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while self.flush():
            if self.broken:
                raise AssertionError("the server closed the connection while we were sending")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("could not send within %.1fs: the server stopped reading" % timeout)
            select.select([], [self.sock], [], min(left, 0.2))

    # -- receiving ------------------------------------------------------------------------
    def _parse(self):
        b = self.inbuf
        if len(b) < 2:
            return None
        op, n, i = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, i = int.from_bytes(b[2:4], "big"), 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, i = int.from_bytes(b[2:10], "big"), 10
        if b[1] & 0x80:
            raise AssertionError("the server sent a masked frame")
        if len(b) < i + n:
            return None
        self.inbuf = b[i + n:]
        return op, b[i:i + n]

    def recv_frame(self, timeout=5.0):
        """Next frame (opcode, payload) or None at timeout. Answers pings (if answer_pings)."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                if f[0] == 0x9:
                    self.pings_seen += 1
                    if self.answer_pings:
                        self.queue(0xA, f[1])
                        self.flush()
                    continue
                return f
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.flush()
            r, _, _ = select.select([self.sock], [], [], min(left, 0.2))
            if r:
                try:
                    chunk = self.sock.recv(1 << 20)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    raise RawClosed(1006, "connection dropped without a close frame")
                self.inbuf += chunk

    def recv_json(self, timeout=5.0, what="a message"):
        """Next text message as JSON; RawClosed on a close frame; AssertionError at timeout."""
        f = self.recv_frame(timeout)
        if f is None:
            raise AssertionError("no %s within %.1fs" % (what, timeout))
        op, payload = f
        if op == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            raise RawClosed(code, payload[2:].decode("utf-8", "replace"))
        assert op == 0x1, "expected a text frame, got opcode %d" % op
        return json.loads(payload.decode())

    def wait_close(self, timeout=5.0):
        """Reads until the close frame: (code, reason, [messages before it])."""
        deadline = time.monotonic() + timeout
        msgs = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no close within %.1fs (messages: %r)" % (timeout, msgs[-5:]))
            try:
                msgs.append(self.recv_json(left, "a close"))
            except RawClosed as c:
                return c.code, c.reason, msgs
            except AssertionError:
                continue

    def tcp_queues(self):
        """(bytes our kernel still holds to send, bytes the server's kernel holds unread)."""
        return (tcp_tx_queue(self.local_port, self.server_port) or 0,
                tcp_rx_queue(self.server_port, self.local_port) or 0)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload, mask):
    n = len(payload)
    m = int.from_bytes((mask * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ m).to_bytes(n, "big")


def tcp_tx_queue(local_port, remote_port):
    """Bytes waiting in the send queue of 127.0.0.1:local_port <-> remote_port."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    lport = int(p[1].rsplit(":", 1)[1], 16)
                    rport = int(p[2].rsplit(":", 1)[1], 16)
                    if lport == local_port and rport == remote_port and p[3] == "01":
                        return int(p[4].split(":")[0], 16)
        except OSError:
            continue
    return None
