/**
 * A dApp's view of VeriStream: verified epochs from the EpochVerifier's events, each epoch's
 * manifest and Merkle trees from IPFS (checked against the chain), proofs of one reading and one
 * aggregate checked by the contract, and reward claims (direct, or signed by the contributor and
 * relayed by anyone).
 *
 * docs/dapps.md includes the regions marked `#region NAME` below; a test keeps them equal.
 */
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";
import { CID } from "multiformats/cid";
import {
  type Account,
  type Address,
  type Chain,
  type Hex,
  type PublicClient,
  type Transport,
  createWalletClient,
  encodeAbiParameters,
  erc20Abi,
  getAddress,
  http,
  isAddressEqual,
  keccak256,
  parseAbi,
  parseEventLogs,
  zeroHash,
} from "viem";

import { DappError, EXIT } from "./errors.js";
import { catVerified } from "./ipfs.js";

// #region abi
export const verifierAbi = parseAbi([
  "event JobCreated(bytes32 indexed jobId, address indexed owner, string name, uint32 setId, uint16 quorumNumerator, uint16 quorumDenominator, uint16 maxOperatorWeightBps, uint64 genesis, uint32 epochSeconds, uint32 maxSubmissionDelay)",
  "event EpochVerified(bytes32 indexed jobId, uint64 indexed epoch, bytes32 dataRoot, bytes32 aggregatesRoot, bytes32 rewardRoot, bytes batchCid, bytes manifestCid, uint256 signerBitmap, uint96 signedWeight, uint96 totalWeight)",
  "function epochResult(bytes32 jobId, uint64 epoch) view returns (bool verified, bytes32 dataRoot, bytes32 aggregatesRoot, bytes32 rewardRoot, bytes32 manifestCidHash)",
  "function claimableRoot(bytes32 jobId) view returns (bool found, uint64 epoch, bytes32 rewardRoot)",
  "function verifyReadingData(bytes32 jobId, uint64 epoch, bytes encodedLeaf, bytes32[] proof) view returns (bool)",
  "function verifyAggregate(bytes32 jobId, uint64 epoch, bytes encodedLeaf, bytes32[] proof) view returns (bool)",
]);

export const distributorAbi = parseAbi([
  "event Claimed(bytes32 indexed jobId, uint64 indexed epoch, address indexed account, uint256 amount, uint256 cumulative)",
  "function pools(bytes32 jobId) view returns (address token, uint64 sweepAt, uint256 balance)",
  "function claimed(bytes32 jobId, address account) view returns (uint256)",
  "function claim(bytes32 jobId, address account, uint256 cumulativeAmount, bytes32[] proof) returns (uint256)",
  "function claimFor(bytes32 jobId, address account, uint256 cumulativeAmount, bytes32[] proof, uint256 deadline, bytes signature) returns (uint256)",
  "function eip712Domain() view returns (bytes1 fields, string name, string version, uint256 chainId, address verifyingContract, bytes32 salt, uint256[] extensions)",
]);
// #endregion abi

/** Where the contracts are: the fields of the `deployment.json` VeriStream writes. */
export interface Deployment {
  chain_id: number;
  epoch_verifier: Address;
  reward_distributor: Address;
}

/** A verified epoch as its `EpochVerified` event tells it. */
export interface VerifiedEpoch {
  epoch: bigint;
  dataRoot: Hex;
  aggregatesRoot: Hex;
  rewardRoot: Hex;
  batchCid: string;
  manifestCid: string;
  manifestCidBytes: Hex;
  signerBitmap: bigint;
  signedWeight: bigint;
  totalWeight: bigint;
  blockNumber: bigint;
  transactionHash: Hex;
}

/** The job id of `name` created by `owner` (`jobIdOf` on chain), or found by name in `JobCreated`. */
export async function findJob(client: PublicClient, dep: Deployment, name: string, owner?: Address): Promise<Hex> {
  const created = await client.getContractEvents({
    address: dep.epoch_verifier,
    abi: verifierAbi,
    eventName: "JobCreated",
    args: owner === undefined ? {} : { owner },
    fromBlock: 0n,
    strict: true,
  });
  const matches = created.filter((log) => log.args.name === name);
  if (matches.length === 0) throw new DappError(`no job named ${JSON.stringify(name)} on ${dep.epoch_verifier}`, EXIT.notFound);
  if (matches.length > 1) {
    const owners = matches.map((log) => log.args.owner).join(", ");
    throw new DappError(`${matches.length} jobs are named ${JSON.stringify(name)} (owners ${owners}): pass --job-owner`, EXIT.usage);
  }
  return matches[0].args.jobId;
}

// #region epochs
/** Every verified epoch of a job, oldest first, from the verifier's `EpochVerified` logs. */
export async function verifiedEpochs(client: PublicClient, dep: Deployment, jobId: Hex): Promise<VerifiedEpoch[]> {
  const logs = await client.getContractEvents({
    address: dep.epoch_verifier,
    abi: verifierAbi,
    eventName: "EpochVerified",
    args: { jobId }, // jobId is indexed: the node filters by topic
    fromBlock: 0n, // a production dApp pages from the verifier's deployment block
    strict: true,
  });
  return logs.map(({ args, blockNumber, transactionHash }) => ({
    epoch: args.epoch,
    dataRoot: args.dataRoot,
    aggregatesRoot: args.aggregatesRoot,
    rewardRoot: args.rewardRoot,
    batchCid: CID.decode(hexToBytes(args.batchCid)).toString(), // binary CIDv1 -> bafk...
    manifestCid: CID.decode(hexToBytes(args.manifestCid)).toString(),
    manifestCidBytes: args.manifestCid,
    signerBitmap: args.signerBitmap,
    signedWeight: args.signedWeight,
    totalWeight: args.totalWeight,
    blockNumber,
    transactionHash,
  }));
}
// #endregion epochs

/** The manifest fields a dApp reads (the rest is for auditors). */
export interface Manifest {
  job_id: string;
  epoch: number;
  accepted: number;
  batch_cid: string;
  data_root: Hex;
  aggregates_root: Hex;
  reward_root: Hex;
  trees: { data: string | null; aggregates: string | null; rewards: string | null };
  [field: string]: unknown;
}

/** The three trees of an epoch, each checked against the root the chain holds. */
export interface EpochTrees {
  data: StandardMerkleTree<unknown[]> | null;
  aggregates: StandardMerkleTree<unknown[]> | null;
  rewards: StandardMerkleTree<unknown[]> | null;
}

// #region manifest
/** The epoch's manifest from IPFS, checked against the chain: its CID hash is the one the
 *  committee signed (`epochResult`), and it names the roots and the batch the event carries. */
export async function fetchManifest(
  client: PublicClient, ipfs: string, dep: Deployment, jobId: Hex, verified: VerifiedEpoch,
): Promise<Manifest> {
  const [isVerified, , , , manifestCidHash] = await client.readContract({
    address: dep.epoch_verifier, abi: verifierAbi, functionName: "epochResult", args: [jobId, verified.epoch],
  });
  if (!isVerified || keccak256(verified.manifestCidBytes) !== manifestCidHash) {
    throw new DappError(`epoch ${verified.epoch}: the event's manifest CID is not the one the chain holds`, EXIT.mismatch);
  }
  // catVerified re-hashes every block: the bytes are those the CID names
  const manifest = parseJson(new TextDecoder().decode(await catVerified(ipfs, verified.manifestCid))) as Manifest;
  const expected: [string, unknown, unknown][] = [
    ["epoch", manifest.epoch, verified.epoch],
    ["batch_cid", manifest.batch_cid, verified.batchCid],
    ["data_root", manifest.data_root, verified.dataRoot],
    ["aggregates_root", manifest.aggregates_root, verified.aggregatesRoot],
    ["reward_root", manifest.reward_root, verified.rewardRoot],
  ];
  for (const [field, got, want] of expected) {
    if (String(got) !== String(want)) {
      throw new DappError(`manifest ${verified.manifestCid}: ${field} is ${got}, the chain says ${want}`, EXIT.mismatch);
    }
  }
  return manifest;
}
// #endregion manifest

// #region trees
/** One tree from its OpenZeppelin "standard-v1" dump on IPFS; its root must be `root`
 *  (the zero root is an epoch without leaves: no dump, no tree). */
export async function loadTree(ipfs: string, cid: string | null, root: Hex): Promise<StandardMerkleTree<unknown[]> | null> {
  if (root === zeroHash) return null;
  if (cid === null) throw new DappError(`the manifest links no tree for root ${root}`, EXIT.mismatch);
  const dump = parseJson(new TextDecoder().decode(await catVerified(ipfs, cid)));
  const tree = StandardMerkleTree.load(dump as Parameters<typeof StandardMerkleTree.load>[0]);
  tree.validate(); // every leaf re-hashed from its value, every node from its children
  if (tree.root !== root) throw new DappError(`tree ${cid} has root ${tree.root}, the chain holds ${root}`, EXIT.mismatch);
  return tree;
}

export async function loadTrees(ipfs: string, manifest: Manifest): Promise<EpochTrees> {
  return {
    data: await loadTree(ipfs, manifest.trees.data, manifest.data_root),
    aggregates: await loadTree(ipfs, manifest.trees.aggregates, manifest.aggregates_root),
    rewards: await loadTree(ipfs, manifest.trees.rewards, manifest.reward_root),
  };
}
// #endregion trees

/** The leaf at `index` of `tree` ABI-encoded as the contract decodes it (`encodedLeaf`). */
export function encodeLeaf(tree: StandardMerkleTree<unknown[]>, value: unknown[]): Hex {
  const types = tree.dump().leafEncoding;
  return encodeAbiParameters(
    types.map((type) => ({ type })),
    value.map((v, i) => abiValue(types[i], v)),
  );
}

/** A dump's value as viem encodes it: integers as bigint (dumps carry them as strings or numbers). */
function abiValue(type: string, value: unknown): unknown {
  if (type.endsWith("[]")) return (value as unknown[]).map((v) => abiValue(type.slice(0, -2), v));
  if (/^u?int\d*$/.test(type)) return BigInt(value as string | number | bigint);
  return value;
}

// #region aggregate
/** An aggregate as its leaf says: (device, field, count, min, max, sum, quantile percents, values). */
export interface Aggregate {
  device: Address;
  field: string;
  count: bigint;
  min: bigint;
  max: bigint;
  sum: bigint;
  quantiles: Record<string, bigint>; // percent -> nearest-rank value
}

export function aggregatesOf(tree: StandardMerkleTree<unknown[]>, device: Address): [number, Aggregate][] {
  const found: [number, Aggregate][] = [];
  for (const [index, value] of tree.entries()) {
    const [leafDevice, field, count, min, max, sum, percents, values] = value as [
      string, string, string, string, string, string, (string | number)[], string[],
    ];
    if (!isAddressEqual(leafDevice as Address, device)) continue; // dumps hold lower-case hex
    const quantiles = Object.fromEntries(percents.map((p, i) => [String(p), BigInt(values[i])]));
    found.push([index, {
      device: getAddress(leafDevice), field, count: BigInt(count), min: BigInt(min), max: BigInt(max), sum: BigInt(sum), quantiles,
    }]);
  }
  return found;
}

/** Whether the chain accepts the aggregate at `index` of the epoch's aggregates tree. */
export async function proveAggregate(
  client: PublicClient, dep: Deployment, jobId: Hex, epoch: bigint, tree: StandardMerkleTree<unknown[]>, index: number,
): Promise<boolean> {
  return client.readContract({
    address: dep.epoch_verifier, abi: verifierAbi, functionName: "verifyAggregate",
    args: [jobId, epoch, encodeLeaf(tree, tree.at(index)!), tree.getProof(index) as Hex[]],
  });
}
// #endregion aggregate

// #region reading
/** Whether the chain accepts the reading at `index` of the epoch's data tree
 *  (leaf: device, seq, timestamp in ms, keccak256 of the signed payload). */
export async function proveReading(
  client: PublicClient, dep: Deployment, jobId: Hex, epoch: bigint, tree: StandardMerkleTree<unknown[]>, index: number,
): Promise<boolean> {
  return client.readContract({
    address: dep.epoch_verifier, abi: verifierAbi, functionName: "verifyReadingData",
    args: [jobId, epoch, encodeLeaf(tree, tree.at(index)!), tree.getProof(index) as Hex[]],
  });
}
// #endregion reading

/** An account's leaf in a reward tree: its index and cumulative amount (null when absent). */
export function rewardOf(tree: StandardMerkleTree<unknown[]>, account: Address): { index: number; cumulative: bigint } | null {
  for (const [index, [leafAccount, amount]] of tree.entries()) {
    if (isAddressEqual(leafAccount as Address, account)) return { index, cumulative: BigInt(amount as string) };
  }
  return null;
}

/** What a claim did: the amounts (token units) and the transaction. */
export interface ClaimReceipt {
  account: Address;
  sender: Address;
  epoch: bigint;
  cumulative: bigint;
  paid: bigint;
  balanceBefore: bigint;
  balanceAfter: bigint;
  token: Address;
  transactionHash: Hex;
  gasUsed: bigint;
}

/** The reward tree claims pay against: the job's claimable epoch's (its highest verified one). */
export async function claimableTree(
  client: PublicClient, ipfs: string, dep: Deployment, jobId: Hex, epochs: VerifiedEpoch[],
): Promise<{ epoch: bigint; tree: StandardMerkleTree<unknown[]> }> {
  const [found, epoch, root] = await client.readContract({
    address: dep.epoch_verifier, abi: verifierAbi, functionName: "claimableRoot", args: [jobId],
  });
  const verified = epochs.find((e) => e.epoch === epoch);
  if (!found || verified === undefined) throw new DappError(`job ${jobId} has no claimable epoch`, EXIT.notFound);
  const manifest = await fetchManifest(client, ipfs, dep, jobId, verified);
  const tree = await loadTree(ipfs, manifest.trees.rewards, root);
  if (tree === null) throw new DappError(`epoch ${epoch} pays nobody (zero reward root)`, EXIT.notFound);
  return { epoch, tree };
}

// #region claim
/** `account` claims everything it earned up to the claimable epoch, paying its own gas. */
export async function claim(
  client: PublicClient, transport: Transport, chain: Chain, dep: Deployment, jobId: Hex,
  epoch: bigint, tree: StandardMerkleTree<unknown[]>, account: Account,
): Promise<ClaimReceipt> {
  const leaf = await unpaidLeaf(client, dep, jobId, tree, account.address);
  const wallet = createWalletClient({ account, chain, transport });
  const before = await balances(client, dep, jobId, account.address);
  const { request } = await client.simulateContract({ // a revert is reported here, before any gas is spent
    account, address: dep.reward_distributor, abi: distributorAbi, functionName: "claim",
    args: [jobId, account.address, leaf.cumulative, tree.getProof(leaf.index) as Hex[]],
  });
  const hash = await wallet.writeContract(request);
  return claimReceipt(client, dep, jobId, epoch, leaf.cumulative, account.address, before, hash);
}
// #endregion claim

// #region claim-for
/** `account` signs an EIP-712 authorization for its claim; `relayer` sends it and pays the gas.
 *  The tokens go to `account` whoever sends it. */
export async function claimFor(
  client: PublicClient, transport: Transport, chain: Chain, dep: Deployment, jobId: Hex,
  epoch: bigint, tree: StandardMerkleTree<unknown[]>, account: Account, relayer: Account, validForSeconds = 3600n,
): Promise<ClaimReceipt> {
  const leaf = await unpaidLeaf(client, dep, jobId, tree, account.address);
  const proof = tree.getProof(leaf.index) as Hex[];
  const { timestamp } = await client.getBlock();
  const deadline = timestamp + validForSeconds;
  // the distributor's own EIP-712 domain (ERC-5267): name, version, chain id, address
  const [, name, version, chainId, verifyingContract] = await distributorDomain(client, dep);
  const signature = await createWalletClient({ account, chain, transport }).signTypedData({
    account,
    domain: { name, version, chainId, verifyingContract },
    types: {
      ClaimAuthorization: [
        { name: "jobId", type: "bytes32" },
        { name: "account", type: "address" },
        { name: "cumulativeAmount", type: "uint256" },
        { name: "deadline", type: "uint256" },
      ],
    },
    primaryType: "ClaimAuthorization",
    message: { jobId, account: account.address, cumulativeAmount: leaf.cumulative, deadline },
  });
  // ... the signature travels to the relayer (an HTTP service, a message); the relayer sends:
  const before = await balances(client, dep, jobId, account.address);
  const { request } = await client.simulateContract({
    account: relayer, address: dep.reward_distributor, abi: distributorAbi, functionName: "claimFor",
    args: [jobId, account.address, leaf.cumulative, proof, deadline, signature],
  });
  const hash = await createWalletClient({ account: relayer, chain, transport }).writeContract(request);
  return claimReceipt(client, dep, jobId, epoch, leaf.cumulative, account.address, before, hash);
}
// #endregion claim-for

/** The distributor's EIP-712 domain; a clear refusal from a distributor older than `claimFor`. */
async function distributorDomain(client: PublicClient, dep: Deployment) {
  try {
    return await client.readContract({ address: dep.reward_distributor, abi: distributorAbi, functionName: "eip712Domain" });
  } catch {
    throw new DappError(
      `the RewardDistributor at ${dep.reward_distributor} has no EIP-712 domain: it predates relayed claims (claimFor)`,
      EXIT.usage,
    );
  }
}

async function unpaidLeaf(
  client: PublicClient, dep: Deployment, jobId: Hex, tree: StandardMerkleTree<unknown[]>, account: Address,
): Promise<{ index: number; cumulative: bigint }> {
  const leaf = rewardOf(tree, account);
  if (leaf === null) throw new DappError(`${account} has no reward in the claimable epoch`, EXIT.notFound);
  const paid = await client.readContract({
    address: dep.reward_distributor, abi: distributorAbi, functionName: "claimed", args: [jobId, account],
  });
  if (leaf.cumulative <= paid) {
    throw new DappError(`nothing to claim for ${account}: ${paid} of its ${leaf.cumulative} already paid`, EXIT.notFound);
  }
  return leaf;
}

async function balances(client: PublicClient, dep: Deployment, jobId: Hex, account: Address): Promise<{ token: Address; balance: bigint }> {
  const [token] = await client.readContract({
    address: dep.reward_distributor, abi: distributorAbi, functionName: "pools", args: [jobId],
  });
  const balance = await client.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [account] });
  return { token, balance };
}

async function claimReceipt(
  client: PublicClient, dep: Deployment, jobId: Hex, epoch: bigint, cumulative: bigint, account: Address,
  before: { token: Address; balance: bigint }, hash: Hex,
): Promise<ClaimReceipt> {
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new DappError(`claim ${hash} reverted`, EXIT.usage);
  const [claimed] = parseEventLogs({ abi: distributorAbi, eventName: "Claimed", logs: receipt.logs, args: { jobId, account } });
  if (claimed === undefined) throw new DappError(`claim ${hash} emitted no Claimed event for ${account}`, EXIT.mismatch);
  const after = await balances(client, dep, jobId, account);
  return {
    account,
    sender: getAddress(receipt.from),
    epoch,
    cumulative,
    paid: claimed.args.amount,
    balanceBefore: before.balance,
    balanceAfter: after.balance,
    token: before.token,
    transactionHash: hash,
    gasUsed: receipt.gasUsed,
  };
}

/** JSON with every integer kept exact: JSON.parse turns integers past 2^53 (token amounts in
 *  a tree dump, say) into rounded doubles, so long integer literals are read as strings. */
export function parseJson(text: string): unknown {
  return JSON.parse(text.replace(/("(?:[^"\\]|\\.)*")|(-?\d{16,})(?![.eE\d])/g, (match, str) => (str ? match : `"${match}"`)));
}

export function hexToBytes(hex: Hex): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.slice(2), "hex"));
}

export { http };
