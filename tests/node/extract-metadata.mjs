// Writes real runtime metadata from @polkadot/types-support as SCALE files for the offline
// chain tests: `node extract-metadata.mjs OUT_DIR` → OUT_DIR/<chain>.scale (RuntimeMetadataPrefixed,
// starting with the "meta" magic) and OUT_DIR/<chain>.json ({specVersion, transactionVersion}).
// Nothing it writes is committed; the tests run it into target/.
import fs from 'fs';
import path from 'path';
import { fileURLToPath } from 'url';

const here = path.dirname(fileURLToPath(import.meta.url));
const base = path.join(here, 'node_modules/@polkadot/types-support/metadata/v15');
const out = process.argv[2];
if (!out) {
  console.error('usage: node extract-metadata.mjs OUT_DIR');
  process.exit(2);
}
fs.mkdirSync(out, { recursive: true });
for (const chain of ['polkadot', 'kusama', 'asset-hub-polkadot', 'asset-hub-kusama']) {
  const hex = (await import(path.join(base, `${chain}-hex.js`))).default;
  const ver = (await import(path.join(base, `${chain}-ver.js`))).default;
  let bytes = Buffer.from(hex.slice(2), 'hex');
  // V15 files hold Option<OpaqueMetadata>: 0x01, a compact length, then the metadata itself.
  const magic = bytes.indexOf(Buffer.from('meta'));
  if (magic < 0 || magic > 8) throw new Error(`${chain}: no metadata magic near the start`);
  bytes = bytes.subarray(magic);
  fs.writeFileSync(path.join(out, `${chain}.scale`), bytes);
  fs.writeFileSync(
    path.join(out, `${chain}.json`),
    JSON.stringify({ specVersion: ver.specVersion, transactionVersion: ver.transactionVersion }),
  );
}
