#!/usr/bin/env node
// Builds deploy as one executable file, bundle/deploy.mjs, with everything it imports (@proximation/shared,
// zod, ioredis) inlined, so an app's image can run it with plain node and nothing installed: apps run deploy as
// their container's entrypoint, and their images are built without this repository. Input is the tsc
// output (run `tsc -b` first; `npm run build` does both). Optional argument: another output path.
import { chmod, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = new URL('../', import.meta.url);
const outfile = process.argv[2] ?? fileURLToPath(new URL('bundle/deploy.mjs', root));
const { version } = JSON.parse(await readFile(new URL('package.json', root), 'utf8'));

await build({
  entryPoints: [fileURLToPath(new URL('dist/bin/deploy.js', root))],
  outfile,
  bundle: true,
  platform: 'node',
  format: 'esm',
  // The oldest Node the workspace supports (engines).
  target: 'node20.19',
  // The bundle has no package.json beside it to read the version from.
  define: { DEPLOY_BUNDLED_VERSION: JSON.stringify(version) },
  legalComments: 'eof',
  // ioredis (the Redis storage backend) is CommonJS and requires Node's modules; an ES module bundle has
  // no require of its own, so it gets Node's.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
await chmod(outfile, 0o755);
