// Fails the build if the release wasm would not hydrate. Debian's wasm-opt 108 re-points
// the `__wbindgen_externrefs` export at the funcref table; the page then dies in the
// browser with "WebAssembly.Table.set(): Argument 1 is invalid". We instantiate the module
// with inert imports and store a JS object into that table, exactly what the glue does.
//
// The size budget: the wasm a browser fetches to show its first page, gzipped, is at most
// 400 KB, whichever page it lands on. The build is split (`cargo leptos build --split`):
// the main module (the shell, the router, what every page shares) plus the chunks of that
// page, as listed in `__wasm_split_manifest.json`. A page over the budget fails the build.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';

const BUDGET = 400_000;

const path = process.argv[2];
const bytes = readFileSync(path);
if (!WebAssembly.validate(bytes)) throw new Error(`${path}: not a valid wasm module`);
const mod = new WebAssembly.Module(bytes);
const imports = {};
for (const imp of WebAssembly.Module.imports(mod)) {
  imports[imp.module] ??= {};
  if (imp.kind === 'function') imports[imp.module][imp.name] = () => { throw new Error('inert'); };
  else throw new Error(`unexpected ${imp.kind} import ${imp.module}.${imp.name}`);
}
const { exports } = new WebAssembly.Instance(mod, imports);
const table = exports.__wbindgen_externrefs;
if (!(table instanceof WebAssembly.Table)) {
  throw new Error(`${path}: no __wbindgen_externrefs table export (exports: ${Object.keys(exports).join(', ')})`);
}
try {
  table.grow(1);
  table.set(table.length - 1, { probe: true });
} catch (e) {
  throw new Error(`${path}: __wbindgen_externrefs is not an externref table (${e.message}); a bad wasm-opt rewrote it`);
}
const gz = (b) => gzipSync(b, { level: 9 }).length;
const kb = (n) => `${(n / 1000).toFixed(1)} KB`;
const mainGz = gz(bytes);
console.log(`wasm ok: ${path} ${kb(bytes.length)} raw, ${kb(mainGz)} gzip -9`);

const manifestPath = join(dirname(path), '__wasm_split_manifest.json');
const pages = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, 'utf8')) : { 'whole bundle (not split)': [] };
const chunkGz = new Map();
const sizeOf = (chunk) => {
  if (!chunkGz.has(chunk)) {
    const b = readFileSync(join(dirname(path), `${chunk}.wasm`));
    if (!WebAssembly.validate(b)) throw new Error(`${chunk}.wasm: not a valid wasm module`);
    chunkGz.set(chunk, gz(b));
  }
  return chunkGz.get(chunk);
};
const over = [];
const rows = Object.entries(pages).map(([split, chunks]) => {
  const page = split.replace(/^__/, '').replace(/_page_view_\d+$/, '');
  const total = mainGz + chunks.reduce((n, c) => n + sizeOf(c), 0);
  if (total > BUDGET) over.push(page);
  return [page, chunks.length, total];
}).sort((a, b) => b[2] - a[2]);
console.log(`first load per page (main ${kb(mainGz)} + the page's chunks, gzip -9; budget ${kb(BUDGET)}):`);
for (const [page, n, total] of rows) console.log(`  ${page.padEnd(10)} ${kb(total).padStart(9)}  (${n} chunks)${total > BUDGET ? '  OVER BUDGET' : ''}`);
const goal = (what, n) => console.log(`GOAL\t${what}\t${kb(n)}\t≤ ${kb(BUDGET)}\t${n <= BUDGET ? 'met' : 'not met'}`);
goal(`browser bundle: first load of the heaviest page (${rows[0][0]}, gzip)`, rows[0][2]);
const overview = rows.find(([page]) => page === 'overview');
if (overview) goal('browser bundle: first load of the overview (gzip)', overview[2]);
if (over.length) throw new Error(`wasm over the ${kb(BUDGET)} first-load budget on: ${over.join(', ')}`);
