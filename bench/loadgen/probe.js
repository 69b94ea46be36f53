// Event-loop stall probe for our server: one guest client that sends a request with an ack
// every 10 ms (one outstanding at a time) and records each round trip.
//
// stdin, one command a line: "start NAME" resets the statistics, "end NAME" prints
//   {"type":"probe","phase":NAME,"count":..,"p50_ms":..,"p99_ms":..,"max_ms":..}
// "quit" (or the end of stdin) stops it. A request still unanswered at "end" counts with
// its age so far, so a server that froze cannot hide it.
//
//   node probe.js --url http://127.0.0.1:PORT [--event listUsers] [--interval 10]
"use strict";

const readline = require("readline");
const { Client, Hist, emitLine, micros, parseArgs, round3, socketUrl, traffic } =
  require("./lib");

const args = parseArgs(process.argv.slice(2));
const EVENT = args.event || "listUsers";
const INTERVAL_MS = Number(args.interval || 10);

let hist = new Hist();
let pendingSince = null;
let lastSend = 0;
let failures = 0;

async function main() {
  const client = new Client(0, socketUrl(args.url), { waitWelcome: true, timeoutMs: 30000 });
  await client.connect();
  emitLine({ type: "probe-ready", sid: client.sid });
  const fire = () => {
    if (client.closed) return;
    pendingSince = micros();
    lastSend = Date.now();
    client.emitAck(EVENT, undefined, (buf) => {
      hist.add((micros() - pendingSince) / 1000);
      if (buf.indexOf('"ok"') < 0) failures++; // an error ack is still an answer
      pendingSince = null;
      setTimeout(fire, Math.max(0, lastSend + INTERVAL_MS - Date.now()));
    });
  };
  fire();
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [cmd, name] = line.trim().split(/\s+/, 2);
    if (cmd === "start") {
      hist = new Hist();
      failures = 0;
    } else if (cmd === "end") {
      const s = hist.summary();
      let max = s.max;
      if (pendingSince !== null) {
        const age = (micros() - pendingSince) / 1000;
        if (max === null || age > max) max = round3(age);
      }
      emitLine({ type: "probe", phase: name, event: EVENT, count: s.count, p50_ms: s.p50,
                 p99_ms: s.p99, max_ms: max, failures, closed: client.closed });
    } else if (cmd === "quit") {
      process.exit(0);
    }
  });
  rl.on("close", () => process.exit(0));
}

traffic.stopping = false;
main().catch((err) => {
  emitLine({ type: "probe-error", msg: String(err && err.message || err) });
  process.exit(2);
});
