// PouchDB replication as an app runs it: the client side of pouch_bench.py.
//
//   node replicate.js push URL DIR DOCS.jsonl [BATCH_SIZE]
//       a local PouchDB (LevelDB in DIR) gets the documents of DOCS.jsonl (not timed),
//       then replicates to the database at URL (timed)
//   node replicate.js pull URL DIR [BATCH_SIZE]
//       a fresh local PouchDB (LevelDB in DIR) replicates from URL (timed)
//
// Prints {"op", "docs", "docs_written", "seconds", "cpu_seconds", "setup_seconds", "batch_size"} as
// JSON (seconds and cpu_seconds: of the replication alone). BATCH_SIZE 0 (the
// default) leaves PouchDB's own (100 documents a batch).
"use strict";
const fs = require("fs");
const path = require("path");
const PouchDB = require("pouchdb");

async function main() {
  const [op, url, dir, ...rest] = process.argv.slice(2);
  if (!["push", "pull"].includes(op) || !url || !dir) {
    console.error("usage: node replicate.js push URL DIR DOCS.jsonl [BATCH_SIZE] | pull URL DIR [BATCH_SIZE]");
    process.exit(2);
  }
  const docsFile = op === "push" ? rest.shift() : null;
  const batchSize = Number(rest[0] || 0);
  const options = batchSize ? { batch_size: batchSize } : {};
  const local = new PouchDB(path.join(dir, "local"));
  let setup = 0;
  if (op === "push") {
    const t0 = process.hrtime.bigint();
    const docs = fs
      .readFileSync(docsFile, "utf8")
      .split("\n")
      .filter((line) => line)
      .map((line) => JSON.parse(line));
    for (let i = 0; i < docs.length; i += 1000) {
      await local.bulkDocs(docs.slice(i, i + 1000));
    }
    setup = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  const remote = new PouchDB(url);
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  const result = op === "push" ? await local.replicate.to(remote, options) : await local.replicate.from(remote, options);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  if (!result.ok) {
    throw new Error("replication failed: " + JSON.stringify(result.errors));
  }
  const info = await (op === "push" ? remote : local).info();
  console.log(
    JSON.stringify({
      op,
      docs: info.doc_count,
      docs_written: result.docs_written,
      seconds,
      cpu_seconds: (cpu.user + cpu.system) / 1e6,
      setup_seconds: setup,
      batch_size: batchSize || 100,
    })
  );
  await local.close();
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
