import { Command } from 'commander';
import { generateCommand } from './generate.js';
import { quantizeCommand } from './quantize.js';

/** The `qllm` program. */
export function createProgram(): Command {
  return new Command('qllm')
    .description('quantize LLMs after training and serve them')
    .showHelpAfterError()
    .addCommand(generateCommand())
    .addCommand(quantizeCommand());
}

/** Run the CLI; errors print one line to stderr and set a non-zero exit code. */
export async function main(argv: string[] = process.argv): Promise<void> {
  try {
    await createProgram().parseAsync(argv);
  } catch (err) {
    process.stderr.write(`qllm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  }
}
