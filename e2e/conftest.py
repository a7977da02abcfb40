"""conftest.py - fixtures of the e2e suites (see tlm_harness.py for the targets).

  tlm            session: the common service (local processes, or TLM_E2E_TARGET=external)
  gauth          the common service's GAuth double; its fault mode is reset after each test
  tlm_factory    function: make(env={...}) -> a started LocalTarget of its own, closed after
                 the test (skipped on external targets)
  tlm_fresh      function: tlm_factory() with the default test configuration
  tlm_isolated   function: like tlm_fresh on local targets, the common service on external ones
  module_factory module-scoped factory, for modules sharing one specially configured service
Markers: local_only (skipped on external targets), timeout(seconds) (default 60).
"""
import os
import signal
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tlm_harness as H  # noqa: E402

DEFAULT_TEST_TIMEOUT = int(os.environ.get("TLM_E2E_TEST_TIMEOUT", "60"))


def pytest_report_header(config):
    return "tlm e2e target: %s" % H.target_kind()


def pytest_collection_modifyitems(config, items):
    if H.target_kind() == "local":
        return
    skip = pytest.mark.skip(reason="local_only: needs to start, kill or reconfigure processes")
    for item in items:
        if "local_only" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Every test is bounded in time: SIGALRM raises in the test after its limit."""
    m = item.get_closest_marker("timeout")
    secs = int(m.args[0]) if m and m.args else DEFAULT_TEST_TIMEOUT

    def on_alarm(signum, frame):
        raise TimeoutError("test exceeded its %ds time limit" % secs)
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(secs)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    item._tlm_targets_before = {id(t) for t in H.LIVE_TARGETS}
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with the stderr tails of the services it used."""
    outcome = yield
    rep = outcome.get_result()
    if not (rep.failed and rep.when in ("setup", "call") and H.LIVE_TARGETS):
        return
    before = getattr(item, "_tlm_targets_before", set())
    used = {id(v) for v in getattr(item, "funcargs", {}).values()}
    mine = [t for t in H.LIVE_TARGETS if id(t) in used or id(t) not in before]
    text = "\n".join(t.failure_report(15) for t in mine)
    if text.strip():
        rep.sections.append(("tlm daemons (stderr tails)", text))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    notes = H.notes()
    if notes:
        terminalreporter.section("tlm e2e notes")
        for n in notes:
            terminalreporter.write_line(n)


def _make_local(made, env=None, start=True, gauth=None, name=None):
    t = H.LocalTarget(env=env, gauth=gauth, name=name or "instance")
    made.append(t)
    if start:
        t.start()
    return t


@pytest.fixture(scope="session")
def tlm():
    if H.target_kind() == "external":
        yield H.ExternalTarget()
        return
    if H.target_kind() != "local":
        pytest.fail("TLM_E2E_TARGET must be local or external", pytrace=False)
    t = H.LocalTarget(name="session")
    try:
        t.start()
    except Exception as e:  # noqa: BLE001 - one clear message for every test that needs it
        t.close()
        pytest.fail("could not start the service: %s" % e, pytrace=False)
    yield t
    t.close()


@pytest.fixture
def gauth(tlm):
    yield tlm.gauth
    try:
        tlm.gauth.set_mode("ok")
    except Exception:  # noqa: BLE001
        pass


@pytest.fixture
def tlm_factory(request):
    if H.target_kind() != "local":
        pytest.skip("needs a service instance of its own (local target only)")
    made = []

    def make(env=None, start=True, gauth=None, name=None):
        return _make_local(made, env, start, gauth, name or request.node.name)
    yield make
    for t in made:
        t.close()


@pytest.fixture
def tlm_fresh(tlm_factory):
    return tlm_factory()


@pytest.fixture
def tlm_isolated(request):
    """A service of its own on local targets (a test that might wedge it harms no other);
    the common service on external targets."""
    if H.target_kind() != "local":
        yield request.getfixturevalue("tlm")
        return
    made = []
    try:
        yield _make_local(made, name=request.node.name)
    finally:
        for t in made:
            t.close()


@pytest.fixture(scope="module")
def module_factory(request):
    """Like tlm_factory but module-scoped. On external targets it returns None from make()
    so the module fixture can fall back to the common service."""
    made = []

    def make(env=None, start=True, gauth=None, name=None):
        if H.target_kind() != "local":
            return None
        return _make_local(made, env, start, gauth, name or request.module.__name__)
    yield make
    for t in made:
        t.close()
