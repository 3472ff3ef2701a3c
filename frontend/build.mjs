// Bundles the form host for the browser: dist/rjsf6.js (@rjsf/core 6) and dist/rjsf5.js (5).
import { build } from 'esbuild';

const common = {
  bundle: true,
  format: 'iife',
  target: 'es2020',
  jsx: 'automatic',
  logLevel: 'warning',
  // React's development build: its warnings reach the console, where the browser test sees them.
  define: { 'process.env.NODE_ENV': '"development"' },
};
await build({ ...common, entryPoints: ['src/rjsf6.jsx'], outfile: 'dist/rjsf6.js' });
await build({ ...common, entryPoints: ['rjsf5/main.jsx'], outfile: 'dist/rjsf5.js' });
