"""Delivery guarantee (SPEC 4), health and metrics (SPEC 2, 3): nothing answered 202 is
lost when the logshipper is SIGKILLed and restarted, the ingest drains on SIGTERM, and
/health and /metrics tell the truth."""
import collections
import signal
import threading
import time

import pytest

import tlm_harness as H
from tlm_harness import RID_RE, assert_error, uniq


def json_ok(resp, what):
    assert resp.status_code == 200, "%s answered %d: %s" % (what, resp.status_code, resp.text[:300])
    assert "application/json" in resp.headers.get("Content-Type", ""), "%s is not JSON" % what
    resp.json()


# ---------------------------------------------------------------------------------------
# health and metrics

@pytest.mark.smoke
def test_health_all_up(tlm):
    for which in ("ingest", "logshipper"):
        json_ok(tlm.health(which, "live"), "%s /health/live" % which)
        H.wait_until(lambda: tlm.health(which, "ready").status_code == 200, 8, what="%s ready" % which)
        json_ok(tlm.health(which, "ready"), "%s /health/ready" % which)


@pytest.mark.local_only
def test_ingest_not_ready_without_logshipper(tlm_fresh):
    t = tlm_fresh
    H.wait_until(lambda: t.health("ingest", "ready").status_code == 200, 8, what="ingest ready at start")
    t.stop_logshipper(signal.SIGKILL)
    try:
        H.wait_until(lambda: t.health("ingest", "ready").status_code == 503, 5,
                     what="ingest /health/ready 503 with the logshipper down")
    except TimeoutError as e:
        pytest.fail(str(e))
    r = t.health("ingest", "ready")
    assert "application/json" in r.headers.get("Content-Type", ""), "ready 503 is not JSON"
    r.json()
    json_ok(t.health("ingest", "live"), "ingest /health/live with the logshipper down")
    t.start_logshipper()
    H.wait_until(lambda: t.health("ingest", "ready").status_code == 200, 10,
                 what="ingest ready again after the logshipper restarted")


@pytest.mark.local_only
def test_logshipper_not_ready_without_ingest(tlm_fresh):
    # SPEC 2: ready on both ports means the link between the daemons is up; the pod's
    # readiness is every container's, so the logshipper says what it sees of the ingest
    t = tlm_fresh
    H.wait_until(lambda: t.health("logshipper", "ready").status_code == 200, 8, what="logshipper ready at start")
    ok = t.health("logshipper", "ready").json()
    assert ok == {"status": "ok", "checks": {"ingest": True, "gauth": True, "output": True}}, ok
    t.kill_ingest(signal.SIGKILL)
    try:
        H.wait_until(lambda: t.health("logshipper", "ready").status_code == 503, 8,
                     what="logshipper /health/ready 503 with the ingest down")
    except TimeoutError as e:
        pytest.fail(str(e))
    body = t.health("logshipper", "ready").json()
    assert body["status"] == "not_ready" and body["checks"]["ingest"] is False, body
    assert "ingest" in body["reason"], body
    json_ok(t.health("logshipper", "live"), "logshipper /health/live with the ingest down")
    assert "\ntelemetry_ready 0\n" in H.http("GET", t.metrics_url + "/metrics").text, "telemetry_ready not 0"
    t.start_ingest()
    H.wait_until(lambda: t.health("logshipper", "ready").status_code == 200, 8,
                 what="logshipper ready again once an ingest connects")
    assert "\ntelemetry_ready 1\n" in H.http("GET", t.metrics_url + "/metrics").text, "telemetry_ready not 1"


@pytest.mark.smoke
def test_metrics_count_written_records(tlm):
    before = tlm.metrics()
    assert any(n == "tlm_records_written_total" for n, _ in before), "no tlm_records_written_total in /metrics"
    n0 = tlm.metric_sum("tlm_records_written_total", before)
    m = uniq("metrics")
    assert tlm.post({"appName": "wwe_ui", "traces": [{"msg": m}] * 3}).status_code == 202
    H.wait_until(lambda: tlm.metric_sum("tlm_records_written_total") >= n0 + 3, 5,
                 what="tlm_records_written_total to grow by 3")


@pytest.mark.smoke
def test_ingest_counters_reach_metrics(tlm):
    """The ingest's own counters travel as STATS frames and are served on :9107."""
    n0 = tlm.metric_sum("telemetry_events", eventName="http_error_401")
    assert_error(tlm.post({"appName": "wwe_ui"}, token=uniq("bogus-token")), 401, "invalid_token")
    H.wait_until(lambda: tlm.metric_sum("telemetry_events", eventName="http_error_401") >= n0 + 1, 8,
                 interval=0.2, what='telemetry_events{eventName="http_error_401"} to count the 401')


# ---------------------------------------------------------------------------------------
# delivery

def _delivery_report(t, marker, acked, max_garbled=0):
    """acked: the msg of every record of every 202'd batch. Returns (written lines,
    duplicates, problems): acknowledged records missing from stdout, rids not stable,
    lines that are not JSON (a SIGKILL may cut at most one line per kill)."""
    garbled = []
    lines = t.stdout_lines(marker, bad=garbled)
    by_msg = collections.defaultdict(list)
    problems = []
    if len(garbled) > max_garbled:
        problems.append("%d stdout lines are not JSON (at most %d cut by SIGKILL allowed): %s" % (
            len(garbled), max_garbled, [g[:120] for g in garbled[:3]]))
    for ln in lines:
        by_msg[ln["msg"]].append(ln["rid"])
        if not RID_RE.match(ln["rid"]):
            problems.append("bad rid %r" % ln["rid"])
    missing = [msg for msg in acked if msg not in by_msg]
    if missing:
        time.sleep(2)
        now_written = {ln["msg"] for ln in t.stdout_lines(marker, bad=[])}
        late = [msg for msg in missing if msg in now_written]
        problems.append("%d of %d acknowledged records are not on stdout (%d appeared later); e.g. %s" % (
            len(missing), len(acked), len(late), missing[:3]))
    unstable = [(msg, rids) for msg, rids in by_msg.items() if len(set(rids)) > 1]
    if unstable:
        problems.append("re-written records must keep their rid: %s" % unstable[:3])
    dups = sum(len(r) - 1 for r in by_msg.values())
    return len(lines), dups, problems


@pytest.mark.local_only
@pytest.mark.timeout(90)
def test_no_acked_record_lost_when_logshipper_killed(tlm_fresh):
    t = tlm_fresh
    run = uniq("dlv")
    per_batch, clients = 20, 3
    results, errors = [], []
    lock = threading.Lock()
    stop = threading.Event()
    assert t.post({"appName": "wwe_ui", "traces": [{"msg": run + " warm"}]}).status_code == 202

    def client(cid):
        n = 0
        while not stop.is_set():
            n += 1
            bno = "%d-%d" % (cid, n)
            msgs = ["%s %s %d" % (run, bno, i) for i in range(per_batch)]
            b = {"appName": "wwe_ui", "batchId": "%s-%s" % (run, bno), "traces": [{"msg": x} for x in msgs]}
            t_sent = time.monotonic()
            try:
                r = t.post(b, timeout=25)
            except Exception as e:  # noqa: BLE001
                with lock:
                    errors.append(repr(e))
                time.sleep(0.05)
                continue
            with lock:
                results.append((msgs, r, t_sent, time.monotonic()))
            time.sleep(0.005)   # bounded volume: the check reads every line back

    threads = [threading.Thread(target=client, args=(c,), daemon=True) for c in range(clients)]
    for th in threads:
        th.start()
    kills = []
    for pause in (0.8, 1.2):
        time.sleep(pause)
        kills.append(time.monotonic())
        t.restart_logshipper(signal.SIGKILL)
    time.sleep(1.2)
    stop.set()
    for th in threads:
        th.join(timeout=40)
    assert not any(th.is_alive() for th in threads), "client threads still blocked"
    # once the dust settles, the service takes batches again
    after = uniq("dlv-after")
    r = t.post({"appName": "wwe_ui", "traces": [{"msg": after}]}, timeout=20)
    assert r.status_code == 202, "after two logshipper restarts: %d %s" % (r.status_code, r.text[:300])

    statuses = collections.Counter(r.status_code for _, r, _, _ in results)
    acked = {}
    for msgs, r, _, _ in results:
        if r.status_code == 202:
            body = r.json()
            assert body["accepted"] == per_batch and body["rejected"] == [], body
            for x in msgs:
                acked[x] = True
        elif r.status_code == 503:
            assert_error(r, 503)
            assert r.headers.get("Retry-After"), "503 without Retry-After"
    acked_after_kill = sum(1 for _, r, _, done in results if r.status_code == 202 and done > kills[-1])
    written, dups, problems = _delivery_report(t, run + " ", acked, max_garbled=len(kills))
    H.note("delivery (2x SIGKILL logshipper): %d batches sent, statuses %s, %d records acked, "
           "%d lines written, %d duplicates, %d client errors%s" % (
               len(results), dict(statuses), len(acked), written, dups, len(errors),
               "; LOST/UNSTABLE" if problems else ""))
    assert not problems, "\n".join(problems)
    assert not errors, "requests failed without an answer: %s" % errors[:3]
    assert set(statuses) <= {202, 503}, "unexpected statuses %s" % statuses
    assert len(acked) >= per_batch * 3, "too few batches acknowledged to prove anything: %s" % statuses
    assert acked_after_kill > 0, "no batch was acknowledged after the last restart"
    assert t.shipper_starts == 3


@pytest.mark.local_only
@pytest.mark.timeout(60)
def test_ingest_sigterm_answers_in_flight_and_exits_zero(tlm_fresh):
    t = tlm_fresh
    run = uniq("term")
    assert t.post({"appName": "wwe_ui", "traces": [{"msg": run + " warm"}]}).status_code == 202
    t.pause_logshipper()          # records reach the socket but nothing is written or acked
    results, errors = {}, []

    def client(i):
        msgs = ["%s %d %d" % (run, i, k) for k in range(10)]
        try:
            results[i] = (msgs, t.post({"appName": "wwe_ui", "batchId": "%s-%d" % (run, i),
                                        "traces": [{"msg": x} for x in msgs]}, timeout=30))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(6)]
    try:
        for th in threads:
            th.start()
        time.sleep(0.8)
        early = [i for i, (_, r) in list(results.items()) if r.status_code == 202]
        assert not early, "202 while the logshipper was stopped: acknowledged before written"
        t.ingest.send_signal(signal.SIGTERM)
        time.sleep(0.5)
    finally:
        t.resume_logshipper()
    drain = t.cfg_int("TELEMETRY_DRAIN_TIMEOUT")
    rc = t.ingest.wait(timeout=drain + 5)
    for th in threads:
        th.join(timeout=30)
    assert rc is not None, "ingest still running %ds after SIGTERM (TELEMETRY_DRAIN_TIMEOUT=%d)" % (drain + 5, drain)
    assert not errors, "in-flight requests got no answer: %s" % errors
    statuses = collections.Counter(r.status_code for _, r in results.values())
    assert set(statuses) <= {202, 503}, statuses
    acked = {x: True for msgs, r in results.values() if r.status_code == 202 for x in msgs}
    written, dups, problems = _delivery_report(t, run + " ", acked)
    H.note("ingest SIGTERM with 6 batches in flight: statuses %s, exit code %s, %d lines, %d duplicates%s" % (
        dict(statuses), rc, written, dups, "; LOST/UNSTABLE" if problems else ""))
    assert not problems, "\n".join(problems)
    assert rc == 0, "ingest exit code after SIGTERM: %s" % rc


@pytest.mark.local_only
def test_logshipper_sigterm_exits_zero(tlm_fresh):
    m = uniq("lsterm")
    assert tlm_fresh.post({"appName": "wwe_ui", "traces": [{"msg": m}]}).status_code == 202
    rc = tlm_fresh.stop_logshipper(signal.SIGTERM, timeout=8)
    assert rc == 0, "logshipper exit code after SIGTERM: %s" % rc
    assert len(tlm_fresh.stdout_lines(m)) == 1
