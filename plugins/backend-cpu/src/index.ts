export { createCpuBackend, cpu, type CpuBackendSettings } from './cpu-backend.js';
