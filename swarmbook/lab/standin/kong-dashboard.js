#!/usr/bin/env node
// STAND-IN for the lab only: NOT pgbi/kong-dashboard (no UI, no proxying of the admin API).
//
// It sits where the real image keeps its CLI (/app/bin/kong-dashboard.js, run by
// ./docker/entrypoint.sh from WORKDIR /app) and takes the same command line the same way: its
// users come ONLY from process.argv (`start --kong-url URL [--port N] [--basic-auth u=p ...]`,
// parsed like the real CLI's strict yargs options), never from the environment. Like the real
// one it refuses what isn't Kong at startup, skips a --basic-auth value that is not exactly
// "user=password", and serves WITHOUT auth when no user is left.
// Then: 401 without valid credentials, 200 with them, the body reading Kong's admin API.
"use strict";

const http = require("http");
const https = require("https");

const TYPES = {
  "kong-url": "string", port: "number", "basic-auth": "array", "api-key": "string", "api-key-name": "string",
  gelato: "boolean", "kong-username": "string", "kong-password": "string", insecure: "boolean",
  verbose: "boolean", help: "boolean",
};
const ALIASES = { u: "kong-url", p: "port", g: "gelato", v: "verbose" };

function usage(message) {
  if (message) console.error(message);
  console.error("Usage: kong-dashboard.js start --kong-url URL [--port N] [--basic-auth user=password ...]");
  process.exit(1);
}

function parse(args) {
  const out = { _: [], port: 8080, "basic-auth": [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("-") || a === "-") {
      out._.push(a);
      continue;
    }
    let name = a.replace(/^--?/, "");
    let value;
    const eq = name.indexOf("=");
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    name = ALIASES[name] || name;
    const type = TYPES[name];
    if (!type) usage(`Unknown argument: ${name}`);
    if (type === "boolean") {
      out[name] = value === undefined || value !== "false";
    } else if (type === "array") {  // like yargs: every following word up to the next option
      const values = value === undefined ? [] : [value];
      while (i + 1 < args.length && !args[i + 1].startsWith("-")) values.push(args[++i]);
      out[name] = (out[name] || []).concat(values);
    } else {
      if (value === undefined) {
        if (i + 1 >= args.length || args[i + 1].startsWith("-")) usage(`Not enough arguments following: ${name}`);
        value = args[++i];
      }
      out[name] = type === "number" ? Number(value) : value;
    }
  }
  return out;
}

function get(url) {
  return new Promise((resolve, reject) => {
    const req = (url.startsWith("https:") ? https : http).get(url, { timeout: 3000 }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk) => { body += chunk; });
      res.on("end", () => resolve({ status: res.statusCode, body }));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

function json(text) {
  try {
    return JSON.parse(text);
  } catch (e) {
    return undefined;
  }
}

const argv = parse(process.argv.slice(2));
if (argv.help || argv._[0] !== "start") usage();
if (argv._.length > 1) usage(`Unknown argument: ${argv._[1]}`);
if (!argv["kong-url"]) usage("Missing required argument: kong-url");
if (!Number.isInteger(argv.port)) usage("Invalid option port");
const kongUrl = argv["kong-url"];

const allowed = new Set();
for (const element of argv["basic-auth"]) {
  const creds = element.split("=");
  if (creds.length !== 2) {
    console.warn("Invalid value for --basic-auth option. Ignoring.");  // (the real one prints the value)
  } else {
    allowed.add("Basic " + Buffer.from(`${creds[0]}:${creds[1]}`).toString("base64"));
  }
}

function serve() {
  http.createServer((req, res) => {
    if (allowed.size && !allowed.has(req.headers.authorization || "")) {
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="kong-dashboard"' });
      res.end();
      return;
    }
    get(kongUrl).then((r) => json(r.body) || { error: `not JSON (${r.status})` }, (e) => ({ error: e.message }))
      .then((kong) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ dashboard: "swarmbook lab stand-in", auth: allowed.size > 0, kong }));
      });
  }).listen(argv.port, "0.0.0.0", () => console.log(`Kong Dashboard stand-in on port ${argv.port}`));
}

process.on("SIGTERM", () => process.exit(0));
console.log(`Connecting to Kong on ${kongUrl} ...`);
get(kongUrl).then((r) => {
  const body = json(r.body);
  if (!body || body.tagline !== "Welcome to kong") {
    console.error(`What's on ${kongUrl} isn't Kong`);
    process.exit(1);
  }
  console.log(`Connected to Kong on ${kongUrl}.`);
  serve();
}, (e) => {
  console.error(`Could not reach Kong on ${kongUrl}: ${e.message}`);
  process.exit(1);
});
