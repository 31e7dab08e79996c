#!/usr/bin/env node
import { main } from '../dist/devcluster/cli.js';

main(process.argv).catch((e) => {
  process.stderr.write(`ekv-devcluster: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
