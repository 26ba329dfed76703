// The browser validator (dist/web, built by scripts/web-build.sh) in headless Chromium: size, the
// one-time load + configure cost, and the cost of one `check` — timed per call — for the gateway
// benchmark's requests against bench/pets-api.yaml's bundle. Before timing, every answer must
// equal the native build's (the plugin's own code under MockHost-equivalent tests), byte for byte
// after JSON normalisation.
//   node bench/web-validator.mjs [--calls N] [--loads N] [--write]
// --calls: timed checks per request (default 2000, after 2000 warm-up calls); --loads: fresh page
// loads for the load/configure times (default 5); --write: put the table into bench/README.md
// between <!-- web-validator:start --> and <!-- web-validator:end -->.
// Needs scripts/install-deps.sh's Chromium and playwright-core (KEA_OIDC_DIR, default
// ~/.cache/kea/oidc-provider) and cargo (the fixture is made by
// `cargo run -p kea-web-validator --example page_fixture`). KEA_CHROMIUM names the browser binary.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import zlib from 'node:zlib';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const web = path.join(root, 'dist', 'web');
const cache = process.env.KEA_CACHE ?? path.join(os.homedir(), '.cache', 'kea');
const option = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at > 0 && process.argv[at + 1] ? Number(process.argv[at + 1]) : fallback;
};
const calls = option('--calls', 2000);
const loads = option('--loads', 5);
const write = process.argv.includes('--write');

for (const file of ['kea_validator.js', 'kea_validator_bg.wasm']) {
  if (!fs.existsSync(path.join(web, file))) {
    console.error(`dist/web/${file} is missing: run scripts/web-build.sh first`);
    process.exit(1);
  }
}
const oidcDir = process.env.KEA_OIDC_DIR ?? path.join(cache, 'oidc-provider');
const playwright = path.join(oidcDir, 'node_modules', 'playwright-core', 'index.mjs');
if (!fs.existsSync(playwright)) {
  console.error(`playwright-core is not installed in ${oidcDir}: run scripts/install-deps.sh`);
  process.exit(1);
}
const { chromium } = await import(pathToFileURL(playwright).href);

console.error('[kea] making the fixture (cargo run -p kea-web-validator --example page_fixture)');
const fixture = execFileSync(
  'cargo',
  ['run', '--quiet', '--locked', '-p', 'kea-web-validator', '--example', 'page_fixture'],
  {
    cwd: root,
    env: { ...process.env, CARGO_TARGET_DIR: process.env.CARGO_TARGET_DIR ?? path.join(cache, 'target') },
    maxBuffer: 256 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  },
);

const files = {
  // No favicon request: the page names an empty one.
  '/': ['text/html; charset=utf-8', Buffer.from('<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>KEA validator bench</title>')],
  '/fixture.json': ['application/json', fixture],
  '/kea_validator.js': ['text/javascript', null],
  '/kea_validator_bg.wasm': ['application/wasm', null],
};
const server = http.createServer((request, response) => {
  const entry = files[new URL(request.url, 'http://x').pathname];
  if (!entry) {
    response.writeHead(404).end();
    return;
  }
  const [type, body] = entry;
  response.writeHead(200, {
    'content-type': type,
    'cache-control': 'no-store',
    // Cross-origin isolation: performance.now() then resolves 5 µs instead of 100 µs.
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
  });
  response.end(body ?? fs.readFileSync(path.join(web, request.url.slice(1))));
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

// Runs in the page: load, configure, check every fixture request against its native answer, time.
async function measure({ calls, timeChecks }) {
  const canonical = (value) =>
    JSON.stringify(value, (_, v) =>
      v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort()) : v);
  const t0 = performance.now();
  const validator = await import('/kea_validator.js');
  await validator.default();
  const t1 = performance.now();
  const fixture = await (await fetch('/fixture.json')).json();
  const t2 = performance.now();
  const engine = new validator.Validator(fixture.config);
  const t3 = performance.now();
  const result = {
    isolated: self.crossOriginIsolated, load: t1 - t0, configure: t3 - t2,
    configBytes: fixture.config.length, checks: [], first: [], mismatches: [],
  };
  const encoder = new TextEncoder();
  const checks = fixture.requests.map((request) => {
    const headers = JSON.stringify(request.headers);
    const body = request.body ? encoder.encode(request.body) : undefined;
    return { request, body, check: () => JSON.parse(engine.check(request.method, request.target, headers, body)) };
  });
  // The first call of each: what a page's visitor waits for (V8's baseline code, cold caches).
  for (const { request, check } of checks) {
    const start = performance.now();
    const answer = check();
    result.first.push(performance.now() - start);
    if (canonical(answer) !== canonical(request.expected)) {
      result.mismatches.push({ name: request.name, browser: answer, native: request.expected });
    }
  }
  if (!timeChecks) {
    engine.free();
    return result;
  }
  // Warm-up: V8 first runs wasm from its baseline compiler and optimises hot functions on
  // background threads; let that finish before timing.
  for (const { check } of checks) for (let i = 0; i < 2000; i++) check();
  await new Promise((resolve) => setTimeout(resolve, 500));
  for (const { request, body, check } of checks) {
    const samples = new Float64Array(calls);
    let answer;
    for (let i = 0; i < calls; i++) {
      const start = performance.now();
      answer = check();
      samples[i] = performance.now() - start;
    }
    samples.sort();
    const at = (q) => samples[Math.min(calls - 1, Math.floor(q * calls))];
    result.checks.push({
      name: request.name, bytes: body ? body.length : 0,
      status: answer.status ?? null, verdict: answer.verdict,
      median: at(0.5), p99: at(0.99), mean: samples.reduce((a, b) => a + b, 0) / calls,
    });
  }
  engine.free();
  return result;
}

const browser = await chromium.launch({
  executablePath: process.env.KEA_CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  // As tests/oidc/browser.mjs: no sandbox as root; no background connections.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
let runs = [];
try {
  // Fresh contexts: nothing cached between loads. The last one also times the checks.
  for (let i = 0; i < loads; i++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    page.on('console', (message) => console.error(`[page] ${message.text()}`));
    await page.goto(`${origin}/`);
    runs.push(await page.evaluate(measure, { calls, timeChecks: i === loads - 1 }));
    await context.close();
  }
} finally {
  await browser.close();
  server.close();
}

const bad = runs.flatMap((run) => run.mismatches);
if (bad.length > 0) {
  console.error('the browser answered differently from the native build:');
  console.error(JSON.stringify(bad, null, 2));
  process.exit(1);
}
const last = runs[runs.length - 1];
if (!last.isolated) console.error('warning: the page is not cross-origin isolated; timings are 100 µs coarse');

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const size = (file) => {
  const bytes = fs.readFileSync(path.join(web, file));
  return { raw: bytes.length, gz: zlib.gzipSync(bytes, { level: 9 }).length };
};
const wasm = size('kea_validator_bg.wasm');
const js = size('kea_validator.js');
const kb = (n) => `${(n / 1024).toFixed(0)} KiB`;
const ms = (n) => `${n.toFixed(1)} ms`;
const us = (n) => `${(n * 1000).toFixed(0)} µs`;
const version = execFileSync(process.env.KEA_CHROMIUM ?? '/usr/bin/chromium', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
  .toString().trim();
const lines = [
  `Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.cpus().length} cores; ${version}, headless; ` +
    `Node ${process.version} serving dist/web on 127.0.0.1 (no cache). ${calls} timed calls per request, after 2000 warm-up calls of each; ` +
    `load and configure: median of ${runs.length} fresh page loads. Every answer equals the native build's.`,
  '',
  '| what | size / median | p99 | mean |',
  '|---|---:|---:|---:|',
  `| \`kea_validator_bg.wasm\` | ${kb(wasm.raw)}, gzip ${kb(wasm.gz)} | | |`,
  `| \`kea_validator.js\` | ${kb(js.raw)}, gzip ${kb(js.gz)} | | |`,
  `| **download, gzip** | **${kb(wasm.gz + js.gz)}** | | |`,
  `| load: import the .js, fetch + compile + instantiate the .wasm | ${ms(median(runs.map((r) => r.load)))} | | |`,
  `| configure: \`new Validator\` (bundle of bench/pets-api.yaml, ${kb(last.configBytes)} of config JSON) | ${ms(median(runs.map((r) => r.configure)))} | | |`,
  ...last.checks.map((c, i) =>
    `| first \`check\` after configure: ${c.name} | ${ms(median(runs.map((r) => r.first[i])))} | | |`),
  ...last.checks.map((c) =>
    `| \`check\` + \`JSON.parse\`: ${c.name} → ${c.status ?? c.verdict} | ${us(c.median)} | ${us(c.p99)} | ${us(c.mean)} |`),
];
const table = lines.join('\n');
console.log(table);
if (write) {
  const readme = path.join(root, 'bench', 'README.md');
  const text = fs.readFileSync(readme, 'utf8');
  const start = '<!-- web-validator:start -->';
  const end = '<!-- web-validator:end -->';
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) {
    console.error(`bench/README.md has no ${start} … ${end} section`);
    process.exit(1);
  }
  fs.writeFileSync(readme, `${text.slice(0, from + start.length)}\n${table}\n${text.slice(to)}`);
  console.error('[kea] bench/README.md updated');
}
