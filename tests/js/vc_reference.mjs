// Drives the W3C reference stack (Digital Bazaar's vc, data-integrity, eddsa-rdfc-2022,
// ecdsa-rdfc-2019, Multikey and did:key libraries) for the Python cross-checks.
//
//   node vc_reference.mjs REQUEST.json   -> one JSON object on stdout
//
// request: {"didKey": [{"scheme", "jwk"}],              -> {did, document, resolved}
//           "keyDidResolver": [did],                     -> the DID document of key-did-resolver
//           "keygen": [{"scheme"}],                      -> Multikey with secretKeyMultibase
//           "issue": [{"credential", "key", "cryptosuite", "created"}],
//           "issueNew": [{"scheme", "credential", "issuer"}],  -> {key, credential}: a fresh
//               did:key signs; the issuer is that DID unless "issuer" names another
//           "verify": [{"credential", "now"}],          -> {verified, errors}
//           "canonize": [document]}                      -> N-Quads (RDFC-1.0)
// Contexts come from the libraries' own bundles, except VeriStream's device context,
// read from the package; did:key resolves through did-method-key with Multikey keys.
// One failing case reports its error and the others still run.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as vc from '@digitalbazaar/vc';
import { DataIntegrityProof } from '@digitalbazaar/data-integrity';
import { cryptosuite as eddsaRdfc2022 } from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import { cryptosuite as ecdsaRdfc2019 } from '@digitalbazaar/ecdsa-rdfc-2019-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import * as EcdsaMultikey from '@digitalbazaar/ecdsa-multikey';
import { driver as didKeyDriver } from '@digitalbazaar/did-method-key';
import { contexts as credentialsContexts } from '@digitalbazaar/credentials-context';
import { contexts as statusListContexts } from '@digitalbazaar/vc-bitstring-status-list-context';
import jsonld from 'jsonld';
import { Resolver } from 'did-resolver';
import { getResolver as keyDidResolver } from 'key-did-resolver';

const HERE = dirname(fileURLToPath(import.meta.url));
const DEVICE_CONTEXT_URL = 'https://veristream.dev/credentials/device/v1';
const DEVICE_CONTEXT = JSON.parse(
  readFileSync(join(HERE, '..', '..', 'provers', 'contexts', 'device-v1.jsonld'), 'utf8'));

const didKey = didKeyDriver();
didKey.use({ multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from });
didKey.use({ multibaseMultikeyHeader: 'zDna', fromMultibase: EcdsaMultikey.from });

const contexts = new Map([...credentialsContexts, ...statusListContexts]);
contexts.set(DEVICE_CONTEXT_URL, DEVICE_CONTEXT);

async function documentLoader(url) {
  if (url.startsWith('did:key:')) {
    return { contextUrl: null, documentUrl: url, document: await didKey.get({ url }) };
  }
  if (contexts.has(url)) {
    return { contextUrl: null, documentUrl: url, document: contexts.get(url) };
  }
  throw new Error(`unknown context URL ${url}`);
}

const ceramicResolver = new Resolver(keyDidResolver());

const SUITES = { 'eddsa-rdfc-2022': eddsaRdfc2022, 'ecdsa-rdfc-2019': ecdsaRdfc2019 };

async function keyFrom(multikey) {
  return multikey.publicKeyMultibase.startsWith('z6Mk')
    ? Ed25519Multikey.from(multikey)
    : EcdsaMultikey.from(multikey);
}

function errorsOf(result) {
  const found = [];
  const walk = (error) => {
    if (!error) return;
    if (Array.isArray(error)) { error.forEach(walk); return; }
    found.push(String(error.message ?? error));
    walk(error.errors);
    walk(error.cause);
  };
  walk(result.error);
  for (const r of result.results ?? []) walk(r.error);
  return [...new Set(found)];
}

const handlers = {
  async didKey({ scheme, jwk }) {
    const key = scheme === 'ed25519'
      ? await Ed25519Multikey.fromJwk({ jwk })
      : await EcdsaMultikey.fromJwk({ jwk });
    const { didDocument } = await didKey.publicKeyToDidDoc({ publicKeyDescription: key });
    const resolved = await didKey.get({ did: didDocument.id });
    const method = await didKey.get({ url: didDocument.verificationMethod[0].id });
    return { did: didDocument.id, document: didDocument, resolved, method };
  },
  async keyDidResolver(did) {
    const { didDocument, didResolutionMetadata } = await ceramicResolver.resolve(did);
    if (!didDocument) throw new Error(JSON.stringify(didResolutionMetadata));
    return didDocument;
  },
  async keygen({ scheme }) {
    const key = scheme === 'ed25519'
      ? await Ed25519Multikey.generate()
      : await EcdsaMultikey.generate({ curve: 'P-256' });
    const did = `did:key:${key.publicKeyMultibase}`;
    key.controller = did;
    key.id = `${did}#${key.publicKeyMultibase}`;
    return key.export({ publicKey: true, secretKey: true, includeContext: true });
  },
  async issue({ credential, key, cryptosuite, created }) {
    const keyPair = await keyFrom(key);
    const suite = new DataIntegrityProof({
      signer: keyPair.signer(), cryptosuite: SUITES[cryptosuite], date: created,
    });
    return vc.issue({ credential, suite, documentLoader });
  },
  async issueNew({ scheme, credential, issuer }) {
    const key = await handlers.keygen({ scheme });
    const signer = await keyFrom(key);
    const suite = new DataIntegrityProof({
      signer: signer.signer(),
      cryptosuite: scheme === 'ed25519' ? eddsaRdfc2022 : ecdsaRdfc2019,
    });
    const unsecured = { ...credential, issuer: issuer ?? key.controller };
    return { key, credential: await vc.issue({ credential: unsecured, suite, documentLoader }) };
  },
  async verify({ credential, now }) {
    const suite = [
      new DataIntegrityProof({ cryptosuite: eddsaRdfc2022 }),
      new DataIntegrityProof({ cryptosuite: ecdsaRdfc2019 }),
    ];
    const result = await vc.verifyCredential({ credential, suite, documentLoader, now });
    return { verified: result.verified, errors: errorsOf(result) };
  },
  async canonize(document) {
    return jsonld.canonize(document, {
      algorithm: 'RDFC-1.0', format: 'application/n-quads', documentLoader, safe: true, base: null,
    });
  },
};

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const out = {};
for (const [op, cases] of Object.entries(request)) {
  out[op] = [];
  for (const c of cases) {
    try {
      out[op].push({ ok: true, value: await handlers[op](c) });
    } catch (error) {
      out[op].push({ ok: false, error: String(error?.message ?? error) });
    }
  }
}
process.stdout.write(JSON.stringify(out));
