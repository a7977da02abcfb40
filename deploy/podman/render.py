#!/usr/bin/python3
"""render.py - turns the kind overlay (`kubectl kustomize deploy/overlays/kind`) into YAML that
`podman kube play` (podman 4.3) runs on one machine: one Pod holding the logshipper, the
ingest and the GAuth double, reachable on loopback ports.

What changes, and why (podman is not a cluster):
  - The Deployment `tlm` becomes a Pod named --name. The native sidecar (an init container
    with restartPolicy: Always) becomes an ordinary container listed first: podman runs
    init containers to completion before the others, and the logshipper never completes.
  - The GAuth double's container joins that pod (no Services, no cluster DNS under podman)
    and TELEMETRY_SERVICES_AUTH points at it on 127.0.0.1.
  - Every container port gets hostIP 127.0.0.1 and a hostPort (--ingest-port, --metrics-port,
    --gauth-port): `kube play` ignores Services.
  - Volume names get --suffix: an emptyDir becomes a named volume shared by every pod that
    uses the same name.
  - Probes and lifecycle hooks are dropped: podman turns httpGet probes into healthchecks
    that run curl through a shell inside the container, and the images have neither (the
    smoke suite asks the health endpoints itself).
  - imagePullPolicy Never: the images are local, no registry is asked.
  - Secrets referenced through secretKeyRef are inlined as values: podman 4.3's kube play
    stores a Secret of the YAML as a podman secret but then fails the secretKeyRef ("secret
    ... is not valid JSON"). The kind overlay's secret is a test value.
  - Objects podman does not run (Service, Ingress, HPA, PDB, NetworkPolicy, ServiceMonitor,
    PrometheusRule, Namespace, ServiceAccount) are left out.
Everything else (images, env from the ConfigMap, resources, securityContext, the shared
emptyDir, the socket path) is the overlay's own.

Usage: kubectl kustomize deploy/overlays/kind | render.py --name tlm-smoke-x --suffix x \
           --ingest-port 18107 --metrics-port 19107 --gauth-port 18095 > pod.yaml
       render.py --config-json < rendered.yaml   prints the tlm ConfigMap's data as JSON
"""
import argparse
import base64
import copy
import json
import sys

import yaml

GAUTH_PORT_IN_POD = 8095


def load(stream):
    return [d for d in yaml.safe_load_all(stream) if d]


def find(docs, kind, name=None):
    for d in docs:
        if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name):
            return d
    raise SystemExit("render.py: no %s%s in the input" % (kind, " " + name if name else ""))


def config_map_of(docs, deployment):
    """The ConfigMap the tlm containers take their environment from."""
    spec = deployment["spec"]["template"]["spec"]
    for c in spec.get("initContainers", []) + spec.get("containers", []):
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef:
                return find(docs, "ConfigMap", ef["configMapRef"]["name"])
    raise SystemExit("render.py: the tlm containers take no envFrom configMapRef")


def secret_value(docs, name, key):
    s = find(docs, "Secret", name)
    if key in s.get("stringData", {}):
        return s["stringData"][key]
    if key in s.get("data", {}):
        return base64.b64decode(s["data"][key]).decode()
    raise SystemExit("render.py: Secret %s has no key %s" % (name, key))


def podman_container(c, docs, host_ports, suffix):
    c = copy.deepcopy(c)
    c.pop("restartPolicy", None)
    for k in ("startupProbe", "livenessProbe", "readinessProbe", "lifecycle"):
        c.pop(k, None)
    c["imagePullPolicy"] = "Never"
    env = []
    for e in c.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            e = {"name": e["name"], "value": secret_value(docs, ref["name"], ref["key"])}
        env.append(e)
    if env:
        c["env"] = env
    for p in c.get("ports", []):
        hp = host_ports.get(p["containerPort"])
        if hp is None:
            raise SystemExit("render.py: no host port for container port %d" % p["containerPort"])
        p["hostPort"] = hp
        p["hostIP"] = "127.0.0.1"
    for m in c.get("volumeMounts", []):
        m["name"] = "%s-%s" % (m["name"], suffix)
    return c


def render(docs, name, suffix, ingest_port, metrics_port, gauth_port):
    dep = find(docs, "Deployment", "tlm")
    gauth = find(docs, "Deployment", "gauth-double")
    cm = copy.deepcopy(config_map_of(docs, dep))
    data = cm["data"]
    in_port, mx_port = int(data.get("TELEMETRY_PORT", 8107)), int(data.get("TELEMETRY_METRICS_PORT", 9107))
    host_ports = {in_port: ingest_port, mx_port: metrics_port, GAUTH_PORT_IN_POD: gauth_port}
    data["TELEMETRY_SERVICES_AUTH"] = "http://127.0.0.1:%d" % GAUTH_PORT_IN_POD
    cm_name = cm["metadata"]["name"]
    cm["metadata"] = {"name": "%s-%s" % (cm_name, suffix), "labels": cm["metadata"].get("labels", {})}

    spec = copy.deepcopy(dep["spec"]["template"]["spec"])
    sidecars = [c for c in spec.pop("initContainers", []) if c.get("restartPolicy") == "Always"]
    containers = sidecars + spec["containers"] + gauth["spec"]["template"]["spec"]["containers"]
    containers = [podman_container(c, docs, host_ports, suffix) for c in containers]
    for c in containers:
        for ef in c.get("envFrom", []):
            if ef.get("configMapRef", {}).get("name") == cm_name:
                ef["configMapRef"]["name"] = cm["metadata"]["name"]
    for v in spec.get("volumes", []):
        v["name"] = "%s-%s" % (v["name"], suffix)
        if "emptyDir" in v:
            v["emptyDir"] = {}   # podman: a named volume; medium/sizeLimit mean nothing there
    for k in ("serviceAccountName", "topologySpreadConstraints", "enableServiceLinks",
              "automountServiceAccountToken"):
        spec.pop(k, None)
    spec["containers"] = containers
    spec["restartPolicy"] = "Never"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": dep["spec"]["template"]["metadata"].get("labels", {})},
        "spec": spec,
    }
    return [cm, pod]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config-json", action="store_true", help="print the tlm ConfigMap's data as JSON")
    ap.add_argument("--name", default="tlm-smoke")
    ap.add_argument("--suffix", default="smoke")
    ap.add_argument("--ingest-port", type=int, default=18107)
    ap.add_argument("--metrics-port", type=int, default=19107)
    ap.add_argument("--gauth-port", type=int, default=18095)
    a = ap.parse_args(argv)
    docs = load(sys.stdin)
    if a.config_json:
        print(json.dumps(config_map_of(docs, find(docs, "Deployment", "tlm"))["data"], sort_keys=True))
        return 0
    out = render(docs, a.name, a.suffix, a.ingest_port, a.metrics_port, a.gauth_port)
    sys.stdout.write("# rendered by deploy/podman/render.py for `podman kube play`\n")
    yaml.safe_dump_all(out, sys.stdout, sort_keys=False, default_flow_style=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
