// Fails the build if the release wasm would not hydrate. Debian's wasm-opt 108 re-points
// the `__wbindgen_externrefs` export at the funcref table; the page then dies in the
// browser with "WebAssembly.Table.set(): Argument 1 is invalid". We instantiate the module
// with inert imports and store a JS object into that table, exactly what the glue does.
// Also prints raw and gzip -9 sizes (the size budget lives in `make bench`).
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

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
const gz = gzipSync(bytes, { level: 9 }).length;
console.log(`wasm ok: ${path} ${(bytes.length / 1024).toFixed(0)} KiB raw, ${(gz / 1024).toFixed(0)} KiB gzip -9`);
