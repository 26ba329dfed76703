// Runs a wasm32-wasip1 command (bench/stage-work.sh's stage_work.wasm) in Node's V8 with WASI.
// It links the suite's library, whose proxy-wasm imports (`env`) it never calls on the MockHost;
// they are answered with a function returning 0. Usage: node stage-work.mjs <file.wasm> [args...]
import { readFileSync } from 'node:fs';
import { WASI } from 'node:wasi';

const [file, ...args] = process.argv.slice(2);
const module = await WebAssembly.compile(readFileSync(file));
const env = Object.fromEntries(
  WebAssembly.Module.imports(module)
    .filter((i) => i.module === 'env')
    .map((i) => [i.name, () => 0]),
);
const wasi = new WASI({ version: 'preview1', args: ['stage_work', ...args], returnOnExit: true });
const instance = await WebAssembly.instantiate(module, {
  wasi_snapshot_preview1: wasi.wasiImport,
  env,
});
// The library's proxy-wasm entry point (`_initialize`) is exported too; WASI.start refuses a
// module with both, so only the command's `_start` is handed over.
wasi.start({ exports: { _start: instance.exports._start, memory: instance.exports.memory } });
