#!/usr/bin/python3
"""fake_ingest.py - speaks the ingest's side of the tlm protocol (proto/tlm_proto.h) on the
logshipper's UNIX socket, so the logshipper is tested alone, frame by frame (tests/run-all.sh
runs selftest and blocktest as the suites shipper-link and shipper-blocked-stdout).

  fake_ingest.py send --socket PATH [--frames N] [--records R] [--line-bytes B]
      connect, HELLO, send N RECORDS frames, wait for their ACKs, print a JSON summary
  fake_ingest.py selftest [--binary build/tlm-logshipper]
      start the logshipper on a temporary socket and port and check lines, acks, pings,
      stats, bad frames, HTTP endpoints and the SIGTERM drain
  fake_ingest.py blocktest [--binary build/tlm-logshipper]
      the logshipper's stdout is a pipe nobody reads: acks must stop, the CPU stay idle,
      and everything be written and acked once the pipe is read again
Only the standard library; /usr/bin/python3.
"""
import argparse
import json
import os
import random
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

HELLO, RECORDS, ACK, STATS, PING, BYE = 1, 2, 3, 4, 5, 6
TYPE_NAMES = {1: "HELLO", 2: "RECORDS", 3: "ACK", 4: "STATS", 5: "PING", 6: "BYE"}
PING_REPLY = 0x01
STATS_GAUTH_UP = 0x01  # STATS flags bit: the ingest's last GAuth check succeeded
KIND = {"trace": 1, "event": 2, "metric": 3}
REC_HAS_VALUE, REC_TRUNCATED = 0x01, 0x02
CCID = "2868802f-1763-4ecd-94f6-203400001200"
HEADER = struct.Struct(">2sBBI")


# ---------------------------------------------------------------- encoding

def frame(ftype, payload=b"", flags=0):
    return HEADER.pack(b"TL", ftype, flags, len(payload)) + payload


def hello(instance_id=None, pid=None, version=1, role=1):
    if instance_id is None:
        instance_id = random.getrandbits(64)
    return frame(HELLO, struct.pack(">HBBQI", version, role, 0, instance_id,
                                    os.getpid() if pid is None else pid))


def _s(width, value):
    b = value.encode() if isinstance(value, str) else bytes(value)
    return struct.pack({1: ">B", 2: ">H", 4: ">I"}[width], len(b)) + b


def record(line, kind="trace", app="wwe_ui", tenant="pulse", ccid=CCID, name="",
           rid="rid-0", level=6, value=None, ts_ms=None, recv_ms=None, truncated=False):
    now = int(time.time() * 1000)
    flags = (REC_HAS_VALUE if value is not None else 0) | (REC_TRUNCATED if truncated else 0)
    return (struct.pack(">BBBBdqq", KIND[kind], flags, level, 0,
                        float(value) if value is not None else 0.0,
                        now if ts_ms is None else ts_ms, now if recv_ms is None else recv_ms)
            + _s(1, app) + _s(1, tenant) + _s(1, ccid) + _s(2, name) + _s(1, rid) + _s(4, line))


def records(seq, recs):
    return frame(RECORDS, struct.pack(">QI", seq, len(recs)) + b"".join(recs))


def stats(text, ts_ms=None, gauth_up=True):
    return frame(STATS, struct.pack(">q", int(time.time() * 1000) if ts_ms is None else ts_ms)
                 + _s(4, text), STATS_GAUTH_UP if gauth_up else 0)


def ping(nonce, reply=False):
    return frame(PING, struct.pack(">Q", nonce), PING_REPLY if reply else 0)


def bye(reason=0, message=""):
    return frame(BYE, struct.pack(">H", reason) + _s(2, message))


def make_line(seq, i, kind="trace", pad=0):
    """A stdout line shaped like SPEC section 3 (the ingest builds the real ones)."""
    ts = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    obj = {"ts": ts, "receivedAt": ts, "kind": kind}
    if kind == "trace":
        obj["level"] = "info"
    obj.update({"appName": "wwe_ui", "tenantName": "pulse", "contactCenterId": CCID,
                "user": "agent1"})
    if kind == "trace":
        obj["msg"] = "message %d of frame %d" % (i, seq) + "x" * pad
    else:
        obj["name"] = "error_http_sync_req_Complete" if kind == "event" else "sip_call_mos"
        if kind == "metric":
            obj["value"] = 4.1
    obj["properties"] = {"agentSessionId": "s1"}
    obj["rid"] = "%032x-%s%d" % (seq, kind[0], i)
    return json.dumps(obj, separators=(",", ":"))


def batch(seq, n, pad=0):
    """n records for frame seq; returns (frame bytes, [lines])."""
    kinds = ["trace", "event", "metric"]
    recs, lines = [], []
    for i in range(n):
        k = kinds[i % 3]
        line = make_line(seq, i, k, pad)
        lines.append(line)
        recs.append(record(line, kind=k, name="" if k == "trace" else json.loads(line)["name"],
                           value=4.1 if k == "metric" else None,
                           rid=json.loads(line)["rid"]))
    return records(seq, recs), lines


# ---------------------------------------------------------------- decoding

def parse_hello(p):
    version, role, _, inst, pid = struct.unpack(">HBBQI", p)
    return {"version": version, "role": role, "instance_id": inst, "pid": pid}


def parse_bye(p):
    reason, n = struct.unpack(">HH", p[:4])
    return reason, p[4:4 + n].decode(errors="replace")


class Link:
    """One connection to the logshipper."""

    def __init__(self, path, timeout=5.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.buf = b""
        self.acked = 0
        self.peer = None

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data)

    def read_frame(self, timeout=5.0):
        """(type, flags, payload); None on timeout; EOFError when the peer closed."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 8:
                magic, ftype, flags, plen = HEADER.unpack(self.buf[:8])
                if magic != b"TL":
                    raise ValueError("bad magic from the logshipper")
                if len(self.buf) >= 8 + plen:
                    payload = self.buf[8:8 + plen]
                    self.buf = self.buf[8 + plen:]
                    if ftype == ACK:
                        self.acked = max(self.acked, struct.unpack(">Q", payload)[0])
                    return ftype, flags, payload
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("the logshipper closed the link")
            self.buf += chunk

    def handshake(self, **kw):
        """Sends HELLO and reads the logshipper's; returns its fields."""
        self.send(hello(**kw))
        f = self.read_frame()
        if not f or f[0] != HELLO:
            raise RuntimeError("expected HELLO from the logshipper, got %r" % (f,))
        self.peer = parse_hello(f[2])
        return self.peer

    def wait_ack(self, seq, timeout=5.0):
        """Reads until an ACK covers seq; returns the acked seq (maybe lower on timeout)."""
        deadline = time.monotonic() + timeout
        while self.acked < seq:
            left = deadline - time.monotonic()
            if left <= 0 or self.read_frame(left) is None:
                break
        return self.acked

    def wait_for(self, ftype, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            f = self.read_frame(max(left, 0)) if left > 0 else None
            if f is None:
                return None
            if f[0] == ftype:
                return f


# ---------------------------------------------------------------- running the daemon

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """tlm-logshipper on a temporary socket and port; stdout is a pipe we read (or not)."""

    def __init__(self, binary, env=None, read_stdout=True):
        self.dir = tempfile.mkdtemp(prefix="tlm-ls-")
        self.sock = os.path.join(self.dir, "run", "tlm.sock")
        self.port = free_port()
        e = dict(os.environ)
        e.update({"TELEMETRY_SOCKET": self.sock, "TELEMETRY_METRICS_PORT": str(self.port),
                  "TELEMETRY_LISTEN": "127.0.0.1", "APP_LOG_LEVEL": "info"})
        e.update(env or {})
        self.stderr = open(os.path.join(self.dir, "stderr.log"), "w+")
        self.proc = subprocess.Popen([binary], env=e, stdout=subprocess.PIPE, stderr=self.stderr)
        self.lines = []
        self.reader = None
        self.lock = threading.Lock()
        if read_stdout:
            self.start_reading()
        deadline = time.monotonic() + 5
        while not os.path.exists(self.sock) or not self.http("/health/live")[0]:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("logshipper did not start: " + self.log())
            time.sleep(0.02)

    def start_reading(self):
        def run():
            for raw in self.proc.stdout:
                with self.lock:
                    self.lines.append(raw.decode().rstrip("\n"))
        self.reader = threading.Thread(target=run, daemon=True)
        self.reader.start()

    def wait_lines(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.lines) >= n:
                    return list(self.lines)
            time.sleep(0.01)
        with self.lock:
            return list(self.lines)

    def http(self, path, method="GET"):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), method=method)
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status, r.read().decode(), {k.lower(): v for k, v in r.headers.items()}
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), {k.lower(): v for k, v in e.headers.items()}
        except OSError:
            return 0, "", {}

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime

    def log(self):
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- checks

class Checks:
    def __init__(self, name):
        self.name, self.passed, self.failed = name, 0, 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL %s: %s" % (self.name, what), file=sys.stderr)
        return cond

    def done(self):
        print("%s: %d passed, %d failed" % (self.name, self.passed, self.failed))
        return 1 if self.failed else 0


def promtool_ok(text):
    tool = shutil.which("promtool")
    if not tool:
        return None
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True)
    # promtool also lints (naming advice) with exit 3; only parse errors (exit 1) count
    if r.returncode == 1:
        print(r.stdout.decode() + r.stderr.decode(), file=sys.stderr)
    return r.returncode != 1


def selftest(binary):
    c = Checks("fake_ingest selftest")
    d = Daemon(binary)
    try:
        mode = stat.S_IMODE(os.stat(d.sock).st_mode)
        c.check(mode == 0o660, "socket mode 0660, got %o" % mode)
        c.check(stat.S_IMODE(os.stat(os.path.dirname(d.sock)).st_mode) == 0o770, "parent dir 0770")

        a = Link(d.sock)
        peer = a.handshake()
        c.check(peer["role"] == 2 and peer["version"] == 1, "logshipper HELLO %r" % peer)
        data, lines = batch(1, 3)
        a.send(data)
        c.check(a.wait_ack(1) == 1, "ACK 1")
        got = d.wait_lines(3)
        c.check(got == lines, "stdout lines equal the frame's lines")

        # several frames in one write, several links at once
        b = Link(d.sock)
        b.handshake()
        expect = list(lines)
        blob = b""
        for seq in range(2, 12):
            data, ls = batch(seq, 50)
            blob += data
            expect += ls
        a.send(blob)
        data, ls = batch(1, 5)
        b.send(data)
        expect += ls
        c.check(a.wait_ack(11) == 11, "cumulative ACK 11 on link a")
        c.check(b.wait_ack(1) == 1, "ACK 1 on link b")
        got = d.wait_lines(len(expect))
        c.check(sorted(got) == sorted(expect), "every line written once (%d)" % len(expect))
        c.check(all(json.loads(x) for x in got), "every stdout line is JSON")

        # ping
        a.send(ping(0xDEADBEEF))
        f = a.wait_for(PING)
        c.check(f is not None and f[1] == PING_REPLY and struct.unpack(">Q", f[2])[0] == 0xDEADBEEF,
                "PING answered with the reply flag and the nonce")

        # stats merged into /metrics
        ingest_text = ("# HELP telemetry_events Service events.\n# TYPE telemetry_events counter\n"
                       "telemetry_events{eventName=\"http_error_404\"} 2\n"
                       "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\n"
                       "process_cpu_seconds_total{component=\"ingest\"} 1.25\n")
        a.send(stats(ingest_text))
        a.send(ping(1))
        a.wait_for(PING)
        st, body, hdr = d.http("/metrics")
        c.check(st == 200, "/metrics 200")
        c.check(hdr.get("content-type", "").startswith("text/plain; version=0.0.4"), "content type")
        c.check('telemetry_events{eventName="http_error_404"} 2' in body, "ingest stats merged")
        c.check(body.count("# TYPE process_cpu_seconds_total") == 1, "one TYPE per family")
        c.check('process_cpu_seconds_total{component="logshipper"}' in body and
                'process_cpu_seconds_total{component="ingest"}' in body, "both processes")
        c.check('tlm_records_written_total{kind="trace"}' in body, "records written by kind")
        c.check("tlm_link_connections 2" in body, "two links open")
        c.check('tlm_link_frames_received_total{type="records"} 12' in body, "frames by type")
        ok = promtool_ok(body)
        c.check(ok is not False, "promtool check metrics")

        # HTTP endpoints
        st, body, _ = d.http("/health/live")
        c.check(st == 200 and json.loads(body) == {"status": "ok"}, "/health/live")
        st, body, _ = d.http("/health/ready")
        c.check(st == 200 and json.loads(body)["checks"] == {"ingest": True, "gauth": True, "output": True},
                "/health/ready 200 with the ingest's STATS saying GAuth is up: %d %s" % (st, body))
        a.send(stats(ingest_text, gauth_up=False))
        a.send(ping(2))
        a.wait_for(PING)
        st, body, _ = d.http("/health/ready")
        c.check(st == 503 and json.loads(body)["checks"]["gauth"] is False and "GAuth" in json.loads(body)["reason"],
                "/health/ready 503 once the ingest's STATS says GAuth failed: %d %s" % (st, body))
        a.send(stats(ingest_text, gauth_up=True))
        a.send(ping(3))
        a.wait_for(PING)
        st, body, _ = d.http("/nope")
        c.check(st == 404 and json.loads(body)["error"]["code"] == "not_found", "404 JSON")
        st, body, hdr = d.http("/metrics", method="POST")
        c.check(st == 405 and hdr.get("allow") == "GET", "405 with Allow")

        # protocol errors: each gets a BYE with its reason, then the link closes
        for name, payload, reason in [
                ("bad magic", b"XX\x01\x00\x00\x00\x00\x10" + bytes(16), 1),
                ("version mismatch", hello(version=9), 2),
                ("records before hello", batch(1, 1)[0], 1),
                ("seq not increasing", hello() + batch(3, 1)[0] + batch(3, 1)[0], 1),
                ("oversized frame", b"TL\x02\x00\xff\xff\xff\xff", 1)]:
            x = Link(d.sock)
            x.read_frame()  # its HELLO
            x.send(payload)
            f = x.wait_for(BYE)
            c.check(f is not None and parse_bye(f[2])[0] == reason,
                    "%s: BYE reason %d (%r)" % (name, reason, f and parse_bye(f[2])))
            try:
                closed = x.read_frame(2) is None and False
            except EOFError:
                closed = True
            c.check(closed, "%s: link closed" % name)
            x.close()
        st, body, _ = d.http("/metrics")
        c.check("tlm_link_protocol_errors_total 5" in body, "protocol errors counted")
        got = d.wait_lines(len(expect) + 1, timeout=1)
        c.check(len(got) == len(expect) + 1, "the frame before the bad seq was written")

        # SIGTERM: in-flight frames written and acked, BYE 0 on every link, exit 0
        data, ls = batch(100, 20)
        b.send(data)
        expect += ls
        time.sleep(0.1)
        d.proc.send_signal(signal.SIGTERM)
        c.check(b.wait_ack(100) == 100, "frame sent before SIGTERM acked")
        f = b.wait_for(BYE)
        c.check(f is not None and parse_bye(f[2])[0] == 0, "BYE reason 0 on drain")
        code = d.proc.wait(10)
        c.check(code == 0, "exit 0 after drain, got %s" % code)
        c.check(not os.path.exists(d.sock), "socket file removed")
        got = d.wait_lines(len(expect) + 1, timeout=2)
        c.check(len(got) == len(expect) + 1, "all lines out before exit")
        if c.failed:
            print(d.log(), file=sys.stderr)
    finally:
        d.stop()
    return c.done()


def blocktest(binary):
    c = Checks("fake_ingest blocktest")
    d = Daemon(binary, env={"TELEMETRY_SHIPPER_BUFFER_BYTES": "65536"}, read_stdout=False)
    try:
        link = Link(d.sock)
        link.handshake()
        link.sock.setblocking(False)
        pending, sent, seq = b"", 0, 0
        expect = 0
        stalled_at = None
        t0 = time.monotonic()
        # keep sending until nothing was acked nor accepted by the socket for a second
        while time.monotonic() - t0 < 20:
            if not pending:
                seq += 1
                pending, ls = batch(seq, 20, pad=700)
                expect += len(ls)
            try:
                n = link.sock.send(pending)
                pending = pending[n:]
                stalled_at = None
                continue
            except BlockingIOError:
                pass
            r, _, _ = select.select([link.sock], [], [], 0.2)
            if r:
                link.buf += link.sock.recv(1 << 16)
                while link.read_frame(0) is not None:
                    pass
            if stalled_at is None:
                stalled_at = time.monotonic()
            elif time.monotonic() - stalled_at > 1.0:
                break
        acked_blocked = link.acked
        c.check(seq > 5 and acked_blocked < seq, "acks stop while stdout is full (acked %d of %d)"
                % (acked_blocked, seq))
        # idle while blocked: CPU over 2 s
        t1 = d.cpu_ticks()
        time.sleep(2)
        t2 = d.cpu_ticks()
        hz = os.sysconf("SC_CLK_TCK")
        c.check((t2 - t1) / hz < 0.1, "blocked logshipper used %.2f s CPU in 2 s" % ((t2 - t1) / hz))
        time.sleep(0.2)
        link.buf += b""
        while True:
            try:
                chunk = link.sock.recv(1 << 16)
            except BlockingIOError:
                break
            link.buf += chunk
        while link.read_frame(0) is not None:
            pass
        c.check(link.acked == acked_blocked, "no ACK while blocked")
        st, body, _ = d.http("/metrics")
        c.check("tlm_link_reads_paused 1" in body, "reads paused")
        # stdout stuck for more than 10 s: not ready (live all the same)
        time.sleep(max(0.0, 10.5 - (time.monotonic() - stalled_at)))
        st, body, _ = d.http("/health/ready")
        c.check(st == 503 and "stdout" in json.loads(body).get("reason", ""),
                "/health/ready 503 while stdout is stuck: %d %s" % (st, body))
        c.check(d.http("/health/live")[0] == 200, "/health/live 200 while stuck")
        print("blocked: acked %d of %d frames, %.2f s CPU in 2 s" % (acked_blocked, seq, (t2 - t1) / hz))
        # the reader comes back: everything is written and acked
        d.start_reading()
        link.sock.setblocking(True)
        if pending:
            link.send(pending)
        link.sock.settimeout(10)
        c.check(link.wait_ack(seq, timeout=20) == seq, "all %d frames acked after the drain" % seq)
        got = d.wait_lines(expect, timeout=10)
        c.check(len(got) == expect, "all %d lines written, got %d" % (expect, len(got)))
        st, body, _ = d.http("/metrics")
        blocked = [ln for ln in body.splitlines() if ln.startswith("tlm_stdout_blocked_seconds_total ")]
        c.check(blocked and float(blocked[0].split()[1]) > 1.0, "blocked seconds counted %r" % blocked)
        c.check(d.stop() == 0, "exit 0")
        if c.failed:
            print(d.log(), file=sys.stderr)
    finally:
        d.stop()
    return c.done()


def send_cmd(args):
    link = Link(args.socket, timeout=args.timeout)
    link.handshake()
    t0 = time.monotonic()
    for seq in range(args.first_seq, args.first_seq + args.frames):
        data, _ = batch(seq, args.records, pad=max(0, args.line_bytes - 300))
        link.send(data)
    last = args.first_seq + args.frames - 1
    acked = link.wait_ack(last, args.timeout) if not args.no_wait else 0
    if args.bye:
        link.send(bye(0, "fake ingest done"))
    print(json.dumps({"frames": args.frames, "records": args.frames * args.records,
                      "acked": acked, "seconds": round(time.monotonic() - t0, 3)}))
    return 0 if args.no_wait or acked == last else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("send")
    s.add_argument("--socket", default=os.environ.get("TELEMETRY_SOCKET", "/run/tlm/tlm.sock"))
    s.add_argument("--frames", type=int, default=1)
    s.add_argument("--records", type=int, default=3)
    s.add_argument("--line-bytes", type=int, default=300)
    s.add_argument("--first-seq", type=int, default=1)
    s.add_argument("--timeout", type=float, default=10)
    s.add_argument("--no-wait", action="store_true")
    s.add_argument("--bye", action="store_true")
    for name in ("selftest", "blocktest"):
        t = sub.add_parser(name)
        t.add_argument("--binary", default=os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tlm-logshipper"))
    args = ap.parse_args()
    if args.cmd == "send":
        return send_cmd(args)
    if args.cmd == "selftest":
        return selftest(args.binary)
    return blocktest(args.binary)


if __name__ == "__main__":
    sys.exit(main())
