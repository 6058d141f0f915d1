import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { ConfigError } from '../errors.js';
import { isPlainObject, pathExists, readJsonFile } from './config.js';

/** One chat turn, as chat templates expect it (extra keys are passed through to the template). */
export type ChatMessage = {
  role: string;
  content: string;
  reasoning_content?: string;
  tool_calls?: unknown[];
  [k: string]: unknown;
};

export interface ChatTemplateOptions {
  /** Append the assistant turn header (`<|im_start|>assistant\n` for Qwen3). Default false. */
  addGenerationPrompt?: boolean;
  /** Qwen3: false appends an empty `<think>\n\n</think>\n\n` block. Left undefined unless given. */
  enableThinking?: boolean;
  tools?: unknown[];
  /** Further template variables (transformers' chat_template_kwargs). */
  extra?: Record<string, unknown>;
}

/** Special-token strings the template may use, from tokenizer_config.json. */
const TEMPLATE_TOKENS = ['bos_token', 'eos_token', 'pad_token', 'unk_token'] as const;

/** A Hugging Face tokenizer folder: tokenizer.json, tokenizer_config.json and the chat template. */
export class QllmTokenizer {
  /** Number of token strings, added tokens included (transformers' `len(tokenizer)`). */
  readonly vocabSize: number;
  /**
   * The model's vocab_size (config.json), when known and larger than the tokenizer's: Qwen3 pads its 151669 ids to
   * 151936 embedding rows. `decode` gives those padding ids no text (as vLLM does) instead of failing.
   */
  readonly modelVocabSize: number;
  private template: Template | undefined;

  private constructor(
    readonly dir: string,
    private readonly tokenizer: Tokenizer,
    /** Ids of the added tokens marked special=true (dropped by skipSpecialTokens). */
    private readonly specialIds: ReadonlySet<number>,
    private readonly templateTokens: Record<string, string>,
    /** The Jinja chat template text, if the folder has one. */
    readonly chatTemplate: string | undefined,
    private readonly templateFile: string,
    modelVocabSize: number | undefined,
  ) {
    this.vocabSize = tokenizer.get_vocab(true).size;
    this.modelVocabSize = Math.max(this.vocabSize, modelVocabSize ?? 0);
  }

  /**
   * Undefined when the folder has no tokenizer.json. `modelVocabSize` is config.json's vocab_size: ids below it that
   * the tokenizer lacks (padding rows) decode to no text.
   */
  static async fromFolder(dir: string, opts: { modelVocabSize?: number } = {}): Promise<QllmTokenizer | undefined> {
    const tokenizerFile = path.join(dir, 'tokenizer.json');
    if (!(await pathExists(tokenizerFile))) return undefined;
    const json = await readJsonFile(tokenizerFile, 'tokenizer');
    const configFile = path.join(dir, 'tokenizer_config.json');
    const config = (await pathExists(configFile)) ? await readJsonFile(configFile, 'tokenizer config') : {};

    let tokenizer: Tokenizer;
    try {
      // transformers ≥4.45 defaults clean_up_tokenization_spaces to false; the library defaults to true.
      tokenizer = new Tokenizer(json, { clean_up_tokenization_spaces: false, ...config });
    } catch (e) {
      throw new ConfigError(`${blame(json, tokenizerFile, configFile)}: cannot build the tokenizer (${(e as Error).message})`, { cause: e });
    }
    const added = Array.isArray(json.added_tokens) ? (json.added_tokens as { id?: unknown; special?: unknown }[]) : [];
    const specialIds = new Set(added.filter((t) => isPlainObject(t) && t.special === true).map((t) => Number(t.id)));
    const templateTokens: Record<string, string> = {};
    for (const key of TEMPLATE_TOKENS) {
      const token = config[key];
      const content = isPlainObject(token) ? token.content : token;
      if (typeof content === 'string') templateTokens[key] = content;
    }

    // As in transformers, chat_template.jinja wins over tokenizer_config.json's chat_template.
    const jinjaFile = path.join(dir, 'chat_template.jinja');
    if (await pathExists(jinjaFile)) {
      const text = await readFile(jinjaFile, 'utf8');
      return new QllmTokenizer(dir, tokenizer, specialIds, templateTokens, text, jinjaFile, opts.modelVocabSize);
    }
    const template = configTemplate(config.chat_template, configFile);
    return new QllmTokenizer(dir, tokenizer, specialIds, templateTokens, template, configFile, opts.modelVocabSize);
  }

  encode(text: string, opts: { addSpecialTokens?: boolean } = {}): number[] {
    const ids = this.tokenizer.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
    // The library gives a token missing from the vocabulary (with no unk_token) the id undefined.
    if (!ids.every((id) => Number.isSafeInteger(id))) {
      throw new ConfigError(
        `${path.join(this.dir, 'tokenizer.json')}: encoding gave tokens that are not in the vocabulary (and no unk_token ` +
          `stands for them): the file is inconsistent or corrupt`,
      );
    }
    return ids;
  }

  /**
   * Ids in [vocabSize, modelVocabSize), which the model has but the tokenizer lacks (padding rows), decode to no
   * text, as in vLLM; any other unknown id is a RangeError.
   */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const kept: number[] = [];
    for (const id of ids) {
      if (opts.skipSpecialTokens && this.specialIds.has(id)) continue;
      if (this.tokenizer.id_to_token(id) === undefined) {
        if (Number.isInteger(id) && id >= this.vocabSize && id < this.modelVocabSize) continue;
        throw new RangeError(
          `${this.dir}: token id ${id} is not in the vocabulary (the tokenizer has ${this.vocabSize} ids, the model ${this.modelVocabSize})`,
        );
      }
      kept.push(id);
    }
    return kept.length === 0 ? '' : this.tokenizer.decode(kept);
  }

  tokenToId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.tokenizer.id_to_token(id);
  }

  /** Renders the folder's chat template, as transformers' `apply_chat_template(..., tokenize=False)`. */
  applyChatTemplate(messages: ChatMessage[], opts: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === undefined) {
      throw new ConfigError(
        `${this.dir}: no chat template (no chat_template.jinja, and tokenizer_config.json has no 'chat_template')`,
      );
    }
    const context: Record<string, unknown> = {
      ...this.templateTokens,
      messages,
      add_generation_prompt: opts.addGenerationPrompt ?? false,
      ...opts.extra,
    };
    if (opts.enableThinking !== undefined) context.enable_thinking = opts.enableThinking;
    if (opts.tools !== undefined) context.tools = opts.tools;
    try {
      this.template ??= new Template(this.chatTemplate);
      return this.template.render(context);
    } catch (e) {
      throw new ConfigError(`${this.templateFile}: chat template failed (${(e as Error).message})`, { cause: e });
    }
  }
}

/** The file a failed tokenizer build is down to: tokenizer.json, unless it builds on its own (then its config). */
function blame(json: Record<string, unknown>, tokenizerFile: string, configFile: string): string {
  try {
    new Tokenizer(json, { clean_up_tokenization_spaces: false });
  } catch {
    return tokenizerFile;
  }
  return `${configFile} (settings for ${tokenizerFile})`;
}

/** tokenizer_config.json's chat_template: a string, or a list of named templates (use 'default'). */
function configTemplate(value: unknown, file: string): string | undefined {
  if (value === undefined || value === null || typeof value === 'string') return value ?? undefined;
  if (Array.isArray(value)) {
    const named = value.find((t) => isPlainObject(t) && t.name === 'default');
    if (named && typeof named.template === 'string') return named.template;
  }
  throw new ConfigError(`${file}: 'chat_template' must be a string or a list of {name, template} with a 'default' entry`);
}
