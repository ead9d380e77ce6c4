// vite.config.js - the console web app's build: relative asset paths (the
// app is served from sluice-console's --web-root, at any prefix), one
// bundle, no external fonts or CDN. `vite build --outDir DIR` (build.sh).
import { defineConfig } from 'vite';

export default defineConfig({
  base: './',
  build: {
    target: 'es2020',
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
  },
});
