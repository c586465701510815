// IPFS's own UnixFS importer as an oracle for VeriStream's CIDs.
// Usage: node unixfs_import.mjs FILE  ->  JSON {root, blocks: [{cid, size, hex (dag-pb only)}]}
// Settings are those of `ipfs add --cid-version=1` (kubo): raw leaves,
// 256 KiB fixed chunks, balanced layout with 174 links a node.
import { readFile } from 'node:fs/promises'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'
import { MemoryBlockstore } from 'blockstore-core/memory'

const path = process.argv[2]
if (!path) {
  console.error('usage: node unixfs_import.mjs FILE')
  process.exit(2)
}
const content = await readFile(path)
// Record every block put, in order: MemoryBlockstore keys by multihash only,
// so the codec (raw or dag-pb) would be lost reading it back.
const written = []
class RecordingBlockstore extends MemoryBlockstore {
  put (cid, block, options) {
    written.push({ cid: cid.toString(), size: block.length, hex: cid.code === 0x70 ? Buffer.from(block).toString('hex') : undefined })
    return super.put(cid, block, options)
  }
}
const blockstore = new RecordingBlockstore()
let root
for await (const entry of importer([{ content }], blockstore, {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 262144 }),
  layout: balanced({ maxChildrenPerNode: 174 })
})) {
  root = entry.cid
}
process.stdout.write(JSON.stringify({ root: root.toString(), blocks: written }) + '\n')
