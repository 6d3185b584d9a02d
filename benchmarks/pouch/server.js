// express-pouchdb over PouchDB (LevelDB on disk) on 127.0.0.1: the server side of pouch_bench.py.
//
//   node server.js DIR [PORT]
//
// Stores its databases, config and log under DIR; prints {"port": N} once it listens.
"use strict";
const path = require("path");
const express = require("express");
const PouchDB = require("pouchdb");
const expressPouchDB = require("express-pouchdb");

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node server.js DIR [PORT]");
  process.exit(2);
}
const ServerDB = PouchDB.defaults({ prefix: path.join(dir, "db-") });
const app = express();
app.use(
  "/",
  expressPouchDB(ServerDB, {
    mode: "minimumForPouchDB",
    configPath: path.join(dir, "config.json"),
    logPath: path.join(dir, "log.txt"),
  })
);
const server = app.listen(Number(process.argv[3] || 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));
