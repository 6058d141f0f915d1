/** The server side of `pnpm loadtest`: one model on 127.0.0.1 (a free port); prints `listening <url>`; SIGTERM stops it. */
import { parseArgs } from 'node:util';
import { LLM } from 'qllm';
import { createServer } from '../src/index.js';

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string' },
    'max-num-seqs': { type: 'string' },
    'max-model-len': { type: 'string' },
    'max-queue': { type: 'string' },
  },
});
const llm = new LLM({
  model: values.model!,
  threads: Number(values.threads),
  maxNumSeqs: Number(values['max-num-seqs']),
  maxModelLen: Number(values['max-model-len']),
});
const server = await createServer({ llm, servedModelName: 'loadtest', maxQueue: Number(values['max-queue']) });
const url = await server.listen({ host: '127.0.0.1', port: 0 });
console.log(`listening ${url}`);
process.once('SIGTERM', () => {
  void server
    .close({ timeoutMs: 10_000 })
    .then(() => llm.close())
    .then(() => process.exit(0));
});
