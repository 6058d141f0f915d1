/**
 * Calibration texts: CEval split folders (Golden Stick's mindspore_gs/datasets/ceval.py, calibration mode),
 * plain-text files (one sample per paragraph) and JSONL files (one `{"text": ...}` per line).
 * Tokenization is the caller's job.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { ConfigError } from '@qllm/core';

/** Golden Stick's TASK2DESC, in its order: CEval subject → the Chinese name used in the prompt. */
export const CEVAL_SUBJECTS: ReadonlyArray<readonly [subject: string, chineseName: string]> = [
  ['computer_network', '计算机网络'], ['operating_system', '操作系统'], ['computer_architecture', '计算机组成'],
  ['college_programming', '大学编程'], ['college_physics', '大学物理'], ['college_chemistry', '大学化学'],
  ['advanced_mathematics', '高等数学'], ['probability_and_statistics', '概率论与数理统计'],
  ['discrete_mathematics', '离散数学'], ['electrical_engineer', '注册电气工程师'], ['metrology_engineer', '注册计量师'],
  ['high_school_mathematics', '高中数学'], ['high_school_physics', '高中物理'], ['high_school_chemistry', '高中化学'],
  ['high_school_biology', '高中生物'], ['middle_school_mathematics', '初中数学'], ['middle_school_biology', '初中生物'],
  ['middle_school_physics', '初中物理'], ['middle_school_chemistry', '初中化学'], ['veterinary_medicine', '兽医学'],
  ['college_economics', '大学经济学'], ['business_administration', '工商管理'], ['marxism', '马克思主义基本原理'],
  ['mao_zedong_thought', '毛泽东思想和中国特色社会主义理论概论'], ['education_science', '教育学'],
  ['teacher_qualification', '教师资格'], ['high_school_politics', '高中政治'], ['high_school_geography', '高中地理'],
  ['middle_school_politics', '初中政治'], ['middle_school_geography', '初中地理'], ['modern_chinese_history', '近代史纲要'],
  ['ideological_and_moral_cultivation', '思想道德修养与法律基础'], ['logic', '逻辑学'], ['law', '法学'],
  ['chinese_language_and_literature', '中国语言文学'], ['art_studies', '艺术学'], ['professional_tour_guide', '导游资格'],
  ['legal_professional', '法律职业资格'], ['high_school_chinese', '高中语文'], ['high_school_history', '高中历史'],
  ['middle_school_history', '初中历史'], ['civil_servant', '公务员'], ['sports_science', '体育学'],
  ['plant_protection', '植物保护'], ['basic_medicine', '基础医学'], ['clinical_medicine', '临床医学'],
  ['urban_and_rural_planner', '注册城乡规划师'], ['accountant', '注册会计师'], ['fire_engineer', '注册消防工程师'],
  ['environmental_impact_assessment_engineer', '环境影响评价工程师'], ['tax_accountant', '税务师'], ['physician', '医师资格'],
];

export interface CevalSample {
  /** The CEval subject key, e.g. 'computer_network' (Golden Stick's `subjects` column holds the Chinese name). */
  subject: string;
  /** prompt + answer: what calibration ("train" mode) encodes. */
  text: string;
  /** The question prompt alone, ending in '答案：' (eval mode). */
  prompt: string;
  /** The answer letter. */
  answer: string;
}

const CEVAL_COLUMNS = ['question', 'A', 'B', 'C', 'D', 'answer'] as const;
type CevalRow = Record<(typeof CEVAL_COLUMNS)[number], string>;

function checkNumSamples(numSamples: number): void {
  if (!Number.isInteger(numSamples) || numSamples <= 0) throw new ConfigError(`numSamples must be a positive integer, got ${numSamples}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The 1-based line of a string index. */
const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length;

/** The 1-based line holding the first byte sequence that is not UTF-8 ('\n' never occurs inside a UTF-8 sequence). */
function firstNonUtf8Line(bytes: Uint8Array): number {
  let start = 0;
  for (let line = 1; ; line++) {
    const end = bytes.indexOf(0x0a, start);
    try {
      utf8.decode(bytes.subarray(start, end < 0 ? bytes.length : end));
    } catch {
      return line;
    }
    if (end < 0) return line;
    start = end + 1;
  }
}

/**
 * A UTF-8 text file without its BOM. A missing or unreadable file, bytes that are not UTF-8 or a NUL character
 * (binary data: an image, a tensor file, UTF-16 text…) are ConfigErrors naming the file and the line.
 */
async function readText(file: string, what: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(file);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${file}: cannot read the ${what} — ${code === 'ENOENT' ? 'file not found' : (e as Error).message}`);
  }
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new ConfigError(`${file} line ${firstNonUtf8Line(bytes)}: the ${what} is not valid UTF-8 text (a binary file?)`);
  }
  const nul = text.indexOf('\0');
  if (nul >= 0) throw new ConfigError(`${file} line ${lineOf(text, nul)}: the ${what} holds a NUL character, so it is binary data, not text`);
  return text.replace(/^\uFEFF/, '');
}

/** Characters that text does not hold: C0 controls but tab, line feed, vertical tab, form feed and carriage return; DEL; C1 controls; U+FFFD. */
// oxlint-disable-next-line no-control-regex -- matching control characters is the point
const NON_TEXT = /[\u0000-\u0008\u000E-\u001F\u007F-\u009F\uFFFD]/g;

/**
 * Calibration text must look like text: no NUL, and control characters (or U+FFFD, the mark of lossily decoded
 * bytes) at most a quarter of the non-whitespace characters. `where` names the file (and line).
 */
function checkLooksLikeText(text: string, where: string): void {
  if (text.includes('\0')) throw new ConfigError(`${where}: the calibration text holds a NUL character, so it is binary data, not text`);
  const nonText = text.match(NON_TEXT)?.length ?? 0;
  const visible = text.replace(/\s/g, '').length;
  if (nonText > 0 && nonText * 4 > visible) {
    throw new ConfigError(`${where}: binary data, not text — ${nonText} of its ${visible} non-space characters are control characters`);
  }
}

/** One CEval csv (header `id,question,A,B,C,D,answer[,explanation]`), quoted fields may hold commas and newlines. */
async function readCevalCsv(file: string): Promise<CevalRow[]> {
  const text = await readText(file, 'CEval csv');
  let records: string[][];
  try {
    records = parse(text, { skip_empty_lines: true });
  } catch (e) {
    throw new ConfigError(`${file}: invalid csv — ${(e as Error).message}`);
  }
  const [header, ...rows] = records;
  if (!header) throw new ConfigError(`${file}: empty csv, expected a header row id,question,A,B,C,D,answer`);
  const index = CEVAL_COLUMNS.map((column) => {
    const i = header.indexOf(column);
    if (i >= 0) return i;
    if (column === 'answer') {
      throw new ConfigError(`${file}: no 'answer' column — the CEval test split has no answers; use the dev or val split`);
    }
    throw new ConfigError(`${file}: missing column '${column}' (header: ${header.join(',')})`);
  });
  return rows.map((r) => Object.fromEntries(CEVAL_COLUMNS.map((column, c) => [column, r[index[c]!]!])) as CevalRow);
}

/** ceval.py `format_example(subject, line, include_answer=False)`. */
function cevalPrompt(chineseName: string, row: CevalRow): string {
  return `以下是中国关于${chineseName}考试的单项选择题，请不要分析过程，直接在A、B、C、D四个选项中选出正确答案。\n\n`
    + `${row.question}\nA. ${row.A}\nB. ${row.B}\nC. ${row.C}\nD. ${row.D}\n答案：`;
}

/**
 * CEval as Golden Stick's CEvalDataset loads it (`CEvalDataset._load`), for a split folder such as `ceval/dev`:
 * reads `{dir}/{subject}_{basename(dir)}.csv` for the subjects of TASK2DESC in its order; from each takes rows until
 * `0 < int(numSamples / 52) < idx` (the row with that idx included, so 5 rows per subject at the default 200) and
 * stops at numSamples in total (the first 40 subjects at 200). A subject csv that is needed but absent is an error,
 * as pd.read_csv raises there. Unlike pandas, cell text is used verbatim (no "nan" for empty cells, no "1.0").
 */
export async function loadCeval(dir: string, options: { numSamples?: number } = {}): Promise<CevalSample[]> {
  const numSamples = options.numSamples ?? 200;
  checkNumSamples(numSamples);
  const root = path.resolve(dir);
  const split = path.basename(root);
  const entries = await fs.readdir(root, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`CEval folder ${dir}: ${e.code === 'ENOENT' ? 'not found' : e.code === 'ENOTDIR' ? 'not a folder' : e.message}`);
  });
  if (!entries.some((e) => e.isFile() && e.name.endsWith(`_${split}.csv`))) {
    const splits = entries.filter((e) => e.isDirectory() && ['dev', 'val', 'test'].includes(e.name)).map((e) => `${e.name}/`);
    if (splits.length) {
      throw new ConfigError(`CEval folder ${dir} looks like the CEval root (it holds ${splits.join(', ')}): pass a split folder such as ceval/dev`);
    }
    throw new ConfigError(`CEval folder ${dir}: no csv named {subject}_${split}.csv (e.g. computer_network_${split}.csv)`);
  }

  const perSubject = Math.floor(numSamples / CEVAL_SUBJECTS.length);
  const samples: CevalSample[] = [];
  for (const [subject, chineseName] of CEVAL_SUBJECTS) {
    const rows = await readCevalCsv(path.join(root, `${subject}_${split}.csv`));
    for (const [idx, row] of rows.entries()) {
      const prompt = cevalPrompt(chineseName, row);
      samples.push({ subject, text: prompt + row.answer, prompt, answer: row.answer });
      if ((perSubject > 0 && perSubject < idx) || samples.length >= numSamples) break;
    }
    if (samples.length >= numSamples) break;
  }
  return samples;
}

/** A plain-text file; each paragraph (text between blank lines), trimmed, is one sample. */
export async function loadTextFile(file: string): Promise<string[]> {
  const text = await readText(file, 'calibration text file');
  checkLooksLikeText(text, file);
  const samples = text.replace(/\r\n?/g, '\n').split(/\n\s*\n/).map((p) => p.trim()).filter((p) => p !== '');
  if (!samples.length) throw new ConfigError(`${file}: no calibration text (samples are paragraphs separated by blank lines)`);
  return samples;
}

/** A JSONL file: one JSON object with a non-empty string `text` field per line; blank lines are skipped. */
export async function loadJsonl(file: string): Promise<string[]> {
  const lines = (await readText(file, 'calibration JSONL file')).split(/\r?\n/);
  const samples: string[] = [];
  for (const [i, line] of lines.entries()) {
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw new ConfigError(`${file} line ${i + 1}: not valid JSON — ${(e as Error).message}`);
    }
    const text = typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, 'text')
      ? (value as { text: unknown }).text : undefined;
    if (typeof text !== 'string' || text.trim() === '') {
      throw new ConfigError(`${file} line ${i + 1}: expected an object with a non-empty string "text" field`);
    }
    checkLooksLikeText(text, `${file} line ${i + 1}`);
    samples.push(text);
  }
  if (!samples.length) throw new ConfigError(`${file}: no calibration samples`);
  return samples;
}

/**
 * Calibration texts from a CEval split folder (first; up to numSamples, default 200, Golden Stick's selection)
 * and from files (.jsonl → JSONL, anything else → plain text), in order, capped at numSamples.
 * Every file is read and checked even when the cap is already reached.
 */
export async function loadCalibrationTexts(sources: { files?: string[]; ceval?: string; numSamples?: number }): Promise<string[]> {
  const { files = [], ceval, numSamples } = sources;
  if (numSamples !== undefined) checkNumSamples(numSamples);
  if (ceval === undefined && !files.length) throw new ConfigError('no calibration data: give calibration files or a CEval split folder');
  const texts: string[] = [];
  if (ceval !== undefined) texts.push(...(await loadCeval(ceval, numSamples === undefined ? {} : { numSamples })).map((s) => s.text));
  for (const file of files) {
    texts.push(...(await (path.extname(file).toLowerCase() === '.jsonl' ? loadJsonl(file) : loadTextFile(file))));
  }
  return numSamples === undefined ? texts : texts.slice(0, numSamples);
}
