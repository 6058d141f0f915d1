/**
 * The tokenizer thread: encodes long prompts off the event loop (a pathological text — one very long word — takes
 * ~10 µs a character in the JavaScript BPE, which would stall every stream). Same folder, same QllmTokenizer, so
 * the same ids as the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { QllmTokenizer } from 'qllm';

export interface EncodeJob {
  id: number;
  text: string;
  addSpecialTokens: boolean;
}
export type EncodeResult = { id: number; ids: number[] } | { id: number; error: string };

const tokenizer = await QllmTokenizer.fromFolder((workerData as { dir: string }).dir);
parentPort!.on('message', (job: EncodeJob) => {
  let reply: EncodeResult;
  try {
    reply = { id: job.id, ids: tokenizer!.encode(job.text, { addSpecialTokens: job.addSpecialTokens }) };
  } catch (e) {
    reply = { id: job.id, error: e instanceof Error ? e.message : String(e) };
  }
  parentPort!.postMessage(reply);
});
parentPort!.postMessage('ready');
