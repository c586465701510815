#!/usr/bin/env node
// Compiles contracts/src/**/*.sol with solc-js (standard JSON) into contracts/artifacts/<Name>.json.
//   node infra/compile_contracts.mjs          write the artifacts
//   node infra/compile_contracts.mjs --check  exit 1 when the committed artifacts differ from a fresh compile
// Imports of packages (e.g. @openzeppelin/contracts) resolve to node_modules/.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SRC = path.join(ROOT, "contracts", "src");
const OUT = path.join(ROOT, "contracts", "artifacts");

// Settings shared with forge (contracts/foundry.toml): keep them in step.
export const SETTINGS = {
  evmVersion: "prague",
  viaIR: true,
  optimizer: { enabled: true, runs: 10000 },
  metadata: { bytecodeHash: "none" },
  outputSelection: {
    "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.deployedBytecode.immutableReferences"] },
  },
};

function solFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...solFiles(full));
    else if (entry.name.endsWith(".sol")) out.push(full);
  }
  return out;
}

function findImports(importPath) {
  const candidates = [path.join(ROOT, "node_modules", importPath), path.join(ROOT, importPath)];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `not found: ${importPath}` };
}

export function compile() {
  const sources = {};
  for (const file of solFiles(SRC)) {
    sources[path.relative(ROOT, file).split(path.sep).join("/")] = { content: fs.readFileSync(file, "utf8") };
  }
  const input = { language: "Solidity", sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === "error");
  for (const e of output.errors || []) {
    // Warnings inside OpenZeppelin are theirs to keep; ours are printed.
    if (e.severity === "error" || !e.sourceLocation?.file?.startsWith("@")) process.stderr.write(e.formattedMessage + "\n");
  }
  if (errors.length) throw new Error(`${errors.length} compile error(s)`);
  const artifacts = {};
  for (const [sourceName, contracts] of Object.entries(output.contracts)) {
    if (!(sourceName in sources)) continue; // only our own sources become artifacts
    for (const [name, c] of Object.entries(contracts)) {
      // Interfaces and internal-only libraries (inlined into their users) need no artifact.
      if (!c.evm.bytecode.object || c.abi.every((item) => item.type === "error")) continue;
      artifacts[name] = {
        contractName: name,
        sourceName,
        compiler: `solc ${solc.version()}`,
        settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer },
        abi: c.abi,
        bytecode: "0x" + c.evm.bytecode.object,
        deployedBytecode: "0x" + c.evm.deployedBytecode.object,
        // byte ranges of the runtime code the constructor fills in (immutables): masked when
        // the code at a deployed address is compared with the artifact
        immutableReferences: c.evm.deployedBytecode.immutableReferences || {},
      };
    }
  }
  return artifacts;
}

function main() {
  const check = process.argv.includes("--check");
  const artifacts = compile();
  const stale = [];
  if (!check) fs.mkdirSync(OUT, { recursive: true });
  for (const [name, artifact] of Object.entries(artifacts)) {
    const text = JSON.stringify(artifact, null, 2) + "\n";
    const file = path.join(OUT, `${name}.json`);
    if (check) {
      if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== text) stale.push(name);
    } else {
      fs.writeFileSync(file, text);
    }
  }
  const expected = new Set(Object.keys(artifacts).map((n) => `${n}.json`));
  const extra = fs.existsSync(OUT) ? fs.readdirSync(OUT).filter((f) => f.endsWith(".json") && !expected.has(f)) : [];
  if (check) {
    if (stale.length || extra.length) {
      process.stderr.write(`artifacts differ from a fresh compile: ${[...stale, ...extra].join(", ")}\n`);
      process.exitCode = 1;
    } else {
      process.stdout.write(`artifacts match (${Object.keys(artifacts).length} contracts)\n`);
    }
  } else {
    for (const f of extra) fs.unlinkSync(path.join(OUT, f));
    process.stdout.write(`wrote ${Object.keys(artifacts).length} artifacts to ${path.relative(ROOT, OUT)}\n`);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
