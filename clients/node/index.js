// A Node.js client of QMK's gRPC service qmk.v1.Kernel (docs/grpc.md, "From Node.js").
//
// The service is read at run time from the checked-in src/qmk/abi/kernel.proto (generated
// from QMK's method table: one rpc per syscall), with @grpc/proto-loader; nothing is
// generated here and nothing is downloaded at run time. Every rpc of the file is callable
// (client.rpc(name, request)); the usual ones have methods that answer the syscall's
// result exactly as JSON-RPC answers it (its `json` field, parsed; integers past 2^53,
// such as a drawn seed, as BigInt).
//
//   const { Client } = require("@qmk/client");
//   const client = await Client.connect("127.0.0.1:50051",
//       { tenant: "alice", key: "alice-example-key-change-me", caps: ["CAP_ALLOC"] });
//   const job = await client.submit(qasmText, { shots: 1000, seed: 7 });
//   for await (const event of client.watchJob(job.job_id)) console.log(event.event, event.state);
//   const done = await client.wait(job.job_id);
//   console.log(done.state, done.result.counts);
//   client.close();
"use strict";

const path = require("node:path");
const fs = require("node:fs");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

// The states a job ends in (qmk.defaults.FINAL_JOB_STATES; a test checks this copy).
const FINAL_JOB_STATES = Object.freeze(["COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"]);
// The proto in this repository; QMK_PROTO or the protoPath option name another copy.
const DEFAULT_PROTO = path.resolve(__dirname, "..", "..", "src", "qmk", "abi", "kernel.proto");
// How long one Wait call lasts on the server before wait() makes it again (ms).
const WAIT_SLICE_MS = 30000;

// A refusal of the kernel: QMK's code (QS1005), its name (not-found), the message,
// details, and the gRPC status it travelled as. gRPC's own failures (no server, a
// deadline) have no QMK code: code is null and grpcCode says what happened.
class QMKError extends Error {
  constructor(message, { code = null, name = null, details = {}, rpcCode = null, grpcCode } = {}) {
    super(message);
    this.code = code;
    this.errorName = name;
    this.details = details;
    this.rpcCode = rpcCode;
    this.grpcCode = grpcCode;
  }

  get name() {
    return "QMKError";
  }
}

function fromGrpcError(error) {
  if (!error || error.code === undefined) return error;
  const trailer = error.metadata ? error.metadata.get("qmk-error") : [];
  if (trailer.length) {
    const text = Buffer.isBuffer(trailer[0]) ? trailer[0].toString("utf8") : String(trailer[0]);
    try {
      const coded = JSON.parse(text);
      return new QMKError(`${coded.code} ${coded.name}: ${coded.message}`, {
        code: coded.code,
        name: coded.name,
        details: coded.details || {},
        rpcCode: coded.rpc_code === undefined ? null : coded.rpc_code,
        grpcCode: error.code,
      });
    } catch (_) {
      // not QMK's trailer: fall through to gRPC's own error
    }
  }
  return new QMKError(error.details || error.message, { grpcCode: error.code });
}

// JSON text to values, integers past 2^53 as BigInt (JSON.parse would round them).
function parseJson(text) {
  let i = 0;
  const fail = (what) => {
    throw new SyntaxError(`${what} at ${i} of the kernel's JSON`);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const value = () => {
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      const out = {};
      space();
      if (text[i] === "}") return i++, out;
      for (;;) {
        space();
        if (text[i] !== '"') fail("a key expected");
        const key = string();
        space();
        if (text[i++] !== ":") fail("':' expected");
        out[key] = value();
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, out;
        else fail("',' or '}' expected");
      }
    }
    if (c === "[") {
      i++;
      const out = [];
      space();
      if (text[i] === "]") return i++, out;
      for (;;) {
        out.push(value());
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, out;
        else fail("',' or ']' expected");
      }
    }
    if (c === '"') return string();
    for (const [word, meaning] of [["true", true], ["false", false], ["null", null]]) {
      if (text.startsWith(word, i)) return (i += word.length), meaning;
    }
    const number = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (!number) fail("a value expected");
    i += number[0].length;
    if (number[2] === undefined && number[3] === undefined) {
      const whole = Number(number[0]);
      return Number.isSafeInteger(whole) ? whole : BigInt(number[0]);
    }
    return Number(number[0]);
  };
  const string = () => {
    const end = /"(?:[^"\\]|\\.)*"/y;
    end.lastIndex = i;
    const found = end.exec(text);
    if (!found) fail("an unterminated string");
    i = end.lastIndex;
    return JSON.parse(found[0]);
  };
  const out = value();
  space();
  if (i !== text.length) fail("trailing text");
  return out;
}

// A JS value as a google.protobuf.Value, and an object as a Struct (keepCase names).
function toValue(v) {
  if (v === null || v === undefined) return { null_value: "NULL_VALUE" };
  if (typeof v === "boolean") return { bool_value: v };
  if (typeof v === "number") return { number_value: v };
  if (typeof v === "bigint") return { number_value: Number(v) };
  if (typeof v === "string") return { string_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(toValue) } };
  if (typeof v === "object") return { struct_value: toStruct(v) };
  throw new TypeError(`cannot send a ${typeof v} in a Struct`);
}

function toStruct(object) {
  const fields = {};
  for (const [key, v] of Object.entries(object)) fields[key] = toValue(v);
  return { fields };
}

// int64 fields arrive as strings (exact); a safe integer as a number, else a BigInt.
function toInt(text) {
  if (text === null || text === undefined) return text;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : BigInt(text);
}

function int64(v) {
  return typeof v === "bigint" ? v.toString() : v;
}

function loadService(protoPath) {
  const definition = protoLoader.loadSync(protoPath, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const loaded = grpc.loadPackageDefinition(definition);
  return loaded.qmk.v1.Kernel;
}

function target(address) {
  if (address.startsWith("grpcs://")) return [address.slice("grpcs://".length), true];
  if (address.startsWith("grpc://")) return [address.slice("grpc://".length), false];
  return [address, false];
}

class Client {
  // address: "HOST:PORT", "grpc://HOST:PORT", or "grpcs://HOST:PORT" (TLS, with
  // rootCertificates: a PEM Buffer or string; none: the system's roots).
  constructor(address, { protoPath, rootCertificates, sessionId = null, channelOptions = {} } = {}) {
    const file = protoPath || process.env.QMK_PROTO || DEFAULT_PROTO;
    if (!fs.existsSync(file)) {
      throw new QMKError(`no kernel.proto at ${file}: give protoPath (or QMK_PROTO)`, {});
    }
    const [hostPort, tls] = target(address);
    const roots =
      rootCertificates === undefined || Buffer.isBuffer(rootCertificates)
        ? rootCertificates
        : Buffer.from(rootCertificates);
    const credentials = tls ? grpc.credentials.createSsl(roots || null) : grpc.credentials.createInsecure();
    const Kernel = loadService(file);
    this.stub = new Kernel(hostPort, credentials, channelOptions);
    this.rpcs = Object.keys(Kernel.service);
    this.sessionId = sessionId;
    this.tenant = null;
  }

  // A client with a session: NegotiateCaps as tenant with key, asking for caps.
  static async connect(address, { tenant, key, caps = [], ...options } = {}) {
    const client = new Client(address, options);
    try {
      await client.negotiate(tenant, key, caps);
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  metadata() {
    const metadata = new grpc.Metadata();
    if (this.sessionId) metadata.set("authorization", `Bearer ${this.sessionId}`);
    return metadata;
  }

  // Any rpc of the service by its name ("Status", "ListJobs", ...) with its request
  // message (keepCase field names); the decoded answer (int64 as number or BigInt).
  rpc(name, request = {}, { timeoutMs } = {}) {
    if (!this.rpcs.includes(name)) {
      return Promise.reject(new QMKError(`no rpc ${name} in qmk.v1.Kernel`, {}));
    }
    const options = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
    return new Promise((resolve, reject) => {
      this.stub[name](request, this.metadata(), options, (error, answer) => {
        if (error) reject(fromGrpcError(error));
        else resolve(decode(answer));
      });
    });
  }

  // The syscall's result as JSON-RPC answers it (the answer's json field, parsed).
  async call(name, request = {}, options = {}) {
    const answer = await this.rpc(name, request, options);
    return parseJson(answer.json);
  }

  async negotiate(tenant, key, caps = []) {
    const answer = await this.rpc("NegotiateCaps", { tenant, key, requested: caps });
    this.sessionId = answer.session_id;
    this.tenant = answer.tenant;
    return parseJson(answer.json);
  }

  // Submit a program (the text of any format QMK reads); its job, as JSON-RPC answers it.
  // With waitMs, the kernel waits up to that long for the job to be final and answers it
  // as wait() would: a small job in one call.
  submit(program, { shots, seed, policy, format, idempotencyKey, target: where, waitMs } = {}) {
    const request = { program };
    if (shots !== undefined) request.shots = int64(shots);
    if (seed !== undefined && seed !== null) request.seed = int64(seed);
    if (policy !== undefined) request.policy = toStruct(policy);
    if (format !== undefined) request.format = format;
    if (idempotencyKey !== undefined) request.idempotency_key = idempotencyKey;
    if (where !== undefined) request.target = where;
    if (waitMs !== undefined && waitMs !== null) request.wait_ms = int64(waitMs);
    return this.call("Submit", request);
  }

  status(jobId) {
    return this.call("Status", { job_id: jobId });
  }

  cancel(jobId) {
    return this.call("Cancel", { job_id: jobId });
  }

  // The job once it is final (COMPLETED, FAILED, CANCELLED, TIMED_OUT), or as it stands
  // when timeoutMs (default: no limit) has passed.
  async wait(jobId, { timeoutMs } = {}) {
    const end = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (;;) {
      const slice = Math.max(0, Math.min(WAIT_SLICE_MS, end - Date.now()));
      const job = await this.call(
        "Wait",
        { job_id: jobId, timeout_ms: slice },
        { timeoutMs: slice + 30000 },
      );
      if (FINAL_JOB_STATES.includes(job.state) || Date.now() >= end) return job;
    }
  }

  // The job's live events (state, progress, ..., then result), as an async iterator:
  // { event, seq, job_id, state, data } with data the event's JSON, parsed. The stream
  // ends after the result (or with closing, when the server stops).
  async *watchJob(jobId) {
    const call = this.stub.WatchJob({ job_id: jobId }, this.metadata());
    try {
      for await (const message of call) {
        const event = decode(message);
        yield {
          event: event.event,
          seq: event.seq === undefined ? null : event.seq,
          job_id: event.job_id,
          state: event.state,
          data: event.json ? parseJson(event.json) : null,
        };
      }
    } catch (error) {
      throw fromGrpcError(error);
    } finally {
      call.cancel();
    }
  }

  close() {
    this.stub.close();
  }
}

// A decoded message: int64 strings as numbers (BigInt past 2^53), maps kept.
function decode(message) {
  const out = {};
  for (const [key, v] of Object.entries(message)) {
    if (key === "counts" && v && typeof v === "object") {
      out[key] = Object.fromEntries(Object.entries(v).map(([k, n]) => [k, toInt(n)]));
    } else if (typeof v === "string" && ["seq", "seed", "shots"].includes(key)) {
      out[key] = toInt(v);
    } else {
      out[key] = v;
    }
  }
  return out;
}

module.exports = {
  Client,
  QMKError,
  FINAL_JOB_STATES,
  DEFAULT_PROTO,
  parseJson,
  toStruct,
};
