// Bundles the extension and vscode-languageclient into one file (dist/extension.js),
// so the VSIX carries no node_modules. `--production` minifies, `--watch` rebuilds.
import * as esbuild from 'esbuild';

const production = process.argv.includes('--production');
const options = {
  entryPoints: ['src/extension.ts'],
  bundle: true,
  outfile: 'dist/extension.js',
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  external: ['vscode'], // provided by the editor at run time
  minify: production,
  sourcemap: !production,
  logLevel: 'warning',
};

if (process.argv.includes('--watch')) {
  await (await esbuild.context(options)).watch();
} else {
  await esbuild.build(options);
}
