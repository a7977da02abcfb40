"""CORS over HTTP (SPEC 2; DESIGN "CORS"): preflights answered from the union of every
tenant's allow-list, real requests checked against the token's tenant.

Harness CORS: pulse = http://localhost:8080, http://127.0.0.1:8080, domain pulse.example.com;
acme = https://desktop.acme.example. This module's service adds TELEMETRY_CORS_DOMAIN.
"""
import pytest

from tlm_harness import assert_error, uniq

API = "/api/v1/telemetry"
GLOBAL_DOMAIN = "corp.example.net"
CORS_HEADERS = ("Access-Control-Allow-Origin", "Access-Control-Allow-Credentials",
                "Access-Control-Allow-Methods", "Access-Control-Allow-Headers")


@pytest.fixture(scope="module")
def svc(module_factory, request):
    t = module_factory(env={"TELEMETRY_CORS_DOMAIN": GLOBAL_DOMAIN}, name="cors")
    return t if t is not None else request.getfixturevalue("tlm")


def global_domain(t):
    d = t.cfg("TELEMETRY_CORS_DOMAIN")
    if not d:
        pytest.skip("the target has no TELEMETRY_CORS_DOMAIN")
    return d


def tokens(header):
    return {x.strip().lower() for x in (header or "").split(",") if x.strip()}


def preflight(t, origin, path=API, req_headers="authorization, content-type, content-encoding"):
    h = {"Origin": origin, "Access-Control-Request-Method": "POST"}
    if req_headers:
        h["Access-Control-Request-Headers"] = req_headers
    return t.request("OPTIONS", path, headers=h)


def check_cors_allowed(r, origin):
    assert r.headers.get("Access-Control-Allow-Origin") == origin, \
        "Access-Control-Allow-Origin %r for %s" % (r.headers.get("Access-Control-Allow-Origin"), origin)
    assert r.headers.get("Access-Control-Allow-Credentials") == "true", dict(r.headers)
    assert "origin" in tokens(r.headers.get("Vary")), "Vary: %r" % r.headers.get("Vary")


def check_no_cors(r):
    present = {h: r.headers[h] for h in CORS_HEADERS if h in r.headers}
    assert not present, "CORS headers on a refused origin: %r" % present


ALLOWED = [
    ("http://localhost:8080", "pulse exact url"),
    ("http://127.0.0.1:8080", "pulse exact url"),
    ("https://pulse.example.com", "pulse domain"),
    ("https://a.b.pulse.example.com", "pulse subdomain"),
    ("http://pulse.example.com:3000", "pulse domain, any port"),
    ("https://desktop.acme.example", "acme exact url"),
]
REFUSED = [
    ("https://evil.example", "unknown"),
    ("http://localhost:8081", "exact url, other port"),
    ("https://localhost:8080", "exact url, other scheme"),
    ("http://desktop.acme.example", "exact url, other scheme"),
    ("https://desktop.acme.example.evil", "exact url as prefix"),
    ("https://evilpulse.example.com", "domain suffix without a dot boundary"),
    ("https://pulse.example.com.evil.example", "domain as prefix"),
    ("https://example.com", "parent of a domain"),
    ("null", "opaque origin"),
]


@pytest.mark.parametrize("origin,why", ALLOWED, ids=[o for o, _ in ALLOWED])
def test_preflight_allowed_origin(svc, origin, why):
    r = preflight(svc, origin)
    assert r.status_code == 204, "%s (%s): %d %s" % (origin, why, r.status_code, r.text[:200])
    check_cors_allowed(r, origin)
    assert {"post", "options"} <= tokens(r.headers.get("Access-Control-Allow-Methods")), dict(r.headers)
    assert {"authorization", "content-type", "content-encoding"} <= tokens(
        r.headers.get("Access-Control-Allow-Headers")), dict(r.headers)
    assert r.headers.get("Access-Control-Max-Age") == "600", dict(r.headers)
    assert "*" not in r.headers.get("Access-Control-Allow-Origin", "")


@pytest.mark.parametrize("sub", ["", "desk.", "a.b."])
def test_preflight_global_domain(svc, sub):
    origin = "https://%s%s" % (sub, global_domain(svc))
    r = preflight(svc, origin)
    assert r.status_code == 204, r.text[:200]
    check_cors_allowed(r, origin)


def test_preflight_on_the_stream_path(svc):
    r = preflight(svc, "http://localhost:8080", path="/api/v1/stream", req_headers=None)
    assert r.status_code == 204, r.text[:200]
    check_cors_allowed(r, "http://localhost:8080")


@pytest.mark.parametrize("origin,why", REFUSED, ids=[o for o, _ in REFUSED])
def test_preflight_refused_origin(svc, origin, why):
    r = preflight(svc, origin)
    assert r.status_code == 403, "%s (%s) should be refused: %d" % (origin, why, r.status_code)
    check_no_cors(r)


# ---------------------------------------------------------------------------------------
# real requests

def batch(marker):
    return {"appName": "wwe_ui", "traces": [{"msg": marker}]}


@pytest.mark.parametrize("origin,token,tenant", [
    ("http://localhost:8080", "dev-token", "pulse"),
    ("https://a.pulse.example.com", "dev-token", "pulse"),
    ("https://desktop.acme.example", "other-tenant-token", "acme"),
    ("global", "dev-token", "pulse"),
    ("global", "other-tenant-token", "acme"),
])
def test_post_from_allowed_origin_202_with_cors_headers(svc, origin, token, tenant):
    if origin == "global":
        origin = "https://desk." + global_domain(svc)
    m = uniq("cors-ok")
    r = svc.post(batch(m), token=token, headers={"Origin": origin})
    assert r.status_code == 202, "%d %s" % (r.status_code, r.text[:300])
    check_cors_allowed(r, origin)
    (line,) = svc.stdout_lines(m)
    assert line["tenantName"] == tenant, line


@pytest.mark.parametrize("origin,token", [
    ("https://desktop.acme.example", "dev-token"),        # acme's desktop, pulse token
    ("http://localhost:8080", "other-tenant-token"),      # pulse's desktop, acme token
    ("https://pulse.example.com", "other-tenant-token"),
])
def test_post_from_origin_of_another_tenant_403(svc, origin, token):
    m = uniq("cors-xtenant")
    r = svc.post(batch(m), token=token, headers={"Origin": origin})
    assert_error(r, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in r.headers, dict(r.headers)
    assert svc.stdout_lines(m) == [], "records of a refused origin were written"


def test_post_from_origin_allowed_for_no_tenant_403(svc):
    m = uniq("cors-evil")
    r = svc.post(batch(m), token="dev-token", headers={"Origin": "https://evil.example"})
    assert_error(r, 403, "origin_not_allowed")
    check_no_cors(r)
    assert svc.stdout_lines(m) == []


def test_post_without_origin_202(svc):
    m = uniq("cors-none")
    r = svc.post(batch(m), token="dev-token")
    assert r.status_code == 202, r.text[:300]
    assert "Access-Control-Allow-Origin" not in r.headers, dict(r.headers)
    # the answer would differ with an Origin: a shared cache must not serve it to one
    assert "origin" in tokens(r.headers.get("Vary")), "Vary: %r" % r.headers.get("Vary")
    assert len(svc.stdout_lines(m)) == 1


def test_gzip_post_from_allowed_origin(svc):
    m = uniq("cors-gzip")
    r = svc.post(batch(m), token="dev-token", gzip=True, headers={"Origin": "http://127.0.0.1:8080"})
    assert r.status_code == 202, r.text[:300]
    check_cors_allowed(r, "http://127.0.0.1:8080")
    assert len(svc.stdout_lines(m)) == 1


def test_auth_errors_are_readable_by_an_allowed_origin(svc):
    """A 401 to an origin allowed for some tenant carries the CORS headers, so the page can
    read it and refresh its token (otherwise fetch only sees a TypeError)."""
    m = uniq("cors-401")
    r = svc.post(batch(m), token=None, headers={"Origin": "http://localhost:8080"})
    assert_error(r, 401, "missing_token")
    check_cors_allowed(r, "http://localhost:8080")
    assert "retry-after" in tokens(r.headers.get("Access-Control-Expose-Headers")), dict(r.headers)
