#!/usr/bin/python3
"""gauth_double.py - a test double of Genesys Authentication (GAuth) for tlm's tests.

Serves the two calls tlm makes (documented GAuth API):
  GET /auth/v3/userinfo   Authorization: Bearer <token> -> 200 userinfo JSON | 401 JSON
  GET /auth/v3/ping       -> 200
Users come from a JSON file: {"<token>": {"username": ..., "contactCenterId": ..., ...}}.

Fault control for tests (not part of GAuth):
  POST /__control  {"mode": "ok"|"fail"|"stall"|"down", "stall_ms": N}
                   fail = 500 on userinfo and ping; stall = sleep stall_ms, then answer
                   normally; down = close the connection without answering.
  GET  /__control  current mode
  GET  /__stats    {"userinfo_calls": N, "ping_calls": N, "by_token": {"<sha256(token)[:16]>": n}}
  POST /__reset    mode ok, counters zero
  POST /__users    {"<token>": {userinfo}, ...} adds (or replaces) users at run time

Flags: --port (0 = pick one), --host (127.0.0.1), --users FILE, --quiet.
On start it prints "listening on PORT" to stdout (flushed). Its request log (stderr) holds
method, path without query, status: never a token, never a header.
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_USERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "users.json")
MODES = ("ok", "fail", "stall", "down")


def token_key(token):
    """The name a token has in /__stats: first 16 hex digits of its SHA-256."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()[:16]


class State:
    def __init__(self, users):
        self.lock = threading.Lock()
        self.users = dict(users)
        self.mode = "ok"
        self.stall_ms = 10000
        self.reset_stats()

    def reset_stats(self):
        self.userinfo_calls = 0
        self.ping_calls = 0
        self.by_token = {}

    def snapshot(self):
        with self.lock:
            return {"userinfo_calls": self.userinfo_calls, "ping_calls": self.ping_calls,
                    "by_token": dict(self.by_token)}


class Handler(BaseHTTPRequestHandler):
    server_version = "gauth-double/1"
    protocol_version = "HTTP/1.1"

    # -- plumbing ---------------------------------------------------------------------
    def log_message(self, fmt, *args):  # default logging would print the request line only;
        pass                            # we log our own line in _log (no query, no headers)

    def _log(self, status):
        if self.server.quiet:
            return
        path = self.path.split("?", 1)[0]
        sys.stderr.write("%s gauth-double %s %s -> %s\n" % (
            time.strftime("%Y-%m-%dT%H:%M:%S"), self.command, path[:200], status))
        sys.stderr.flush()

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, status, obj, extra_headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._log(status)

    def _drop(self):
        """Mode down: close the connection without a byte of answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._log("dropped")

    def _fault(self):
        """Applies the fault mode to a GAuth call. True when the call was answered/dropped."""
        st = self.server.state
        with st.lock:
            mode, stall_ms = st.mode, st.stall_ms
        if mode == "down":
            self._drop()
            return True
        if mode == "fail":
            self._send(500, {"error": "server_error", "error_description": "gauth double: mode fail"})
            return True
        if mode == "stall":
            time.sleep(stall_ms / 1000.0)
        return False

    # -- GAuth API ------------------------------------------------------------------------
    def _userinfo(self):
        st = self.server.state
        auth = self.headers.get("Authorization") or ""
        token = None
        parts = auth.split(None, 1)
        if len(parts) == 2 and parts[0].lower() == "bearer" and parts[1].strip():
            token = parts[1].strip()
        with st.lock:
            st.userinfo_calls += 1
            key = token_key(token) if token is not None else "-"
            st.by_token[key] = st.by_token.get(key, 0) + 1
        if self._fault():
            return
        with st.lock:
            user = st.users.get(token) if token is not None else None
        if user is None:
            self._send(401, {"error": "invalid_token",
                             "error_description": "Invalid access token" if token else "Missing bearer token"},
                       {"WWW-Authenticate": 'Bearer error="invalid_token"'})
            return
        self._send(200, user)

    def _ping(self):
        st = self.server.state
        with st.lock:
            st.ping_calls += 1
        if self._fault():
            return
        self._send(200, {"status": "ok"})

    # -- control ----------------------------------------------------------------------------
    def _control(self):
        st = self.server.state
        try:
            req = json.loads(self._body() or b"{}")
            mode = req.get("mode", "ok")
            if mode not in MODES:
                raise ValueError("mode must be one of %s" % "|".join(MODES))
            stall_ms = req.get("stall_ms")
            if stall_ms is not None and (not isinstance(stall_ms, (int, float)) or stall_ms < 0):
                raise ValueError("stall_ms must be a non-negative number")
        except (ValueError, AttributeError) as e:
            self._send(400, {"error": "bad_control", "error_description": str(e)})
            return
        with st.lock:
            st.mode = mode
            if stall_ms is not None:
                st.stall_ms = stall_ms
            out = {"mode": st.mode, "stall_ms": st.stall_ms}
        self._send(200, out)

    def _users(self):
        try:
            req = json.loads(self._body() or b"{}")
            if not isinstance(req, dict) or not all(isinstance(v, dict) for v in req.values()):
                raise ValueError("expected {token: userinfo object}")
        except ValueError as e:
            self._send(400, {"error": "bad_users", "error_description": str(e)})
            return
        with self.server.state.lock:
            self.server.state.users.update(req)
            n = len(self.server.state.users)
        self._send(200, {"users": n})

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        if path == "/auth/v3/userinfo":
            self._userinfo()
        elif path == "/auth/v3/ping":
            self._ping()
        elif path == "/__stats":
            self._send(200, self.server.state.snapshot())
        elif path == "/__control":
            st = self.server.state
            with st.lock:
                self._send(200, {"mode": st.mode, "stall_ms": st.stall_ms})
        else:
            self._send(404, {"error": "not_found", "error_description": "no such path"})

    do_HEAD = do_GET

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path == "/__control":
            self._control()
        elif path == "/__reset":
            self._body()
            st = self.server.state
            with st.lock:
                st.mode = "ok"
                st.stall_ms = 10000
                st.reset_stats()
            self._send(200, {"mode": "ok"})
        elif path == "/__users":
            self._users()
        elif path.startswith("/auth/"):
            self._body()
            self._send(405, {"error": "method_not_allowed", "error_description": "use GET"},
                       {"Allow": "GET"})
        else:
            self._body()
            self._send(404, {"error": "not_found", "error_description": "no such path"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def load_users(path):
    with open(path, encoding="utf-8") as f:
        users = json.load(f)
    if not isinstance(users, dict) or not all(isinstance(v, dict) for v in users.values()):
        raise SystemExit("gauth-double: %s: expected a JSON object token -> userinfo object" % path)
    return users


def main(argv=None):
    ap = argparse.ArgumentParser(description="GAuth test double")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8095, help="0 = pick a free port")
    ap.add_argument("--users", default=DEFAULT_USERS, help="JSON file: token -> userinfo")
    ap.add_argument("--quiet", action="store_true", help="no request log")
    args = ap.parse_args(argv)

    users = load_users(args.users)
    try:
        srv = Server((args.host, args.port), Handler)
    except OSError as e:
        sys.stderr.write("gauth-double: cannot listen on %s:%d: %s\n" % (args.host, args.port, e))
        return 1
    srv.state = State(users)
    srv.quiet = args.quiet
    sys.stdout.write("listening on %d\n" % srv.server_address[1])
    sys.stdout.flush()
    sys.stderr.write("gauth-double: %d users from %s\n" % (len(users), args.users))
    sys.stderr.flush()
    import signal
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown, daemon=True).start())
    try:
        srv.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
