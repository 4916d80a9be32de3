// Drives the Node.js client (clients/node) against a real `qmk serve --grpc`, for
// tests/grpc/test_node_client.py: node check.js HOST:PORT TENANT KEY PROGRAM_FILE.
// Prints one JSON object of what it saw (BigInt as a string).
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { Client, QMKError, FINAL_JOB_STATES } = require(path.join(__dirname, "..", "..", "..", "clients", "node"));

async function main() {
  const [address, tenant, key, programFile] = process.argv.slice(2);
  const program = fs.readFileSync(programFile, "utf8");
  const client = await Client.connect(address, { tenant, key, caps: ["CAP_ALLOC"] });
  const seen = { tenant: client.tenant, final_states: FINAL_JOB_STATES };
  try {
    const job = await client.submit(program, { shots: 1000, seed: 7 });
    seen.submitted = { state: job.state, seed: job.seed, shots: job.shots };
    seen.events = [];
    for await (const event of client.watchJob(job.job_id)) {
      seen.events.push({ event: event.event, state: event.state });
      if (event.event === "result") seen.watched_counts = event.data.result.counts;
    }
    const done = await client.wait(job.job_id);
    seen.done = { state: done.state, counts: done.result.counts, job_id: done.job_id };
    const typed = await client.rpc("Status", { job_id: job.job_id });
    seen.typed = { state: typed.state, counts: typed.counts, seed: typed.seed };
    const big = await client.submit(program, { shots: 10, seed: 2n ** 62n + 1n });
    seen.big_seed = String((await client.wait(big.job_id)).seed);
    const waited = await client.submit(program, { shots: 1000, seed: 7, waitMs: 60000 });
    seen.waited = { state: waited.state, counts: waited.result.counts };
    try {
      await client.status("job_none");
    } catch (error) {
      seen.missing = { is_qmk: error instanceof QMKError, code: error.code, name: error.errorName, grpc: error.grpcCode };
    }
    const jobs = await client.call("ListJobs", {});
    seen.listed = jobs.jobs.map((j) => j.job_id);
  } finally {
    client.close();
  }
  try {
    await Client.connect(address, { tenant, key: "wrong", caps: [] });
  } catch (error) {
    seen.bad_key = { code: error.code, grpc: error.grpcCode };
  }
  process.stdout.write(JSON.stringify(seen, (k, v) => (typeof v === "bigint" ? v.toString() : v)));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
