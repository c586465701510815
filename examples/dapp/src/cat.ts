/**
 * `ipfs cat` that trusts no node: writes the file a CID names to stdout, every block fetched
 * through the RPC API and re-hashed against its CID first (src/ipfs.ts).
 *
 *   npx tsx src/cat.ts --ipfs http://127.0.0.1:5001 bafk...
 */
import { parseArgs } from "node:util";

import { DappError, EXIT } from "./errors.js";
import { catVerified } from "./ipfs.js";

try {
  const { values, positionals } = parseArgs({ options: { ipfs: { type: "string" } }, allowPositionals: true });
  if (values.ipfs === undefined || positionals.length !== 1) {
    throw new DappError("usage: tsx src/cat.ts --ipfs URL CID", EXIT.usage);
  }
  const bytes = await catVerified(values.ipfs, positionals[0]);
  await new Promise<void>((resolve, reject) => process.stdout.write(bytes, (error) => (error ? reject(error) : resolve())));
} catch (error) {
  console.error(`error: ${(error as Error).message}`);
  process.exitCode = error instanceof DappError ? error.exitCode : EXIT.usage;
}
