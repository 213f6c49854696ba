// Low-CPU gRPC load generator for bench/routing_bench.py: route calls to TriageRouting.
//
//   node bench/grpc_load/load.js --address 127.0.0.1:50051 --mode stream --streams 2 \
//       --calls 20000 --window 500 --prefix n
//
// Python gRPC costs ~200-300 us of client CPU per message on this machine, so Python load
// generators take much of the two cores the server is measured on. This one (Node,
// @grpc/grpc-js) builds and serializes every request before the clock starts and decodes
// each answer, so the server gets the cores. Modes:
//   stream  `streams` RouteStream calls, each with `calls` routes and at most `window` routes
//           sent ahead of their acks; an ack counts once it is back, in order, with the
//           request's idempotency key and no error.
//   unary   RouteConversation, `window` calls in flight, `calls` in all.
// Prints one JSON line: {calls, routes, start, end, errors, cpu_seconds} (times in seconds
// since the epoch; cpu_seconds = this process's user + system CPU over the measured part).
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const ROOT = path.resolve(__dirname, "..", "..");
const SERVICE = "cctriage.routing.v1.TriageRouting";
const QUEUES = ["general", "retention", "vip", "support"];
const LANGS = ["en", "de", "fr"];
const SKILLS = ["billing", "tech", "sales", "cancel", "fraud", "loyalty"];
const CHAT = 1;

function parseArgs(argv) {
  const args = { address: "", mode: "stream", streams: 1, calls: 10000, window: 500, prefix: "n", seed: 1 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, "");
    if (!(key in args)) throw new Error(`unknown option --${key}`);
    args[key] = typeof args[key] === "number" ? Number(argv[i + 1]) : argv[i + 1];
  }
  if (!args.address) throw new Error("--address is required");
  return args;
}

// Small deterministic generator (mulberry32): the same seed gives the same routes.
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function routes(args, method, n, stream) {
  const rnd = random(args.seed * 1000 + stream);
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const keys = [];
  const bodies = [];
  for (let i = 0; i < n; i++) {
    const key = `${args.prefix}-${args.seed}-${stream}-${i}`;
    const stressed = rnd() < 0.2;
    keys.push(key);
    bodies.push(
      method.requestSerialize({
        idempotency_key: key,
        conversation_id: key,
        tenant_id: "acme",
        queue: pick(QUEUES),
        channel: CHAT,
        priority: Math.floor(rnd() * 101),
        stress: stressed ? 0.9 : 0.2,
        stressed,
        language: pick(LANGS),
        required_skills: [{ skill: pick(SKILLS), min_proficiency: Math.floor(rnd() * 7) }],
        sequence: 1,
      }),
    );
  }
  return { keys, bodies };
}

function runStream(client, method, work, window) {
  return new Promise((resolve) => {
    const { keys, bodies } = work;
    const call = client.makeBidiStreamRequest(
      method.path,
      (body) => body, // serialized before the clock started
      method.responseDeserialize,
      null,
      { deadline: Date.now() + 600_000 },
    );
    let sent = 0;
    let acked = 0;
    let errors = 0;
    const fill = () => {
      while (sent < bodies.length && sent - acked < window) call.write(bodies[sent++]);
      if (sent === bodies.length) call.end();
    };
    call.on("data", (ack) => {
      if (ack.idempotency_key !== keys[acked] || ack.error_code) errors++;
      acked++;
      if (sent < bodies.length) fill();
    });
    call.on("error", () => {}); // counted below as unacknowledged
    call.on("close", () => resolve({ routes: acked, errors: errors + (bodies.length - acked) }));
    fill();
  });
}

function runUnary(client, method, work, window) {
  return new Promise((resolve) => {
    const { keys, bodies } = work;
    let next = 0;
    let done = 0;
    let errors = 0;
    const issue = () => {
      const i = next++;
      client.makeUnaryRequest(
        method.path,
        (body) => body,
        method.responseDeserialize,
        bodies[i],
        { deadline: Date.now() + 60_000 },
        (err, reply) => {
          if (err || reply.conversation_id !== keys[i]) errors++;
          done++;
          if (next < bodies.length) issue();
          else if (done === bodies.length) resolve({ routes: done - errors, errors });
        },
      );
    };
    for (let k = 0; k < Math.min(window, bodies.length); k++) issue();
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const definition = protoLoader.loadSync(path.join(ROOT, "proto", "cctriage", "routing", "v1", "routing.proto"), {
    includeDirs: [path.join(ROOT, "proto")],
    keepCase: true,
    longs: Number,
    enums: Number,
    defaults: true,
  });
  const service = definition[SERVICE];
  const method = args.mode === "stream" ? service.RouteStream : service.RouteConversation;
  const streams = args.mode === "stream" ? args.streams : 1;
  const work = [];
  for (let s = 0; s < streams; s++) work.push(routes(args, method, args.calls, s));
  const client = new grpc.Client(args.address, grpc.credentials.createInsecure());
  await new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + 30_000, (err) => (err ? reject(err) : resolve())),
  );
  const cpu0 = process.cpuUsage();
  const start = Date.now() / 1000;
  const results = await Promise.all(
    work.map((w) => (args.mode === "stream" ? runStream(client, method, w, args.window) : runUnary(client, method, w, args.window))),
  );
  const end = Date.now() / 1000;
  const cpu = process.cpuUsage(cpu0);
  client.close();
  const calls = streams * args.calls;
  console.log(
    JSON.stringify({
      calls,
      routes: results.reduce((n, r) => n + r.routes, 0),
      start,
      end,
      errors: results.reduce((n, r) => n + r.errors, 0),
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
