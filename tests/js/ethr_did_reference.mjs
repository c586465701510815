// ethr-did-resolver, the reference did:ethr resolver, for VeriStream's cross-checks.
//   node ethr_did_reference.mjs resolve REQUEST.json  -> the resolver's results for DIDs on a chain
//     REQUEST: {"rpcUrl", "registry", "chainId", "dids": ["did:ethr:0x7a69:0x..?versionId=12", ...]}
//   node ethr_did_reference.mjs wrap REQUEST.json     -> wrapDidDocument over given histories
//     REQUEST: {"chainId", "cases": [{"did", "address", "now", "blockHeight", "history": [event]}]}
//     event: {"_eventName", "blockNumber", "name" | "delegateType", "value" | "delegate" | "owner",
//             "validTo" (decimal string)}
import fs from "node:fs";
import { createRequire } from "node:module";
import { Resolver } from "did-resolver";
import { getResolver } from "ethr-did-resolver";

// the class whose fold (wrapDidDocument) getResolver uses; the package exports only getResolver
const require = createRequire(import.meta.url);
const { EthrDidResolver } = require(require.resolve("ethr-did-resolver").replace(/index\.js$/, "resolver.js"));

const [mode, requestPath] = process.argv.slice(2);
const request = JSON.parse(fs.readFileSync(requestPath, "utf8"));
const asJson = (value) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? v.toString() : v));

async function resolve() {
  const networks = [{ chainId: Number(request.chainId), rpcUrl: request.rpcUrl, registry: request.registry }];
  const resolver = new Resolver(getResolver({ networks }));
  const results = [];
  for (const did of request.dids) results.push(await resolver.resolve(did));
  return results;
}

function wrap() {
  // no provider is used by wrapDidDocument: the network entry only has to configure
  const resolver = new EthrDidResolver({ networks: [{ chainId: Number(request.chainId), rpcUrl: "http://127.0.0.1:9" }] });
  return request.cases.map((c) => {
    const history = c.history.map((e) => ({ ...e, validTo: e.validTo === undefined ? undefined : BigInt(e.validTo) }));
    return resolver.wrapDidDocument(c.did, c.address, undefined, history, BigInt(request.chainId), c.blockHeight, BigInt(c.now));
  });
}

const output = mode === "resolve" ? await resolve() : wrap();
process.stdout.write(asJson(output), () => process.exit(0));
