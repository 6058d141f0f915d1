// A stand-in for `vllm-mindspore serve` in launch tests: records its argv and environment, answers /health (after a
// short delay, as a loading server would) and /v1/models, and exits on SIGTERM. FAKE_VLLM_MODE=exit exits at once
// with output; FAKE_VLLM_MODE=hang never becomes healthy.
import { writeFileSync } from 'node:fs';
import http from 'node:http';

const args = process.argv.slice(2);
const arg = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
if (process.env.FAKE_VLLM_RECORD) {
  writeFileSync(process.env.FAKE_VLLM_RECORD, JSON.stringify({ args, pid: process.pid, backend: process.env.VLLM_MS_MODEL_BACKEND ?? null, visible: process.env.ASCEND_RT_VISIBLE_DEVICES ?? null }));
}
if (process.env.FAKE_VLLM_MODE === 'exit') {
  console.error('RuntimeError: no NPU found (fake)');
  process.exit(3);
}
const started = Date.now();
const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(process.env.FAKE_VLLM_MODE !== 'hang' && Date.now() - started > 300 ? 200 : 503).end();
  } else if (req.url === '/v1/models') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ data: [{ id: arg('--served-model-name') ?? args[1], max_model_len: Number(arg('--max-model-len') ?? 4096) }] }));
  } else {
    res.writeHead(404).end();
  }
});
server.listen(Number(arg('--port')), arg('--host') ?? '127.0.0.1', () => console.log('fake vllm-mindspore listening'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
