export { normalizeHfConfig, readJsonFile } from './config.js';
export { readGenerationConfig, type GenerationDefaults } from './generation-config.js';
export { loadModelFolder, readModelFolderFiles, type ModelFolder } from './model-folder.js';
export { QllmTokenizer, type ChatMessage, type ChatTemplateOptions } from './tokenizer.js';
