// The one WebSocket feed. Connects, subscribes, hands events to the store, and on a drop
// reconnects with the last seq it has so the server replays the gap (nothing polls).
//
// Status, shown by the indicator in the top bar:
//   connecting   - first connection not yet subscribed
//   live         - subscribed and caught up
//   behind       - subscribed, still receiving the replay up to the seq the server announced
//   reconnecting - the socket dropped; retrying with back-off
//   stopped      - the server said it is going away (close 1001); retrying until it is back
//   full         - the server refused the feed before the upgrade (HTTP 503: every feed slot
//                  in use); retrying until one frees
//   offline      - the server refused us (bad token)
//
// A browser does not tell a page why a WebSocket handshake failed (it is always code 1006),
// so after a failed one the feed asks GET /api/status: 401 means the token, a full `feeds`
// count means the server is full; anything else is a plain retry.

import { parseJSON } from "./store.js";

const PING_EVERY_MS = 15000;
const PONG_WAIT_MS = 8000;

export class Feed {
  /**
   * @param {object} opts
   * @param {import('./store.js').Store} opts.store
   * @param {number|null} [opts.after] first subscribe: 0 = whole kept history, null = from now on
   * @param {boolean} [opts.heartbeat] ask for the server's heartbeat messages
   * @param {(msg: object) => void} [opts.onControl] heartbeat and other non-event messages
   * @param {(ev: object) => void} [opts.onEvent] each event the moment it arrives, before the
   *   store's once-a-frame batch (the lab times a browser round trip with it)
   * @param {(status: string, info: object) => void} [opts.onStatus]
   */
  constructor({ store, after = 0, heartbeat = false, job = null, onControl, onEvent, onStatus }) {
    this.store = store;
    this.firstAfter = after;
    this.heartbeat = heartbeat;
    this.jobFilter = job;
    this.onControl = onControl ?? (() => {});
    this.onEvent = onEvent ?? null;
    this.onStatus = onStatus ?? (() => {});
    this.status = "connecting";
    this.ws = null;
    this.attempt = 0;
    this.reconnects = 0;
    this.targetSeq = null;
    this.gaps = 0;
    this.holdUntil = 0;
    this.pending = [];
    this.flushScheduled = false;
    this.closedByUs = false;
    this.stopped = false; // the server said it is going away; cleared by the next subscribe
    this.capacity = null; // the server's feed capacity, when it refused us for being full
    this.history = []; // the last status changes, for the indicator's tooltip and the tests
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${location.host}/ws`;
  }

  start() {
    this.closedByUs = false;
    this._connect();
    return this;
  }

  stop() {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.ws) this.ws.close();
  }

  _setStatus(status) {
    if (status === this.status) return;
    this.status = status;
    this.history.push(status);
    if (this.history.length > 50) this.history.shift();
    this.onStatus(status, {
      lastSeq: this.store.lastSeq,
      reconnects: this.reconnects,
      capacity: this.capacity,
    });
  }

  _connect() {
    const ws = new WebSocket(this.url());
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      // First connection: what the page asked for; later ones: resume right after our last seq.
      const after = this.store.lastSeq != null ? this.store.lastSeq : this.firstAfter;
      this.lastAfter = after;
      ws.send(JSON.stringify({ type: "subscribe", job: this.jobFilter, after, heartbeat: this.heartbeat }));
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this._ping(), PING_EVERY_MS);
    };
    ws.onmessage = (msg) => this._onMessage(msg.data);
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      clearInterval(this.pingTimer);
      clearTimeout(this.pongTimer);
      this._flush();
      if (this.closedByUs) return;
      if (e.code === 1001) {
        this.stopped = true; // stays "stopped" through failed retries, until it is back
        this._setStatus("stopped");
        this._scheduleRetry();
        return;
      }
      if (!opened) {
        this._whyRefused().then((status) => {
          if (ws !== this.ws || this.closedByUs) return;
          this._setStatus(status ?? (this.stopped ? "stopped" : "reconnecting"));
          if (status !== "offline") this._scheduleRetry();
        });
        return;
      }
      this._setStatus("reconnecting");
      this._scheduleRetry();
    };
    ws.onerror = () => {
      /* onclose follows and handles it */
    };
  }

  /** Why the handshake failed, as a status ("offline", "full"), or null if it is not known. */
  async _whyRefused() {
    try {
      const res = await fetch("/api/status", {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
      });
      if (res.status === 401 || res.status === 403) return "offline";
      if (!res.ok) return null;
      const { feeds } = parseJSON(await res.text());
      if (feeds && feeds.in_use >= feeds.capacity) {
        this.capacity = feeds.capacity;
        return "full";
      }
    } catch {
      // the server is not answering at all: stopped or restarting
    }
    return null;
  }

  _scheduleRetry() {
    const backoff = Math.min(5000, 300 * 2 ** this.attempt);
    this.attempt++;
    const wait = Math.max(backoff, this.holdUntil - Date.now());
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.reconnects++;
      this._connect();
    }, wait);
  }

  _ping() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "ping" }));
    clearTimeout(this.pongTimer);
    this.pongTimer = setTimeout(() => {
      // No pong: the connection is dead even if the socket has not noticed yet.
      if (this.ws) this.ws.close();
    }, PONG_WAIT_MS);
  }

  _onMessage(raw) {
    let msg;
    try {
      msg = parseJSON(raw);
    } catch {
      return;
    }
    if (msg.seq == null || msg.type === "subscribed") {
      this._control(msg);
      return;
    }
    this.onEvent?.(msg);
    // Events are batched and applied once per animation frame: a flood of thousands of
    // events per second costs one store update and one redraw per frame, not thousands.
    this.pending.push(msg);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      requestAnimationFrame(() => this._flush());
      // rAF does not run in background tabs; a timer keeps the store current anyway.
      setTimeout(() => this._flush(), 250);
    }
  }

  _control(msg) {
    switch (msg.type) {
      case "subscribed":
        this.stopped = false;
        this.targetSeq = msg.seq ?? null;
        // Subscribed "from now on": the announced seq is where a later resume must start.
        if (this.lastAfter == null && this.store.lastSeq == null && msg.seq != null) {
          this.store.lastSeq = msg.seq;
        }
        this._updateBehind();
        break;
      case "pong":
        clearTimeout(this.pongTimer);
        break;
      default:
        break;
    }
    this.onControl(msg);
  }

  _flush() {
    this.flushScheduled = false;
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    const before = this.store.lastSeq;
    let expect = before;
    for (const ev of batch) {
      if (expect != null && ev.seq > expect + 1 && batch[0] !== ev) this.gaps++;
      if (expect == null || ev.seq > expect) expect = ev.seq;
    }
    this.store.applyAll(batch);
    this._updateBehind();
  }

  _updateBehind() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const last = this.store.lastSeq ?? 0;
    if (this.targetSeq != null && last < this.targetSeq) this._setStatus("behind");
    else this._setStatus("live");
  }

  /** Drop the connection as a network failure would; reconnect no sooner than `holdMs`. */
  drop({ holdMs = 0 } = {}) {
    this.holdUntil = Date.now() + holdMs;
    if (this.ws) this.ws.close(4000, "dropped on purpose");
  }
}
