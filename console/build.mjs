// Builds the console into dist/: app.js (every script, uPlot included, in
// one minified bundle), app.css (with uPlot's style sheet), index.html and
// the icon. canaryd serves dist/ at / (setting console_dir). Nothing in the
// output loads anything from another host.
import { build } from 'esbuild';
import { copyFile, mkdir, rm, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const out = join(root, 'dist');
// Written beside dist/ and renamed into place, so that a running canaryd
// never serves a half-written console.
const staging = join(root, `dist.tmp-${process.pid}`);

await rm(staging, { recursive: true, force: true });
await mkdir(staging, { recursive: true });
try {
  await build({
    entryPoints: { app: join(root, 'src/main.js') },
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['chrome110', 'firefox115', 'safari16'],
    legalComments: 'linked',
    outdir: staging,
    logLevel: 'warning',
  });
  await build({
    entryPoints: { app: join(root, 'src/app.css') },
    bundle: true,
    minify: true,
    outdir: staging,
    logLevel: 'warning',
  });
  for (const name of ['index.html', 'favicon.svg']) {
    await copyFile(join(root, 'src', name), join(staging, name));
  }
  await rm(out, { recursive: true, force: true });
  await rename(staging, out);
} catch (err) {
  await rm(staging, { recursive: true, force: true });
  throw err;
}
