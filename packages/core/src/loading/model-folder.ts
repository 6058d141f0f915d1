import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { Checkpoint } from '../safetensors/reader.js';
import { normalizeHfConfig, readJsonFile } from './config.js';
import { readGenerationConfig, type GenerationDefaults } from './generation-config.js';
import { QllmTokenizer } from './tokenizer.js';

/** A Hugging Face model folder, opened: configs parsed, tokenizer loaded, checkpoint headers validated. */
export interface ModelFolder {
  dir: string;
  /** config.json after normalizeHfConfig. */
  config: Record<string, unknown>;
  /** Path of config.json, for error messages. */
  configFile: string;
  generation: GenerationDefaults;
  /** Absent when the folder has no tokenizer.json. */
  tokenizer?: QllmTokenizer;
  /** Open file handles: call `checkpoint.close()` when done. */
  checkpoint: Checkpoint;
}

export async function loadModelFolder(dir: string): Promise<ModelFolder> {
  const files = await readModelFolderFiles(dir);
  // Opened last: nothing else can fail after its file handles are open.
  const checkpoint = await Checkpoint.open(dir);
  return { ...files, checkpoint };
}

/**
 * A model folder's configs and tokenizer without opening its checkpoint (a backend that serves the folder from a
 * server reads no weights here).
 */
export async function readModelFolderFiles(dir: string): Promise<Omit<ModelFolder, 'checkpoint'>> {
  let isDir: boolean;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new ConfigError(`${dir}: model folder not found`, { cause: e });
    throw new ConfigError(`${dir}: cannot open the model folder (${(e as Error).message})`, { cause: e });
  }
  if (!isDir) throw new ConfigError(`${dir}: not a folder (expected a Hugging Face model folder with config.json)`);

  const configFile = path.join(dir, 'config.json');
  const config = normalizeHfConfig(await readJsonFile(configFile, 'model config'), configFile);
  const generation = await readGenerationConfig(dir, config);
  // Ids between the tokenizer's size and vocab_size (Qwen3 pads 151669 to 151936) decode to no text.
  const vocabSize = Number.isSafeInteger(config.vocab_size) ? (config.vocab_size as number) : undefined;
  const tokenizer = await QllmTokenizer.fromFolder(dir, { modelVocabSize: vocabSize });
  return { dir, config, configFile, generation, tokenizer };
}
