// The load generator: runs one scenario against one server and reports on stdout, one JSON
// object per line:
//   {"type":"phase","state":"start","name":N}      a measured window opens
//   {"type":"phase","state":"end","name":N,"metrics":{...}}   ... and closes
//   {"type":"log","msg":...}                        progress
//   {"type":"done","traffic":{...}}                 the last line
// The orchestrator (bench/run.py) reads /proc for server and generator CPU at each marker.
//
//   node loadgen.js --url http://127.0.0.1:PORT --server ours|minimal|node \
//        --scenario connections|broadcast|dm|rooms|durable|changes --params '{"n":1000,...}'
//
// Every scenario is bounded: by counts, by durations and by a deadline (--deadline s).
"use strict";

const {
  Client, Hist, emitLine, makeMarker, readMarker, marker, micros, parseArgs, round3,
  sleep, socketUrl, traffic, useWebSocketImpl,
} = require("./lib");

const args = parseArgs(process.argv.slice(2));
const SERVER = args.server || "ours";
const OURS = SERVER === "ours";
const URL = socketUrl(args.url || "http://127.0.0.1:8000");
const P = JSON.parse(args.params || "{}");
const DEADLINE = Date.now() + 1000 * Number(args.deadline || 300);
useWebSocketImpl(args.ws || "raw");

function log(msg) {
  emitLine({ type: "log", msg });
}

// ---- message bookkeeping -----------------------------------------------------------

// Every message the generator sends gets a sequence number; these arrays, indexed by it,
// say which measured window it belongs to and, for direct messages, who should get it.
const msgPhase = [];
const msgTo = [];
let nextSeq = 0;

class Window {
  constructor(name) {
    this.name = name;
    this.hist = new Hist();
    this.sent = 0;
    this.expected = 0;
    this.received = 0;
    this.late = 0; // arrived after the window closed: counted as lost
    this.closed = false;
    this.t0 = Date.now();
    this.firstSend = null;
    this.lastRecv = null;
  }
  register(expectedDeliveries, to) {
    const seq = nextSeq++;
    msgPhase[seq] = this;
    msgTo[seq] = to === undefined ? -1 : to;
    this.sent++;
    this.expected += expectedDeliveries;
    if (this.firstSend === null) this.firstSend = micros();
    return seq;
  }
  // A delivery of message `seq` to client `client`; returns the window or null.
  deliver(client) {
    const w = msgPhase[marker.seq];
    if (w === undefined) return null;
    const to = msgTo[marker.seq];
    if (to >= 0 && to !== client.index) return null; // a DM's echo to its sender
    if (w.closed) { w.late++; return null; }
    const t = micros();
    w.received++;
    w.lastRecv = t;
    w.hist.add((t - marker.sent) / 1000);
    return w;
  }
  complete() {
    return this.received >= this.expected;
  }
  // Waits until every expected delivery arrived, or `ms` passed; then closes the window.
  async drain(ms) {
    const until = Math.min(Date.now() + ms, DEADLINE);
    while (!this.complete() && Date.now() < until) await sleep(5);
    this.closed = true;
  }
  metrics(extra) {
    const lat = this.hist.summary();
    const spanUs = this.firstSend !== null && this.lastRecv !== null
      ? this.lastRecv - this.firstSend : null;
    return Object.assign({
      sent: this.sent,
      expected: this.expected,
      received: this.received,
      lost: Math.max(0, this.expected - this.received),
      elapsed_s: round3((Date.now() - this.t0) / 1000),
      span_s: spanUs === null ? null : round3(spanUs / 1e6),
      p50_ms: lat.p50,
      p99_ms: lat.p99,
      max_ms: lat.max,
      mean_ms: lat.mean,
    }, extra || {});
  }
}

function phaseStart(name) {
  emitLine({ type: "phase", state: "start", name });
}

function phaseEnd(name, metrics) {
  emitLine({ type: "phase", state: "end", name, metrics });
}

// ---- connecting --------------------------------------------------------------------

function onReply(client, buf) {
  if (readMarker(buf)) {
    const w = msgPhase[marker.seq];
    if (w !== undefined && w.onDeliver) w.onDeliver(client, w.deliver(client));
    else if (w !== undefined) w.deliver(client);
  }
}

// Opens `n` clients, at most `concurrency` handshakes at a time, until `deadlineMs`.
async function connectMany(n, concurrency, deadlineMs) {
  const clients = [];
  const hist = new Hist();
  const errors = {};
  let next = 0;
  let failed = 0;
  const t0 = Date.now();
  const until = Math.min(t0 + deadlineMs, DEADLINE);
  const timeoutMs = P.connectTimeoutMs || 20000; // socket.io-client's default timeout
  let lastReport = t0;
  let lastSuccess = t0;
  const stallMs = 1000 * (P.stallSecs || 20);
  let stalled = false;
  async function worker() {
    while (next < n && Date.now() < until && !stalled) {
      const c = new Client(next++, URL, { waitWelcome: OURS, timeoutMs, onReply });
      try {
        hist.add(await c.connect());
        clients.push(c);
        lastSuccess = Date.now();
      } catch (err) {
        failed++;
        const key = String(err && err.message || err).slice(0, 60);
        errors[key] = (errors[key] || 0) + 1;
        // No connection has succeeded for a while and they fail: the server stopped
        // accepting (a full pool); stop trying rather than wait out the deadline.
        if (Date.now() - lastSuccess > stallMs) stalled = true;
      }
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        log(`connecting: ${clients.length} ready, ${failed} failed of ${n}`);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  const elapsed = (Date.now() - t0) / 1000;
  clients.sort((a, b) => a.index - b.index);
  clients.forEach((c, i) => { c.index = i; });
  const lat = hist.summary();
  return {
    clients,
    result: {
      n,
      connected: clients.length,
      failed: n - clients.length,
      not_attempted: n - next,
      stalled,
      deadline_hit: next < n && !stalled,
      errors,
      elapsed_s: round3(elapsed),
      connect_p50_ms: lat.p50,
      connect_p99_ms: lat.p99,
      connect_max_ms: lat.max,
    },
  };
}

// Connects the clients a scenario needs (not measured). Fewer handshakes at a time than in
// the connections scenario, so that a slow server is not also failed by client timeouts.
async function setup(n) {
  const { clients, result } = await connectMany(n, P.setupConcurrency || 50,
    1000 * (P.connectDeadline || 90));
  log(`setup: ${result.connected}/${n} connected in ${result.elapsed_s}s` +
      (result.failed ? ` (${result.failed} failed: ${JSON.stringify(result.errors)})` : ""));
  return { clients, result };
}

// Calls `sendOne(k)` `rate` times a second for `secs` seconds (open loop: a late tick
// sends what is due at once).
function sendAtRate(rate, secs, sendOne) {
  const total = Math.max(1, Math.round(rate * secs));
  const start = Date.now();
  let sent = 0;
  return new Promise((resolve) => {
    const tick = () => {
      const elapsed = Date.now() - start;
      const due = Math.min(total, Math.floor(elapsed / 1000 * rate) + 1);
      while (sent < due) sendOne(sent++);
      if (sent >= total || Date.now() > DEADLINE) {
        resolve(sent);
        return;
      }
      const nextAt = (sent / rate) * 1000;
      setTimeout(tick, Math.max(0, Math.min(10, nextAt - elapsed)));
    };
    tick();
  });
}

function messageJson(seq) {
  return `{"text":"bench ${makeMarker(seq)}"}`;
}

function sendMessageJson(seq, dest) {
  return `{"content":"bench ${makeMarker(seq)}","destId":${JSON.stringify(dest)}}`;
}

// ---- scenarios ---------------------------------------------------------------------

// (1) N concurrent clients: time to connect all, failures; then hold so the orchestrator
// reads the server's RSS with every client connected.
async function scenarioConnections() {
  const n = P.n || 1000;
  const pair = P.pairIntervalMs ? await startPair(P.pairIntervalMs) : null;
  if (pair) pair.reset();
  phaseStart("connect");
  const { clients, result } = await connectMany(n, P.concurrency || 200,
    1000 * (P.connectDeadline || 60));
  if (pair) Object.assign(result, pair.metrics());
  phaseEnd("connect", result);
  log(`connections: ${result.connected}/${n} in ${result.elapsed_s}s`);
  phaseStart("hold");
  await sleep(1000 * (P.holdSecs || 3));
  const alive = clients.filter((c) => !c.closed).length;
  phaseEnd("hold", { connected: alive, n });
  // Closing them all at once is a disconnect storm: give the orchestrator time to read
  // the server's RSS at the end of the hold first.
  await sleep(1000);
  if (pair) { pair.stop(); clients.push(pair.a, pair.b); }
  return clients;
}

// Two clients connected before a connection storm that ping-pong direct messages during
// it (`sendMessage {content, destId: peer sid}`, one in flight, the next `intervalMs`
// after the last pong): what a user already online sees while thousands connect. A ping
// or pong not answered within 5 s is lost and the pair starts over.
async function startPair(intervalMs) {
  const hist = new Hist();
  const st = { k: 0, sentAt: 0, lost: 0, roundTrips: 0, timer: null, stopped: false };
  let a = null;
  let b = null;
  const ping = () => {
    st.timer = null;
    if (st.stopped || a.closed || b.closed) return;
    st.k++;
    st.sentAt = micros();
    a.emit("sendMessage", JSON.stringify({ content: `ping ${st.k}`, destId: b.sid }));
    st.timer = setTimeout(() => { st.lost++; ping(); }, 5000);
  };
  const onA = (_client, buf) => { // the pong (our server also echoes a's own ping to a)
    if (st.sentAt && buf.indexOf(`"pong ${st.k}"`) >= 0) {
      hist.add((micros() - st.sentAt) / 1000);
      st.roundTrips++;
      st.sentAt = 0;
      clearTimeout(st.timer);
      st.timer = setTimeout(ping, intervalMs);
    }
  };
  const onB = (_client, buf) => {
    if (buf.indexOf(`"ping ${st.k}"`) >= 0) {
      b.emit("sendMessage", JSON.stringify({ content: `pong ${st.k}`, destId: a.sid }));
    }
  };
  a = new Client(-1, URL, { waitWelcome: OURS, timeoutMs: 20000, onReply: onA });
  b = new Client(-2, URL, { waitWelcome: OURS, timeoutMs: 20000, onReply: onB });
  await a.connect();
  await b.connect();
  ping();
  await sleep(500);
  return {
    a, b,
    reset() { hist.n = 0; hist.b.fill(0); hist.max = 0; hist.sum = 0; st.lost = 0;
              st.roundTrips = 0; },
    metrics() {
      const lat = hist.summary();
      // A ping still unanswered counts with its age, so a frozen server cannot hide.
      const pending = st.sentAt ? (micros() - st.sentAt) / 1000 : 0;
      return { pair_round_trips: st.roundTrips, pair_lost: st.lost,
               pair_rtt_p50_ms: lat.p50, pair_rtt_p99_ms: lat.p99,
               pair_rtt_max_ms: round3(Math.max(lat.max || 0, pending)) };
    },
    stop() { st.stopped = true; clearTimeout(st.timer); },
  };
}

// (2) Broadcast: `message` from round-robin senders, everyone gets `reply`. A fixed rate
// first, then rates stepped up until p99 passes the limit or anything is lost.
async function scenarioBroadcast() {
  const { clients } = await setup(P.n || 1000);
  if (!clients.length) return clients;
  const n = clients.length;
  let rr = 0;
  const runStep = async (name, rate, secs) => {
    const w = new Window(name);
    phaseStart(name);
    const sent = await sendAtRate(rate, secs, () => {
      const c = clients[rr++ % n];
      const seq = w.register(n);
      c.emit("message", messageJson(seq));
    });
    await w.drain(P.drainMs || 2000);
    const m = w.metrics({ phase: name, rate, clients: n, secs });
    const span = Math.max(secs, m.span_s || 0);
    m.deliveries_per_s = Math.round(m.received / span);
    m.sent = sent;
    phaseEnd(name, m);
    return m;
  };
  const fixed = await runStep("fixed", P.fixedRate || 20, P.fixedSecs || 8);
  const limit = P.p99LimitMs || 250;
  let best = null;
  const passes = (m) => m.lost === 0 && m.p99_ms !== null && m.p99_ms <= limit;
  if (!passes(fixed)) {
    // Not even the fixed rate holds: step down instead, to find what does.
    for (const rate of P.lowerRates || [15, 10, 5]) {
      if (Date.now() > DEADLINE - 20000) break;
      await sleep(1500);
      const m = await runStep(`rate-${rate}`, rate, P.stepSecs || 4);
      const ok = passes(m);
      log(`broadcast ${rate} msg/s: ${m.deliveries_per_s} deliveries/s, p99 ${m.p99_ms} ms, ` +
          `lost ${m.lost}${ok ? "" : "  <- over the limit"}`);
      if (ok) { best = m; break; }
    }
    emitLine({ type: "summary", name: "saturation", best, below_fixed: true });
    return clients;
  }
  best = fixed;
  for (const rate of P.rates || [40, 60, 80, 100, 130, 160, 200, 250, 320, 400]) {
    if (Date.now() > DEADLINE - 20000) break;
    await sleep(500);
    let m = await runStep(`rate-${rate}`, rate, P.stepSecs || 4);
    let ok = passes(m);
    log(`broadcast ${rate} msg/s: ${m.deliveries_per_s} deliveries/s, p99 ${m.p99_ms} ms, ` +
        `lost ${m.lost}${ok ? "" : "  <- over the limit"}`);
    if (!ok && P.retry !== false && Date.now() < DEADLINE - 20000) {
      // One more try at the same rate: on a shared machine one noisy step should not end
      // the ramp. Two failures in a row do.
      await sleep(1500);
      m = await runStep(`rate-${rate}-again`, rate, P.stepSecs || 4);
      ok = passes(m);
      log(`broadcast ${rate} msg/s again: ${m.deliveries_per_s} deliveries/s, ` +
          `p99 ${m.p99_ms} ms, lost ${m.lost}${ok ? "" : "  <- over the limit: stop"}`);
    }
    if (!ok) break;
    best = m;
  }
  emitLine({ type: "summary", name: "saturation", best });
  return clients;
}

// (3) Direct messages: pairs ping-pong with `sendMessage {content, destId: peer sid}`.
async function scenarioDm() {
  const pairs = P.pairs || 200;
  const { clients } = await setup(2 * pairs);
  const usable = Math.floor(clients.length / 2);
  if (!usable) return clients;
  const secs = P.secs || 10;
  const timeoutMs = P.timeoutMs || 5000;
  const w = new Window("dm");
  const rtt = new Hist();
  let roundTrips = 0;
  let lostLegs = 0;
  let stopAt = Infinity;
  // pair k: a = clients[2k], b = clients[2k+1]; state per pair: the current leg's deadline.
  const legDeadline = new Float64Array(usable);
  const rtStart = new Float64Array(usable);
  const current = new Float64Array(usable).fill(-1); // the seq of each pair's leg in flight
  const pairOf = [];
  const serve = (k) => {
    const a = clients[2 * k];
    const b = clients[2 * k + 1];
    rtStart[k] = micros();
    legDeadline[k] = Date.now() + timeoutMs;
    const seq = w.register(1, b.index);
    pairOf[seq] = k;
    current[k] = seq;
    a.emit("sendMessage", sendMessageJson(seq, b.sid));
  };
  w.onDeliver = (client, got) => {
    if (got === null) return;
    const k = pairOf[marker.seq];
    if (current[k] !== marker.seq) return; // a leg given up as lost that came late
    const a = clients[2 * k];
    const b = clients[2 * k + 1];
    if (client === b) { // ping arrived: pong back to a
      legDeadline[k] = Date.now() + timeoutMs;
      const seq = w.register(1, a.index);
      pairOf[seq] = k;
      current[k] = seq;
      b.emit("sendMessage", sendMessageJson(seq, a.sid));
    } else { // pong arrived: one round trip
      roundTrips++;
      rtt.add((micros() - rtStart[k]) / 1000);
      legDeadline[k] = 0;
      if (Date.now() < stopAt) serve(k);
    }
  };
  phaseStart("dm");
  const t0 = Date.now();
  stopAt = t0 + secs * 1000;
  for (let k = 0; k < usable; k++) serve(k);
  // Watchdog: a leg not delivered in time is lost; that pair starts over.
  while (Date.now() < stopAt) {
    await sleep(50);
    const now = Date.now();
    for (let k = 0; k < usable; k++) {
      if (legDeadline[k] && now > legDeadline[k]) {
        lostLegs++;
        legDeadline[k] = 0;
        if (now < stopAt) serve(k);
      }
    }
  }
  const measured = (Date.now() - t0) / 1000;
  const countAtStop = roundTrips;
  await w.drain(Math.min(timeoutMs, 3000));
  const lat = rtt.summary();
  const m = w.metrics({
    pairs: usable,
    secs,
    round_trips: countAtStop,
    round_trips_per_s: Math.round(countAtStop / measured),
    rtt_p50_ms: lat.p50,
    rtt_p99_ms: lat.p99,
    rtt_max_ms: lat.max,
    lost_legs: lostLegs,
  });
  // In-flight legs at the stop are not losses: the drain above waited for them.
  m.lost = lostLegs + Math.max(0, m.expected - m.received);
  phaseEnd("dm", m);
  return clients;
}

// (4) Rooms: clients spread over rooms; sends at a fixed total rate to the sender's room.
async function scenarioRooms() {
  const nRooms = P.rooms || 10;
  const { clients } = await setup(P.n || 1000);
  if (!clients.length) return clients;
  const roomOf = (c) => `#r${c.index % nRooms}`;
  // Join: the first member of each room first (our server creates the room then), then
  // the rest, a bounded number at a time, each waiting for its ack.
  const joinOne = (c) => new Promise((resolve) => {
    const room = roomOf(c);
    const timer = setTimeout(() => resolve(false), 15000);
    const done = (buf) => {
      clearTimeout(timer);
      resolve(buf.indexOf('"ok":true') >= 0);
    };
    if (OURS) c.emitAck("joinRoom", JSON.stringify({ room }), done);
    else c.emitAck("join", JSON.stringify(room), done);
  });
  let joinFailures = 0;
  const t0 = Date.now();
  for (let i = 0; i < Math.min(nRooms, clients.length); i++) {
    if (!(await joinOne(clients[i]))) joinFailures++;
  }
  let next = nRooms;
  const worker = async () => {
    while (next < clients.length && Date.now() < DEADLINE) {
      if (!(await joinOne(clients[next++]))) joinFailures++;
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  const members = new Array(nRooms).fill(0);
  for (const c of clients) members[c.index % nRooms]++;
  log(`rooms: ${clients.length} joins in ${((Date.now() - t0) / 1000).toFixed(1)}s, ` +
      `${joinFailures} failed`);
  await sleep(1000);
  const rate = P.rate || 200;
  const secs = P.secs || 10;
  const w = new Window("rooms");
  let rr = 0;
  phaseStart("rooms");
  const sent = await sendAtRate(rate, secs, () => {
    const c = clients[rr++ % clients.length];
    const seq = w.register(members[c.index % nRooms]);
    c.emit("sendMessage", sendMessageJson(seq, roomOf(c)));
  });
  await w.drain(P.drainMs || 3000);
  const m = w.metrics({ rate, secs, rooms: nRooms, clients: clients.length,
                        join_failures: joinFailures });
  m.sent = sent;
  m.deliveries_per_s = Math.round(m.received / Math.max(secs, m.span_s || 0));
  phaseEnd("rooms", m);
  return clients;
}

// (5) Acked sends: each sender emits with an ack and waits for it before the next. First
// `message` (a broadcast: every send is also delivered to all the senders), then
// `sendMessage` to the sender's own sid (one delivery each: the store path, not the fan-out).
async function scenarioDurable() {
  const { clients } = await setup(P.senders || 50);
  if (!clients.length) return clients;
  const secs = P.secs || 10;
  const n = clients.length;
  const windowFor = async (name, event) => {
    const ackHist = new Hist();
    let acked = 0;
    let refused = 0;
    let timeouts = 0;
    const w = new Window(name);
    let stopAt = 0;
    const loop = (c) => new Promise((resolve) => {
      const once = () => {
        if (Date.now() >= stopAt) { resolve(); return; }
        const seq = w.register(event === "message" ? n : 1);
        const t = micros();
        const timer = setTimeout(() => { timeouts++; resolve(); }, 10000);
        const payload = event === "message" ? messageJson(seq) : sendMessageJson(seq, c.sid);
        c.emitAck(event, payload, (buf) => {
          clearTimeout(timer);
          ackHist.add((micros() - t) / 1000);
          if (buf.indexOf('"ok":true') >= 0) acked++;
          else refused++;
          once();
        });
      };
      once();
    });
    phaseStart(name);
    const t0 = Date.now();
    stopAt = t0 + secs * 1000;
    await Promise.all(clients.map(loop));
    const measured = (Date.now() - t0) / 1000;
    await w.drain(P.drainMs || 3000);
    const lat = ackHist.summary();
    const m = w.metrics({
      senders: n,
      secs,
      event,
      acked,
      refused,
      ack_timeouts: timeouts,
      acked_per_s: Math.round(acked / measured),
      ack_p50_ms: lat.p50,
      ack_p99_ms: lat.p99,
      ack_max_ms: lat.max,
      deliveries_per_s: Math.round(w.received / measured),
    });
    phaseEnd(name, m);
  };
  await windowFor("durable", "message");
  await sleep(1000);
  await windowFor("durable-self", "sendMessage");
  return clients;
}

// (6) Changes against sends (ours only, docs/protocol.md §8): the same clients, each with
// one request in flight (it sends the next when the ack arrives), on the same server.
// Windows in order: plain sends; editMessage and react (on and off in turn, so every call
// changes something) of one's own recent messages; editMessage of one's own messages
// oldest first; plain sends again (the machine may have drifted); deleteMessage of one's
// own messages, newest first, each once (shorter, so none runs out). Twice: in the lobby
// (`message`: every send and every change is delivered to all the clients) and in DMs to
// oneself (`sendMessage` to one's own sid: one delivery, the store path). Reported per
// window: acked/s, ack p50/p99, and the `reply` or `update` frames delivered.
const ID_IN_ACK = Buffer.from('"message":{"id":');
const UPDATE_IN_ACK = Buffer.from('"update":');

function messageIdOf(buf) {
  let j = buf.indexOf(ID_IN_ACK);
  if (j < 0) return null;
  j += ID_IN_ACK.length;
  let id = 0;
  let c;
  while ((c = buf[j]) >= 48 && c <= 57) { id = id * 10 + (c - 48); j++; }
  return id;
}

async function scenarioChanges() {
  const { clients } = await setup(P.senders || 50);
  if (!clients.length) return clients;
  const secs = P.secs || 10;
  const n = clients.length;
  const own = new Map(); // client -> ids of the messages it sent
  const reacted = new Map(); // message id -> whether our reaction is on
  const cursor = new Map(); // client -> position in its own ids, per window
  // window name, event, seconds, payload for a client (null: it has nothing left to do),
  // deliveries per changed item, the traffic counter that counts them
  const windowFor = async (name, event, wsecs, payloadFor, fanout, counter) => {
    const ackHist = new Hist();
    let acked = 0;
    let changed = 0;
    let refused = 0;
    let timeouts = 0;
    let exhausted = 0;
    let stopAt = 0;
    const errors = {};
    cursor.clear();
    const loop = (c) => new Promise((resolve) => {
      const once = () => {
        if (Date.now() >= stopAt) { resolve(); return; }
        const payload = payloadFor(c);
        if (payload === null) { exhausted++; resolve(); return; }
        const t = micros();
        const timer = setTimeout(() => { timeouts++; resolve(); }, 10000);
        c.emitAck(event, payload, (buf) => {
          clearTimeout(timer);
          ackHist.add((micros() - t) / 1000);
          if (buf.indexOf('"ok":true') >= 0) {
            acked++;
            const id = messageIdOf(buf);
            if (id !== null) { own.get(c).push(id); changed++; }
            else if (buf.indexOf(UPDATE_IN_ACK) >= 0) changed++;
          } else {
            refused++;
            const key = buf.toString("utf8", 0, 120);
            errors[key] = (errors[key] || 0) + 1;
          }
          once();
        });
      };
      once();
    });
    const frames0 = traffic[counter];
    phaseStart(name);
    const t0 = Date.now();
    stopAt = t0 + wsecs * 1000;
    await Promise.all(clients.map(loop));
    const measured = (Date.now() - t0) / 1000;
    const expected = changed * fanout;
    const until = Math.min(Date.now() + (P.drainMs || 3000), DEADLINE);
    while (traffic[counter] - frames0 < expected && Date.now() < until) await sleep(5);
    const delivered = traffic[counter] - frames0;
    const lat = ackHist.summary();
    phaseEnd(name, {
      senders: n, secs: wsecs, event, acked, changed, refused, errors, ack_timeouts: timeouts,
      exhausted, acked_per_s: Math.round(acked / measured), ack_p50_ms: lat.p50,
      ack_p99_ms: lat.p99, ack_max_ms: lat.max, expected, delivered,
      lost: Math.max(0, expected - delivered),
      deliveries_per_s: Math.round(delivered / measured),
    });
  };
  // The client's next own message (null: none): `recent`, round robin over its newest
  // RECENT (people edit, react to and delete what was just said); or oldest first, round
  // robin over all (what this node no longer keeps in mind: the store is asked first).
  const RECENT = P.recent || 50;
  const next = (c, recent) => {
    const ids = own.get(c);
    const k = cursor.get(c) || 0;
    cursor.set(c, k + 1);
    if (!ids.length) return null;
    if (!recent) return ids[k % ids.length];
    const span = Math.min(RECENT, ids.length);
    return ids[ids.length - 1 - (k % span)];
  };
  const edit = (recent) => (c) => {
    const id = next(c, recent);
    return id === null ? null : `{"messageId":${id},"text":"edited ${makeMarker(seq++)}"}`;
  };
  let seq = 0;
  for (const where of ["lobby", "self"]) {
    clients.forEach((c) => own.set(c, []));
    const fanout = where === "lobby" ? n : 1;
    const send = where === "lobby"
      ? () => messageJson(seq++)
      : (c) => sendMessageJson(seq++, c.sid);
    const sendEvent = where === "lobby" ? "message" : "sendMessage";
    const p = where === "lobby" ? "changes" : "changes-self";
    await windowFor(`${p}-send`, sendEvent, secs, send, fanout, "replies");
    await sleep(500);
    await windowFor(`${p}-edit`, "editMessage", secs, edit(true), fanout, "updates");
    await sleep(500);
    await windowFor(`${p}-react`, "react", secs, (c) => {
      const id = next(c, true);
      if (id === null) return null;
      const on = !reacted.get(id);
      reacted.set(id, on);
      return `{"messageId":${id},"emoji":"\ud83d\udc4d","on":${on}}`;
    }, fanout, "updates");
    await sleep(500);
    await windowFor(`${p}-edit-old`, "editMessage", secs, edit(false), fanout, "updates");
    await sleep(500);
    await windowFor(`${p}-send2`, sendEvent, secs, send, fanout, "replies");
    await sleep(500);
    // newest first, each once (the last send window's messages: 5 s do not run out)
    await windowFor(`${p}-delete`, "deleteMessage", P.deleteSecs || secs / 2, (c) => {
      const ids = own.get(c);
      const k = cursor.get(c) || 0;
      if (k >= ids.length) return null;
      cursor.set(c, k + 1);
      return `{"messageId":${ids[ids.length - 1 - k]}}`;
    }, fanout, "updates");
    await sleep(500);
  }
  return clients;
}

const SCENARIOS = {
  connections: scenarioConnections,
  broadcast: scenarioBroadcast,
  dm: scenarioDm,
  rooms: scenarioRooms,
  durable: scenarioDurable,
  changes: scenarioChanges,
};

async function main() {
  const run = SCENARIOS[args.scenario];
  if (!run) throw new Error(`unknown scenario ${args.scenario}`);
  // A hard stop, whatever happens.
  setTimeout(() => {
    emitLine({ type: "log", msg: "deadline reached: stopping" });
    emitLine({ type: "done", traffic, aborted: true });
    process.exit(3);
  }, Math.max(1000, DEADLINE - Date.now() + 15000)).unref();
  const clients = await run();
  traffic.stopping = true;
  emitLine({ type: "done", traffic });
  for (const c of clients || []) c.close();
  setTimeout(() => process.exit(0), 200);
}

main().catch((err) => {
  emitLine({ type: "error", msg: String(err && err.stack || err) });
  process.exit(2);
});
