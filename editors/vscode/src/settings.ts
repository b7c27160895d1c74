// The `dsLsp.*` settings: what the extension keeps for itself, and what it hands
// to the server (as initializationOptions and as the answer to workspace/configuration).
import * as path from 'path';
import * as vscode from 'vscode';
import { urlSetByWorkspace } from './keyRule';

export const SECTION = 'dsLsp';

// Settings of the extension, not of the server: never sent to it (the server
// would warn "unknown setting" about each of them).
const EXTENSION_ONLY = ['serverCommand', 'pythonPath', 'trace'];

// Changing these needs a new server process.
export const RESTART_SETTINGS = ['serverCommand', 'pythonPath'].map((key) => `${SECTION}.${key}`);

/** The `dsLsp` section as the server should see it. Declared settings left
 * unset are null, which the server reads as "ds-lsp's own value" (its config
 * file, environment, flags); undeclared keys the user wrote in settings.json
 * (`dsLsp.reasoningBudget`, ...) pass through, so every server setting works. */
export function serverSettings(): Record<string, unknown> {
  // JSON round trip: a plain object, without WorkspaceConfiguration's methods.
  const all = JSON.parse(JSON.stringify(vscode.workspace.getConfiguration(SECTION)));
  for (const key of EXTENSION_ONLY) {
    delete all[key];
  }
  return all;
}

/** initializationOptions: the set settings, and the API key when there is one. */
export function initializationOptions(apiKey: string | undefined): { dsLsp: Record<string, unknown> } {
  const settings = Object.fromEntries(
    Object.entries(serverSettings()).filter(([, value]) => value !== null && value !== undefined),
  );
  if (apiKey) {
    settings.apiKey = apiKey;
  }
  return { dsLsp: settings };
}

/** The model's name for the status bar: the server model, the GGUF's file name, or "DeepSeek". */
export function modelLabel(): string {
  const config = vscode.workspace.getConfiguration(SECTION);
  const model = config.get<string | null>('model');
  const modelPath = config.get<string | null>('modelPath');
  if (model) {
    return model;
  }
  if (modelPath) {
    return path.basename(modelPath).replace(/\.gguf$/i, '');
  }
  return 'DeepSeek';
}

/** The model-URL setting this workspace or folder sets, if any: the API key then
 * stays in secret storage (see keyRule.ts). */
export function workspaceUrlSetting(): string | undefined {
  const config = vscode.workspace.getConfiguration(SECTION);
  return urlSetByWorkspace(serverSettings(), (key) => config.inspect(key));
}
