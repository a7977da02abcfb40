// strict.mjs - unknown-field check for Kubernetes objects (what `kubeconform -strict` or the
// API server's strict field validation does): kubernetes-models' compiled validators check
// types, enums and required fields, but accept any extra key, so a typo such as
// `readinesProbe` would pass. The field lists come from the same packages' TypeScript
// declarations (.d.ts), read with a small parser of the subset they use: interfaces,
// `export { A as B }`, imports, object literal types, index signatures, Array<...>, unions.
import fs from "node:fs";
import path from "node:path";

export class TypeIndex {
    constructor(nodeModules) {
        this.nodeModules = nodeModules;
        this.files = new Map();   // absolute .d.ts path -> parsed module
    }

    // "pkg/sub" or "./rel" seen in fromFile -> absolute .d.ts path (or null)
    resolve(spec, fromFile) {
        let base;
        if (spec.startsWith(".")) {
            base = path.resolve(path.dirname(fromFile), spec);
        } else {
            const parts = spec.split("/");
            const pkgLen = spec.startsWith("@") ? 2 : 1;
            const pkgDir = path.join(this.nodeModules, ...parts.slice(0, pkgLen));
            const rest = parts.slice(pkgLen);
            if (rest.length === 0) {
                let types = "index.d.ts";
                try {
                    const pj = JSON.parse(fs.readFileSync(path.join(pkgDir, "package.json"), "utf8"));
                    types = pj.types || pj.typings || (pj.exports && pj.exports.types) || types;
                } catch { /* no package.json: index.d.ts */ }
                return fs.existsSync(path.join(pkgDir, types)) ? path.join(pkgDir, types) : null;
            }
            base = path.join(pkgDir, ...rest);
        }
        for (const cand of [base + ".d.ts", path.join(base, "index.d.ts"), base.replace(/\.js$/, ".d.ts")]) {
            if (fs.existsSync(cand)) return cand;
        }
        return null;
    }

    module(file) {
        if (!this.files.has(file)) this.files.set(file, parseModule(fs.readFileSync(file, "utf8")));
        return this.files.get(file);
    }

    // The declared type `name` as seen from `file`: a type node, or null (unknown: not checked)
    lookup(name, file, depth = 0) {
        if (!file || depth > 20) return null;
        const m = this.module(file);
        if (m.decls.has(name)) return { node: m.decls.get(name), file };
        if (m.exportAs.has(name)) return this.lookup(m.exportAs.get(name), file, depth + 1);
        if (m.imports.has(name)) {
            const imp = m.imports.get(name);
            return this.lookup(imp.name, this.resolve(imp.from, file), depth + 1);
        }
        for (const star of m.starExports) {
            const r = this.lookup(name, this.resolve(star, file), depth + 1);
            if (r) return r;
        }
        return null;
    }

    // A type node with references resolved one level: {t:"obj"|"arr"|"union"|"any", ...}
    expand(node, file, depth = 0) {
        if (!node || depth > 30) return { t: "any" };
        if (node.t === "ref") {
            const r = this.lookup(node.name, file);
            if (!r) return { t: "any" };
            return this.expand(r.node, r.file, depth + 1);
        }
        if (node.t === "obj" && node.ext && node.ext.length) {
            const props = new Map();
            let index = node.index;
            for (const e of node.ext) {
                const x = this.expand(e, file, depth + 1);
                if (x.t === "obj") {
                    for (const [k, v] of x.props) props.set(k, v);
                    index = index || x.index;
                }
            }
            for (const [k, v] of node.props) props.set(k, { type: v.type ? v.type : v, file: v.file || file });
            return { t: "obj", props: wrapProps(props, file), index: index && wrap(index, file) };
        }
        if (node.t === "obj") return { t: "obj", props: wrapProps(node.props, file), index: node.index && wrap(node.index, file) };
        if (node.t === "arr") return { t: "arr", of: wrap(node.of, file) };
        if (node.t === "union") return { t: "union", of: node.of.map((n) => wrap(n, file)) };
        return { t: "any" };
    }

    // Every unknown field of value against the node (a wrapped {type, file}): list of paths
    unknownFields(value, w, where = "", depth = 0) {
        if (value === null || typeof value !== "object" || depth > 60) return [];
        const x = this.expand(w.type, w.file);
        if (x.t === "any") return [];
        if (x.t === "arr") {
            if (!Array.isArray(value)) return [];
            return value.flatMap((v, i) => this.unknownFields(v, x.of, `${where}[${i}]`, depth + 1));
        }
        if (x.t === "union") {
            const fits = Array.isArray(value) ? ["arr"] : ["obj"];
            const alts = x.of.filter((a) => fits.includes(this.expand(a.type, a.file).t));
            if (alts.length === 0) return [];
            let best = null;
            for (const a of alts) {
                const errs = this.unknownFields(value, a, where, depth + 1);
                if (best === null || errs.length < best.length) best = errs;
            }
            return best;
        }
        if (Array.isArray(value)) return [];
        const out = [];
        for (const [k, v] of Object.entries(value)) {
            const p = where ? `${where}.${k}` : k;
            if (x.props.has(k)) out.push(...this.unknownFields(v, x.props.get(k), p, depth + 1));
            else if (x.index) out.push(...this.unknownFields(v, x.index, p, depth + 1));
            else out.push(p);
        }
        return out;
    }
}

function wrap(type, file) {
    return type && type.type !== undefined && type.file !== undefined ? type : { type, file };
}

function wrapProps(props, file) {
    const m = new Map();
    for (const [k, v] of props) m.set(k, wrap(v, file));
    return m;
}

// ---- a parser of the .d.ts subset --------------------------------------------------------

function tokenize(src) {
    src = src.replace(/\/\*[\s\S]*?\*\//g, " ").replace(/\/\/[^\n]*/g, " ");
    const re = /\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[A-Za-z_$][\w$]*|-?\d+(?:\.\d+)?|=>|\.\.\.|[{}<>[\]();:?|,&=.*])/gy;
    const toks = [];
    let m;
    while ((m = re.exec(src)) !== null) toks.push(m[1]);
    return toks;
}

function parseModule(src) {
    const t = tokenize(src);
    let i = 0;
    const mod = { decls: new Map(), imports: new Map(), exportAs: new Map(), starExports: [] };
    const peek = () => t[i];
    const next = () => t[i++];
    const eat = (tok) => { if (t[i] === tok) { i++; return true; } return false; };
    const unq = (s) => s.replace(/^["']|["']$/g, "");

    function skipBalanced(open, close) {
        let d = 0;
        do {
            const tok = next();
            if (tok === open) d++;
            else if (tok === close) d--;
            if (tok === undefined) return;
        } while (d > 0);
    }
    function skipStatement() {
        let d = 0;
        while (i < t.length) {
            const tok = next();
            if (tok === "{" || tok === "(" || tok === "[") d++;
            else if (tok === "}" || tok === ")" || tok === "]") { d--; if (d === 0 && tok === "}" && peek() !== ";") return; }
            else if (tok === ";" && d === 0) return;
        }
    }
    function parseType() {
        const alts = [];
        eat("|");
        do { alts.push(parsePostfix()); } while (eat("|"));
        while (eat("&")) alts.push(parsePostfix());   // intersections: treated like a union
        return alts.length === 1 ? alts[0] : { t: "union", of: alts };
    }
    function parsePostfix() {
        let ty = parsePrimary();
        while (peek() === "[") {
            next();
            if (eat("]")) ty = { t: "arr", of: ty };
            else { parseType(); eat("]"); ty = { t: "any" }; }   // indexed access: not followed
        }
        return ty;
    }
    function parsePrimary() {
        const tok = next();
        if (tok === "{") return parseMembers();
        if (tok === "(") { const ty = parseType(); eat(")"); return ty; }
        if (tok === undefined) return { t: "any" };
        if (/^["'\d-]/.test(tok)) return { t: "any" };
        if (tok === "Array" || tok === "ReadonlyArray") {
            eat("<"); const of = parseType(); eat(">");
            return { t: "arr", of };
        }
        if (tok === "Record") {
            eat("<"); parseType(); eat(","); const v = parseType(); eat(">");
            return { t: "obj", props: new Map(), index: v };
        }
        let name = tok;
        while (peek() === ".") { next(); name += "." + next(); }
        if (peek() === "<") skipBalanced("<", ">");
        if (["string", "number", "boolean", "any", "unknown", "object", "null", "undefined", "never", "bigint", "Date"].includes(name)) {
            return { t: "any" };
        }
        return { t: "ref", name };
    }
    function parseMembers() {   // after "{"
        const props = new Map();
        let index = null;
        while (i < t.length && !eat("}")) {
            if (eat(";") || eat(",")) continue;
            if (peek() === "[") {   // [key: string]: T
                next(); next(); eat(":"); parseType(); eat("]"); eat(":");
                index = parseType();
                continue;
            }
            eat("readonly");
            const key = unq(next());
            eat("?");
            if (peek() === "(" || peek() === "<") {   // a method: skip it
                if (peek() === "<") skipBalanced("<", ">");
                skipBalanced("(", ")");
                if (eat(":")) parseType();
                continue;
            }
            if (!eat(":")) continue;
            props.set(key, parseType());
        }
        return { t: "obj", props, index };
    }

    while (i < t.length) {
        const tok = peek();
        if (tok === "import") {
            next();
            if (eat("{")) {
                const names = [];
                while (!eat("}")) {
                    eat("type");
                    const a = next();
                    const b = eat("as") ? next() : a;
                    names.push([a, b]);
                    eat(",");
                }
                eat("from");
                const from = unq(next());
                for (const [a, b] of names) mod.imports.set(b, { name: a, from });
            }
            skipStatement();
        } else if (tok === "export" || tok === "declare") {
            next();
            eat("declare");
            const kw = peek();
            if (kw === "interface") {
                next();
                const name = next();
                if (peek() === "<") skipBalanced("<", ">");
                const ext = [];
                if (eat("extends")) {
                    do { ext.push(parsePrimary()); } while (eat(","));
                }
                eat("{");
                const node = parseMembers();
                node.ext = ext;
                mod.decls.set(name, node);
            } else if (kw === "type") {
                next();
                const name = next();
                if (peek() === "<") skipBalanced("<", ">");
                eat("=");
                mod.decls.set(name, parseType());
                eat(";");
            } else if (kw === "{") {
                next();
                const names = [];
                while (!eat("}")) {
                    eat("type");
                    const a = next();
                    const b = eat("as") ? next() : a;
                    names.push([a, b]);
                    eat(",");
                }
                if (eat("from")) {   // a re-export: an import under the exported name
                    const from = unq(next());
                    for (const [a, b] of names) mod.imports.set(b, { name: a, from });
                } else {
                    for (const [a, b] of names) if (a !== b) mod.exportAs.set(b, a);
                }
                eat(";");
            } else if (kw === "*") {
                next();
                if (eat("from")) mod.starExports.push(unq(next()));
                eat(";");
            } else {
                skipStatement();
            }
        } else {
            skipStatement();
        }
    }
    return mod;
}
