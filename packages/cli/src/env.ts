import { createRequire } from 'node:module';
import { Command } from 'commander';
import { backends, type BackendV1 } from 'qllm';

const require = createRequire(import.meta.url);

/** What a bug report needs first: versions, the CPU as the backend sees it, and its int8 GEMM choice with the reason. */
export async function describeEnvironment(backendName = 'cpu'): Promise<Record<string, string>> {
  const backend: BackendV1 = await backends.get(backendName);
  const facts: Record<string, string> = {
    qllm: (require('../package.json') as { version: string }).version,
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    backend: backend.name,
    ...(await backend.describe?.()),
  };
  if (backend.int8GemmForm) {
    try {
      const c = await backend.int8GemmForm();
      const exact = Object.entries(c.exact).map(([f, ok]) => `${f} ${ok ? 'exact' : 'INEXACT'}`).join(', ');
      facts.int8 = `${c.form} (${c.reason}; probe: ${exact})`;
    } catch (e) {
      facts.int8 = `unavailable: ${(e as Error).message}`;
    }
  }
  return facts;
}

/** The facts as one line, e.g. for stderr at load. */
export function environmentLine(facts: Record<string, string>): string {
  return Object.entries(facts).map(([k, v]) => `${k}: ${v}`).join(' | ');
}

export function envCommand(): Command {
  return new Command('env')
    .description('print the machine, versions and int8 kernel choice (paste it into bug reports)')
    .option('--backend <name>', 'backend to describe', 'cpu')
    .option('--json', 'print one JSON object')
    .action(async (opts: { backend: string; json?: boolean }) => {
      const facts = await describeEnvironment(opts.backend);
      process.stdout.write(opts.json ? `${JSON.stringify(facts)}\n` : `${environmentLine(facts)}\n`);
    });
}
