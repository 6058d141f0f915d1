/** The flags of a model load shared by `generate` and `serve`: the head, the graph cache, and the load's progress. */
import cliProgress from 'cli-progress';
import { Option, type Command } from 'commander';
import type { LLMOptions, LoadPhase } from 'qllm';

export function addLoadFlags(command: Command): Command {
  return command
    .addOption(new Option('--lm-head <kind>', "how a float lm_head runs: 'float' as stored, or 'int8' weight-only (a quarter of the bytes per token)")
      .choices(['float', 'int8']))
    .option('--graph-cache <dir>', 'keep the model as the backend reads it here, for fast later loads (default $QLLM_CACHE_DIR or ~/.cache/qllm)')
    .option('--no-graph-cache', 'do not keep the model for later loads (a temporary copy, removed once loaded)');
}

/** The LLM options those flags give, with a progress line per phase and a bar while the graph is written. */
export function loadOptions(opts: { model: string; lmHead?: 'float' | 'int8'; graphCache?: string | false }): Pick<LLMOptions, 'lmHead' | 'graphCache' | 'onProgress'> {
  let bar: cliProgress.SingleBar | undefined;
  const onProgress = (phase: LoadPhase, progress?: { done: number; total: number }) => {
    if (phase === 'writing the graph' && progress) {
      if (!bar) {
        bar = new cliProgress.SingleBar({
          stream: process.stderr, format: 'writing the graph |{bar}| {value}/{total} MiB · {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000,
        });
        bar.start(Math.ceil(progress.total / 2 ** 20), 0);
      }
      bar.update(Math.floor(progress.done / 2 ** 20));
      return;
    }
    bar?.stop();
    bar = undefined;
    process.stderr.write(`loading ${opts.model}: ${phase}…\n`);
  };
  return {
    ...(opts.lmHead && { lmHead: opts.lmHead }),
    ...(opts.graphCache !== undefined && { graphCache: opts.graphCache }),
    onProgress,
  };
}
