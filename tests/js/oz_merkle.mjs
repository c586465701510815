// Drives @openzeppelin/merkle-tree for the Python cross-checks and benchmark.
//
//   node oz_merkle.mjs check REQUEST.json     -> JSON results on stdout
//   node oz_merkle.mjs bench ROWS.json        -> seconds of StandardMerkleTree.of
//
// check request: {"cases": [{"values", "encoding", "sortLeaves", "multi": [[i...]]}],
//                 "loads": [dump, ...]}
// Every case reports the root, the dump, every proof, each multiproof and its
// own verification verdicts; every load reports the root or the error.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';

function runCase(c) {
  const tree = StandardMerkleTree.of(c.values, c.encoding, { sortLeaves: c.sortLeaves ?? true });
  const proofs = c.values.map((_, i) => tree.getProof(i));
  const multi = (c.multi ?? []).map(indices => {
    const mp = tree.getMultiProof(indices);
    return { multiproof: mp, valid: tree.verifyMultiProof(mp) };
  });
  const leafHashes = c.values.map(v => tree.leafHash(v));
  const verified = proofs.every((p, i) => tree.verify(i, p));
  return { root: tree.root, dump: tree.dump(), proofs, multi, leafHashes, verified, render: tree.render() };
}

function runLoad(dump) {
  try {
    const tree = StandardMerkleTree.load(dump);
    const proofs = [...tree.entries()].map(([i]) => tree.getProof(i));
    return { ok: true, root: tree.root, proofs };
  } catch (err) {
    return { ok: false, error: String(err && err.message ? err.message : err) };
  }
}

const [mode, file] = process.argv.slice(2);
if (mode === 'check') {
  // A file, not stdin: reading a piped stdin synchronously fails with EAGAIN.
  const request = JSON.parse(readFileSync(file, 'utf8'));
  const out = {
    cases: (request.cases ?? []).map(runCase),
    loads: (request.loads ?? []).map(runLoad),
  };
  process.stdout.write(JSON.stringify(out));
} else if (mode === 'bench') {
  const { values, encoding } = JSON.parse(readFileSync(file, 'utf8'));
  const start = performance.now();
  const tree = StandardMerkleTree.of(values, encoding);
  const seconds = (performance.now() - start) / 1000;
  process.stdout.write(JSON.stringify({ seconds, root: tree.root }));
} else {
  process.stderr.write('usage: oz_merkle.mjs check REQUEST.json | bench ROWS.json\n');
  process.exit(2);
}
