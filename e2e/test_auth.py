"""Authentication (SPEC 1, 2, 3, 6; DESIGN "Error answers"): GAuth userinfo, tenants,
the token cache, GAuth outages (503 auth_unavailable + Retry-After, cached tokens keep
working) and no token in any log."""
import concurrent.futures
import os
import threading
import time

import pytest

import tlm_harness as H
from tlm_harness import ACME_CC, assert_error, uniq


def batch(marker):
    return {"appName": "wwe_ui", "traces": [{"msg": marker}]}


def test_missing_token_401(tlm):
    m = uniq("notoken")
    r = tlm.post(batch(m), token=None)
    assert_error(r, 401, "missing_token")
    # RFC 9110 15.5.2: a 401 carries the challenge; RFC 6750 3: no error code without a token
    assert r.headers.get("WWW-Authenticate") == 'Bearer realm="telemetry"', dict(r.headers)
    assert tlm.stdout_lines(m) == []


@pytest.mark.smoke
def test_invalid_token_401(tlm):
    m = uniq("badtoken")
    r = tlm.post(batch(m), token=uniq("bogus-token"))
    assert_error(r, 401, "invalid_token")
    assert r.headers.get("WWW-Authenticate") == 'Bearer realm="telemetry", error="invalid_token"', dict(r.headers)
    assert tlm.stdout_lines(m) == []


def test_token_of_unknown_contact_center_403(tlm):
    m = uniq("unknowncc")
    assert_error(tlm.post(batch(m), token="unknown-cc-token"), 403, "unknown_tenant")
    assert tlm.stdout_lines(m) == []


def test_other_tenant_gets_its_own_identity(tlm):
    m = uniq("acme")
    r = tlm.post(batch(m), token="other-tenant-token")
    assert r.status_code == 202, r.text
    (line,) = tlm.stdout_lines(m)
    assert (line["tenantName"], line["contactCenterId"], line["user"]) == ("acme", ACME_CC, "acme-agent1"), line


def test_second_user_of_a_tenant(tlm):
    m = uniq("agent2")
    assert tlm.post(batch(m), token="dev-token-2").status_code == 202
    (line,) = tlm.stdout_lines(m)
    assert line["user"] == "agent2" and line["tenantName"] == "pulse", line


def test_tokens_are_cached(tlm, gauth):
    gauth.reset()
    for i in range(3):
        assert tlm.post(batch(uniq("cache")), token="dev-token-3").status_code == 202
    assert gauth.calls_for("dev-token-3") <= 1, "a valid token must be cached: %s" % gauth.stats()
    bogus = uniq("bogus-token")
    for i in range(3):
        assert_error(tlm.post(batch(uniq("negcache")), token=bogus), 401, "invalid_token")
    assert gauth.calls_for(bogus) <= 1, "a refused token must be remembered for a while: %s" % gauth.stats()


# ---------------------------------------------------------------------------------------
# GAuth outages: a service of its own with a short auth timeout (local); external targets
# use their GAuth double's control API and their own timeout.

@pytest.fixture(scope="module")
def outage_svc(module_factory, tlm):
    t = module_factory(env={"TELEMETRY_AUTH_TIMEOUT_MS": "500"}, name="auth-outage")
    t = t if t is not None else tlm
    yield t
    t.gauth.set_mode("ok")


@pytest.mark.parametrize("mode", ["down", "fail", "stall"])
@pytest.mark.timeout(40)
def test_gauth_outage_503_and_cached_token_still_works(outage_svc, mode):
    t = outage_svc
    timeout_ms = t.cfg_int("TELEMETRY_AUTH_TIMEOUT_MS")
    t.gauth.set_mode("ok")
    warm = uniq("warm")
    assert t.post(batch(warm), token="dev-token").status_code == 202, "token caching before the outage"
    fresh = uniq("never-seen-token")
    try:
        t.gauth.set_mode(mode, stall_ms=timeout_ms + 2000)
        m = uniq("outage-" + mode)
        t0 = time.monotonic()
        r = t.post(batch(m), token=fresh, timeout=timeout_ms / 1000 + 10)
        took = time.monotonic() - t0
        assert_error(r, 503, "auth_unavailable")
        ra = r.headers.get("Retry-After", "")
        assert ra.strip().isdigit(), "503 needs Retry-After (seconds), got %r" % ra
        assert took < timeout_ms / 1000 + 3, "answered after %.1fs with TELEMETRY_AUTH_TIMEOUT_MS=%d" % (took, timeout_ms)
        assert t.stdout_lines(m) == []

        cached = uniq("cached-" + mode)
        r = t.post(batch(cached), token="dev-token", timeout=timeout_ms / 1000 + 10)
        assert r.status_code == 202, "a cached token must work during a GAuth outage: %d %s" % (r.status_code, r.text)
        assert len(t.stdout_lines(cached)) == 1
    finally:
        t.gauth.set_mode("ok")
    # an outage is not a verdict: once GAuth is back the same token is asked again
    assert_error(t.post(batch(uniq("after")), token=fresh), 401, "invalid_token")


def test_no_token_or_secret_in_any_log(tlm, outage_svc):
    """Runs after the tests above (file order): valid, invalid, unknown-tenant and outage
    paths have all been logged by then."""
    secrets = set(tlm.tokens_used) | set(outage_svc.tokens_used) | {H.CLIENT_SECRET}
    secrets |= set(H.USERS)
    assert "dev-token" in secrets and len(secrets) > 5
    for target in {id(tlm): tlm, id(outage_svc): outage_svc}.values():
        logs = target.daemon_logs() + "\n" + target.gauth_logs()
        assert logs.strip() or not target.local, "no logs at all from %s?" % target.name
        leaked = sorted(s for s in secrets if s in logs)
        bad = [ln for ln in logs.splitlines() if any(s in ln for s in leaked)][:5]
        assert not leaked, "tokens/secrets in the logs of %s: %s\n%s" % (target.name, leaked, "\n".join(bad))


@pytest.mark.timeout(90)
def test_token_answer_during_the_parse_queue_gets_202(tlm, gauth):
    """A request whose body is complete waits in the parse queue (1 ms slices between polls)
    behind other bodies; GAuth answers for its new token meanwhile. It must be processed
    once, from the queue, and answered 202. (An answer landing while the request was queued
    used to process it at once and again from the queue, on its released body: 400
    invalid_json for a batch whose records were written.)"""
    big = [{"msg": "queued record %d %s" % (i, "x" * 180)} for i in range(1500)]
    assert tlm.post({"appName": "wwe_ui", "traces": big[:1]}, token="dev-token").status_code == 202  # cached
    codes = []
    try:
        gauth.set_mode("stall", stall_ms=15)  # new tokens are answered while the queue is busy
        for rnd in range(4):
            users = {}
            for i in range(6):
                users[uniq("queue-token")] = {"username": "agent%d" % i, "loginName": "agent%d" % i,
                                              "contactCenterId": ACME_CC, "environmentId": "e2e-environment-0001",
                                              "dbid": 5000 + i, "authorities": ["ROLE_AGENT"]}
            gauth.add_users(users)
            go = threading.Event()

            def send(token, delay):
                go.wait()
                time.sleep(delay)  # a stagger, not a wait: puts these bodies behind the cached ones
                r = tlm.post({"appName": "wwe_ui", "traces": big}, token=token, timeout=60)
                return r.status_code, r.text[:160]

            jobs = [("dev-token", 0.0)] * 10 + [(t, 0.004) for t in users]  # cached bodies first in the queue
            with concurrent.futures.ThreadPoolExecutor(len(jobs)) as ex:
                futs = [ex.submit(send, t, d) for t, d in jobs]
                go.set()
                codes += [f.result() for f in futs]
    finally:
        gauth.set_mode("ok")
    bad = [c for c in codes if c[0] != 202]
    assert not bad, "every batch is valid and must be answered 202 (%d of %d were not): %s" % (
        len(bad), len(codes), bad[:3])


def test_body_text_of_invalid_json_reaches_no_log(tlm_factory):
    """SECURITY.md: bodies are not logged (a token may sit in one). jansson quotes the
    body at a parse error; that part is cut from the answer and so from every log line."""
    t = tlm_factory(env={"API_LOG_LEVEL": "debug", "APP_LOG_LEVEL": "debug"})
    secret = "SK" + os.urandom(5).hex()  # jansson quotes a token of at most 20 bytes
    r = t.post('{"appName":"wwe_ui","traces":[{"msg":"%s' % secret, token="dev-token")
    assert_error(r, 400, "invalid_json")
    msg = r.json()["error"]["message"]
    assert secret not in msg and msg.startswith("line 1, column "), msg
    logs = t.daemon_logs()
    assert "invalid_json" in logs, "the 400 was not logged at debug level"
    assert secret not in logs, [ln for ln in logs.splitlines() if secret in ln][:3]
