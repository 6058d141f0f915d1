export { ascend, createAscendBackend, howToServe, type AscendBackendOptions, type AscendBackendSettings } from './ascend-backend.js';
export { describeProbe, probeCann, defaultProbeInputs, type CannProbe, type CannProbeInputs } from './probe.js';
export { inspectFolder, shellLine, unservableReason, vllmMindSporeCommand, type FolderLayout, type ServeCommand, type ServeCommandOptions } from './serve-command.js';
export { completionBody, connectOpenAIServer, parseChoice, type OpenAIServerOptions } from './openai-engine.js';
export { launchServer, type LaunchedServer, type LaunchOptions } from './launch.js';
