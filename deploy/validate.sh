#!/bin/bash
# validate.sh - static checks of everything under deploy/, e2e/kind/ and .github/workflows/,
# no cluster needed (a `make test` suite):
#   - every kustomization (deploy/base, deploy/overlays/*) renders with `kubectl kustomize`;
#   - every rendered object matches its Kubernetes schema, CRDs (ServiceMonitor,
#     PrometheusRule) their Prometheus Operator schema, with no unknown field
#     (deploy/validate/: npm kubernetes-models + @kubernetes-models/prometheus-operator);
#   - tlm's deployment rules on each render (sidecar, security, resources, probes, socket,
#     config names against common/config.c, references, selectors, NetworkPolicy, HPA);
#   - the podman rendering of the kind overlay (deploy/podman/render.py) is a valid Pod of the
#     expected shape;
#   - the Dockerfiles follow the image rules (debian:bookworm-slim, numeric non-root USER,
#     exec-form ENTRYPOINT, STOPSIGNAL SIGTERM, OCI labels, multi-stage for the daemons);
#   - the GitHub workflows against the workflow schema (npm @action-validator/cli);
#   - shellcheck on every script of deploy/, e2e/kind/ and scripts/podman-setup.sh.
# Last line: "deploy-validate: N passed, N failed".
# npm: `npm ci` in deploy/validate/ when node_modules is missing or older than the lock file.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
VDIR=deploy/validate
PY=/usr/bin/python3
passed=0
failed=0
work="$(mktemp -d "${TMPDIR:-/tmp}/tlm-deploy-validate.XXXXXX")"
trap 'rm -rf "$work"' EXIT

pass() { passed=$((passed + 1)); printf 'PASS %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL %s\n' "$*"; }
finish() {
    printf 'deploy-validate: %d passed, %d failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ]
    exit $?
}
count_lines() {   # counts the PASS/FAIL lines of a checker's output (already printed)
    local p f
    p=$(grep -c '^PASS ' "$1")
    f=$(grep -c '^FAIL ' "$1")
    passed=$((passed + p))
    failed=$((failed + f))
}

# ---- tools -------------------------------------------------------------------------------------
for t in kubectl node npm shellcheck; do
    if ! command -v "$t" >/dev/null 2>&1; then
        case "$t" in
            kubectl) hint="the kubectl package of this machine image; elsewhere https://kubernetes.io/docs/tasks/tools/ (Debian 12 has no kubectl package)" ;;
            shellcheck) hint="apt-get install shellcheck" ;;
            *) hint="apt-get install nodejs npm" ;;
        esac
        fail "tool $t is missing ($hint)"
    fi
done
[ "$failed" -eq 0 ] || finish

stamp="$VDIR/node_modules/.tlm-package-lock.json"
if ! cmp -s "$VDIR/package-lock.json" "$stamp"; then
    if (cd "$VDIR" && npm ci --no-audit --no-fund --loglevel=error) >"$work/npm.log" 2>&1; then
        cp "$VDIR/package-lock.json" "$stamp"
        pass "npm ci in $VDIR"
    else
        cat "$work/npm.log"
        fail "npm ci in $VDIR"
        finish
    fi
else
    pass "npm packages of $VDIR match its package-lock.json"
fi

# ---- manifests ---------------------------------------------------------------------------------
# per kustomization: the rules it must meet (default: production's)
rules_for() {
    case "$1" in
        base) echo "--external-secret tlm-auth --local-images" ;;    # images are logical names
        kind) echo "--min-replicas 1 --local-images" ;;              # one pod for the suite
        *) echo "--external-secret tlm-auth" ;;                      # production and others
    esac
}
for dir in deploy/base deploy/overlays/*/; do
    dir="${dir%/}"
    name="$(basename "$dir")"
    [ -f "$dir/kustomization.yaml" ] || continue
    out="$work/$name.yaml"
    if kubectl kustomize "$dir" >"$out" 2>"$work/$name.err"; then
        pass "[$name] kubectl kustomize $dir"
    else
        fail "[$name] kubectl kustomize $dir: $(head -c 600 "$work/$name.err")"
        continue
    fi
    # shellcheck disable=SC2046 # the rules are words
    node "$VDIR/validate.mjs" --overlay "$name" --file "$out" --config-c common/config.c \
        $(rules_for "$name") >"$work/$name.check" 2>&1
    cat "$work/$name.check"
    count_lines "$work/$name.check"
    if ! grep -q '^PASS ' "$work/$name.check"; then
        fail "[$name] validate.mjs ran no check"
    fi
done

# ---- the podman rendering of the kind overlay -------------------------------------------------------
if [ -f "$work/kind.yaml" ]; then
    if "$PY" deploy/podman/render.py --name tlm-validate --suffix v1 --ingest-port 18107 \
            --metrics-port 19107 --gauth-port 18095 <"$work/kind.yaml" >"$work/podman.yaml" 2>"$work/podman.err"; then
        node "$VDIR/validate.mjs" --overlay podman --file "$work/podman.yaml" --schema-only >"$work/podman.check" 2>&1
        cat "$work/podman.check"
        count_lines "$work/podman.check"
        if "$PY" - "$work/podman.yaml" >"$work/podman.shape" 2>&1 <<'EOF'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted(d["kind"] for d in docs)
assert kinds == ["ConfigMap", "Pod"], "objects %s, want a ConfigMap and a Pod" % kinds
cm = next(d for d in docs if d["kind"] == "ConfigMap")
pod = next(d for d in docs if d["kind"] == "Pod")
spec = pod["spec"]
names = [c["name"] for c in spec["containers"]]
assert names == ["logshipper", "ingest", "gauth"], "containers %s: the sidecar first, then ingest, then the double" % names
assert not spec.get("initContainers"), "init containers left (podman would wait for the sidecar to end)"
assert cm["data"]["TELEMETRY_SERVICES_AUTH"] == "http://127.0.0.1:8095", cm["data"]["TELEMETRY_SERVICES_AUTH"]
assert cm["metadata"]["name"].endswith("-v1"), "ConfigMap name has no per-run suffix"
for c in spec["containers"]:
    assert c["imagePullPolicy"] == "Never", c["name"]
    for k in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "restartPolicy"):
        assert k not in c, "%s keeps %s" % (c["name"], k)
    for p in c.get("ports", []):
        assert p.get("hostIP") == "127.0.0.1" and p.get("hostPort"), "%s port %s not on loopback" % (c["name"], p)
    for e in c.get("env", []):
        assert "valueFrom" not in e, "%s: %s still references a Secret" % (c["name"], e["name"])
    for ef in c.get("envFrom", []):
        assert ef["configMapRef"]["name"] == cm["metadata"]["name"], ef
    sc = c.get("securityContext", {})
    if c["name"] != "gauth":
        assert sc.get("readOnlyRootFilesystem") is True and sc.get("capabilities", {}).get("drop") == ["ALL"], c["name"]
vols = [v["name"] for v in spec["volumes"]]
assert vols and all(v.endswith("-v1") for v in vols), "volume names without the per-run suffix: %s" % vols
mounts = {c["name"]: [m["name"] for m in c.get("volumeMounts", [])] for c in spec["containers"]}
assert mounts["ingest"] == mounts["logshipper"] == vols, "the socket volume is not shared: %s" % mounts
print("ok")
EOF
        then
            pass "[podman] render.py: one Pod, sidecar first, loopback host ports, per-run names, no probes"
        else
            fail "[podman] render.py shape: $(tail -3 "$work/podman.shape")"
        fi
    else
        fail "[podman] render.py: $(tail -5 "$work/podman.err")"
    fi
fi

# ---- Dockerfiles ---------------------------------------------------------------------------------
for f in deploy/images/*.Dockerfile; do
    if why="$("$PY" - "$f" <<'EOF'
import json, os, re, sys
path = sys.argv[1]
text = re.sub(r"\\\n", " ", open(path).read())
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
ins = [(l.split(None, 1)[0].upper(), l.split(None, 1)[1] if " " in l else "") for l in lines]
errs = []
froms = [a for i, a in ins if i == "FROM"]
if not froms or any(not a.split()[0] == "debian:bookworm-slim" for a in froms):
    errs.append("every FROM must be debian:bookworm-slim (got %s)" % froms)
final = len(ins) - 1 - [i for i, _ in ins][::-1].index("FROM")
tail = ins[final:]
users = [a for i, a in tail if i == "USER"]
if not users or not re.fullmatch(r"[1-9]\d*:[1-9]\d*", users[-1]):
    errs.append("final stage needs a numeric non-root USER uid:gid (got %s)" % users)
eps = [a for i, a in tail if i == "ENTRYPOINT"]
try:
    ep = json.loads(eps[-1]) if eps else None
except ValueError:
    ep = None
if not isinstance(ep, list) or not ep or not ep[0].startswith("/"):
    errs.append("ENTRYPOINT must be exec form with an absolute path (no shell at run time)")
elif os.path.basename(ep[0]) in ("sh", "bash", "dash"):
    errs.append("ENTRYPOINT runs a shell")
if ("STOPSIGNAL", "SIGTERM") not in tail:
    errs.append("STOPSIGNAL SIGTERM missing")
labels = " ".join(a for i, a in tail if i == "LABEL")
for key in ("org.opencontainers.image.title", "org.opencontainers.image.revision", "org.opencontainers.image.version"):
    if key not in labels:
        errs.append("label %s missing" % key)
if any(i == "RUN" and "apt-get install" in a and "--no-install-recommends" not in a for i, a in ins):
    errs.append("apt-get install without --no-install-recommends")
if any(i == "RUN" and "apt-get install" in a and "rm -rf /var/lib/apt/lists" not in a for i, a in tail):
    errs.append("final stage keeps apt lists")
daemon = os.path.basename(path).split(".")[0] in ("ingest", "logshipper")
if daemon:
    if len(froms) < 2:
        errs.append("a daemon image is multi-stage (build, then runtime)")
    if any(re.search(r"\b(gcc|make|-dev)\b", a) for i, a in tail if i == "RUN" and "apt-get install" in a):
        errs.append("the runtime stage installs build tools")
    if not any(i == "COPY" and "--from=" in a for i, a in tail):
        errs.append("the runtime stage does not COPY --from the build stage")
ignore = path + ".dockerignore"
if not os.path.exists(ignore):
    errs.append("no %s (the build context filter)" % os.path.basename(ignore))
print("; ".join(errs))
sys.exit(1 if errs else 0)
EOF
)"; then
        pass "[images] $f follows the image rules"
    else
        fail "[images] $f: $why"
    fi
done

# ---- workflows -----------------------------------------------------------------------------------
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
[ ${#workflows[@]} -gt 0 ] || fail "[workflows] no .github/workflows/*.yml"
for f in "${workflows[@]}"; do
    if "$VDIR/node_modules/.bin/action-validator" "$f" >"$work/wf.out" 2>&1; then
        pass "[workflows] $f matches the GitHub workflow schema"
    else
        fail "[workflows] $f: $("$PY" -c 'import json,sys
try:
    d = json.load(open(sys.argv[1]))
    print("; ".join("%s %s" % (e.get("path"), e.get("title")) for e in d.get("errors", []))[:800])
except Exception:
    print(open(sys.argv[1]).read()[:800])' "$work/wf.out")"
    fi
done

# ---- shell scripts -----------------------------------------------------------------------------------
for f in deploy/*.sh deploy/*/*.sh e2e/kind/*.sh scripts/podman-setup.sh; do
    if shellcheck -x "$f" >"$work/sc.out" 2>&1; then
        pass "[shellcheck] $f"
    else
        fail "[shellcheck] $f: $(grep -m3 -E '^(In |.*SC[0-9]+)' "$work/sc.out" | tr '\n' ' ')"
    fi
done
if "$PY" -m py_compile deploy/podman/render.py 2>"$work/py.err"; then
    pass "[python] deploy/podman/render.py compiles"
else
    fail "[python] deploy/podman/render.py: $(cat "$work/py.err")"
fi
finish
