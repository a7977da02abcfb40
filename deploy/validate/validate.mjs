#!/usr/bin/env node
// validate.mjs - checks rendered manifests (kubectl kustomize output), one overlay per call:
//   1. every object against its Kubernetes schema (kubernetes-models; ServiceMonitor and
//      PrometheusRule against the Prometheus Operator's CRD schemas) and for unknown fields;
//   2. tlm's deployment rules: the sidecar, security, resources, probes, socket, config,
//      references between objects, selectors, the NetworkPolicy, the HPA.
// Prints one line per check, "PASS <what>" or "FAIL <what>: <why>"; exit 1 if any failed.
//
// node validate.mjs --overlay NAME --file RENDERED.yaml --config-c ../../common/config.c
//      [--min-replicas N] [--external-secret NAME]... [--local-images] [--schema-only]
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import YAML from "yaml";
import { TypeIndex } from "./strict.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const types = new TypeIndex(path.join(here, "node_modules"));

// ---- arguments ------------------------------------------------------------------------------
const args = { external: [], minReplicas: 2, localImages: false, schemaOnly: false };
for (let i = 2; i < process.argv.length; i++) {
    const a = process.argv[i];
    const v = () => process.argv[++i];
    if (a === "--overlay") args.overlay = v();
    else if (a === "--file") args.file = v();
    else if (a === "--config-c") args.configC = v();
    else if (a === "--min-replicas") args.minReplicas = Number(v());
    else if (a === "--external-secret") args.external.push(v());
    else if (a === "--local-images") args.localImages = true;
    else if (a === "--schema-only") args.schemaOnly = true;
    else { console.error(`validate.mjs: unknown argument ${a}`); process.exit(2); }
}
if (!args.overlay || !args.file || (!args.configC && !args.schemaOnly)) {
    console.error("usage: validate.mjs --overlay NAME --file RENDERED.yaml --config-c common/config.c [...]");
    process.exit(2);
}

let failures = 0;
const tag = `[${args.overlay}]`;
function check(what, fn) {
    let why;
    try {
        why = fn();
    } catch (e) {
        why = e && e.message ? e.message : String(e);
    }
    if (why === true || why === undefined || why === null || (Array.isArray(why) && why.length === 0)) {
        console.log(`PASS ${tag} ${what}`);
    } else {
        failures++;
        const text = Array.isArray(why) ? why.join("; ") : String(why);
        console.log(`FAIL ${tag} ${what}: ${text.slice(0, 2000)}`);
    }
}

// ---- the objects ------------------------------------------------------------------------------
const docs = YAML.parseAllDocuments(fs.readFileSync(args.file, "utf8"));
const objs = [];
for (const d of docs) {
    if (d.errors.length) {
        check("YAML parses", () => d.errors.map((e) => e.message));
        continue;
    }
    const o = d.toJS();
    if (o) objs.push(o);
}
check(`rendered ${objs.length} objects`, () => (objs.length > 0 ? true : "no objects"));

// apiVersion + kind -> [module with the model class, .d.ts file of its interface]
function modelModule(apiVersion, kind) {
    if (apiVersion.startsWith("monitoring.coreos.com/")) {
        return `@kubernetes-models/prometheus-operator/${apiVersion}/${kind}`;
    }
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
    return group ? `kubernetes-models/${group}/${version}/${kind}` : `kubernetes-models/${version}/${kind}`;
}

const id = (o) => `${o.kind}/${o.metadata && o.metadata.name}`;
for (const o of objs) {
    check(`${id(o)} matches the ${o.apiVersion} ${o.kind} schema`, () => {
        const mod = modelModule(o.apiVersion || "", o.kind || "");
        let Model;
        try {
            Model = require(mod)[o.kind];
        } catch {
            return `no schema for ${o.apiVersion} ${o.kind} (${mod})`;
        }
        if (!Model) return `no model ${o.kind} in ${mod}`;
        try {
            new Model(o).validate();
        } catch (e) {
            const errs = e.errors || e.details;
            return Array.isArray(errs)
                ? errs.map((x) => `${x.instancePath || "/"} ${x.message} ${JSON.stringify(x.params || {})}`)
                : e.message;
        }
        const dts = types.resolve(mod, path.join(here, "x.mjs"));
        if (!dts) return `no type declarations for ${mod}`;
        const unknown = types.unknownFields(o, { type: { t: "ref", name: `I${o.kind}` }, file: dts });
        return unknown.length ? unknown.map((p) => `unknown field ${p}`) : true;
    });
}

if (args.schemaOnly) process.exit(failures ? 1 : 0);

// ---- tlm's rules ------------------------------------------------------------------------------
const byKind = (kind) => objs.filter((o) => o.kind === kind);
const one = (kind, name) => {
    const o = objs.find((x) => x.kind === kind && x.metadata.name === name);
    if (!o) throw new Error(`no ${kind} ${name}`);
    return o;
};
const matches = (sel, labels) => Object.entries(sel || {}).every(([k, v]) => (labels || {})[k] === v);
const cpuMilli = (q) => (String(q).endsWith("m") ? Number(String(q).slice(0, -1)) : Number(q) * 1000);
function memBytes(q) {
    const m = String(q).match(/^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/);
    if (!m) return NaN;
    const mult = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9, T: 1e12 };
    return Number(m[1]) * (m[2] ? mult[m[2]] : 1);
}

// the variables the daemons know: common/config.c's table
const configSrc = fs.readFileSync(args.configC, "utf8");
const knownVars = new Set([...configSrc.matchAll(/\b(?:I|S|E|JO|JA|B|D|U|L)\(\s*"([A-Z][A-Z0-9_]+)"/g)].map((m) => m[1]));
const intDefault = (name, dflt) => {
    const m = configSrc.match(new RegExp(`I\\(\\s*"${name}",\\s*\\w+,\\s*"(-?\\d+)"`));
    return m ? Number(m[1]) : dflt;
};

let dep, pod, ingest, shipper, cm;
check("Deployment tlm: the ingest container and the logshipper as a native sidecar", () => {
    dep = one("Deployment", "tlm");
    pod = dep.spec.template.spec;
    ingest = (pod.containers || []).find((c) => c.name === "ingest");
    shipper = (pod.initContainers || []).find((c) => c.name === "logshipper");
    const errs = [];
    if (!ingest) errs.push("no container ingest");
    if (!shipper) errs.push("no init container logshipper");
    else if (shipper.restartPolicy !== "Always") errs.push("logshipper init container needs restartPolicy: Always");
    return errs;
});
if (!dep || !ingest || !shipper) {
    console.log(`FAIL ${tag} the other tlm checks need the Deployment above`);
    process.exit(1);
}
const both = [shipper, ingest];

check("ConfigMap of the containers' environment exists and holds only daemon variables", () => {
    const refs = new Set(both.flatMap((c) => (c.envFrom || []).map((e) => e.configMapRef && e.configMapRef.name).filter(Boolean)));
    if (refs.size !== 1) return `expected one configMapRef shared by both containers, got ${[...refs]}`;
    const name = [...refs][0];
    cm = one("ConfigMap", name);
    for (const c of both) {
        if (!(c.envFrom || []).some((e) => e.configMapRef && e.configMapRef.name === name)) return `${c.name} lacks envFrom ${name}`;
    }
    const unknown = Object.keys(cm.data || {}).filter((k) => !knownVars.has(k));
    return unknown.length ? `not variables of common/config.c: ${unknown}` : true;
});
const cfg = (cm && cm.data) || {};

check("configuration: the SPEC section 1 variables are set and their JSON parses", () => {
    const errs = [];
    for (const k of ["TELEMETRY_CONFIG_SERVICE", "TELEMETRY_SERVICES_AUTH", "TELEMETRY_AUTH_CLIENT_ID",
                     "TELEMETRY_CONFIG_TENANTS", "TELEMETRY_CONFIG_CORS"]) {
        if (cfg[k] === undefined) errs.push(`${k} missing`);
    }
    if (cfg.TELEMETRY_CONFIG_SERVICE !== undefined && cfg.TELEMETRY_CONFIG_SERVICE !== "env") errs.push("TELEMETRY_CONFIG_SERVICE must be env");
    for (const [k, want] of [["TELEMETRY_CONFIG_TENANTS", "object"], ["TELEMETRY_CONFIG_CORS", "object"], ["TELEMETRY_CONFIG_CONTRACTS", "array"]]) {
        if (cfg[k] === undefined) continue;
        try {
            const v = JSON.parse(cfg[k]);
            const is = Array.isArray(v) ? "array" : typeof v;
            if (is !== want) errs.push(`${k} must be a JSON ${want}, is ${is}`);
        } catch (e) {
            errs.push(`${k}: ${e.message}`);
        }
    }
    if (cfg.TELEMETRY_SERVICES_AUTH && !/^https?:\/\/[^/\s]+/.test(cfg.TELEMETRY_SERVICES_AUTH)) errs.push("TELEMETRY_SERVICES_AUTH is not an http(s) URL");
    return errs;
});

check("client secret: from a Secret (secretKeyRef), never in the ConfigMap or a literal", () => {
    const errs = [];
    if ("TELEMETRY_AUTH_CLIENT_SECRET" in cfg) errs.push("TELEMETRY_AUTH_CLIENT_SECRET is in the ConfigMap");
    const e = (ingest.env || []).find((x) => x.name === "TELEMETRY_AUTH_CLIENT_SECRET");
    if (!e) errs.push("ingest has no TELEMETRY_AUTH_CLIENT_SECRET");
    else if (!(e.valueFrom && e.valueFrom.secretKeyRef)) errs.push("TELEMETRY_AUTH_CLIENT_SECRET is not a secretKeyRef");
    for (const c of [...both, ...(pod.containers || [])]) {
        for (const x of c.env || []) {
            if (!knownVars.has(x.name)) errs.push(`${c.name}: env ${x.name} is no variable of common/config.c`);
            if (/SECRET|TOKEN|PASSWORD/.test(x.name) && x.value !== undefined) errs.push(`${c.name}: ${x.name} has a literal value`);
        }
    }
    return errs;
});

check("references: every ConfigMap and Secret the pod names exists (or is external)", () => {
    const errs = [];
    for (const c of [...(pod.initContainers || []), ...(pod.containers || [])]) {
        for (const e of c.envFrom || []) {
            if (e.configMapRef && !objs.some((o) => o.kind === "ConfigMap" && o.metadata.name === e.configMapRef.name)) errs.push(`ConfigMap ${e.configMapRef.name}`);
            if (e.secretRef && !objs.some((o) => o.kind === "Secret" && o.metadata.name === e.secretRef.name) && !args.external.includes(e.secretRef.name)) errs.push(`Secret ${e.secretRef.name}`);
        }
        for (const x of c.env || []) {
            const r = x.valueFrom && x.valueFrom.secretKeyRef;
            if (!r) continue;
            const s = objs.find((o) => o.kind === "Secret" && o.metadata.name === r.name);
            if (s) {
                if (!((s.data && r.key in s.data) || (s.stringData && r.key in s.stringData))) errs.push(`Secret ${r.name} has no key ${r.key}`);
            } else if (!args.external.includes(r.name)) {
                errs.push(`Secret ${r.name} (neither rendered nor declared external)`);
            }
        }
    }
    return errs.length ? `missing: ${errs}` : true;
});

check("security: non-root, read-only root, no capabilities, no privilege escalation, seccomp RuntimeDefault, no token", () => {
    const errs = [];
    const psc = pod.securityContext || {};
    if (psc.runAsNonRoot !== true) errs.push("pod runAsNonRoot is not true");
    if (!(Number(psc.runAsUser) > 0)) errs.push("pod runAsUser is not a non-zero uid");
    if (!psc.seccompProfile || psc.seccompProfile.type !== "RuntimeDefault") errs.push("pod seccompProfile is not RuntimeDefault");
    if (pod.automountServiceAccountToken !== false) errs.push("automountServiceAccountToken is not false");
    if (pod.hostNetwork || pod.hostPID || pod.hostIPC) errs.push("host namespaces used");
    for (const c of [...(pod.initContainers || []), ...(pod.containers || [])]) {
        const sc = c.securityContext || {};
        if (sc.allowPrivilegeEscalation !== false) errs.push(`${c.name}: allowPrivilegeEscalation is not false`);
        if (sc.readOnlyRootFilesystem !== true) errs.push(`${c.name}: readOnlyRootFilesystem is not true`);
        if (sc.privileged) errs.push(`${c.name}: privileged`);
        if (!(sc.capabilities && (sc.capabilities.drop || []).includes("ALL"))) errs.push(`${c.name}: capabilities do not drop ALL`);
        if ((sc.capabilities && sc.capabilities.add || []).length) errs.push(`${c.name}: adds capabilities`);
        if (sc.runAsUser === 0 || sc.runAsNonRoot === false) errs.push(`${c.name}: runs as root`);
        for (const p of c.ports || []) if (p.hostPort) errs.push(`${c.name}: hostPort ${p.hostPort}`);
    }
    if (dep.spec.template.spec.serviceAccountName) {
        const sa = objs.find((o) => o.kind === "ServiceAccount" && o.metadata.name === pod.serviceAccountName);
        if (!sa) errs.push(`ServiceAccount ${pod.serviceAccountName} not rendered`);
        else if (sa.automountServiceAccountToken !== false) errs.push("ServiceAccount automountServiceAccountToken is not false");
    }
    return errs;
});

check("resources: requests = limits, 500m CPU and 1000Mi memory per pod in all", () => {
    const errs = [];
    let cpu = 0, mem = 0;
    for (const c of both) {
        const r = c.resources || {};
        for (const k of ["cpu", "memory"]) {
            const req = (r.requests || {})[k], lim = (r.limits || {})[k];
            if (req === undefined || lim === undefined) errs.push(`${c.name}: ${k} request and limit needed`);
            else if ((k === "cpu" ? cpuMilli(req) !== cpuMilli(lim) : memBytes(req) !== memBytes(lim))) errs.push(`${c.name}: ${k} request ${req} != limit ${lim}`);
        }
        cpu += cpuMilli((r.limits || {}).cpu || 0);
        mem += memBytes((r.limits || {}).memory || 0);
    }
    const others = (pod.containers || []).filter((c) => c.name !== "ingest");
    if (others.length) errs.push(`unexpected containers in the pod: ${others.map((c) => c.name)}`);
    if (cpu !== 500) errs.push(`CPU limits add up to ${cpu}m, not 500m`);
    if (mem !== 1000 * 1024 * 1024) errs.push(`memory limits add up to ${mem / 1024 / 1024}Mi, not 1000Mi`);
    return errs;
});

check("probes: liveness /health/live and readiness /health/ready over HTTP on each container's own port", () => {
    const errs = [];
    const want = { ingest: Number(cfg.TELEMETRY_PORT || 8107), logshipper: Number(cfg.TELEMETRY_METRICS_PORT || 9107) };
    for (const c of both) {
        const port = (c.ports || []).find((p) => p.containerPort === want[c.name]);
        if (!port) { errs.push(`${c.name}: no containerPort ${want[c.name]}`); continue; }
        for (const [probe, p] of [["livenessProbe", "/health/live"], ["readinessProbe", "/health/ready"], ["startupProbe", "/health/live"]]) {
            const g = c[probe] && c[probe].httpGet;
            if (!g) { errs.push(`${c.name}: no httpGet ${probe}`); continue; }
            if (g.path !== p) errs.push(`${c.name}: ${probe} path ${g.path}, want ${p}`);
            if (g.port !== port.name && g.port !== port.containerPort) errs.push(`${c.name}: ${probe} port ${g.port} is not ${port.name}`);
        }
    }
    return errs;
});

check("socket: one emptyDir mounted by both containers at the directory of TELEMETRY_SOCKET", () => {
    const sock = cfg.TELEMETRY_SOCKET || "/run/tlm/tlm.sock";
    const dir = path.posix.dirname(sock);
    const vols = (pod.volumes || []).filter((v) => v.emptyDir);
    const errs = [];
    const names = both.map((c) => ((c.volumeMounts || []).find((m) => m.mountPath === dir) || {}).name);
    if (names.some((n) => !n)) errs.push(`a container does not mount ${dir}`);
    else if (names[0] !== names[1]) errs.push(`different volumes at ${dir}: ${names}`);
    else if (!vols.some((v) => v.name === names[0])) errs.push(`volume ${names[0]} is not an emptyDir`);
    return errs;
});

check("termination: grace period longer than preStop + both drains (TELEMETRY_DRAIN_TIMEOUT)", () => {
    const drain = Number(cfg.TELEMETRY_DRAIN_TIMEOUT || intDefault("TELEMETRY_DRAIN_TIMEOUT", 20));
    const pre = (((ingest.lifecycle || {}).preStop || {}).sleep || {}).seconds || 0;
    const grace = pod.terminationGracePeriodSeconds ?? 30;
    const need = pre + 2 * drain;
    return grace > need ? true : `terminationGracePeriodSeconds ${grace} <= preStop ${pre} + 2 x drain ${drain}`;
});

check(args.localImages ? "images: local, never pulled" : "images: from a registry, pinned (no :latest, no :dev, no localhost/)", () => {
    const errs = [];
    for (const d of byKind("Deployment")) {
        for (const c of [...(d.spec.template.spec.initContainers || []), ...d.spec.template.spec.containers]) {
            const img = c.image || "";
            if (args.localImages) {
                if (c.imagePullPolicy === "Always") errs.push(`${c.name}: imagePullPolicy Always`);
            } else {
                if (img.startsWith("localhost/")) errs.push(`${c.name}: local image ${img}`);
                if (!/[:@]/.test(img.split("/").pop()) || /:(latest|dev)$/.test(img)) errs.push(`${c.name}: unpinned image ${img}`);
            }
        }
    }
    return errs;
});

check("replicas: the HPA owns the count (no replicas in the Deployment), at least " + args.minReplicas, () => {
    const errs = [];
    const hpa = one("HorizontalPodAutoscaler", "tlm");
    const t = hpa.spec.scaleTargetRef;
    if (t.kind !== "Deployment" || t.name !== "tlm" || t.apiVersion !== "apps/v1") errs.push(`HPA targets ${t.apiVersion} ${t.kind} ${t.name}`);
    if (dep.spec.replicas !== undefined) errs.push("the Deployment sets replicas (an apply would fight the HPA)");
    if ((hpa.spec.minReplicas ?? 1) < args.minReplicas) errs.push(`minReplicas ${hpa.spec.minReplicas} < ${args.minReplicas}`);
    if (hpa.spec.maxReplicas < (hpa.spec.minReplicas ?? 1)) errs.push("maxReplicas < minReplicas");
    const pdb = one("PodDisruptionBudget", "tlm");
    if (!matches(pdb.spec.selector.matchLabels, dep.spec.template.metadata.labels)) errs.push("the PDB does not select the pods");
    return errs;
});

check("Service tlm: selects the pods, 8107 -> the ingest, 9107 -> the logshipper", () => {
    const svc = one("Service", "tlm");
    const errs = [];
    if (!matches(svc.spec.selector, dep.spec.template.metadata.labels)) errs.push("selector does not match the pod labels");
    if (!matches(dep.spec.selector.matchLabels, dep.spec.template.metadata.labels)) errs.push("Deployment selector does not match its template");
    for (const [port, c] of [[8107, ingest], [9107, shipper]]) {
        const sp = svc.spec.ports.find((p) => p.port === port);
        if (!sp) { errs.push(`no port ${port}`); continue; }
        const tp = sp.targetPort ?? sp.port;
        if (!(c.ports || []).some((p) => p.name === tp || p.containerPort === tp)) errs.push(`port ${port} targets ${tp}, not a port of ${c.name}`);
    }
    return errs;
});

check("Ingress: every path to Service tlm:8107, WebSocket timeouts and body size for ingress-nginx", () => {
    const ing = one("Ingress", "tlm");
    const svc = one("Service", "tlm");
    const errs = [];
    const a = ing.metadata.annotations || {};
    const idle = Number(cfg.TELEMETRY_WS_IDLE_TIMEOUT || intDefault("TELEMETRY_WS_IDLE_TIMEOUT", 120));
    for (const k of ["proxy-read-timeout", "proxy-send-timeout"]) {
        const v = Number(a[`nginx.ingress.kubernetes.io/${k}`]);
        if (!(v > idle)) errs.push(`${k} ${a[`nginx.ingress.kubernetes.io/${k}`]} must exceed TELEMETRY_WS_IDLE_TIMEOUT ${idle}`);
    }
    const maxBody = Number(cfg.TELEMETRY_MAX_BODY_BYTES || intDefault("TELEMETRY_MAX_BODY_BYTES", 1048576));
    if (!(memBytes((a["nginx.ingress.kubernetes.io/proxy-body-size"] || "1m").replace(/m$/i, "Mi").replace(/k$/i, "Ki")) > maxBody)) {
        errs.push(`proxy-body-size must exceed TELEMETRY_MAX_BODY_BYTES ${maxBody} (the service answers 413 itself)`);
    }
    const paths = (ing.spec.rules || []).flatMap((r) => (r.http || {}).paths || []);
    if (!paths.some((p) => p.path === "/" && p.pathType === "Prefix")) errs.push("no Prefix / path");
    for (const p of paths) {
        const b = p.backend.service;
        const sp = b && svc.spec.ports.find((x) => x.name === b.port.name || x.port === b.port.number);
        if (!b || b.name !== "tlm" || !sp || sp.port !== 8107) errs.push(`path ${p.path} does not go to tlm:8107`);
    }
    return errs;
});

check("ServiceMonitor: selects Service tlm and scrapes its metrics port", () => {
    const sm = one("ServiceMonitor", "tlm");
    const svc = one("Service", "tlm");
    const errs = [];
    if (!matches(sm.spec.selector.matchLabels, svc.metadata.labels)) errs.push("selector does not match the Service labels");
    for (const e of sm.spec.endpoints) {
        const sp = svc.spec.ports.find((p) => p.name === e.port);
        if (!sp || sp.port !== 9107) errs.push(`endpoint port ${e.port} is not the Service's 9107`);
        if ((e.path || "/metrics") !== "/metrics") errs.push(`path ${e.path}`);
    }
    one("PrometheusRule", "tlm");
    return errs;
});

check("NetworkPolicy: in only 8107 and 9107 from named peers, out only DNS and GAuth", () => {
    const np = one("NetworkPolicy", "tlm");
    const errs = [];
    const s = np.spec;
    if (!matches(s.podSelector.matchLabels, dep.spec.template.metadata.labels)) errs.push("podSelector does not select the pods");
    for (const t of ["Ingress", "Egress"]) if (!(s.policyTypes || []).includes(t)) errs.push(`policyTypes lacks ${t}`);
    const inPorts = new Set();
    for (const r of s.ingress || []) {
        if (!r.from || !r.from.length) errs.push("an ingress rule without `from` admits everyone");
        if (!r.ports || !r.ports.length) errs.push("an ingress rule without ports");
        for (const p of r.ports || []) inPorts.add(p.port);
    }
    const wantIn = [Number(cfg.TELEMETRY_PORT || 8107), Number(cfg.TELEMETRY_METRICS_PORT || 9107)];
    if ([...inPorts].sort().join() !== wantIn.sort().join()) errs.push(`ingress ports ${[...inPorts]}, want ${wantIn}`);
    const egress = s.egress || [];
    if (egress.length !== 2) errs.push(`${egress.length} egress rules, want 2 (DNS, GAuth)`);
    for (const r of egress) {
        if (!r.to || !r.to.length) errs.push("an egress rule without `to` lets out everything");
        if (!r.ports || !r.ports.length) errs.push("an egress rule without ports");
    }
    const dns = egress.find((r) => (r.ports || []).some((p) => p.port === 53));
    if (!dns || !["UDP", "TCP"].every((pr) => dns.ports.some((p) => p.port === 53 && p.protocol === pr))) errs.push("DNS (53 UDP and TCP) not allowed out");
    return errs;
});

process.exit(failures ? 1 : 0);
