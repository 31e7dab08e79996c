#!/usr/bin/env node
import { main } from '../dist/cli.js';

main(process.argv).catch((e) => {
  process.stderr.write(`ekv-mount: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
