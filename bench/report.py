#!/usr/bin/python3
"""report.py - turns the points of a bench run into bench/results/latest.{md,csv,png}.

  report.py --points DIR --meta FILE --results DIR [--readme README.md]

Each point is a key=value file written by bench/run.sh (NNN-name.kv). The Markdown goes to
stdout as well. Targets are printed beside the measured values; nothing is asserted here.
"""
import argparse
import csv
import glob
import math
import os
import subprocess
import sys


def read_kv(path):
    d = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if "=" in line:
                k, v = line.split("=", 1)
                d[k.strip()] = v.strip()
    return d


def num(d, k, default=float("nan")):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return default


def fmt_int(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "{:,}".format(int(round(x))).replace(",", " ")


def fmt(x, nd=2):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return "%.*f" % (nd, x)


def mb(kb):
    return kb / 1024.0 if kb == kb else kb


def derive(p):
    """Adds the figures the tables show (records/s, req/s, CPU s per million records)."""
    dur = num(p, "duration_us") / 1e6
    batch = num(p, "batch", 0)
    kind = p.get("kind")
    if kind in ("http", "ws", "stall"):
        ok = num(p, "ok", 0)
        if p.get("server") in ("nginx", "lws"):  # they answer 204 and keep nothing
            recs = ok * batch
            cpu = num(p, p["server"] + "_cpu_s")
        else:
            recs = num(p, "accepted", 0)
            cpu = num(p, "ingest_cpu_s") + num(p, "shipper_cpu_s")
        written = num(p, "lines", recs)
        p["records_per_s"] = recs / dur if dur > 0 else float("nan")
        p["requests_per_s"] = ok / dur if dur > 0 else float("nan")
        p["cpu_s_per_mrec"] = cpu / written * 1e6 if written > 0 else float("nan")
    return p


def busy(p, which):
    """'97 (2)': % of the load's time the core was busy, and % taken by other processes."""
    if not p or which + "_busy_pct" not in p:
        return "–"
    if which == "svc":
        return "%s (%s)" % (p["svc_busy_pct"], p.get("svc_other_pct", "?"))
    lw, task, gen = num(p, "load_window_s"), num(p, "load_task_pct"), num(p, "loadgen_cpu_s")
    if lw > 0 and task == task and gen == gen:
        return "%s (%.0f)" % (p["load_busy_pct"], max(0.0, task - 100 * gen / lw))
    return p[which + "_busy_pct"]


def check_text(p):
    if p.get("server") != "tlm" or "check" not in p:
        return "–"
    extra = int(num(p, "extra_batches", 0)) * int(num(p, "batch", 0))
    s = "%s: %s lines = %s acked" % (p["check"], fmt_int(num(p, "lines")), fmt_int(num(p, "acked_records")))
    if extra:
        s += " + %s unacked*" % fmt_int(extra)
    s += ", dup %d, lost %d" % (int(num(p, "dup_rids", 0)), int(num(p, "lost_batches", 0)))
    return s


README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"


def update_readme(path, lines, results_rel):
    """Puts the tables between the README's bench markers (its "Performance" section).
    Without both markers the README is left alone."""
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return
    a, b = text.find(README_START), text.find(README_END)
    if a < 0 or b < a:
        sys.stderr.write("report: %s has no %s ... %s markers: not updated\n" % (path, README_START, README_END))
        return
    body = "\n".join(lines).replace("](latest.png)", "](%s/latest.png)" % results_rel)
    body += "\n\nRaw figures: [%s/latest.csv](%s/latest.csv).\n" % (results_rel, results_rel)
    text = text[:a + len(README_START)] + "\n" + body + "\n" + text[b:]
    with open(path, "w") as f:
        f.write(text)
    sys.stderr.write("report: %s updated\n" % path)


def read_durations(path):
    with open(path) as f:
        return [float(x) for x in f if x.strip()]


def quantile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def host_tail(durs, window_us):
    """How steady the host was: jansson alone timed parse by parse (bench/json_ceiling.c
    --durations), summed over every run of k consecutive parses, k parses taking about
    window_us. A saturated request waits for the work of the requests ahead of it, about its
    p50; when the host does the same work slower in some stretches than in others, that
    tail is on every service's p99 / p50 whatever it does. Returns (k, p50, p99) in µs, None
    when the measure holds fewer than ten such windows."""
    if not durs or window_us != window_us:  # no timed parses, or the point has no p50
        return None
    k = max(1, int(round(window_us / quantile(sorted(durs), 0.5))))
    if len(durs) < 10 * k:
        return None
    sums, run = [], sum(durs[:k])
    for i in range(len(durs) - k + 1):
        sums.append(run)
        if i + k < len(durs):
            run += durs[i + k] - durs[i]
    sums.sort()
    return k, quantile(sums, 0.5), quantile(sums, 0.99)


def steadiest(passes, window_us):
    """host_tail of the steadier pass (the lower p99 / p50): the claim stays conservative."""
    tails = [t for t in (host_tail(p.get("durations"), window_us) for p in passes) if t]
    return min(tails, key=lambda t: t[2] / t[1]) if tails else None


def line_bytes(http):
    """Bytes per stdout line, from tlm's 100 x 32 point (else any tlm point that wrote some)."""
    order = [("tlm", 100, 32)] + sorted(k for k in http if k[0] == "tlm")
    for k in order:
        p = http.get(k, {})
        if num(p, "lines", 0) > 0 and num(p, "out_bytes", 0) > 0:
            return num(p, "out_bytes") / num(p, "lines")
    return float("nan")


def rate_floor(name, per, unit, goal, parse_us, write_us, server, tlm, tlm_key, server_name="HTTP"):
    """A throughput floor: parse + stdout + an HTTP server's CPU per record (or request):
    nginx's (the machine's HTTP ceiling), or bare libwebsockets' (tlm's HTTP library alone)."""
    http_us = num(server, "cpu_s_per_mrec")
    us = parse_us + write_us + http_us
    best = 1e6 / us
    v = num(tlm, tlm_key)
    return {"name": name,
            "floor": "parse %s + stdout %s + %s %s = %s µs a %s" % (
                fmt(parse_us), fmt(write_us), server_name, fmt(http_us), fmt(us), per),
            "best_value": "%s %s" % (fmt_int(best), unit),
            "out_of_reach": best < goal,
            "goal": "≥ " + fmt_int(goal), "tlm": fmt_int(v), "frac": fmt(v / best)}


def host_tail_rows(http, passes):
    """The saturated p99 / p50 targets against the tail the host's unsteadiness puts on them."""
    out = []
    for c in (32, 256):
        t = http.get(("tlm", 100, c))
        tail = steadiest(passes, num(t, "p50_us")) if t else None
        if tail:
            k, p50, p99 = tail
            out.append({"name": "HTTP 100-record batches, %d conns, p99 / p50" % c,
                        "floor": "the host's own: jansson alone, %d parses in a row (as long as tlm's p50): "
                                 "p99 %s / p50 %s ms" % (k, fmt(p99 / 1000), fmt(p50 / 1000)),
                        "best_value": "p99 / p50 ≈ %s" % fmt(p99 / p50), "host_ratio": p99 / p50,
                        "out_of_reach": p99 > 1.5 * p50,
                        "goal": "≤ 1.5", "tlm": fmt(num(t, "p99_us") / num(t, "p50_us")), "frac": "–"})
    return out


def host_floors(http, js, js1, wr, passes):
    """The least work per record (or request) of three targets, from the floors of this run:
    parse (jansson alone), stdout (appending to a new /dev/shm file), HTTP (nginx's CPU); and
    the tail the host's own unsteadiness puts on the latency targets (passes: the timed
    100-record parses)."""
    out, tails = [], host_tail_rows(http, passes)
    lb = line_bytes(http)
    if not (wr and lb == lb and num(wr, "mb_per_s", 0) > 0):
        return tails
    write_us = lb / num(wr, "mb_per_s")  # bytes / (MB/s) = microseconds
    rates = []
    t100 = http.get(("tlm", 100, 32))
    if js and t100:
        rates.append(("HTTP 100-record batches, 32 conns", 100, "record", "records/s", 200000,
                      1e6 / num(js, "records_per_s"), t100, "records_per_s"))
    t1 = http.get(("tlm", 1, 32))
    if js1 and t1:
        rates.append(("HTTP 1-record batches, 32 conns", 1, "request", "req/s", 60000,
                      1e6 / (num(js1, "parses") / num(js1, "seconds")), t1, "requests_per_s"))
    for name, batch, per, unit, goal, parse_us, t, key in rates:
        n, lws = http.get(("nginx", batch, 32)), http.get(("lws", batch, 32))
        if n:
            out.append(rate_floor(name, per, unit, goal, parse_us, write_us, n, t, key, "HTTP (nginx)"))
        if lws:  # the same sum with the HTTP cost of tlm's own library
            f = rate_floor(name + ", on libwebsockets", per, unit, goal, parse_us, write_us, lws, t, key,
                           "libwebsockets alone")
            f["lws_of"] = name
            out.append(f)
    nl = http.get(("nginx", 100, 1))
    tl = http.get(("tlm", 100, 1))
    if js and nl and tl:
        parse_ms = 1e3 / (num(js, "parses") / num(js, "seconds"))
        write_ms = write_us * 100 / 1e3
        p50 = num(nl, "p50_us") / 1e3
        tail = (num(nl, "p99_us") - num(nl, "p50_us")) / 1e3
        least = p50 + parse_ms + write_ms
        est = least + tail
        one = steadiest(passes, 0)
        alone = "; one parse alone: p50 %s, p99 %s ms" % (fmt(one[1] / 1e3), fmt(one[2] / 1e3)) if one else ""
        out.append({"name": "HTTP 100-record batch, 1 conn, p99",
                    "floor": "p50 at least nginx p50 %s + parse %s + stdout %s = %s ms; the host's tail (nginx "
                             "p99 − p50) %s ms%s" % (fmt(p50), fmt(parse_ms), fmt(write_ms), fmt(least), fmt(tail),
                                                    alone),
                    # only the p50 is bounded; the p99 adds the host's tail, an estimate
                    "best_value": "p50 ≥ %s ms" % fmt(least), "out_of_reach": least > 1.0,
                    "best_note": "; p99 ≈ %s ms with the host's tail" % fmt(est),
                    "goal": "≤ 1 ms", "tlm": "p50 %s, p99 %s ms" % (fmt(num(tl, "p50_us") / 1e3),
                                                                      fmt(num(tl, "p99_us") / 1e3)),
                    "frac": "–"})
    return out + tails


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--readme", help="README whose <!-- bench:start --> ... <!-- bench:end --> part gets the tables")
    a = ap.parse_args()
    meta = read_kv(a.meta)
    points = []
    for path in sorted(glob.glob(os.path.join(a.points, "*.kv"))):
        p = read_kv(path)
        p["point"] = os.path.basename(path)[:-3]
        if os.path.exists(path[:-3] + ".durations"):
            p["durations"] = read_durations(path[:-3] + ".durations")
        points.append(derive(p))
    os.makedirs(a.results, exist_ok=True)

    # ---- CSV: every key of every point ----
    lead = ["point", "kind", "server", "batch", "conns", "window", "records_per_s", "requests_per_s",
            "p50_us", "p99_us", "cpu_s_per_mrec"]
    keys = list(lead)
    for p in points:
        for k in p:
            if k not in keys and k != "durations":  # the timed parses stay in their own file
                keys.append(k)
    with open(os.path.join(a.results, "latest.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for p in points:
            row = []
            for k in keys:
                v = p.get(k, "")
                row.append(("%.1f" % v) if isinstance(v, float) else v)
            w.writerow(row)

    machine = "%s, %s cores, %s GiB, Linux %s, %s" % (meta.get("cpu", "?"), meta.get("cores", "?"),
                                                       meta.get("mem_gib", "?"), meta.get("kernel", "?"),
                                                       meta.get("os", "?"))
    http = {(p["server"], int(num(p, "batch")), int(num(p, "conns"))): p for p in points if p.get("kind") == "http"}
    ws = [p for p in points if p.get("kind") == "ws"]
    idle = [p for p in points if p.get("kind") == "idle"]
    stall = [p for p in points if p.get("kind") == "stall"]
    def fastest(kind, key, **match):
        c = [p for p in points if p.get("kind") == kind and all(p.get(k, "0") == v for k, v in match.items())]
        return max(c, key=lambda p: num(p, key, 0)) if c else None

    # the floors: the faster of the measures before and after the HTTP points
    jsons = [p for p in points if p.get("kind") == "json"]
    js = fastest("json", "records_per_s", batch="100", arena="0")
    jsa = fastest("json", "records_per_s", batch="100", arena="1")
    js1a = fastest("json", "records_per_s", batch="1", arena="1")
    wr = fastest("write", "mb_per_s")
    tlm_points = [p for p in points if p.get("server") == "tlm"]

    L = []
    L.append("# tlm bench: the latest `make bench`%s" % (" (quick)" if meta.get("quick") == "1" else ""))
    L.append("")
    body_from = len(L)
    L.append("Run %s on %s; tlm %s; %s s a point; the service (both daemons, or nginx) pinned to core %s, "
             "the load generator to core %s (taskset); loopback; load average %s at start, %s at the end. "
             "Software: libwebsockets %s, jansson %s, wrk %s, nginx %s; daemons built `%s`."
             % (meta.get("date"), machine, meta.get("git"), meta.get("seconds"), meta.get("svc_cpu"),
                meta.get("load_cpu"), meta.get("loadavg_start"), meta.get("loadavg_end", "?"), meta.get("lws"),
                meta.get("jansson"), meta.get("wrk"), meta.get("nginx"), meta.get("cflags")))
    L.append("")
    L.append("Batches: agent-desktop traces of about %s bytes (RFC 3339 ts, level, message, 4 contract "
             "properties; bench/payload.py), a new batchId per request, %s bearer tokens in rotation. "
             "CPU seconds and peak RSS of a point include the drain after the load (until the logshipper's "
             "written counter stops moving); core busy shares cover the load only."
             % (meta.get("record_bytes", "?"), meta.get("tokens")))
    L.append("")
    if http:
        L.append("### HTTP batches (wrk, `POST /api/v1/telemetry`) against nginx `return 204`")
        L.append("")
        L.append("| batch | conns | tlm records/s | tlm req/s | tlm p50 ms | tlm p99 ms | nginx records/s "
                 "| nginx req/s | nginx p50 ms | nginx p99 ms | tlm / nginx |")
        L.append("|" + "---|" * 11)
        pairs = sorted({(k[1], k[2]) for k in http})
        for (b, c) in pairs:
            t = http.get(("tlm", b, c), {})
            n = http.get(("nginx", b, c), {})
            ratio = num(t, "records_per_s") / num(n, "records_per_s") if n and t else float("nan")
            L.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                b, c, fmt_int(num(t, "records_per_s")), fmt_int(num(t, "requests_per_s")),
                fmt(num(t, "p50_us") / 1000), fmt(num(t, "p99_us") / 1000),
                fmt_int(num(n, "records_per_s")), fmt_int(num(n, "requests_per_s")),
                fmt(num(n, "p50_us") / 1000), fmt(num(n, "p99_us") / 1000), fmt(ratio)))
        L.append("")
        lws = sorted(k for k in http if k[0] == "lws")
        if lws:
            L.append("The same loads against bare libwebsockets (bench/lws_floor.c: tlm's HTTP library configured "
                     "as the ingest is, answering 204 from a writable callback, parsing and keeping nothing): "
                     "what tlm's HTTP layer costs before tlm does any work.")
            L.append("")
            L.append("| batch | conns | libwebsockets req/s | p50 ms | p99 ms | CPU µs a request | tlm req/s "
                     "| tlm CPU µs a request | tlm / libwebsockets |")
            L.append("|" + "---|" * 9)
            for k in lws:
                w, t = http[k], http.get(("tlm", k[1], k[2]), {})
                L.append("| %d | %d | %s | %s | %s | %s | %s | %s | %s |" % (
                    k[1], k[2], fmt_int(num(w, "requests_per_s")), fmt(num(w, "p50_us") / 1000),
                    fmt(num(w, "p99_us") / 1000), fmt(num(w, "cpu_s_per_mrec") * k[1]),
                    fmt_int(num(t, "requests_per_s")), fmt(num(t, "cpu_s_per_mrec") * k[1]),
                    fmt(num(t, "requests_per_s") / num(w, "requests_per_s") if t else float("nan"))))
            L.append("")
        L.append("![records/s by batch size](latest.png)")
        L.append("")
        L.append("Resources and delivery of the same points. Core busy: share of the load's time the core "
                 "was busy; in brackets the share other processes of the machine took from it (noise: "
                 "the figures of a point with a large one are low).")
        L.append("")
        L.append("| batch | conns | tlm CPU s per M records | nginx CPU s per M records | peak RSS ingest MB "
                 "| peak RSS logshipper MB | service core busy % tlm / nginx | load core busy % tlm / nginx "
                 "| lines written vs acked |")
        L.append("|" + "---|" * 9)
        for (b, c) in pairs:
            t = http.get(("tlm", b, c), {})
            n = http.get(("nginx", b, c), {})
            L.append("| %d | %d | %s | %s | %s | %s | %s / %s | %s / %s | %s |" % (
                b, c, fmt(num(t, "cpu_s_per_mrec")), fmt(num(n, "cpu_s_per_mrec")),
                fmt(mb(num(t, "ingest_rss_peak_kb")), 1), fmt(mb(num(t, "shipper_rss_peak_kb")), 1),
                busy(t, "svc"), busy(n, "svc"), busy(t, "load"), busy(n, "load"), check_text(t)))
        L.append("")
        L.append("Non-2xx answers: " + (", ".join("%s %s×%s: %s" % (k[0], k[1], k[2], p.get("non_ok_codes"))
                                                for k, p in sorted(http.items())
                                                if num(p, "non_ok", 0) > 0) or "none") +
                 ". Socket errors: " + (", ".join("%s %s×%s: %s" % (k[0], k[1], k[2], p.get("errors_detail"))
                                                  for k, p in sorted(http.items())
                                                  if num(p, "errors", 0) > 0) or "none") + ".")
        L.append("")
        L.append("\\* unacked: batches written whose answer wrk never read (in flight when it stopped at the "
                 "end of the point), or answered 503 after their records were admitted; never more than the "
                 "requests sent and not acknowledged. `lost` counts acknowledged batches missing from stdout.")
        L.append("")
    if jsons:
        t = http.get(("tlm", 100, 32), {})
        L.append("### Parse ceiling (jansson alone, bench/json_ceiling.c)")
        L.append("")
        L.append("Measured before (1) and after (2) the HTTP points. The ceiling of the tlm / ceiling ratio is "
                 "the faster 100-record figure with jansson's default malloc: %s records/s, tlm at HTTP 100 × 32 "
                 "%s records/s, **%s** of it." % (
                     fmt_int(num(js, "records_per_s")) if js else "–", fmt_int(num(t, "records_per_s")),
                     fmt(num(t, "records_per_s") / num(js, "records_per_s")) if js and t else "–"))
        L.append("")
        L.append("| batch | allocator | measured | body bytes | parses/s | records/s | MB/s |")
        L.append("|---|---|---|---|---|---|---|")
        for j in jsons:
            L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
                j.get("batch"), "bump arena" if j.get("arena") == "1" else "malloc",
                {"1": "before HTTP", "2": "after HTTP"}.get(j.get("pass", "1"), j.get("pass")),
                j.get("body_bytes"), fmt_int(num(j, "parses") / num(j, "seconds")),
                fmt_int(num(j, "records_per_s")), j.get("mb_per_s")))
        L.append("")
    floors = host_floors(http, jsa, js1a, wr,
                         [p for p in jsons if p.get("batch") == "100" and p.get("arena") == "1"])
    if floors:
        L.append("### What this host allows at best (the floors)")
        L.append("")
        L.append("Work every record or request costs whatever the service does, each measured alone on the "
                 "service's core in this run (the faster of the measures before and after the HTTP points): "
                 "jansson parsing the batch into a bump arena (bench/json_ceiling.c --arena), appending the "
                 "lines to a new file on /dev/shm as the logshipper's stdout does (bench/write_floor.c, "
                 "%s MB/s; %s bytes a line, from tlm's 100 × 32 point), and HTTP (nginx's CPU per request at the "
                 "same point). Their sum bounds what any service can do here; a goal beyond it is out of reach on "
                 "this host at this hour. The rows \"on libwebsockets\" put in the CPU per request of bare "
                 "libwebsockets instead (bench/lws_floor.c, configured as the ingest and answering 204 from a "
                 "writable callback as tlm must): the least a service built on tlm's HTTP library can cost. "
                 "The p99 / p50 rows: the same parse timed one by one (the steadier of the two measures), "
                 "summed over every run of parses in a row as long as tlm's p50 at the point (a "
                 "saturated request waits for the work of the requests ahead of it): the p99 / p50 of that fixed "
                 "work is the tail this host's own unsteadiness puts on any service's latency here."
                 % (wr.get("mb_per_s") if wr else "–", fmt_int(line_bytes(http))))
        L.append("")
        L.append("| target | floor | at best on this host | goal | tlm | tlm / best |")
        L.append("|---|---|---|---|---|---|")
        for f in floors:
            best = f["best_value"] + (": **out of reach**" if f["out_of_reach"] else "") + f.get("best_note", "")
            L.append("| %s | %s | %s | %s | %s | %s |" % (f["name"], f["floor"], best, f["goal"], f["tlm"], f["frac"]))
        L.append("")
    if ws:
        L.append("### WebSocket stream (bench/ws_load.c, 100-record batches)")
        L.append("")
        L.append("| conns | window | records/s | batches/s | ack p50 ms | ack p99 ms | ack max ms | CPU s per M records "
                 "| peak RSS ingest MB | peak RSS logshipper MB | lines written vs acked | errors / early closes "
                 "| service core busy % | load core busy % |")
        L.append("|" + "---|" * 14)
        for p in ws:
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %s |" % (
                p.get("conns"), p.get("window"), fmt_int(num(p, "records_per_s")), fmt_int(num(p, "requests_per_s")),
                fmt(num(p, "p50_us") / 1000), fmt(num(p, "p99_us") / 1000), fmt(num(p, "max_us") / 1000),
                fmt(num(p, "cpu_s_per_mrec")), fmt(mb(num(p, "ingest_rss_peak_kb")), 1),
                fmt(mb(num(p, "shipper_rss_peak_kb")), 1), check_text(p), p.get("non_ok"), p.get("closed_early"),
                busy(p, "svc"), busy(p, "load")))
        L.append("")
    if idle:
        L.append("### Idle WebSockets (authenticated, then silent)")
        L.append("")
        base = num(http.get(("tlm", 100, 32), {}), "records_per_s")
        L.append("Then, with the idle connections still open, HTTP 100-record batches × 32 connections for up "
                 "to 8 s: what idle desktops cost a busy ingest (the HTTP table's 100 × 32 point ran without "
                 "them: %s records/s)." % fmt_int(base))
        L.append("")
        L.append("| connections | authenticated | ws sessions (metric) | connect + auth s | ingest RSS before MB "
                 "| after MB | growth MB | per connection KB | logshipper RSS MB | 100 × 32 alongside records/s "
                 "| p50 ms | p99 ms | vs without |")
        L.append("|" + "---|" * 13)
        for p in idle:
            b, a_ = num(p, "ingest_rss_before_kb"), num(p, "ingest_rss_after_kb")
            alongside = num(p, "busy_accepted") / num(p, "busy_duration_us") * 1e6
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                fmt_int(num(p, "conns")), fmt_int(num(p, "authed")), p.get("ws_sessions", "–"), p.get("connect_s"),
                fmt(mb(b), 1), fmt(mb(a_), 1), fmt(mb(a_ - b), 1), fmt((a_ - b) / num(p, "conns"), 2),
                fmt(mb(num(p, "shipper_rss_after_kb")), 1), fmt_int(alongside), fmt(num(p, "busy_p50_us") / 1000),
                fmt(num(p, "busy_p99_us") / 1000), fmt(alongside / base)))
        L.append("")
    if stall:
        L.append("### Memory under stall (logshipper stdout blocked)")
        L.append("")
        L.append("| load | stdout blocked s | answers "
                 "| peak RSS ingest MB | ingest bound MB | peak RSS logshipper MB | logshipper bound MB | lines written vs acked |")
        L.append("|---|---|---|---|---|---|---|---|")
        for p in stall:
            L.append("| %s records × %s conns, %s s | %s | %s × 202, %s | %s | %s (TELEMETRY_BUFFER_MAX_BYTES; "
                     "TELEMETRY_TRACES_THRESHOLD %s records) | %s | %s (TELEMETRY_SHIPPER_BUFFER_BYTES) | %s |" % (
                         p.get("batch"), p.get("conns"), p.get("load_s"), p.get("stall_s"), fmt_int(num(p, "ok")),
                         p.get("non_ok_codes"),
                         fmt(mb(num(p, "ingest_rss_peak_kb")), 1), fmt(num(p, "buffer_max_bytes") / 1048576, 0),
                         p.get("traces_threshold"), fmt(mb(num(p, "shipper_rss_peak_kb")), 1),
                         fmt(num(p, "shipper_buffer_bytes") / 1048576, 0), check_text(p)))
        L.append("")
    if tlm_points:
        per = [num(p, "gauth_calls_per_token") for p in tlm_points if "gauth_calls_per_token" in p]
        mx = [num(p, "gauth_calls_per_token_max") for p in tlm_points if "gauth_calls_per_token_max" in p]
        calls = sum(num(p, "gauth_userinfo_calls", 0) for p in tlm_points)
        reqs = sum(num(p, "ok", 0) for p in tlm_points if p.get("kind") in ("http", "stall", "ws"))
        L.append("### Auth cache")
        L.append("")
        L.append("Each tlm point ran a fresh ingest with %s tokens in rotation. GAuth userinfo calls per distinct "
                 "token and ingest lifetime (the double's /__stats): mean %s, max %s, over %d points; %s calls in all "
                 "for %s acknowledged batches and %s WebSocket authentications."
                 % (meta.get("tokens"), fmt(sum(per) / len(per) if per else float("nan")),
                    fmt_int(max(mx) if mx else float("nan")), len(per), fmt_int(calls), fmt_int(reqs),
                    fmt_int(sum(num(p, "authed", 0) for p in tlm_points))))
        L.append("")

    # ---- targets ----
    T = []

    def target(name, measured, goal, met):
        T.append("| %s | %s | %s | %s |" % (name, measured, goal, "–" if met is None else ("yes" if met else "**no**")))

    def have(x):
        return x == x

    t100 = http.get(("tlm", 100, 32), {})
    r = num(t100, "records_per_s")
    floor_of = {f["name"]: f for f in floors}
    best_parts = {}  # target name -> "this host at best: ...", then the same on tlm's HTTP library
    for f in floors:
        if "best_value" in f and "host_ratio" not in f:
            label = "on libwebsockets at best" if "lws_of" in f else "this host at best"
            best_parts.setdefault(f.get("lws_of", f["name"]), []).append("%s: %s" % (label, f["best_value"]))
    at_best = {name: " (%s)" % "; ".join(parts) for name, parts in best_parts.items()}
    if t100:
        target("HTTP 100-record batches, 32 conns",
               fmt_int(r) + " records/s" + at_best.get("HTTP 100-record batches, 32 conns", ""), "≥ 200 000",
               r >= 200000)
    def nginx_p99(b, c):
        n = http.get(("nginx", b, c))
        return " (nginx p99 %s ms)" % fmt(num(n, "p99_us") / 1000) if n else ""

    t1 = http.get(("tlm", 100, 1), {})
    if t1:
        v = num(t1, "p99_us") / 1000
        target("HTTP 100-record batch, 1 conn, p99", fmt(v) + " ms" + nginx_p99(100, 1), "≤ 1 ms", v <= 1.0)
    for c in (32, 256):
        t = http.get(("tlm", 100, c), {})
        if t:
            p50, p99 = num(t, "p50_us"), num(t, "p99_us")
            name = "HTTP 100-record batches, %d conns, p99 / p50" % c
            f = floor_of.get(name)
            host = " (the host alone ≈ %s)" % fmt(f["host_ratio"]) if f else ""
            target(name, "%s / %s ms = %s" % (
                fmt(p99 / 1000), fmt(p50 / 1000), fmt(p99 / p50 if p50 else float("nan"))) + nginx_p99(100, c) + host,
                "≤ 1.5", p99 <= 1.5 * p50)
    t256 = http.get(("tlm", 100, 256), {})
    if t100 and t256:
        v = num(t256, "records_per_s") / r
        target("HTTP 100-record batches, 256 conns vs 32", fmt(v * 100, 0) + " %", "≥ 90 %", v >= 0.9)
    tr = http.get(("tlm", 1, 32), {})
    if tr:
        v = num(tr, "requests_per_s")
        target("HTTP 1-record batches, 32 conns", fmt_int(v) + " req/s" + at_best.get("HTTP 1-record batches, 32 conns", ""),
               "≥ 60 000", v >= 60000)
    if js and t100:
        v = r / num(js, "records_per_s")
        target("tlm / jansson parse ceiling (100 × 32)", fmt(v), "≥ 0.65", v >= 0.65)
    w64 = next((p for p in ws if p.get("conns") == "64" and p.get("window") == "8"), None)
    if w64 and t100:
        v = num(w64, "records_per_s")
        target("WS 64 conns, window 8, 100-record batches", fmt_int(v) + " records/s",
               "≥ HTTP figure (%s)" % fmt_int(r), v >= r)
    i10 = next((p for p in idle if p.get("conns") == "10000"), None)
    if i10:
        g = mb(num(i10, "ingest_rss_after_kb") - num(i10, "ingest_rss_before_kb"))
        target("10 000 idle WebSockets, ingest RSS growth", fmt(g, 1) + " MB", "≤ 32 MB", g <= 32)
    for p in stall:
        bi = num(p, "buffer_max_bytes") / 1048576
        bs = num(p, "shipper_buffer_bytes") / 1048576
        vi, vs = mb(num(p, "ingest_rss_peak_kb")), mb(num(p, "shipper_rss_peak_kb"))
        target("stall: ingest peak RSS", fmt(vi, 1) + " MB", "≤ %s + 32 MB" % fmt(bi, 0), vi <= bi + 32)
        target("stall: logshipper peak RSS", fmt(vs, 1) + " MB", "≤ %s + 32 MB" % fmt(bs, 0), vs <= bs + 32)
    checks = [p for p in points if "check" in p]
    bad = [p["point"] for p in checks if p["check"] != "ok"]
    target("lines written = records acked, no duplicate rid (every tlm point)",
           "%d of %d points ok" % (len(checks) - len(bad), len(checks)) + ("; failed: " + ", ".join(bad) if bad else ""),
           "all", not bad)
    if T:
        L.append("### Targets (printed, not asserted)")
        L.append("")
        L.append("Latency percentiles on a machine shared with other work move with that work: nginx's p99 "
                 "at the same point shows how much of a p99 is the machine's.")
        L.append("")
        L.append("| target | measured | goal | met |")
        L.append("|---|---|---|---|")
        L.extend(T)
        L.append("")

    md = "\n".join(L)
    with open(os.path.join(a.results, "latest.md"), "w") as f:
        f.write(md)
    sys.stdout.write(md)
    if a.readme:
        update_readme(a.readme, L[body_from:], os.path.relpath(a.results, os.path.dirname(os.path.abspath(a.readme))))

    # ---- chart ----
    if http:
        dat = os.path.join(a.results, "latest.dat")
        cols = set()
        with open(dat, "w") as f:
            f.write("# batch tlm_c1 tlm_c32 tlm_c256 nginx_c1 nginx_c32 nginx_c256 (records/s)\n")
            for b in sorted({k[1] for k in http}):
                row = [str(b)]
                for s in ("tlm", "nginx"):
                    for c in (1, 32, 256):
                        v = num(http.get((s, b, c), {}), "records_per_s")
                        row.append("NaN" if v != v else "%.0f" % v)
                        if v == v:
                            cols.add(len(row))
                f.write(" ".join(row) + "\n")
        title = "%s; %s cores; %s; tlm %s" % (meta.get("cpu", "?"), meta.get("cores", "?"), meta.get("date", "?"),
                                               meta.get("git", "?"))
        title = title.replace("'", "")
        here = os.path.dirname(os.path.abspath(__file__))
        try:
            subprocess.run(["gnuplot", "-e", "data='%s'; out='%s'; machine='%s'; cols='%s'" % (
                dat, os.path.join(a.results, "latest.png"), title, " ".join(str(c) for c in sorted(cols))), os.path.join(here, "plot.gnuplot")],
                check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.stderr.write("report: gnuplot failed: %s\n" % e)
            return 1
        os.remove(dat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
