// node_http.js — Node's own http module (Debian package nodejs) in two roles for
// test_strict_http.py, so the bot's requests meet a parser that is not ours:
//   node node_http.js proxy http://127.0.0.1:PORT/   a reverse proxy in front of the fake Slack
//   node node_http.js sink                           a webhook receiver; GET /_requests lists them
// Each prints "listening <port>" once it accepts connections. Node answers 400 to a malformed
// request and 417 to an Expect it does not know by itself: nothing here relaxes that.
"use strict";
const http = require("http");

const role = process.argv[2];
const received = [];

function listen(server) {
  server.listen(0, "127.0.0.1", () => {
    process.stdout.write("listening " + server.address().port + "\n");
  });
}

if (role === "proxy") {
  const target = new URL(process.argv[3]);
  listen(http.createServer((req, res) => {
    const headers = Object.assign({}, req.headers, { host: target.host });
    const up = http.request({ host: target.hostname, port: target.port, method: req.method,
                              path: req.url, headers }, (answer) => {
      res.writeHead(answer.statusCode, answer.headers);
      answer.pipe(res);
    });
    up.on("error", (err) => {
      res.writeHead(502, { "content-type": "text/plain" });
      res.end("proxy: " + err.code);
    });
    req.pipe(up);
  }));
} else if (role === "sink") {
  listen(http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/_requests") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(received));
      return;
    }
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      received.push({ method: req.method, path: req.url, headers: req.headers,
                      body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"ok":true}');
    });
  }));
} else {
  process.stderr.write("usage: node node_http.js proxy URL | sink\n");
  process.exit(2);
}
