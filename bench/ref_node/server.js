// Reference server for the benchmark only: the same minimal chat on Node's socket.io v4.
//
//   message (any payload)          -> `reply` with that payload to every client
//   sendMessage {content, destId}  -> `reply` {content, from} to destId (a socket id or a room)
//   join ROOM                      -> the sender enters ROOM
//
// Each handler acks {ok: true} when the client asked for an ack. No persistence, no
// validation, socket.io's defaults otherwise.
//
//   node bench/ref_node/server.js --port 8002 [--host 127.0.0.1]
"use strict";

const http = require("http");
const { Server } = require("socket.io");

function option(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const host = option("--host", "127.0.0.1");
const port = Number(option("--port", "8002"));
const OK = { ok: true };

const httpServer = http.createServer();
const io = new Server(httpServer);

io.on("connection", (socket) => {
  socket.on("message", (data, ack) => {
    io.emit("reply", data);
    if (typeof ack === "function") ack(OK);
  });
  socket.on("sendMessage", (data, ack) => {
    if (data && typeof data.destId === "string" && data.destId) {
      io.to(data.destId).emit("reply", { content: data.content, from: socket.id });
    }
    if (typeof ack === "function") ack(OK);
  });
  socket.on("join", (room, ack) => {
    if (typeof room === "string" && room) socket.join(room);
    if (typeof ack === "function") ack(OK);
  });
});

httpServer.listen(port, host, () => {
  const addr = httpServer.address();
  console.log(`Serving on http://${addr.address}:${addr.port}`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => process.exit(0));
}
