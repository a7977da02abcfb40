"""Configuration (SPEC 1, 6): a bad variable stops a daemon at start with a message that
names the variable and, for JSON, the line and column."""
import re

import pytest

import tlm_harness as H

pytestmark = pytest.mark.local_only

BAD_TENANTS = '{\n  "2868802f-1763-4ecd-94f6-203400001200": "pulse",\n  "x": \n}'   # error on line 4


@pytest.mark.parametrize("which", ["ingest", "logshipper"])
def test_bad_tenants_json_stops_the_daemon(which):
    rc, err, _ = H.run_daemon_once(which, {"TELEMETRY_CONFIG_TENANTS": BAD_TENANTS}, timeout=5)
    assert rc is not None, "%s kept running with a bad TELEMETRY_CONFIG_TENANTS" % which
    assert rc != 0, "%s exited 0 with a bad TELEMETRY_CONFIG_TENANTS" % which
    assert "TELEMETRY_CONFIG_TENANTS" in err, "stderr does not name the variable:\n%s" % err[-2000:]
    assert re.search(r"line\D{0,3}4\b", err), "stderr does not give line 4:\n%s" % err[-2000:]
    assert re.search(r"column\D{0,3}\d+", err), "stderr does not give the column:\n%s" % err[-2000:]


@pytest.mark.parametrize("which,var,value", [
    ("ingest", "TELEMETRY_PORT", "70000"),
    ("ingest", "TELEMETRY_PORT", "0"),
    ("logshipper", "TELEMETRY_METRICS_PORT", "65536"),
    ("ingest", "TELEMETRY_MAX_BODY_BYTES", "12abc"),
])
def test_bad_number_names_the_variable(which, var, value):
    rc, err, _ = H.run_daemon_once(which, {var: value}, timeout=5)
    assert rc is not None and rc != 0, "%s with %s=%s: exit code %s" % (which, var, value, rc)
    assert var in err, "stderr does not name %s:\n%s" % (var, err[-2000:])


def test_tenants_must_be_an_object():
    rc, err, _ = H.run_daemon_once("ingest", {"TELEMETRY_CONFIG_TENANTS": '["pulse"]'}, timeout=5)
    assert rc is not None and rc != 0, "exit code %s" % rc
    assert "TELEMETRY_CONFIG_TENANTS" in err, err[-2000:]
