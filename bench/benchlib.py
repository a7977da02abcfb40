#!/usr/bin/python3
"""benchlib.py - the small helpers bench/run.sh calls (Python standard library only).

  benchlib.py monitor --out FILE [--cpu N] [--load-cpu M] NAME=PID...
                                               samples VmRSS of each pid every 100 ms until
                                               SIGTERM, then writes NAME_rss_peak_kb,
                                               NAME_hwm_kb, NAME_cpu_s (CPU used meanwhile);
                                               SIGUSR1 marks the end of the load: how busy the
                                               cores were until then (svc_busy_pct, svc_other_pct
                                               = other processes on the service core, noise,
                                               load_busy_pct, load_task_pct: what processes
                                               took of the load generator's core)
  benchlib.py settle --metrics URL [--timeout S]
                                               waits until the logshipper's
                                               tlm_records_written_total stops moving
  benchlib.py check --out FILE --acked FILE --batch N --sent S
                                               matches stdout lines to acknowledged batches:
                                               lost, duplicate rids, incomplete batches
  benchlib.py users --out FILE --count N       GAuth double users file: bench-token-0..N-1
  benchlib.py warm --url URL --tokens N        one 1-record batch per token (fills the auth
                                               cache before a measured load)
  benchlib.py wait --url URL [--timeout S] [--pid PID]
                                               waits until URL answers 200
  benchlib.py gauth-stats --gauth URL [--reset]
                                               userinfo calls: total and per distinct token
  benchlib.py metric --url URL --name NAME     sum of a Prometheus metric's samples

Output is key=value lines, which run.sh appends to the point's figures.
"""
import argparse
import json
import os
import re
import signal
import sys
import time
import urllib.parse
import urllib.request

CCID = "2868802f-1763-4ecd-94f6-203400001200"
TICK = os.sysconf("SC_CLK_TCK")
# loopback only: never through a proxy from the environment
urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({})))


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


def proc_cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime, stime (fields 14 and 15)


def proc_status_kb(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def cpu_ticks(cpu):
    """(busy, task) ticks of one core: busy = all but idle and iowait; task = user, nice,
    system and steal (what processes and the hypervisor took; irq and softirq left out, as
    the service's own network traffic is partly counted there)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu%d " % cpu):
                v = [int(x) for x in line.split()[1:]]
                return sum(v[:8]) - v[3] - v[4], v[0] + v[1] + v[2] + v[7]
    return 0, 0


def cmd_monitor(a):
    """SIGUSR1 marks the end of the load (core shares are computed over start..mark);
    SIGTERM ends the monitor (CPU of the pids and RSS peaks cover start..end, the drain
    included)."""
    procs = []
    for spec in a.procs:
        name, pid = spec.split("=", 1)
        procs.append((name, int(pid)))

    def snap():
        d = {"t": time.time(), "procs": {}}
        for name, pid in procs:
            try:
                d["procs"][name] = proc_cpu_ticks(pid)
            except OSError:
                d["procs"][name] = None
        d["svc"] = cpu_ticks(a.cpu) if a.cpu is not None else (0, 0)
        d["load"] = cpu_ticks(a.load_cpu) if a.load_cpu is not None else (0, 0)
        return d

    peak = {name: proc_status_kb(pid, "VmRSS") for name, pid in procs}
    s0 = snap()
    marks = []
    stop = []
    signal.signal(signal.SIGUSR1, lambda *_: marks.append(snap()))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    while not stop:
        for name, pid in procs:
            try:
                peak[name] = max(peak[name], proc_status_kb(pid, "VmRSS"))
            except OSError:
                pass
        time.sleep(a.interval)
    s1 = snap()
    sm = marks[0] if marks else s1
    out = []
    for name, pid in procs:
        try:
            peak[name] = max(peak[name], proc_status_kb(pid, "VmRSS"))
            hwm = proc_status_kb(pid, "VmHWM")
        except OSError:
            hwm = -1
        a0, a1 = s0["procs"][name], s1["procs"][name]
        cpu = (a1 - a0) / TICK if a0 is not None and a1 is not None else -1
        out.append("%s_rss_peak_kb=%d\n%s_hwm_kb=%d\n%s_cpu_s=%.2f\n" % (name, peak[name], name, hwm, name, cpu))
    lw = sm["t"] - s0["t"]
    out.append("window_s=%.2f\nload_window_s=%.2f\n" % (s1["t"] - s0["t"], lw))
    if lw > 0:
        ours = sum((sm["procs"][n] - s0["procs"][n]) for n, _ in procs
                   if sm["procs"][n] is not None and s0["procs"][n] is not None) / TICK
        if a.cpu is not None:
            busy = (sm["svc"][0] - s0["svc"][0]) / TICK
            task = (sm["svc"][1] - s0["svc"][1]) / TICK
            out.append("svc_busy_pct=%.0f\nsvc_other_pct=%.0f\n" % (100 * busy / lw, max(0.0, 100 * (task - ours) / lw)))
        if a.load_cpu is not None:
            out.append("load_busy_pct=%.0f\nload_task_pct=%.0f\n" % (
                100 * (sm["load"][0] - s0["load"][0]) / TICK / lw, 100 * (sm["load"][1] - s0["load"][1]) / TICK / lw))
    with open(a.out, "w") as f:
        f.write("".join(out))


def metric_sum(text, name):
    total, seen = 0.0, False
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in " {"):
            total += float(line.rsplit(None, 1)[1])
            seen = True
    return total if seen else None


def cmd_metric(a):
    v = metric_sum(http_get(a.url), a.name)
    print("%s=%d" % (a.key or a.name, v if v is not None else -1))


def cmd_settle(a):
    """Waits until tlm_records_written_total is the same over 3 looks 200 ms apart."""
    deadline = time.time() + a.timeout
    last, same = None, 0
    while time.time() < deadline:
        try:
            v = metric_sum(http_get(a.metrics), "tlm_records_written_total")
        except OSError:
            v = None
        if v is not None and v == last:
            same += 1
            if same >= 3:
                print("written_total=%d" % v)
                return 0
        else:
            same = 0
        last = v
        time.sleep(0.2)
    print("written_total=%d" % (last if last is not None else -1))
    print("settle_timeout=1")
    return 0


RID = re.compile(rb'"rid":"([^"]*)"')
TAG = re.compile(rb'"interactionId":"([0-9a-f]{16})"')


def cmd_check(a):
    """Lines of the point's stdout file against the tags of acknowledged batches.

    lost      acknowledged batches with fewer lines than records (must be 0)
    dup_rids  rids written more than once (must be 0)
    extra     batches written but not acknowledged: in flight when the load generator
              stopped, or answered with an error after their records were admitted (an ack
              timeout during a stall). Their count cannot exceed sent - acknowledged.
    """
    per_tag = {}
    rids = set()
    dups = 0
    lines = 0
    out_bytes = 0
    untagged = 0
    with open(a.out, "rb") as f:
        for line in f:
            lines += 1
            out_bytes += len(line)
            m = RID.search(line)
            if m:
                rid = m.group(1)
                if rid in rids:
                    dups += 1
                else:
                    rids.add(rid)
            t = TAG.search(line)
            if t:
                tag = t.group(1)
                per_tag[tag] = per_tag.get(tag, 0) + 1
            else:
                untagged += 1
    acked = []
    with open(a.acked, "rb") as f:
        for line in f:
            line = line.strip()
            if line:
                acked.append(line)
    acked_set = set(acked)
    lost = sum(1 for t in acked_set if per_tag.get(t, 0) < a.batch)
    incomplete = sum(1 for n in per_tag.values() if n != a.batch)
    extra = sum(1 for t in per_tag if t not in acked_set)
    unacked_sent = max(0, a.sent - len(acked))
    ok = (lost == 0 and dups == 0 and incomplete == 0 and untagged == 0 and len(acked_set) == len(acked)
          and extra <= unacked_sent and lines == (len(acked_set) + extra) * a.batch)
    print("lines=%d" % lines)
    print("out_bytes=%d" % out_bytes)
    print("acked_batches=%d" % len(acked))
    print("acked_records=%d" % (len(acked) * a.batch))
    print("lost_batches=%d" % lost)
    print("dup_rids=%d" % dups)
    print("dup_acks=%d" % (len(acked) - len(acked_set)))
    print("incomplete_batches=%d" % incomplete)
    print("untagged_lines=%d" % untagged)
    print("extra_batches=%d" % extra)
    print("unacked_sent=%d" % unacked_sent)
    print("check=%s" % ("ok" if ok else "FAIL"))
    return 0


def cmd_users(a):
    users = {}
    for i in range(a.count):
        users["bench-token-%d" % i] = {
            "username": "bench%d" % i, "loginName": "bench%d" % i, "contactCenterId": CCID,
            "environmentId": "bench-environment", "dbid": 50000 + i, "authorities": ["ROLE_AGENT"]}
    with open(a.out, "w") as f:
        json.dump(users, f)
    return 0


def cmd_warm(a):
    """One small batch per token on one keep-alive connection: every token is cached."""
    import http.client
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    bad = 0
    for i in range(a.tokens):
        body = json.dumps({"appName": "wwe_ui", "traces": [{"msg": "bench warm-up %d" % i}]})
        conn.request("POST", "/api/v1/telemetry", body=body, headers={
            "Authorization": "Bearer bench-token-%d" % i, "Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 202:
            bad += 1
            sys.stderr.write("warm: bench-token-%d: HTTP %d\n" % (i, r.status))
    conn.close()
    return 1 if bad else 0


def cmd_wait(a):
    deadline = time.time() + a.timeout
    while time.time() < deadline:
        if a.pid and not os.path.exists("/proc/%d" % a.pid):
            sys.stderr.write("wait: process %d ended before %s answered\n" % (a.pid, a.url))
            return 1
        try:
            with urllib.request.urlopen(a.url, timeout=1) as r:
                if r.status == 200:
                    return 0
        except OSError:
            pass
        time.sleep(0.05)
    sys.stderr.write("wait: %s did not answer 200 within %g s\n" % (a.url, a.timeout))
    return 1


def cmd_gauth_stats(a):
    if a.reset:
        req = urllib.request.Request(a.gauth + "/__reset", data=b"{}", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()
        return 0
    s = json.loads(http_get(a.gauth + "/__stats"))
    by = {k: v for k, v in s.get("by_token", {}).items() if k != "-"}
    n = len(by)
    print("gauth_userinfo_calls=%d" % s.get("userinfo_calls", 0))
    print("gauth_distinct_tokens=%d" % n)
    print("gauth_calls_per_token=%.2f" % (sum(by.values()) / n if n else 0))
    print("gauth_calls_per_token_max=%d" % (max(by.values()) if by else 0))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("monitor")
    p.add_argument("--out", required=True)
    p.add_argument("--interval", type=float, default=0.1)
    p.add_argument("--cpu", type=int)
    p.add_argument("--load-cpu", type=int)
    p.add_argument("procs", nargs="+")
    p = sub.add_parser("settle")
    p.add_argument("--metrics", required=True)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("check")
    p.add_argument("--out", required=True)
    p.add_argument("--acked", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--sent", type=int, required=True)
    p = sub.add_parser("users")
    p.add_argument("--out", required=True)
    p.add_argument("--count", type=int, required=True)
    p = sub.add_parser("warm")
    p.add_argument("--url", required=True)
    p.add_argument("--tokens", type=int, required=True)
    p = sub.add_parser("wait")
    p.add_argument("--url", required=True)
    p.add_argument("--timeout", type=float, default=15)
    p.add_argument("--pid", type=int)
    p = sub.add_parser("gauth-stats")
    p.add_argument("--gauth", required=True)
    p.add_argument("--reset", action="store_true")
    p = sub.add_parser("metric")
    p.add_argument("--url", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--key")
    a = ap.parse_args()
    fn = {"monitor": cmd_monitor, "settle": cmd_settle, "check": cmd_check, "users": cmd_users, "warm": cmd_warm, "wait": cmd_wait,
          "gauth-stats": cmd_gauth_stats, "metric": cmd_metric}[a.cmd]
    sys.exit(fn(a) or 0)


if __name__ == "__main__":
    main()
