// Bundles the page into one directory: app.js (TypeScript + cytoscape + dagre, minified),
// app.css and index.html. Run by observer/build.rs as `node ui/build.mjs OUTDIR` (OUTDIR
// defaults to ui/dist for working on the page alone). No network, no CDN: everything the
// page loads is in OUTDIR.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? join(here, 'dist'));
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(here, 'src/main.ts')],
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  outfile: join(out, 'app.js'),
  logLevel: 'warning',
  legalComments: 'none',
});
copyFileSync(join(here, 'src/app.css'), join(out, 'app.css'));
copyFileSync(join(here, 'index.html'), join(out, 'index.html'));
