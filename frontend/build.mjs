// Bundles for the browser: the form host, dist/rjsf6.js (@rjsf/core 6) and dist/rjsf5.js (5),
// and the app `exact-connector ui` serves, dist/app.js with dist/app.css (React's production build).
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
await build({
  ...common,
  entryPoints: ['src/app/main.jsx'],
  outfile: 'dist/app.js',
  minify: true,
  define: { 'process.env.NODE_ENV': '"production"' },
});
