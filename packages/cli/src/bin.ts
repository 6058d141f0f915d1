#!/usr/bin/env node
import { handedArgv, needsRelaunch, relaunch } from './relaunch.js';

// A long command line runs in a child with a short one (see relaunch.ts); the parent loads nothing else.
let argv: string[] | undefined;
try {
  argv = handedArgv();
} catch (err) {
  process.stderr.write(`qllm: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
if (!argv && needsRelaunch()) {
  await relaunch();
} else {
  const { main } = await import('./index.js');
  await main(argv);
}
