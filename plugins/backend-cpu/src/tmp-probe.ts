import { createCpuBackend } from './cpu-backend.js';
import { probeInt8Forms } from './int8-probe.js';
const b = createCpuBackend();
const t = performance.now();
console.log(await probeInt8Forms((m) => b.createSession(m)), performance.now() - t);
console.log(await b.describe!());
