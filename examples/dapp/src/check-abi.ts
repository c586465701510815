/**
 * Checks the human-readable ABI fragments of src/veristream.ts against the compiled contracts
 * (contracts/artifacts/*.json): same names, parameter types, indexed topics, return types and
 * mutability. Prints one line per difference and exits 1 if there is any.
 *
 *   npx tsx src/check-abi.ts [ARTIFACTS_DIR]
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

import type { Abi, AbiParameter } from "viem";

import { distributorAbi, verifierAbi } from "./veristream.js";

const artifacts = process.argv[2] ?? join(import.meta.dirname, "..", "..", "..", "contracts", "artifacts");

function shape(item: Abi[number]): string {
  const params = (list: readonly AbiParameter[]): string =>
    list.map((p) => `${p.type}${"indexed" in p && p.indexed ? " indexed" : ""}`).join(",");
  if (item.type === "function") return `function ${item.name}(${params(item.inputs)}) ${item.stateMutability} returns (${params(item.outputs)})`;
  if (item.type === "event") return `event ${item.name}(${params(item.inputs)})`;
  return item.type;
}

let differences = 0;
for (const [contract, fragments] of [["EpochVerifier", verifierAbi], ["RewardDistributor", distributorAbi]] as const) {
  const compiled = (JSON.parse(readFileSync(join(artifacts, `${contract}.json`), "utf8")) as { abi: Abi }).abi;
  for (const item of fragments as Abi) {
    const name = "name" in item ? item.name : item.type;
    const match = compiled.find((c) => c.type === item.type && "name" in c && c.name === name);
    const want = shape(item);
    const have = match === undefined ? "missing" : shape(match);
    if (want !== have) {
      differences += 1;
      console.log(`${contract}.${name}: the dApp has ${want}, the artifact ${have}`);
    }
  }
}
process.exitCode = differences === 0 ? 0 : 1;
