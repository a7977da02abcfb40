"""test_metrics.py - the metrics on the logshipper's :9107/metrics, end to end (issue 5).

Real daemons (tlm_harness), a real `promtool check metrics` on live scrapes, and a real
Prometheus server (Debian's /usr/bin/prometheus) scraping the logshipper every second and
evaluating deploy/alerts/tlm-rules.yaml. docs/METRICS.md lists every metric checked here.

The ingest's metrics reach :9107 in STATS frames sent every second, so a value the ingest
counts shows up within about a second: tests poll (bounded) for the value they expect and
then check it exactly. Counts are compared as deltas (before/after) where a series may be
shared, so the value tests also run against an external target (TLM_E2E_TARGET=external).

The promtool lint decision (docs/METRICS.md, "promtool"): SPEC pins `<appName>_events` and
`telemetry_events` as counters without `_total` and the camelCase label names the
original's dashboards and alert rules use. promtool's lint flags both; the check here
fails on every promtool problem except exactly those two lints on exactly those names.
"""
import json
import math
import os
import re
import signal
import subprocess
import urllib.parse
import uuid

import pytest

import tlm_harness as H
import ws_helpers as W

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
RULES_FILE = os.path.join(H.REPO, "deploy", "alerts", "tlm-rules.yaml")

# Label names pinned by SPEC 1 (the original's metrics, used by its alert rules), plus
# metricName, which the contract families use in the same style (docs/CONTRACTS.md).
PINNED_LABELS = {"tenantName", "eventName", "contactCenterId", "serviceName", "metricType", "metricName"}
LINT_TOTAL = 'counter metrics should have "_total" suffix'
LINT_CAMEL = "label names should be written in 'snake_case' not 'camelCase'"
EVENTS_LABELS = {"tenantName", "eventName", "contactCenterId"}   # <appName>_events

PROCESS_FAMILIES = ("process_cpu_seconds_total", "process_resident_memory_bytes",
                    "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                    "process_start_time_seconds")


# ---------------------------------------------------------------------------------------
# exposition parsing (our own: lines end at "\n" only; a label value may hold a raw CR,
# U+2028 or other characters str.splitlines() would split on)

_SAMPLE_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def parse_exposition(text):
    """-> (types {family: type}, samples [(name, {label: value}, float)]). Raises
    AssertionError naming the line on anything malformed."""
    types, samples = {}, []
    for n, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                assert parts[2] not in types, "line %d: second TYPE for %s" % (n, parts[2])
                types[parts[2]] = parts[3]
            continue
        m = _SAMPLE_NAME.match(line)
        assert m, "line %d is neither a comment nor a sample: %r" % (n, line[:200])
        name, i, labels = m.group(0), m.end(), {}
        if line[i:i + 1] == "{":
            i += 1
            while line[i:i + 1] != "}":
                lm = _LABEL_NAME.match(line, i)
                assert lm and line[lm.end():lm.end() + 2] == '="', "line %d: bad label at %d: %r" % (n, i, line[:200])
                key, i, val = lm.group(0), lm.end() + 2, []
                while True:
                    assert i < len(line), "line %d: unterminated label value: %r" % (n, line[:200])
                    c = line[i]
                    if c == "\\":
                        esc = line[i + 1:i + 2]
                        assert esc in ('\\', '"', 'n'), "line %d: bad escape \\%s" % (n, esc)
                        val.append("\n" if esc == "n" else esc)
                        i += 2
                    elif c == '"':
                        i += 1
                        break
                    else:
                        val.append(c)
                        i += 1
                assert key not in labels, "line %d: label %s twice" % (n, key)
                labels[key] = "".join(val)
                if line[i:i + 1] == ",":
                    i += 1
            i += 1
        rest = line[i:].split(" ")
        assert rest[0] == "" and len(rest) in (2, 3), "line %d: expected ' value': %r" % (n, line[:200])
        samples.append((name, labels, float(rest[1])))
    return types, samples


def family_of(name, types):
    if name in types:
        return name
    for sfx in ("_bucket", "_sum", "_count"):
        if name.endswith(sfx) and types.get(name[:-len(sfx)]) in ("histogram", "summary"):
            return name[:-len(sfx)]
    return name


class Scrape:
    """One /metrics answer, parsed."""

    def __init__(self, text):
        self.text = text
        self.types, self.samples = parse_exposition(text)

    def series(self, name, **labels):
        """[(labels, value)] of name whose labels include the given ones."""
        return [(ls, v) for n, ls, v in self.samples
                if n == name and all(ls.get(k) == w for k, w in labels.items())]

    def value(self, name, **labels):
        """Sum over the matching series (0 when none)."""
        return sum(v for _, v in self.series(name, **labels))

    def one(self, name, **labels):
        """The value of the one series matching exactly (these labels, no others), or None."""
        found = [v for n, ls, v in self.samples if n == name and ls == labels]
        assert len(found) <= 1, "series %s%r appears %d times" % (name, labels, len(found))
        return found[0] if found else None

    def family_labels(self):
        """{family: set of label names its samples carry}."""
        out = {}
        for n, ls, _ in self.samples:
            out.setdefault(family_of(n, self.types), set()).update(k for k in ls if k != "le")
        return out


def scrape(target):
    return Scrape(target.metrics_text())


def wait_scrape(target, pred, what, timeout=8.0):
    """Scrapes until pred(Scrape) is true; returns that scrape. The failure says what."""
    last = [None]

    def check():
        last[0] = scrape(target)
        return pred(last[0])
    try:
        H.wait_until(check, timeout, interval=0.1, what=what)
    except TimeoutError as e:
        raise AssertionError("%s (waited %.0fs)" % (e, timeout)) from None
    return last[0]


# ---------------------------------------------------------------------------------------
# promtool

def promtool_check(text):
    """-> (exit code, problem lines) of `promtool check metrics` on text."""
    assert os.access(PROMTOOL, os.X_OK), "%s missing: apt-get install prometheus (scripts/deps.sh test)" % PROMTOOL
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text.encode("utf-8", "surrogateescape"),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    return p.returncode, [ln for ln in out.split("\n") if ln.strip()]


def disallowed_problems(sc, rc, lines):
    """The promtool output lines our lint decision does not allow (empty = accepted).
    Allowed: the `_total` lint on an `<appName>_events` counter (labels tenantName,
    eventName, contactCenterId) or on telemetry_events (label eventName); the camelCase
    lint on a family whose camelCase labels are all pinned names."""
    if rc == 0:
        return []
    if rc != 3:                       # 1: could not parse; anything else: unexpected
        return lines or ["promtool exited %d without output" % rc]
    labels = sc.family_labels()
    bad = []
    for ln in lines:
        fam, _, msg = ln.strip().partition(" ")
        fam_labels = labels.get(fam, set())
        if msg == LINT_TOTAL and sc.types.get(fam) == "counter" and (
                (fam.endswith("_events") and fam_labels == EVENTS_LABELS) or
                (fam == "telemetry_events" and fam_labels <= {"eventName"})):
            continue
        camel = {k for k in fam_labels if k != k.lower()}
        if msg == LINT_CAMEL and camel and camel <= PINNED_LABELS:
            continue
        bad.append(ln)
    return bad


def assert_promtool_accepts(sc):
    rc, lines = promtool_check(sc.text)
    bad = disallowed_problems(sc, rc, lines)
    assert not bad, "promtool check metrics (exit %d) reports problems beyond the pinned-name lints:\n%s" % (
        rc, "\n".join(bad[:40]))
    return rc, lines


# Event names that try to break the exposition format or forge a sample (a contract
# monitoring inj_[\s\S]* counts them all: "." would not match a newline).
INJECTION_NAMES = [
    'inj_q"b\\c\nd}e{f="g",h',
    'inj_a\nwwe_ui_events{tenantName="pulse",eventName="forged",contactCenterId="x"} 999\n# TYPE x counter',
    "inj_cr\rtab\tesc\x1b[0m", "inj_u2028\u2028x\u0085y", 'inj_\\n not a newline \\"',
    "inj_nul\x00end", "inj_\u00e9moji\U0001F600"]


# ---------------------------------------------------------------------------------------
# fixtures and traffic

@pytest.fixture(scope="module")
def svc(module_factory, request):
    """A service with TELEMETRY_HEALTH_TIMER=1 (local), or the common one (external)."""
    t = module_factory(env={"TELEMETRY_HEALTH_TIMER": "1"}, name="metrics")
    if t is None:
        t = request.getfixturevalue("tlm")
    return t


def u():
    return uuid.uuid4().hex[:12]


def post_ok(target, batch, token="dev-token"):
    r = target.post(batch, token=token)
    assert r.status_code == 202, "batch answered %d: %s" % (r.status_code, r.text[:300])
    return r.json()


def events_batch(app, names):
    return {"appName": app, "events": [{"name": n} for n in names]}


def metrics_batch(app, name, values):
    return {"appName": app, "metrics": [{"name": name, "value": v} for v in values]}


def health_timer(target):
    return int(target.cfg("TELEMETRY_HEALTH_TIMER") or 30)


# ---------------------------------------------------------------------------------------
# promtool on a live scrape

@pytest.mark.timeout(40)
def test_promtool_accepts_live_scrape_after_traffic(svc):
    """After monitored events, threshold violations, apdex samples and HTTP errors, the
    whole scrape passes `promtool check metrics`, apart from the documented lints."""
    k = u()
    post_ok(svc, events_batch("wwe_ui", ["error_%s" % k, "disaster_recovery_%s" % k, "plain_%s" % k]))
    post_ok(svc, metrics_batch("wwe_ui", "http_sync_req_StartContactCenterSession", [1, 5]))
    post_ok(svc, metrics_batch("wwe_ui", "http_sync_req_AttachUserData", [10]))
    post_ok(svc, metrics_batch("softphone", "sip_call_mos", [4.2, 3.0, 1.2]))
    assert svc.post({"appName": "wwe_ui"}, token="bad-token-" + k).status_code == 401
    assert svc.get("/no/such/path").status_code == 404
    sc = wait_scrape(svc, lambda s: s.series("telemetry_events", eventName="http_error_401")
                     and s.series("telemetry_events", eventName="http_error_404")
                     and s.series("wwe_ui_events", eventName="error_%s" % k)
                     and s.series("softphone_apdex"), "the traffic's metrics on /metrics")
    for fam in ("wwe_ui_events", "wwe_ui_metric_violations_total", "softphone_apdex_samples_total",
                "softphone_apdex", "softphone_sip_call_mos", "telemetry_events", "telemetry_dependency_status",
                "telemetry_gws_auth_req_time", "telemetry_metric_series_dropped_total",
                "tlm_ack_latency_seconds") + PROCESS_FAMILIES:
        assert fam in sc.types, "family %s has no # TYPE line in the scrape" % fam
    assert sc.types["wwe_ui_events"] == "counter" and sc.types["telemetry_events"] == "counter"
    assert sc.types["telemetry_dependency_status"] == "gauge"
    assert sc.types["tlm_ack_latency_seconds"] == "histogram"
    rc, lines = assert_promtool_accepts(sc)
    # the exception is not vacuous: SPEC's names are what promtool flags, and nothing else is
    flagged = {ln.split(" ", 1)[0] for ln in lines if ln.endswith(LINT_TOTAL)}
    assert {"wwe_ui_events", "telemetry_events"} <= flagged, flagged


def test_lint_filter_rejects_other_problems():
    """The promtool filter of this file fails on problems it must not excuse."""
    text = ("# HELP foo_events x\n# TYPE foo_events counter\nfoo_events{myLabel=\"a\"} 1\n"
            "# HELP bar x\n# TYPE bar counter\nbar 1\n")
    sc = Scrape(text)
    rc, lines = promtool_check(text)
    bad = disallowed_problems(sc, rc, lines)
    assert any(ln.startswith("bar ") for ln in bad), bad           # _total lint, unpinned name
    assert any("myLabel" in ln or ln.startswith("foo_events") for ln in bad), bad  # wrong labels
    rc, lines = promtool_check('# TYPE a counter\na{x="1} 1\n')
    assert rc == 1 and disallowed_problems(Scrape("# TYPE a counter\n"), rc, lines)


# ---------------------------------------------------------------------------------------
# values

@pytest.mark.timeout(30)
def test_monitored_events_counted_exactly(svc):
    """<appName>_events counts exactly the events monitoredEvents matches (whole name),
    per tenant; unmonitored events are written to stdout but not counted."""
    k = u()
    monitored = "error_%s" % k
    unmonitored = ["x" + monitored, "Error_%s" % k, "error%s" % k, "%s_error_x" % k,
                   "performance_worker_major_%s" % k, "disaster_recovery%s" % k, "error_%s\nx" % k]
    before = scrape(svc)
    pwm_before = before.value("wwe_ui_events", eventName="performance_worker_major", tenantName="pulse")
    post_ok(svc, events_batch("wwe_ui", [monitored, monitored] + unmonitored[:3]))
    post_ok(svc, events_batch("wwe_ui", [monitored, "disaster_recovery_%s" % k, "performance_worker_major"]
                              + unmonitored[3:]))
    post_ok(svc, events_batch("wwe_ui", [monitored]), token="other-tenant-token")
    post_ok(svc, {"appName": "wwe_ui", "traces": [{"msg": monitored}],
                  "metrics": [{"name": monitored, "value": 1}]})           # not events: never counted
    post_ok(svc, events_batch("softphone", [monitored]))                  # softphone monitors no events

    sc = wait_scrape(svc, lambda s: s.value("wwe_ui_events", eventName=monitored) >= 4,
                     "wwe_ui_events{eventName=%r} to reach 4" % monitored)
    assert sc.one("wwe_ui_events", tenantName="pulse", eventName=monitored, contactCenterId=H.PULSE_CC) == 3
    assert sc.one("wwe_ui_events", tenantName="acme", eventName=monitored, contactCenterId=H.ACME_CC) == 1
    assert len(sc.series("wwe_ui_events", eventName=monitored)) == 2, sc.series("wwe_ui_events", eventName=monitored)
    assert sc.one("wwe_ui_events", tenantName="pulse", eventName="disaster_recovery_%s" % k,
                  contactCenterId=H.PULSE_CC) == 1
    assert sc.value("wwe_ui_events", eventName="performance_worker_major", tenantName="pulse") == pwm_before + 1
    for name in unmonitored:
        assert not sc.series("wwe_ui_events", eventName=name), "unmonitored event %r was counted" % name
    assert "softphone_events" not in sc.types
    # the unmonitored ones were accepted and written: the contract only decides the count
    lines = svc.wait_for_lines(lambda ln: ln.get("kind") == "event" and k in ln.get("name", ""),
                               count=len(unmonitored) + 6, marker=k)
    written = {ln["name"] for ln in lines}
    assert set(unmonitored) <= written, set(unmonitored) - written


@pytest.mark.timeout(30)
def test_threshold_violations(svc):
    """<appName>_metric_violations_total: above a gt threshold, below an lt threshold;
    equal is no violation."""
    labels_gt = dict(metricName="http_sync_req_StartContactCenterSession", type="gt",
                     tenantName="pulse", contactCenterId=H.PULSE_CC)
    labels_lt = dict(metricName="http_sync_req_AttachUserData", type="lt",
                     tenantName="pulse", contactCenterId=H.PULSE_CC)
    before = scrape(svc)
    gt0 = before.one("wwe_ui_metric_violations_total", **labels_gt) or 0
    lt0 = before.one("wwe_ui_metric_violations_total", **labels_lt) or 0
    post_ok(svc, metrics_batch("wwe_ui", "http_sync_req_StartContactCenterSession", [1, 2, 2.5, 10]))
    post_ok(svc, metrics_batch("wwe_ui", "http_sync_req_AttachUserData", [5221999, 5222000, 6000000]))
    post_ok(svc, metrics_batch("wwe_ui", "http_sync_req_Other_%s" % u(), [1e12]))   # no threshold
    sc = wait_scrape(svc, lambda s: (s.one("wwe_ui_metric_violations_total", **labels_lt) or 0) >= lt0 + 1
                     and (s.one("wwe_ui_metric_violations_total", **labels_gt) or 0) >= gt0 + 2,
                     "the violations to be counted")
    assert sc.one("wwe_ui_metric_violations_total", **labels_gt) == gt0 + 2
    assert sc.one("wwe_ui_metric_violations_total", **labels_lt) == lt0 + 1
    assert not sc.series("wwe_ui_metric_violations_total", metricName="http_sync_req_StartContactCenterSession",
                         type="lt")


@pytest.mark.timeout(30)
def test_softphone_apdex(svc):
    """softphone_apdex_samples_total by zone and softphone_apdex computed from the samples
    sent (sip_call_mos: satisfied >= 3.6, tolerated >= 2), plus the isExtended histogram."""
    base = dict(metricName="sip_call_mos", tenantName="pulse", contactCenterId=H.PULSE_CC)
    hist = dict(tenantName="pulse", contactCenterId=H.PULSE_CC)

    def zones(sc):
        return {z: sc.one("softphone_apdex_samples_total", zone=z, **base) or 0
                for z in ("satisfied", "tolerated", "frustrated")}
    before = scrape(svc)
    z0 = zones(before)
    n0 = before.one("softphone_sip_call_mos_count", **hist) or 0
    s0 = before.one("softphone_sip_call_mos_sum", **hist) or 0
    b0 = {le: before.one("softphone_sip_call_mos_bucket", le=le, **hist) or 0 for le in ("2", "3.6", "+Inf")}
    values = [4.1, 3.6, 3.0, 2.0, 1.5]     # satisfied 2, tolerated 2, frustrated 1
    post_ok(svc, metrics_batch("softphone", "sip_call_mos", values))
    sc = wait_scrape(svc, lambda s: sum(zones(s).values()) >= sum(z0.values()) + 5, "5 apdex samples")
    z = zones(sc)
    assert {k: z[k] - z0[k] for k in z} == {"satisfied": 2, "tolerated": 2, "frustrated": 1}, (z0, z)
    total = sum(z.values())
    gauge = sc.one("softphone_apdex", **base)
    assert gauge is not None, "softphone_apdex{%r} missing" % base
    assert math.isclose(gauge, (z["satisfied"] + z["tolerated"] / 2) / total, rel_tol=1e-9), (gauge, z)
    if sum(z0.values()) == 0:                   # a fresh series: exactly what we sent
        assert math.isclose(gauge, (2 + 2 / 2) / 5, rel_tol=1e-9), gauge
    assert sc.one("softphone_sip_call_mos_count", **hist) == n0 + 5
    assert math.isclose(sc.one("softphone_sip_call_mos_sum", **hist) - s0, sum(values), rel_tol=1e-9)
    got = {le: sc.one("softphone_sip_call_mos_bucket", le=le, **hist) - b0[le] for le in b0}
    assert got == {"2": 2, "3.6": 4, "+Inf": 5}, got


@pytest.mark.timeout(30)
def test_http_errors_counted_as_telemetry_events(svc):
    """telemetry_events{eventName="http_error_N"} and tlm_http_requests_total{code} count
    the ingest's error answers."""
    before = scrape(svc)
    e401 = before.value("telemetry_events", eventName="http_error_401")
    e404 = before.value("telemetry_events", eventName="http_error_404")
    c401 = before.value("tlm_http_requests_total", code="401")
    c202 = before.value("tlm_http_requests_total", code="202")
    assert svc.post({"appName": "wwe_ui"}, token="bad-token-" + u()).status_code == 401
    assert svc.post({"appName": "wwe_ui"}, token="bad-token-" + u()).status_code == 401
    assert svc.post({"appName": "wwe_ui"}, token=None).status_code == 401
    assert svc.get("/api/v1/nothing-here").status_code == 404
    post_ok(svc, {"appName": "wwe_ui", "traces": [{"msg": "ok"}]})
    sc = wait_scrape(svc, lambda s: s.value("telemetry_events", eventName="http_error_401") >= e401 + 3
                     and s.value("telemetry_events", eventName="http_error_404") >= e404 + 1
                     and s.value("tlm_http_requests_total", code="202") >= c202 + 1,
                     "the error answers in telemetry_events")
    assert sc.one("telemetry_events", eventName="http_error_401") == e401 + 3
    assert sc.one("telemetry_events", eventName="http_error_404") == e404 + 1
    assert sc.one("tlm_http_requests_total", code="401") == c401 + 3
    codes = [ls["eventName"] for ls, _ in sc.series("telemetry_events") if ls["eventName"].startswith("http_error_")]
    assert all(re.fullmatch(r"http_error_[45]\d\d", c) for c in codes), codes   # errors only, no 202


@pytest.mark.timeout(45)
def test_dependency_status_follows_gauth(svc):
    """telemetry_dependency_status{serviceName="gauth"} is 1 while GAuth answers and 0
    after it fails (checked every TELEMETRY_HEALTH_TIMER), then 1 again; the logshipper
    link stays 1."""
    timer = health_timer(svc)
    if timer > 5:
        pytest.skip("TELEMETRY_HEALTH_TIMER is %ds on this target: too slow for this test" % timer)
    wait_for = 3 * timer + 5

    def status(sc, name):
        return sc.one("telemetry_dependency_status", serviceName=name)
    wait_scrape(svc, lambda s: status(s, "gauth") == 1 and status(s, "logshipper") == 1,
                "both dependencies up", wait_for)
    try:
        svc.gauth.set_mode("fail")
        sc = wait_scrape(svc, lambda s: status(s, "gauth") == 0, "gauth status 0 after the double fails", wait_for)
        assert status(sc, "logshipper") == 1
        assert svc.health("ingest", "ready").status_code == 503
    finally:
        svc.gauth.set_mode("ok")
    wait_scrape(svc, lambda s: status(s, "gauth") == 1, "gauth status 1 again", wait_for)


@pytest.mark.timeout(40)
def test_auth_time_and_cache_metrics(svc):
    """telemetry_gws_auth_req_time{metricType} is present with a window that saw our
    userinfo call; auth cache misses then hits are counted."""
    timer = health_timer(svc)
    token = "metrics-token-" + u()
    svc.gauth.add_users({token: {"username": "metrics-agent", "contactCenterId": H.PULSE_CC,
                                 "environmentId": "env-1", "dbid": 4242, "loginName": "metrics-agent",
                                 "authorities": ["ROLE_AGENT"]}})
    before = wait_scrape(svc, lambda s: s.series("tlm_auth_cache_misses_total"), "auth metrics")
    miss0, hit0 = before.value("tlm_auth_cache_misses_total"), before.value("tlm_auth_cache_hits_total")
    ok0 = before.value("tlm_auth_calls_total", result="ok")
    post_ok(svc, {"appName": "wwe_ui", "traces": [{"msg": "auth-metrics"}]}, token=token)
    post_ok(svc, {"appName": "wwe_ui", "traces": [{"msg": "auth-metrics"}]}, token=token)
    sc = wait_scrape(svc, lambda s: s.value("tlm_auth_cache_misses_total") >= miss0 + 1
                     and s.value("tlm_auth_cache_hits_total") >= hit0 + 1
                     and s.value("tlm_auth_calls_total", result="ok") >= ok0 + 1, "cache miss then hit")
    for mt in ("avg", "min", "max", "count", "last"):
        assert sc.one("telemetry_gws_auth_req_time", metricType=mt) is not None, "metricType=%s missing" % mt
    assert sc.types["telemetry_gws_auth_req_time"] == "gauge"
    if timer <= 5:   # the window holding our call closes within a timer period
        sc = wait_scrape(svc, lambda s: (s.one("telemetry_gws_auth_req_time", metricType="count") or 0) >= 1,
                         "an auth window with a call", 3 * timer + 5)
        avg = sc.one("telemetry_gws_auth_req_time", metricType="avg")
        lo = sc.one("telemetry_gws_auth_req_time", metricType="min")
        hi = sc.one("telemetry_gws_auth_req_time", metricType="max")
        assert 0 < lo <= avg <= hi < 60000, (lo, avg, hi)
    assert sc.one("tlm_auth_cache_entries") >= 1


@pytest.mark.timeout(30)
def test_pipeline_and_process_metrics(svc):
    """Records received / rejected by reason / written by kind, ack latency, buffer depth,
    process metrics of both processes."""
    before = wait_scrape(svc, lambda s: s.series("tlm_records_received_total"), "ingest metrics")
    kinds = ("trace", "event", "metric")
    w0 = {k: before.value("tlm_records_written_total", kind=k) for k in kinds}
    r0 = {k: before.value("tlm_records_received_total", kind=k) for k in kinds}
    rej0 = before.value("tlm_records_rejected_total", reason="missing_name")
    acks0 = before.value("tlm_ack_latency_seconds_count")
    res = post_ok(svc, {"appName": "wwe_ui", "traces": [{"msg": "a"}, {"msg": "b"}],
                        "events": [{"name": "pipeline_" + u()}, {"properties": {}}],
                        "metrics": [{"name": "pipeline_m", "value": 3}]})
    assert res["accepted"] == 4 and [r["code"] for r in res["rejected"]] == ["missing_name"], res
    want = {"trace": 2, "event": 1, "metric": 1}
    sc = wait_scrape(svc, lambda s: all(s.value("tlm_records_received_total", kind=k) >= r0[k] + want[k] for k in kinds)
                     and s.value("tlm_ack_latency_seconds_count") >= acks0 + 1, "ingest counters of the batch")
    for k in kinds:
        assert sc.one("tlm_records_written_total", kind=k) == w0[k] + want[k], k
        assert sc.one("tlm_records_received_total", kind=k) == r0[k] + want[k], k
    assert sc.one("tlm_records_rejected_total", reason="missing_name") == rej0 + 1
    buckets = sc.series("tlm_ack_latency_seconds_bucket")
    counts = [v for _, v in sorted(buckets, key=lambda lv: float(lv[0]["le"]))]
    assert counts == sorted(counts) and counts[-1] == sc.one("tlm_ack_latency_seconds_count"), buckets
    assert [ls["le"] for ls, _ in buckets][-1] == "+Inf"
    for gauge in ("tlm_pipeline_buffered_records", "tlm_pipeline_buffered_bytes", "tlm_output_buffer_bytes",
                  "tlm_pipeline_inflight_requests", "tlm_ws_sessions", "tlm_sessions_active"):
        assert sc.types.get(gauge) == "gauge" and sc.one(gauge) is not None, gauge
        assert sc.one(gauge) >= 0, gauge
    for fam in PROCESS_FAMILIES:
        comps = {ls.get("component"): v for ls, v in sc.series(fam)}
        assert set(comps) == {"ingest", "logshipper"}, (fam, comps)
    for comp in ("ingest", "logshipper"):
        assert sc.one("process_resident_memory_bytes", component=comp) > 0
        assert sc.one("process_open_fds", component=comp) > 0
        assert sc.one("process_start_time_seconds", component=comp) > 1e9
    assert sc.one("tlm_link_connections") >= 1


@pytest.mark.timeout(30)
def test_websocket_sessions_gauge(svc):
    """tlm_ws_sessions counts an open, authenticated WebSocket connection."""
    base = wait_scrape(svc, lambda s: s.one("tlm_ws_sessions") is not None, "tlm_ws_sessions").one("tlm_ws_sessions")
    ws = W.RawWS(svc)
    try:
        ws.send_text(W.auth_msg("dev-token"))
        ans = ws.recv_json(5, "the auth answer")
        assert ans.get("type") == "auth" and ans.get("ok") is True, ans
        wait_scrape(svc, lambda s: s.one("tlm_ws_sessions") >= base + 1, "tlm_ws_sessions +1")
    finally:
        ws.close()
    wait_scrape(svc, lambda s: s.one("tlm_ws_sessions") <= base, "tlm_ws_sessions back after close")


# ---------------------------------------------------------------------------------------
# cardinality and label values (local instances of their own)

@pytest.mark.local_only
@pytest.mark.timeout(40)
def test_series_cap_bounds_client_chosen_names(tlm_factory):
    """TELEMETRY_METRICS_THRESHOLD=50 and 200 distinct monitored event names: at most 50
    wwe_ui_events series, every refused series counted, existing series keep counting,
    and every record is still written."""
    cap = 50
    t = tlm_factory(env={"TELEMETRY_METRICS_THRESHOLD": str(cap)})
    k = u()
    names = ["error_cap_%s_%03d" % (k, i) for i in range(200)]
    for i in range(0, 200, 50):
        post_ok(t, events_batch("wwe_ui", names[i:i + 50]))
    sc = wait_scrape(t, lambda s: s.one("tlm_records_written_total", kind="event") == 200, "200 events written")
    made = sc.series("wwe_ui_events")
    assert 0 < len(made) <= cap, len(made)
    dropped = sc.one("telemetry_metric_series_dropped_total")
    assert dropped == 200 - len(made), (dropped, len(made))
    assert sc.one("tlm_records_written_total", kind="event") == 200
    kept = made[0][0]["eventName"]
    refused = next(n for n in names if not sc.series("wwe_ui_events", eventName=n))
    post_ok(t, events_batch("wwe_ui", [kept, refused]))
    sc = scrape(t)
    assert sc.value("wwe_ui_events", eventName=kept) == 2
    assert not sc.series("wwe_ui_events", eventName=refused)
    assert sc.one("telemetry_metric_series_dropped_total") == dropped + 1
    assert len(sc.series("wwe_ui_events")) == len(made)
    assert_promtool_accepts(sc)


@pytest.mark.local_only
@pytest.mark.timeout(30)
def test_label_values_cannot_break_the_exposition(tlm_factory):
    """Event names holding ", \\, newline, }, {, =, CR, NUL, U+2028 are escaped: promtool
    accepts the scrape, each name reads back exactly, and no sample can be forged."""
    contracts = [{"appName": "wwe_ui", "monitoredEvents": ["inj_[\\s\\S]*"]}]
    t = tlm_factory(env={"TELEMETRY_CONFIG_CONTRACTS": json.dumps(contracts)})
    names = INJECTION_NAMES
    post_ok(t, events_batch("wwe_ui", names))
    sc = scrape(t)
    assert_promtool_accepts(sc)
    got = {ls["eventName"]: v for ls, v in sc.series("wwe_ui_events")}
    want = {n.replace("\x00", "\ufffd"): 1 for n in names}
    assert got == want, (got, want)
    assert not sc.series("wwe_ui_events", eventName="forged")
    assert sc.types.get("x") is None
    assert 'eventName="inj_q\\"b\\\\c\\nd}e{f=\\"g\\",h"' in sc.text
    for line in sc.text.split("\n"):
        assert not line.startswith("wwe_ui_events{tenantName=\"pulse\",eventName=\"forged\""), line


# ---------------------------------------------------------------------------------------
# a real Prometheus

class Prometheus:
    """/usr/bin/prometheus on a free loopback port, scraping one target every second and
    evaluating deploy/alerts/tlm-rules.yaml every second."""

    def __init__(self, tmp, metrics_url, rules=RULES_FILE):
        self.tmp = os.path.join(tmp, "prometheus")
        os.makedirs(self.tmp, exist_ok=True)
        self.config = os.path.join(self.tmp, "prometheus.yml")
        host = metrics_url.split("://", 1)[1].rstrip("/")
        with open(self.config, "w") as f:    # JSON is YAML
            json.dump({"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                       "rule_files": [rules],
                       "scrape_configs": [{"job_name": "tlm", "metrics_path": "/metrics",
                                           "static_configs": [{"targets": [host]}]}]}, f)
        self.proc = None
        self.url = None

    def check_config(self):
        p = subprocess.run([PROMTOOL, "check", "config", self.config], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=30)
        assert p.returncode == 0, "promtool check config:\n%s" % p.stdout.decode()

    def start(self, attempts=3):
        assert os.access(PROMETHEUS, os.X_OK), "%s missing: apt-get install prometheus (scripts/deps.sh test)" % PROMETHEUS
        for _ in range(attempts):
            port = H.free_port()
            self.url = "http://127.0.0.1:%d" % port
            data = os.path.join(self.tmp, "data-%d" % port)
            self.proc = H.Proc("prometheus", [PROMETHEUS, "--config.file=" + self.config,
                                              "--storage.tsdb.path=" + data,
                                              "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"],
                               dict(os.environ, no_proxy="*", NO_PROXY="*"),
                               os.path.join(self.tmp, "stdout"), os.path.join(self.tmp, "stderr"),
                               cwd=self.tmp).start()

            def ready():
                if not self.proc.alive():
                    return "exited"
                return H.http("GET", self.url + "/-/ready", timeout=2).status_code == 200
            state = H.wait_until(ready, 20, interval=0.1, what="prometheus /-/ready")
            if state is True:
                return self
            if "address already in use" not in self.proc.stderr_text():
                break
        raise AssertionError("prometheus did not start:\n%s" % self.proc.stderr_tail(20))

    def query(self, expr):
        r = H.http("GET", self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}), timeout=5)
        body = r.json()
        assert r.status_code == 200 and body.get("status") == "success", "query %r: %s" % (expr, r.text[:500])
        assert body["data"]["resultType"] == "vector", body
        return [(res["metric"], float(res["value"][1])) for res in body["data"]["result"]]

    def wait_query(self, expr, pred, what, timeout=10.0):
        last = [None]

        def check():
            last[0] = self.query(expr)
            return pred(last[0])
        try:
            H.wait_until(check, timeout, interval=0.2, what=what)
        except TimeoutError:
            raise AssertionError("%s: %r gave %r" % (what, expr, last[0])) from None
        return last[0]

    def rules(self):
        r = H.http("GET", self.url + "/api/v1/rules", timeout=5)
        assert r.status_code == 200, r.text[:300]
        return [rule for g in r.json()["data"]["groups"] for rule in g["rules"]]

    def stop(self):
        """SIGTERM and wait: the exit code (0 when it shut down cleanly)."""
        return self.proc.stop(signal.SIGTERM, 15) if self.proc else None


def _one_value(result):
    return result[0][1] if len(result) == 1 else None


@pytest.mark.local_only
@pytest.mark.timeout(60)
def test_prometheus_scrapes_and_evaluates_the_alert_rules(tlm_factory):
    """A real Prometheus scrapes :9107 every second: the query API returns the values we
    caused, the shipped alert expressions evaluate to results on them, every rule of
    tlm-rules.yaml evaluates without error, and TelemetryDependencyDown fires for gauth."""
    contracts = [{"appName": "wwe_ui",
                  "monitoredEvents": ["error_.*", "disaster_recovery_.*", "inj_[\\s\\S]*"],
                  "monitoredMetrics": [{"name": "http_sync_req_StartContactCenterSession", "value": 2, "type": "gt"}]},
                 {"appName": "softphone",
                  "apdex": {"metrics": {"sip_call_mos": {"satisfiedTH": 3.6, "toleratedTH": 2, "isExtended": True}}}}]
    t = tlm_factory(env={"TELEMETRY_HEALTH_TIMER": "1", "TELEMETRY_CONFIG_CONTRACTS": json.dumps(contracts)})
    prom = Prometheus(t.tmp, t.metrics_url)
    prom.check_config()
    prom.start()
    try:
        prom.wait_query('up{job="tlm"}', lambda r: _one_value(r) == 1, "the tlm target scraped")
        k = u()
        ev = "error_%s" % k
        # step 1: the first samples of the series the increase() expressions need
        post_ok(t, events_batch("wwe_ui", [ev, "error_http_sync_req_Complete", "x" + ev]))
        assert t.post({"appName": "wwe_ui"}, token="bad-" + k).status_code == 401
        prom.wait_query('telemetry_events{eventName="http_error_401"}', lambda r: _one_value(r) == 1,
                        "the first 401 in Prometheus")
        prom.wait_query('wwe_ui_events{eventName="error_http_sync_req_Complete"}', lambda r: _one_value(r) == 1,
                        "the first error_http_sync_req_Complete in Prometheus")
        # step 2: more of everything
        post_ok(t, events_batch("wwe_ui", [ev, ev, "error_http_sync_req_Complete", "error_http_sync_req_Complete"]))
        post_ok(t, metrics_batch("softphone", "sip_call_mos", [4.0, 3.0, 1.0, 1.0]))
        post_ok(t, metrics_batch("wwe_ui", "http_sync_req_StartContactCenterSession", [3]))
        post_ok(t, events_batch("wwe_ui", INJECTION_NAMES))
        for _ in range(2):
            assert t.post({"appName": "wwe_ui"}, token="bad-" + u()).status_code == 401

        res = prom.wait_query('wwe_ui_events{eventName="%s"}' % ev, lambda r: _one_value(r) == 3,
                              "wwe_ui_events of our event at 3")
        m = res[0][0]
        assert (m["tenantName"], m["contactCenterId"], m["job"]) == ("pulse", H.PULSE_CC, "tlm"), m
        assert prom.query('wwe_ui_events{eventName="x%s"}' % ev) == []
        prom.wait_query('softphone_apdex{metricName="sip_call_mos",tenantName="pulse"}',
                        lambda r: r and math.isclose(_one_value(r) or -1, (1 + 1 / 2) / 4), "apdex (1 + 1/2) / 4")
        prom.wait_query('sum(softphone_apdex_samples_total{metricName="sip_call_mos"}) by (zone)',
                        lambda r: {m["zone"]: v for m, v in r} == {"satisfied": 1, "tolerated": 1, "frustrated": 2},
                        "apdex zones 1/1/2")
        prom.wait_query('wwe_ui_metric_violations_total{type="gt"}', lambda r: _one_value(r) == 1, "one violation")
        prom.wait_query('telemetry_events{eventName="http_error_401"}', lambda r: _one_value(r) == 3, "three 401s")
        # hostile label values went through Prometheus's own parser and read back exactly
        prom.wait_query('wwe_ui_events{eventName=~"(?s)inj_.*"}', lambda r: sorted(m["eventName"] for m, v in r if v == 1)
                        == sorted(n.replace("\x00", "\ufffd") for n in INJECTION_NAMES), "the injection names")
        assert prom.query('wwe_ui_events{eventName="forged"}') == []
        assert _one_value(prom.query('up{job="tlm"}')) == 1
        prom.wait_query('telemetry_ready{job="tlm"}', lambda r: _one_value(r) == 1, "the pod ready")
        prom.wait_query('telemetry_dependency_status', lambda r: {m["serviceName"]: v for m, v in r}
                        == {"gauth": 1, "logshipper": 1}, "both dependencies up")
        prom.wait_query('telemetry_gws_auth_req_time{metricType="avg"}', lambda r: len(r) == 1, "auth time avg")
        prom.wait_query('process_resident_memory_bytes{job="tlm"}',
                        lambda r: {m.get("component") for m, v in r if v > 0} == {"ingest", "logshipper"},
                        "process metrics of both components")

        # the shipped alert expressions, read back from Prometheus's loaded rules
        rules = {r["name"]: r for r in prom.rules()}
        for name in ("TelemetryHttpErrors", "WweUiHttpSyncReqCompleteErrors", "TelemetryDependencyDown"):
            assert name in rules, "rule %s not loaded from %s" % (name, RULES_FILE)
        lhs = {}
        for name in ("TelemetryHttpErrors", "WweUiHttpSyncReqCompleteErrors"):
            mt = re.fullmatch(r"(.*\S)\s*>=?\s*[0-9.]+", rules[name]["query"].strip(), re.S)
            assert mt, "cannot split %s's threshold off %r" % (name, rules[name]["query"])
            lhs[name] = mt.group(1)
        r = prom.wait_query(lhs["TelemetryHttpErrors"], lambda r: len(r) == 1 and r[0][1] > 0,
                            "TelemetryHttpErrors' expression > 0 after 401s")
        r = prom.wait_query(lhs["WweUiHttpSyncReqCompleteErrors"], lambda r: len(r) == 1 and r[0][1] > 0,
                            "WweUiHttpSyncReqCompleteErrors' expression > 0")
        assert {k: r[0][0].get(k) for k in ("tenantName", "eventName", "contactCenterId")} == {
            "tenantName": "pulse", "eventName": "error_http_sync_req_Complete", "contactCenterId": H.PULSE_CC}, r

        # every rule evaluated against our series without an error
        H.wait_until(lambda: all(r.get("health") != "unknown" for r in prom.rules()), 10, interval=0.2,
                     what="every rule evaluated once")
        broken = [(r["name"], r.get("lastError")) for r in prom.rules() if r.get("health") != "ok"]
        assert not broken, broken

        # GAuth fails: the status drops to 0, the 10-min average below 0.8, the alert fires
        t.gauth.set_mode("fail")
        prom.wait_query('telemetry_dependency_status{serviceName="gauth"}', lambda r: _one_value(r) == 0,
                        "gauth status 0 in Prometheus")
        alerts = prom.wait_query('ALERTS{alertname="TelemetryDependencyDown",alertstate="firing"}',
                                 lambda r: len(r) >= 1, "TelemetryDependencyDown firing", timeout=25)
        assert {m.get("serviceName") for m, _ in alerts} == {"gauth"}, alerts
    finally:
        try:
            t.gauth.set_mode("ok")
        except Exception:  # noqa: BLE001
            pass
        rc = prom.stop()
    assert rc == 0 and not prom.proc.timed_out, "prometheus did not shut down cleanly (exit %r):\n%s" % (
        rc, prom.proc.stderr_tail(10))


# ---------------------------------------------------------------------------------------
# known gap (reported to the lead): the logshipper link's status cannot be seen

@pytest.mark.local_only
@pytest.mark.timeout(30)
def test_link_down_is_visible_on_metrics(tlm_factory):
    """The ingest is up but cannot reach the logshipper (a different TELEMETRY_SOCKET, as
    with an emptyDir not shared): :9107 must still say the link is down with a
    telemetry_dependency_status series at 0 (serviceName "logshipper", or "ingest" if
    the logshipper names its side), so TelemetryDependencyDown can fire.

    Fails today: the status is rendered by the ingest and travels in STATS frames over
    the very link that is down, so every telemetry_dependency_status series disappears
    from /metrics while the logshipper stays ready."""
    t = tlm_factory(env={"TELEMETRY_HEALTH_TIMER": "1"})
    wait_scrape(t, lambda s: s.one("telemetry_dependency_status", serviceName="logshipper") == 1, "link up")
    t.kill_ingest(signal.SIGTERM)
    env = t.env()
    env["TELEMETRY_SOCKET"] = os.path.join(t.tmp, "not-the-logshipper.sock")
    lost = H.Proc("ingest-elsewhere", [t.ingest_bin], env, t.ingest_stdout, t.ingest_stderr).start()
    try:
        H.wait_until(lambda: H.http("GET", t.ingest_url + "/health/ready", timeout=2).status_code == 503, 10,
                     what="the misconfigured ingest up and not ready")
        last = [None]

        def down_visible():
            last[0] = scrape(t)
            return any(v == 0 for ls, v in last[0].series("telemetry_dependency_status")
                       if ls.get("serviceName") in ("logshipper", "ingest"))
        try:
            H.wait_until(down_visible, 3 * health_timer(t) + 5, interval=0.2, what="link status 0")
        except TimeoutError:
            raise AssertionError("ingest up, link down, but /metrics shows telemetry_dependency_status %r" % (
                last[0].series("telemetry_dependency_status"),)) from None
    finally:
        lost.stop(signal.SIGTERM, 5)
