// client.js - a small telemetry client as an agent desktop would embed it: streams batches
// over the tlm WebSocket (/api/v1/stream, auth by first message, server window honoured,
// reconnect with backoff, re-send of un-acked batches with the same batchId and seq) and
// posts batches with fetch (JSON or gzip via CompressionStream). Used by page.html; the
// browser test reads window.tlmState. See docs/DESIGN.md "WebSocket stream" and "CORS".
(function () {
  'use strict';

  function uid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  }

  // Everything the test looks at.
  const state = {
    acked: [],        // {seq, batchId, msgs, accepted, rejected, conn}
    errors: [],       // error answers {seq, code, message}
    protocolErrors: [], // what the client found wrong in the server's answers
    closes: [],       // {code, reason, wasClean, conn}
    connects: 0,      // WebSocket objects created
    authOk: 0,        // auth answers with ok
    reconnects: 0,    // reconnects scheduled after a close
    lastAuth: null,
    created: 0,       // batches made by send()
  };

  class TlmStream {
    constructor(opts) {
      this.url = opts.url;
      this.token = opts.token;
      this.appName = opts.appName || 'wwe_ui';
      this.backoffMin = opts.backoffMinMs || 100;
      this.backoffMax = opts.backoffMaxMs || 2000;
      this.queue = [];      // un-acked batches, oldest first: {seq, batchId, text, msgs, conn}
      this.seq = 0;
      this.conn = 0;        // id of the current connection
      this.ws = null;
      this.authed = false;
      this.window = 1;
      this.inflight = 0;
      this.attempts = 0;
      this.stopped = true;
      this.timer = null;
    }

    start() {
      this.stopped = false;
      this._connect();
    }

    // Stops for good: no reconnect. Un-acked batches stay in this.queue.
    stop() {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.ws) this.ws.close(1000, 'client done');
    }

    // Queues one batch of traces; returns its seq.
    send(traces, extra) {
      const b = Object.assign({ appName: this.appName, batchId: uid(), seq: ++this.seq, traces: traces }, extra || {});
      this.queue.push({ seq: b.seq, batchId: b.batchId, text: JSON.stringify(b), msgs: traces.map((t) => t.msg), conn: 0 });
      state.created++;
      this._pump();
      return b.seq;
    }

    pending() {
      return this.queue.length;
    }

    _connect() {
      this.conn++;
      const conn = this.conn;
      this.authed = false;
      this.inflight = 0;
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        state.protocolErrors.push('WebSocket constructor: ' + e);
        this._scheduleReconnect();
        return;
      }
      this.ws = ws;
      state.connects++;
      ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token: this.token }));
      ws.onmessage = (ev) => {
        if (conn !== this.conn) return;
        let m;
        try {
          m = JSON.parse(ev.data);
        } catch (e) {
          state.protocolErrors.push('not JSON: ' + String(ev.data).slice(0, 200));
          return;
        }
        this._onMessage(m, conn);
      };
      ws.onclose = (ev) => {
        state.closes.push({ code: ev.code, reason: ev.reason, wasClean: ev.wasClean, conn: conn });
        if (conn !== this.conn) return;
        this.ws = null;
        this.authed = false;
        this.inflight = 0;
        this._scheduleReconnect();
      };
    }

    _scheduleReconnect() {
      if (this.stopped) return;
      this.attempts++;
      const base = Math.min(this.backoffMax, this.backoffMin * Math.pow(2, this.attempts - 1));
      const delay = base / 2 + Math.random() * base / 2; // jitter: many desktops must not reconnect in step
      state.reconnects++;
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this._connect(), delay);
    }

    _onMessage(m, conn) {
      if (m.type === 'auth') {
        if (m.ok !== true) {
          state.protocolErrors.push('auth refused: ' + JSON.stringify(m));
          return;
        }
        state.authOk++;
        state.lastAuth = m;
        this.authed = true;
        this.attempts = 0;
        this.window = Number.isInteger(m.window) && m.window > 0 ? m.window : 1;
        this._pump();
      } else if (m.type === 'ack' || m.type === 'error') {
        // answers come in the order batches were sent on this connection
        const i = this.queue.findIndex((b) => b.conn === conn);
        const b = i >= 0 ? this.queue[i] : null;
        // (an error answer may carry seq null when the message had no readable seq)
        if (!b || (b.seq !== m.seq && !(m.type === 'error' && m.seq == null))) {
          state.protocolErrors.push(m.type + ' for seq ' + m.seq + ' but the oldest in flight is ' + (b && b.seq));
        }
        if (b) {
          this.inflight--;
          if (m.type === 'ack') {
            this.queue.splice(i, 1);
            state.acked.push({ seq: b.seq, batchId: b.batchId, msgs: b.msgs, accepted: m.accepted,
                               rejected: (m.rejected || []).length, conn: conn });
          } else {
            state.errors.push({ seq: m.seq, code: m.code, message: m.message });
            if (m.code === 'throttled' || m.code === 'pipeline_full') {
              b.conn = 0;               // try again a little later, same batchId and seq
              setTimeout(() => this._pump(), 200);
            } else {
              this.queue.splice(i, 1);  // the batch itself is bad: re-sending cannot help
            }
          }
        }
        this._pump();
      } else {
        state.protocolErrors.push('unknown answer: ' + JSON.stringify(m).slice(0, 200));
      }
    }

    _pump() {
      if (!this.authed || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      for (const b of this.queue) {
        if (this.inflight >= this.window) break;
        if (b.conn === this.conn) continue;
        b.conn = this.conn;
        this.inflight++;
        this.ws.send(b.text);
      }
    }
  }

  // POST one batch; never throws: {ok, status, body} or {ok:false, error, message}.
  async function postBatch(apiBase, token, body, gzip) {
    const headers = { 'Authorization': 'Bearer ' + token, 'Content-Type': 'application/json' };
    let payload = JSON.stringify(body);
    try {
      if (gzip) {
        const stream = new Blob([payload]).stream().pipeThrough(new CompressionStream('gzip'));
        payload = await new Response(stream).arrayBuffer();
        headers['Content-Encoding'] = 'gzip';
      }
      const r = await fetch(apiBase + '/api/v1/telemetry', { method: 'POST', mode: 'cors', headers: headers, body: payload });
      const text = await r.text();
      let json = null;
      try { json = JSON.parse(text); } catch (e) { /* keep text */ }
      return { ok: true, status: r.status, body: json, text: text.slice(0, 500) };
    } catch (e) {
      return { ok: false, error: e.name, message: String(e.message) };
    }
  }

  // One WebSocket attempt, no retry: what the page can see of a handshake.
  function probeWebSocket(url, timeoutMs) {
    return new Promise((resolve) => {
      const seen = { opened: false, error: false, closeCode: null, reason: null };
      let ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        resolve(Object.assign(seen, { thrown: String(e) }));
        return;
      }
      const t = setTimeout(() => { try { ws.close(); } catch (e) { /* */ } resolve(Object.assign(seen, { timeout: true })); }, timeoutMs || 5000);
      ws.onopen = () => { seen.opened = true; };
      ws.onerror = () => { seen.error = true; };
      ws.onclose = (ev) => { clearTimeout(t); seen.closeCode = ev.code; seen.reason = ev.reason; resolve(seen); };
    });
  }

  window.tlmState = state;
  window.TlmStream = TlmStream;
  window.tlmPostBatch = postBatch;
  window.tlmProbeWebSocket = probeWebSocket;
  window.tlmUid = uid;
})();
