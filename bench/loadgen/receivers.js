// Extra receivers, in a second generator process: M more clients that only take in the
// `reply` frames a broadcast sends them, to show whether the main generator (loadgen.js)
// limits a broadcast result. If the server is the limit, adding these clients splits the
// same deliveries per second over more recipients; if the main generator were, the total
// would rise.
//
// stdin, one command a line: "start NAME" opens a window, "end NAME" prints
//   {"type":"receivers","phase":NAME,"clients":..,"replies":..,"replies_per_s":..}
// "quit" (or the end of stdin) stops it.
//
//   node receivers.js --url http://127.0.0.1:PORT --server ours|minimal|node --n 1000
"use strict";

const readline = require("readline");
const { Client, emitLine, parseArgs, socketUrl, traffic } = require("./lib");

const args = parseArgs(process.argv.slice(2));
const N = Number(args.n || 1000);
const URL = socketUrl(args.url);

async function main() {
  const clients = [];
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < N) {
      const c = new Client(next++, URL, { waitWelcome: args.server === "ours",
                                          timeoutMs: 30000 });
      try {
        await c.connect();
        clients.push(c);
      } catch (_) {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  emitLine({ type: "receivers-ready", clients: clients.length, failed });
  let since = null;
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [cmd, name] = line.trim().split(/\s+/, 2);
    if (cmd === "start") {
      since = { replies: traffic.replies, t: Date.now() };
    } else if (cmd === "end") {
      const replies = since ? traffic.replies - since.replies : 0;
      const secs = since ? (Date.now() - since.t) / 1000 : 0;
      emitLine({ type: "receivers", phase: name, clients: clients.filter((c) => !c.closed).length,
                 replies, secs, replies_per_s: secs > 0 ? Math.round(replies / secs) : null });
      since = null;
    } else if (cmd === "quit") {
      process.exit(0);
    }
  });
  rl.on("close", () => process.exit(0));
}

main().catch((err) => {
  emitLine({ type: "receivers-error", msg: String(err && err.message || err) });
  process.exit(2);
});
