// Shared pieces of the load generator: a lean Socket.IO v5 client over raw websockets,
// a latency histogram, and the marker that carries a sequence number and a send time in
// every message text.
//
// Why not socket.io-client: one core has to drive up to 10,000 connections and take in
// hundreds of thousands of frames per second. This client never parses a frame it does not
// need: it looks at the first bytes to tell the packet type and event name, and finds the
// marker with Buffer.indexOf. Only `welcome`, CONNECT and acks that matter are decoded.
"use strict";

const crypto = require("crypto");
const net = require("net");
const { performance } = require("perf_hooks");
const WebSocket = require("ws");

// Time in microseconds since this process started (one clock for senders and receivers).
function micros() {
  return Math.round(performance.now() * 1000);
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) {
      const key = argv[i].slice(2);
      const next = argv[i + 1];
      if (next === undefined || next.startsWith("--")) out[key] = true;
      else { out[key] = next; i++; }
    }
  }
  return out;
}

function emitLine(obj) {
  // process.stdout is synchronous for pipes on Linux: the orchestrator sees the line now.
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// Log-bucketed histogram: 1% resolution from 1 us to about 10 minutes.
const BUCKETS_PER_E = 100.5; // 1 / ln(1.01)
const NBUCKETS = 2800;

class Hist {
  constructor() {
    this.b = new Float64Array(NBUCKETS);
    this.n = 0;
    this.max = 0;
    this.sum = 0;
  }
  add(ms) {
    if (!(ms > 0)) ms = 0;
    const us = ms * 1000;
    const i = us < 1 ? 0 : Math.min(NBUCKETS - 1, 1 + Math.floor(Math.log(us) * BUCKETS_PER_E));
    this.b[i]++;
    this.n++;
    this.sum += ms;
    if (ms > this.max) this.max = ms;
  }
  pct(p) {
    if (this.n === 0) return null;
    const target = Math.max(1, Math.ceil(this.n * p));
    let seen = 0;
    for (let i = 0; i < NBUCKETS; i++) {
      seen += this.b[i];
      if (seen >= target) {
        if (i === 0) return 0;
        return Math.min(this.max, Math.exp((i - 0.5) / BUCKETS_PER_E) / 1000);
      }
    }
    return this.max;
  }
  summary() {
    return {
      count: this.n,
      p50: round3(this.pct(0.5)),
      p99: round3(this.pct(0.99)),
      max: round3(this.n ? this.max : null),
      mean: round3(this.n ? this.sum / this.n : null),
    };
  }
}

function round3(x) {
  return x === null || x === undefined ? null : Math.round(x * 1000) / 1000;
}

// The marker in a message text: "~SEQ~SENTMICROS~". Neither JSON escaping nor any id the
// servers generate contains "~", so the first "~" in a reply frame starts the marker.
const TILDE = 126;
const marker = { seq: 0, sent: 0 };

function makeMarker(seq) {
  return `~${seq}~${micros()}~`;
}

function readMarker(buf) {
  let j = buf.indexOf(TILDE);
  if (j < 0) return false;
  let seq = 0;
  let c;
  j++;
  while ((c = buf[j]) >= 48 && c <= 57) { seq = seq * 10 + (c - 48); j++; }
  if (c !== TILDE) return false;
  let sent = 0;
  j++;
  while ((c = buf[j]) >= 48 && c <= 57) { sent = sent * 10 + (c - 48); j++; }
  if (c !== TILDE) return false;
  marker.seq = seq;
  marker.sent = sent;
  return true;
}

function startsWith(buf, prefix) {
  if (buf.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (buf[i] !== prefix[i]) return false;
  return true;
}

const P_REPLY = Buffer.from('42["reply",');
const P_WELCOME = Buffer.from('42["welcome",');
const P_UPDATE = Buffer.from('42["update",');
const P_ADDCHAT = Buffer.from('42["addChat",');

// ---- a minimal websocket client on a raw TCP socket ---------------------------------
//
// The `ws` package is correct and quick, but each frame still passes through a Readable
// stream, an EventEmitter and a fresh Buffer. Here every socket reads into one shared
// buffer (net's `onread` option: no stream, no allocation per read), frames are parsed in
// place and handed over as views that the handler must not keep. Client frames are masked
// with a zero key (the RFC asks for a random key to protect proxies; servers accept any).

const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
const CRLF2 = Buffer.from("\r\n\r\n");

class RawWebSocket {
  constructor(url, handlers) {
    const u = new URL(url);
    this.h = handlers; // {open(), message(buf), error(err), close()}
    this.open = false;
    this.dead = false;
    this.pending = null; // bytes of a frame (or of the HTTP answer) not complete yet
    this.fragments = null;
    const key = crypto.randomBytes(16).toString("base64");
    this.request = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\n` +
      "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    this.socket = net.connect({
      host: u.hostname,
      port: Number(u.port || 80),
      noDelay: true,
      onread: { buffer: READ_BUFFER, callback: (n, buf) => { this._read(buf, n); } },
    });
    this.socket.on("connect", () => this.socket.write(this.request));
    this.socket.on("error", (err) => this._die(err));
    this.socket.on("close", () => this._die(null));
  }

  _die(err) {
    if (this.dead) return;
    this.dead = true;
    this.open = false;
    if (err) this.h.error(err);
    this.h.close();
  }

  _read(buf, n) {
    traffic.reads++;
    let data = buf.subarray(0, n);
    if (this.pending !== null) {
      data = Buffer.concat([this.pending, data]);
      this.pending = null;
    }
    if (!this.open) {
      const end = data.indexOf(CRLF2);
      if (end < 0) {
        this.pending = Buffer.from(data);
        return;
      }
      const head = data.toString("latin1", 0, end);
      if (!head.startsWith("HTTP/1.1 101")) {
        this.h.error(new Error("upgrade refused: " + head.split("\r\n")[0]));
        this.terminate();
        return;
      }
      this.open = true;
      this.h.open();
      data = data.subarray(end + 4);
    }
    this._frames(data);
  }

  _frames(data) {
    const end = data.length;
    let o = 0;
    while (end - o >= 2) {
      const b0 = data[o];
      let len = data[o + 1] & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (end - o < 4) break;
        len = data.readUInt16BE(o + 2);
        hdr = 4;
      } else if (len === 127) {
        if (end - o < 10) break;
        len = data.readUInt32BE(o + 2) * 4294967296 + data.readUInt32BE(o + 6);
        hdr = 10;
      }
      if (data[o + 1] & 0x80) hdr += 4; // a masked server frame: not expected, skipped over
      if (end - o < hdr + len) break;
      const payload = data.subarray(o + hdr, o + hdr + len);
      o += hdr + len;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === 1 || opcode === 2) {
        if (fin) this.h.message(payload);
        else this.fragments = [Buffer.from(payload)];
      } else if (opcode === 0) {
        if (this.fragments) {
          this.fragments.push(Buffer.from(payload));
          if (fin) {
            const whole = Buffer.concat(this.fragments);
            this.fragments = null;
            this.h.message(whole);
          }
        }
      } else if (opcode === 9) {
        this._send(0x8a, Buffer.from(payload));
      } else if (opcode === 8) {
        this.terminate();
        return;
      }
      if (this.dead) return;
    }
    if (o < end) this.pending = Buffer.from(data.subarray(o)); // copy: the buffer is shared
  }

  _send(opcodeByte, payload) {
    const len = payload.length;
    const hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(hdr + 4 + len);
    frame[0] = opcodeByte;
    if (hdr === 2) frame[1] = 0x80 | len;
    else if (hdr === 4) { frame[1] = 0x80 | 126; frame.writeUInt16BE(len, 2); }
    else { frame[1] = 0x80 | 127; frame.writeUInt32BE(0, 2); frame.writeUInt32BE(len, 6); }
    frame.writeUInt32BE(0, hdr); // the zero mask: the payload goes out as it is
    payload.copy(frame, hdr + 4);
    this.socket.write(frame);
  }

  send(text) {
    if (this.dead) return;
    const len = Buffer.byteLength(text);
    const hdr = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(hdr + 4 + len);
    frame[0] = 0x81;
    if (hdr === 2) frame[1] = 0x80 | len;
    else if (hdr === 4) { frame[1] = 0x80 | 126; frame.writeUInt16BE(len, 2); }
    else { frame[1] = 0x80 | 127; frame.writeUInt32BE(0, 2); frame.writeUInt32BE(len, 6); }
    frame.writeUInt32BE(0, hdr);
    frame.write(text, hdr + 4);
    this.socket.write(frame);
  }

  terminate() {
    this.open = false;
    this.socket.destroy();
  }
}

// Which websocket client the Socket.IO clients use: "raw" (above) or "ws" (the package),
// to cross-check one with the other.
let wsImpl = "raw";
function useWebSocketImpl(name) {
  if (name !== "raw" && name !== "ws") throw new Error(`unknown websocket client ${name}`);
  wsImpl = name;
}

function openSocket(url, timeoutMs, h) {
  if (wsImpl === "raw") return new RawWebSocket(url, h);
  const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
  ws.on("open", h.open);
  ws.on("message", h.message);
  ws.on("error", h.error);
  ws.on("close", h.close);
  return ws;
}

// Counters shared by every client of this process.
const traffic = { reads: 0, framesIn: 0, bytesIn: 0, framesOut: 0, replies: 0, updates: 0,
                  addChat: 0, otherEvents: 0, unexpectedCloses: 0, stopping: false };

// One Socket.IO client on one websocket. `waitWelcome`: our server sends `welcome` right
// after CONNECT; the client counts as connected only then.
class Client {
  constructor(index, url, options) {
    this.index = index;
    this.url = url;
    this.auth = options.auth || null;
    this.waitWelcome = !!options.waitWelcome;
    this.timeoutMs = options.timeoutMs || 20000; // socket.io-client's default
    this.onReply = options.onReply || null; // (client, buf) for `reply` events
    this.sid = null;
    this.ready = false;
    this.closed = false;
    this.nextAck = 1;
    this.acks = new Map();
    this.ws = null;
    this._done = null;
    this._fail = null;
  }

  // Resolves with the time (ms) from opening the socket to being ready.
  connect() {
    return new Promise((resolve, reject) => {
      const t0 = performance.now();
      let settled = false;
      const timer = setTimeout(() => this._fail(new Error("timeout")), this.timeoutMs);
      this._fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.close();
        reject(err);
      };
      this._done = () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.ready = true;
        resolve(performance.now() - t0);
      };
      this.ws = openSocket(this.url, this.timeoutMs, {
        open: () => {},
        message: (data) => this._frame(data),
        error: (err) => this._fail(err),
        close: () => {
          if (this.closed) return;
          this.closed = true;
          if (!settled) this._fail(new Error("closed"));
          else if (!traffic.stopping) traffic.unexpectedCloses++;
        },
      });
    });
  }

  _frame(data) {
    traffic.framesIn++;
    traffic.bytesIn += data.length;
    const c0 = data[0];
    if (c0 === 0x34) { // Engine.IO MESSAGE
      const c1 = data[1];
      if (c1 === 0x32) { // Socket.IO EVENT
        if (startsWith(data, P_REPLY)) {
          traffic.replies++;
          if (this.onReply) this.onReply(this, data);
        } else if (startsWith(data, P_UPDATE)) { // ours, docs/protocol.md §8.3
          traffic.updates++;
        } else if (startsWith(data, P_ADDCHAT)) {
          traffic.addChat++;
        } else if (startsWith(data, P_WELCOME)) {
          this._done();
        } else {
          traffic.otherEvents++;
        }
      } else if (c1 === 0x33) { // ACK: 43<id>[...]
        let id = 0;
        let j = 2;
        let c;
        while ((c = data[j]) >= 48 && c <= 57) { id = id * 10 + (c - 48); j++; }
        const cb = this.acks.get(id);
        if (cb !== undefined) {
          this.acks.delete(id);
          cb(data);
        }
      } else if (c1 === 0x30) { // CONNECT ok: 40{"sid":...}
        try { this.sid = JSON.parse(data.toString("utf8", 2)).sid; } catch (_) { /* keep null */ }
        if (!this.waitWelcome) this._done();
      } else if (c1 === 0x34) { // CONNECT_ERROR
        this._fail(new Error("connect_error " + data.toString("utf8", 2, 160)));
      } else if (c1 === 0x31) { // DISCONNECT from the server
        this._fail(new Error("disconnected"));
      }
    } else if (c0 === 0x32) { // Engine.IO PING: answer PONG
      this.ws.send("3");
    } else if (c0 === 0x30) { // Engine.IO OPEN: send the Socket.IO CONNECT
      this.ws.send(this.auth ? "40" + JSON.stringify(this.auth) : "40");
    } else if (c0 === 0x31) { // Engine.IO CLOSE
      this._fail(new Error("engine.io close"));
    }
  }

  // Sends an EVENT; `payload` is already JSON text of the arguments after the name.
  emit(event, payloadJson) {
    traffic.framesOut++;
    this.ws.send(payloadJson === undefined ? `42["${event}"]` : `42["${event}",${payloadJson}]`);
  }

  // Sends an EVENT with an ack id; `cb(buf)` gets the raw ACK frame.
  emitAck(event, payloadJson, cb) {
    const id = this.nextAck++;
    this.acks.set(id, cb);
    traffic.framesOut++;
    this.ws.send(payloadJson === undefined ? `42${id}["${event}"]`
      : `42${id}["${event}",${payloadJson}]`);
  }

  close() {
    this.closed = true; // closed by us: not an unexpected close
    if (this.ws) {
      try { this.ws.terminate(); } catch (_) { /* already gone */ }
    }
  }
}

function socketUrl(httpUrl) {
  return httpUrl.replace(/^http/, "ws").replace(/\/$/, "") +
    "/socket.io/?EIO=4&transport=websocket";
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

module.exports = {
  Client, Hist, emitLine, makeMarker, readMarker, marker, micros, parseArgs, round3,
  sleep, socketUrl, traffic, useWebSocketImpl,
};
