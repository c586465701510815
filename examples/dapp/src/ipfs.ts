/**
 * Reading a file from an IPFS node's RPC API without trusting the node: every block is fetched
 * with `/api/v0/block/get` and re-hashed against its CID before its bytes are used, so what comes
 * back is exactly what the CID (signed on chain) names.
 *
 * VeriStream stores files as `ipfs add --cid-version=1` does: 256 KiB raw leaves, a file of one
 * chunk is that raw block itself, bigger files are UnixFS dag-pb trees over raw leaves.
 */
import * as dagPb from "@ipld/dag-pb";
import { UnixFS } from "ipfs-unixfs";
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";

import { DappError, EXIT } from "./errors.js";

/** Bytes of the file `cid` names, each block checked against its hash. */
export async function catVerified(api: string, cid: string | CID): Promise<Uint8Array> {
  const root = typeof cid === "string" ? parseCid(cid) : cid;
  const parts: Uint8Array[] = [];
  await collect(api, root, parts);
  return concat(parts);
}

/** A CID from its text form; a usage error when it is not one. */
export function parseCid(text: string): CID {
  try {
    return CID.parse(text);
  } catch {
    throw new DappError(`not a CID: ${JSON.stringify(text)}`, EXIT.usage);
  }
}

async function collect(api: string, cid: CID, out: Uint8Array[]): Promise<void> {
  const block = await blockGet(api, cid);
  if (cid.code === raw.code) {
    out.push(block);
    return;
  }
  if (cid.code !== dagPb.code) {
    throw new DappError(`${cid} is neither a raw nor a dag-pb block: not a file VeriStream stored`, EXIT.mismatch);
  }
  const node = dagPb.decode(block);
  if (node.Data === undefined) throw new DappError(`${cid} is a dag-pb node without UnixFS data`, EXIT.mismatch);
  const entry = UnixFS.unmarshal(node.Data);
  if (entry.type !== "file" && entry.type !== "raw") {
    throw new DappError(`${cid} is a UnixFS ${entry.type}, not a file`, EXIT.mismatch);
  }
  // a file node's own bytes come before its children's
  if (entry.data !== undefined && entry.data.length > 0) out.push(entry.data);
  for (const link of node.Links) await collect(api, link.Hash, out);
}

async function blockGet(api: string, cid: CID): Promise<Uint8Array> {
  if (cid.multihash.code !== sha256.code) {
    throw new DappError(`${cid} is not hashed with sha2-256: cannot check it here`, EXIT.mismatch);
  }
  const url = `${api.replace(/\/$/, "")}/api/v0/block/get?arg=${cid.toString()}`;
  let reply: Response;
  try {
    reply = await fetch(url, { method: "POST" });
  } catch (error) {
    throw new DappError(`IPFS node ${api} is unreachable: ${String(error)}`, EXIT.unreachable);
  }
  if (!reply.ok) {
    throw new DappError(`IPFS node ${api} has no block ${cid}: HTTP ${reply.status} ${await reply.text()}`, EXIT.notFound);
  }
  const block = new Uint8Array(await reply.arrayBuffer());
  const digest = await sha256.digest(block);
  if (!equalBytes(digest.digest, cid.multihash.digest)) {
    throw new DappError(`IPFS node ${api} returned bytes that do not hash to ${cid}`, EXIT.mismatch);
  }
  return block;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
