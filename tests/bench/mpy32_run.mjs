// Runs one MicroPython script on the WebAssembly port (32-bit words) under Node.
//   node mpy32_run.mjs HEAP_BYTES SCRIPT [--romfs IMAGE] [HOSTDIR=/mount ...]
// --romfs: a ROMFS image (samband.device.build.romfs_image), mounted at /rom
// by the port itself, first on sys.path: its .mpy bytecode runs in place, as
// from a board's ROMFS partition, instead of being copied into the heap.
// Each HOSTDIR is copied into the port's in-memory filesystem at /mount
// (the port has no access to the host's files) and /mount goes on sys.path.
// Exit status 1 with the Python traceback on stderr if the script raises.
import fs from "node:fs";
import path from "node:path";
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";

const [heap, script, ...rest] = process.argv.slice(2);
let romfs;
if (rest[0] === "--romfs") {
  romfs = new Uint8Array(fs.readFileSync(rest[1]));
  rest.splice(0, 2);
}
const mounts = rest;
const mp = await loadMicroPython({
  heapsize: parseInt(heap, 10),
  romfs,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
});

function mkdirs(p) {
  let cur = "";
  for (const part of p.split("/").filter(Boolean)) {
    cur += "/" + part;
    try { mp.FS.mkdir(cur); } catch (e) { /* exists */ }
  }
}

function copy(src, dst) {
  mkdirs(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, ent.name), d = dst + "/" + ent.name;
    if (ent.isDirectory()) copy(s, d);
    else if (ent.isFile()) mp.FS.writeFile(d, fs.readFileSync(s));
  }
}

const paths = [];
for (const m of mounts) {
  const i = m.lastIndexOf("=");
  copy(m.slice(0, i), m.slice(i + 1));
  paths.push(m.slice(i + 1));
}
try {
  mp.runPython("import sys\nsys.path[:0] = " + JSON.stringify(paths) + "\ndel sys\n");
  await mp.runPythonAsync(fs.readFileSync(script, "utf8"));
  // This port collects garbage only at its top level, between calls from
  // JavaScript (it cannot scan the wasm stack): a script that measures the
  // heap defines `async def main()`, awaited here, and yields
  // (await asyncio.sleep_ms(0)) after gc.collect() for the collection to run.
  const main = mp.globals.get("main");
  if (typeof main === "function") await main();
} catch (e) {
  if (e.name !== "PythonError") throw e;
  if (e.type !== "SystemExit") {
    process.stderr.write(e.message + "\n");
    process.exitCode = 1;
  }
}
