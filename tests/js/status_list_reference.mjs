// Drives Digital Bazaar's vc-bitstring-status-list for the Python cross-checks.
//
//   node status_list_reference.mjs REQUEST.json   -> one JSON object on stdout
//
// request: {"check": {"credentials": [VC, ...], "lists": {URL: list VC}}}
//             -> {"check": [{verified, status, error}]}: checkStatus per credential, the list
//                credentials served by the documentLoader and their proofs verified;
//          "make": {"length": N, "set": [index, ...]}
//             -> {"make": encodedList} from the library's own list
// Contexts come from the libraries' bundles; did:key resolves through did-method-key.
import { readFileSync } from 'node:fs';

import { DataIntegrityProof } from '@digitalbazaar/data-integrity';
import { cryptosuite as eddsaRdfc2022 } from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import { cryptosuite as ecdsaRdfc2019 } from '@digitalbazaar/ecdsa-rdfc-2019-cryptosuite';
import * as Ed25519Multikey from '@digitalbazaar/ed25519-multikey';
import * as EcdsaMultikey from '@digitalbazaar/ecdsa-multikey';
import { driver as didKeyDriver } from '@digitalbazaar/did-method-key';
import { contexts as credentialsContexts } from '@digitalbazaar/credentials-context';
import { contexts as statusListContexts } from '@digitalbazaar/vc-bitstring-status-list-context';
import { checkStatus, createList } from '@digitalbazaar/vc-bitstring-status-list';

const didKey = didKeyDriver();
didKey.use({ multibaseMultikeyHeader: 'z6Mk', fromMultibase: Ed25519Multikey.from });
didKey.use({ multibaseMultikeyHeader: 'zDna', fromMultibase: EcdsaMultikey.from });

const contexts = new Map([...credentialsContexts, ...statusListContexts]);

function loaderServing(lists) {
  return async (url) => {
    if (url.startsWith('did:key:')) {
      return { contextUrl: null, documentUrl: url, document: await didKey.get({ url }) };
    }
    if (contexts.has(url)) return { contextUrl: null, documentUrl: url, document: contexts.get(url) };
    if (url in lists) return { contextUrl: null, documentUrl: url, document: lists[url] };
    throw new Error(`unknown URL ${url}`);
  };
}

const handlers = {
  async check({ credentials, lists }) {
    const suite = [
      new DataIntegrityProof({ cryptosuite: eddsaRdfc2022 }),
      new DataIntegrityProof({ cryptosuite: ecdsaRdfc2019 }),
    ];
    const documentLoader = loaderServing(lists);
    const out = [];
    for (const credential of credentials) {
      const result = await checkStatus({ credential, documentLoader, suite });
      out.push({
        verified: result.verified,
        status: result.results?.[0]?.status ?? null,
        error: result.error ? String(result.error.message ?? result.error) : null,
      });
    }
    return out;
  },
  async make({ length, set }) {
    const list = await createList({ length });
    for (const index of set) list.setStatus(index, true);
    return list.encode();
  },
};

const request = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const response = {};
for (const [name, args] of Object.entries(request)) {
  try {
    response[name] = await handlers[name](args);
  } catch (error) {
    response[name] = { error: String(error.message ?? error) };
  }
}
process.stdout.write(JSON.stringify(response));
