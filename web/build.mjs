// Bundles src/app.js with mediasoup-client into dist/app.js and copies the static files.
import { build } from 'esbuild';
import fs from 'node:fs';

fs.mkdirSync('dist', { recursive: true });
await build({
  entryPoints: ['src/app.js'],
  bundle: true,
  minify: true,
  sourcemap: true,
  format: 'iife',
  target: ['chrome110', 'firefox110', 'safari16'],
  outfile: 'dist/app.js',
  logLevel: 'warning',
});
for (const f of ['index.html', 'style.css']) fs.copyFileSync(`src/${f}`, `dist/${f}`);
console.log('web/dist built');
