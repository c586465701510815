/**
 * The dApp example as a command: against a chain node and an IPFS node, for one VeriStream job,
 * it lists the verified epochs, fetches and checks an epoch's manifest and trees, shows one
 * device's aggregates and proves one of them and one of its readings on chain, then claims a
 * contributor's reward directly and another's through a relayer.
 *
 *   npx tsx src/main.ts --rpc http://127.0.0.1:8545 --ipfs http://127.0.0.1:5001 \
 *     --deployment WORK_DIR/deployment.json --job weather-demo \
 *     --claimer env:CLAIMER_KEY --authorizer env:CONTRIBUTOR_KEY --relayer env:RELAYER_KEY --json
 *
 * With --json every step prints one JSON object on its own line (integers exact, hex 0x-prefixed,
 * CIDs as text); exit codes are the `veristream` command line's (src/errors.ts).
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";

import {
  type Account,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  createPublicClient,
  defineChain,
  getAddress,
  http,
  isAddress,
  isHex,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { DappError, EXIT } from "./errors.js";
import {
  type ClaimReceipt,
  type Deployment,
  type VerifiedEpoch,
  aggregatesOf,
  claim,
  claimFor,
  claimableTree,
  encodeLeaf,
  fetchManifest,
  findJob,
  loadTrees,
  proveAggregate,
  proveReading,
  verifiedEpochs,
  verifierAbi,
} from "./veristream.js";

const USAGE = `usage: tsx src/main.ts --rpc URL --ipfs URL --deployment FILE (--job NAME [--job-owner ADDR] | --job-id HEX)
  [--epoch N] [--device ADDR] [--field NAME] [--seq N]
  [--claimer KEY] [--authorizer KEY --relayer KEY] [--json]
KEY is env:VARIABLE (preferred: keys stay out of the process list) or 0x-hex.`;

interface Options {
  rpc: string;
  ipfs: string;
  deployment: Deployment;
  job?: string;
  jobOwner?: Address;
  jobId?: Hex;
  epoch?: bigint;
  device?: Address;
  field?: string;
  seq?: bigint;
  claimer?: Account;
  authorizer?: Account;
  relayer?: Account;
  json: boolean;
}

function options(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      rpc: { type: "string" },
      ipfs: { type: "string" },
      deployment: { type: "string" },
      job: { type: "string" },
      "job-owner": { type: "string" },
      "job-id": { type: "string" },
      epoch: { type: "string" },
      device: { type: "string" },
      field: { type: "string" },
      seq: { type: "string" },
      claimer: { type: "string" },
      authorizer: { type: "string" },
      relayer: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(EXIT.ok);
  }
  if (!values.rpc || !values.ipfs || !values.deployment) usage("--rpc, --ipfs and --deployment are required");
  if (!values.job === !values["job-id"]) usage("name the job with --job NAME or --job-id HEX (one of them)");
  if ((values.authorizer === undefined) !== (values.relayer === undefined)) usage("--authorizer and --relayer go together");
  return {
    rpc: values.rpc!,
    ipfs: values.ipfs!,
    deployment: readDeployment(values.deployment!),
    job: values.job,
    jobOwner: values["job-owner"] === undefined ? undefined : address(values["job-owner"], "--job-owner"),
    jobId: values["job-id"] === undefined ? undefined : bytes32(values["job-id"], "--job-id"),
    epoch: values.epoch === undefined ? undefined : integer(values.epoch, "--epoch"),
    device: values.device === undefined ? undefined : address(values.device, "--device"),
    field: values.field,
    seq: values.seq === undefined ? undefined : integer(values.seq, "--seq"),
    claimer: values.claimer === undefined ? undefined : account(values.claimer, "--claimer"),
    authorizer: values.authorizer === undefined ? undefined : account(values.authorizer, "--authorizer"),
    relayer: values.relayer === undefined ? undefined : account(values.relayer, "--relayer"),
    json: values.json!,
  };
}

function usage(message: string): never {
  throw new DappError(`${message}\n${USAGE}`, EXIT.usage);
}

function readDeployment(path: string): Deployment {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (error) {
    throw new DappError(`cannot read the deployment ${path}: ${String(error)}`, EXIT.usage);
  }
  const chainId = raw.chain_id;
  if (typeof chainId !== "number") throw new DappError(`deployment ${path} lacks chain_id`, EXIT.usage);
  return {
    chain_id: chainId,
    epoch_verifier: address(String(raw.epoch_verifier), `${path} epoch_verifier`),
    reward_distributor: address(String(raw.reward_distributor), `${path} reward_distributor`),
  };
}

function address(text: string, what: string): Address {
  // any case: deployment files and veristream's JSON write lower-case or checksummed hex
  if (!isAddress(text, { strict: false })) throw new DappError(`${what}: not an address: ${text}`, EXIT.usage);
  return getAddress(text);
}

function bytes32(text: string, what: string): Hex {
  if (!isHex(text) || text.length !== 66) throw new DappError(`${what}: not 32 bytes of 0x-hex: ${text}`, EXIT.usage);
  return text.toLowerCase() as Hex;
}

function integer(text: string, what: string): bigint {
  if (!/^\d+$/.test(text)) throw new DappError(`${what}: not a non-negative integer: ${text}`, EXIT.usage);
  return BigInt(text);
}

function account(spec: string, what: string): Account {
  const key = spec.startsWith("env:") ? process.env[spec.slice(4)] : spec;
  if (key === undefined) throw new DappError(`${what}: environment variable ${spec.slice(4)} is not set`, EXIT.usage);
  if (!isHex(key) || key.length !== 66) throw new DappError(`${what}: not a 32-byte private key`, EXIT.usage);
  return privateKeyToAccount(key);
}

/** JSON text with bigints as exact integer literals (JSON.stringify refuses bigints). */
function toJson(value: unknown): string {
  const marked = JSON.stringify(value, (_key, v: unknown) => (typeof v === "bigint" ? `\u0000bigint:${v}` : v));
  return marked.replace(/"\\u0000bigint:(-?\d+)"/g, "$1");
}

class Printer {
  constructor(private readonly json: boolean) {}

  step(step: string, fields: Record<string, unknown>, text: string): void {
    console.log(this.json ? toJson({ step, ...fields }) : text);
  }
}

async function connect(opts: Options): Promise<{ client: PublicClient; chain: Chain }> {
  // no retries here: a node that is down is reported at once (the client below retries)
  const probe = createPublicClient({ transport: http(opts.rpc, { retryCount: 0 }) });
  let id: number;
  try {
    id = await probe.getChainId();
  } catch (error) {
    throw new DappError(`chain node ${opts.rpc} is unreachable: ${(error as Error).message.split("\n")[0]}`, EXIT.unreachable);
  }
  if (id !== opts.deployment.chain_id) {
    throw new DappError(`the deployment is for chain ${opts.deployment.chain_id}, ${opts.rpc} is chain ${id}`, EXIT.usage);
  }
  const chain = defineChain({
    id,
    name: `chain ${id}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [opts.rpc] } },
  });
  return { client: createPublicClient({ chain, transport: http(opts.rpc) }) as PublicClient, chain };
}

function claimFields(r: ClaimReceipt): Record<string, unknown> {
  return {
    account: r.account,
    sender: r.sender,
    epoch: r.epoch,
    cumulative: r.cumulative,
    amount: r.paid,
    balance_before: r.balanceBefore,
    balance_after: r.balanceAfter,
    token: r.token,
    tx_hash: r.transactionHash,
    gas: r.gasUsed,
  };
}

async function main(opts: Options): Promise<number> {
  const out = new Printer(opts.json);
  const { client, chain } = await connect(opts);
  const dep = opts.deployment;
  const jobId = opts.jobId ?? (await findJob(client, dep, opts.job!, opts.jobOwner));
  let failed = false;

  // 1. the job's verified epochs
  const epochs = await verifiedEpochs(client, dep, jobId);
  out.step("epochs", {
    job_id: jobId,
    epochs: epochs.map((e) => ({
      epoch: e.epoch,
      data_root: e.dataRoot,
      aggregates_root: e.aggregatesRoot,
      reward_root: e.rewardRoot,
      batch_cid: e.batchCid,
      manifest_cid: e.manifestCid,
      signers: signerSlots(e.signerBitmap),
      signed_weight: e.signedWeight,
      total_weight: e.totalWeight,
      block: e.blockNumber,
      tx_hash: e.transactionHash,
    })),
  }, `job ${jobId}: ${epochs.length} verified epochs (${epochs.map((e) => e.epoch).join(", ")})`);
  if (epochs.length === 0) throw new DappError(`job ${jobId} has no verified epoch yet`, EXIT.notFound);

  // 2. one epoch's manifest and trees, checked against the chain
  const verified = pickEpoch(epochs, opts.epoch);
  const manifest = await fetchManifest(client, opts.ipfs, dep, jobId, verified);
  const trees = await loadTrees(opts.ipfs, manifest);
  const treeFields = Object.fromEntries(
    (["data", "aggregates", "rewards"] as const).map((name) => [
      name, { cid: manifest.trees[name], root: trees[name]?.root ?? null, leaves: trees[name] ? [...trees[name].entries()].length : 0 },
    ]),
  );
  out.step("manifest", {
    epoch: verified.epoch, manifest_cid: verified.manifestCid, job_name: manifest.job_id, accepted: manifest.accepted, trees: treeFields,
  }, `epoch ${verified.epoch}: manifest ${verified.manifestCid} checked; trees ${Object.entries(treeFields).map(([n, t]) => `${n}=${t.leaves}`).join(" ")}`);

  // 3. one device's aggregates, one of them proved on chain
  if (trees.aggregates !== null) {
    const device = opts.device ?? getAddress(String(trees.aggregates.at(0)![0]));
    const found = aggregatesOf(trees.aggregates, device);
    if (found.length === 0) throw new DappError(`device ${device} has no aggregate in epoch ${verified.epoch}`, EXIT.notFound);
    const chosen = opts.field === undefined ? found[0] : found.find(([, a]) => a.field === opts.field);
    if (chosen === undefined) throw new DappError(`device ${device} has no aggregate of field ${opts.field}`, EXIT.notFound);
    const [index, aggregate] = chosen;
    const accepted = await proveAggregate(client, dep, jobId, verified.epoch, trees.aggregates, index);
    const forged = await forgedAggregateAccepted(client, dep, jobId, verified.epoch, trees.aggregates, index);
    failed ||= !accepted || forged;
    out.step("aggregates", {
      epoch: verified.epoch,
      device,
      aggregates: found.map(([, a]) => ({ field: a.field, count: a.count, min: a.min, max: a.max, sum: a.sum, quantiles: a.quantiles })),
      proved: {
        field: aggregate.field,
        encoded_leaf: encodeLeaf(trees.aggregates, trees.aggregates.at(index)!),
        proof: trees.aggregates.getProof(index),
        on_chain: accepted,
        forged_on_chain: forged,
      },
    }, `device ${device}: ${found.map(([, a]) => `${a.field} n=${a.count} min=${a.min} max=${a.max}`).join("; ")}; ` +
      `${aggregate.field} proved on chain: ${accepted} (forged max accepted: ${forged})`);

    // 4. one of the device's readings proved on chain
    if (trees.data !== null) {
      const entries = [...trees.data.entries()].filter(([, v]) => String(v[0]).toLowerCase() === device.toLowerCase());
      const reading = opts.seq === undefined ? entries[0] : entries.find(([, v]) => BigInt(v[1] as string) === opts.seq);
      if (reading === undefined) throw new DappError(`no reading of ${device}${opts.seq === undefined ? "" : ` seq ${opts.seq}`} in epoch ${verified.epoch}`, EXIT.notFound);
      const [rIndex, [, seq, timestamp, payloadHash]] = reading;
      const included = await proveReading(client, dep, jobId, verified.epoch, trees.data, rIndex);
      failed ||= !included;
      out.step("reading", {
        epoch: verified.epoch, device, seq: BigInt(seq as string), timestamp_ms: BigInt(timestamp as string), payload_hash: payloadHash,
        encoded_leaf: encodeLeaf(trees.data, trees.data.at(rIndex)!), proof: trees.data.getProof(rIndex), on_chain: included,
      }, `reading ${device} seq ${seq} (payload ${payloadHash}) proved on chain: ${included}`);
    }
  }

  // 5. claims against the claimable epoch's reward tree
  if (opts.claimer !== undefined || opts.authorizer !== undefined) {
    const { epoch, tree } = await claimableTree(client, opts.ipfs, dep, jobId, epochs);
    const transport = http(opts.rpc);
    if (opts.claimer !== undefined) {
      const r = await claim(client, transport, chain, dep, jobId, epoch, tree, opts.claimer);
      out.step("claim", claimFields(r), `claimed ${r.paid} for ${r.account} (cumulative ${r.cumulative}, epoch ${epoch}) in ${r.transactionHash}`);
    }
    if (opts.authorizer !== undefined && opts.relayer !== undefined) {
      const r = await claimFor(client, transport, chain, dep, jobId, epoch, tree, opts.authorizer, opts.relayer);
      out.step("claim_for", claimFields(r), `relayed by ${r.sender}: claimed ${r.paid} for ${r.account} (cumulative ${r.cumulative}) in ${r.transactionHash}`);
    }
  }
  return failed ? EXIT.mismatch : EXIT.ok;
}

function pickEpoch(epochs: VerifiedEpoch[], wanted: bigint | undefined): VerifiedEpoch {
  if (wanted === undefined) return epochs[epochs.length - 1];
  const found = epochs.find((e) => e.epoch === wanted);
  if (found === undefined) throw new DappError(`epoch ${wanted} is not verified (verified: ${epochs.map((e) => e.epoch).join(", ")})`, EXIT.notFound);
  return found;
}

/** The aggregate with its max raised by one, proved with the honest proof: the chain must refuse it. */
async function forgedAggregateAccepted(
  client: PublicClient, dep: Deployment, jobId: Hex, epoch: bigint, tree: Parameters<typeof encodeLeaf>[0], index: number,
): Promise<boolean> {
  const value = [...tree.at(index)!];
  value[4] = (BigInt(value[4] as string) + 1n).toString();
  return client.readContract({
    address: dep.epoch_verifier, abi: verifierAbi, functionName: "verifyAggregate",
    args: [jobId, epoch, encodeLeaf(tree, value), tree.getProof(index) as Hex[]],
  });
}

function signerSlots(bitmap: bigint): number[] {
  const slots: number[] = [];
  for (let i = 0; bitmap >> BigInt(i) > 0n; i++) if ((bitmap >> BigInt(i)) & 1n) slots.push(i);
  return slots;
}

try {
  process.exitCode = await main(options(process.argv.slice(2)));
} catch (error) {
  if (error instanceof DappError) {
    console.error(`error: ${error.message}`);
    process.exitCode = error.exitCode;
  } else {
    // a contract revert or a node error: its first line names the custom error or the cause
    console.error(`error: ${(error as Error).message.split("\n").slice(0, 3).join(" ")}`);
    process.exitCode = EXIT.usage;
  }
}
