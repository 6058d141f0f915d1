import { Command } from 'commander';
import { envCommand } from './env.js';
import { exportGgufCommand } from './export-gguf.js';
import { generateCommand } from './generate.js';
import { inspectCommand } from './inspect.js';
import { quantizeCommand } from './quantize.js';
import { serveCommand } from './serve.js';

/** The subcommands, in help order: each a factory returning a fresh commander Command. Add new ones here. */
const commands: ReadonlyArray<() => Command> = [generateCommand, quantizeCommand, serveCommand, exportGgufCommand, envCommand, inspectCommand];

/** The `qllm` program. */
export function createProgram(): Command {
  const program = new Command('qllm').description('quantize LLMs after training and serve them').showHelpAfterError();
  for (const command of commands) program.addCommand(command());
  return program;
}

/**
 * Run the CLI; errors print one line to stderr and set a non-zero exit code. `argv` is node's shape:
 * `[node, script, ...arguments]`.
 */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await createProgram().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`qllm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}

export { describeEnvironment, environmentLine } from './env.js';
