// DeepSeek (ds-lsp) for VS Code: starts the ds-lsp language server and adds
// comfort around it. Ghost text comes from the language client alone (it
// registers inline completion); edits, chat and reasoning go through the
// server's commands and its `dsLsp/reasoning` notification (docs/protocol.md).
import * as path from 'path';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  Range as LspRange,
  State,
} from 'vscode-languageclient/node';
import { RedactingLogChannel } from './redact';
import { resolveServer } from './server';
import {
  initializationOptions,
  modelLabel,
  RESTART_SETTINGS,
  SECTION,
  serverSettings,
  workspaceUrlSetting,
} from './settings';

const API_KEY_SECRET = 'dsLsp.apiKey';
const CHAT_CONTEXT = 'deepseek.chatEditor';

interface ReasoningParams {
  id: string | number;
  uri: string;
  range?: LspRange;
  text: string;
  done: boolean;
}

class DeepSeek implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private starting: Promise<void> | undefined;
  private restarting: Promise<void> = Promise.resolve();
  private apiKey: string | undefined; // from secret storage: always hidden in the log
  private keySent = false; // whether this server got it (only for the user's own URL)
  private readonly log: RedactingLogChannel;
  private readonly reasoning: vscode.OutputChannel;
  private readonly status: vscode.StatusBarItem;
  private failure: string | undefined; // why the server is not running, for the status bar
  // editSelection / sendChat requests in flight, each with its notification's reporter.
  private readonly pending = new Set<(line: string) => void>();
  private readonly streams = new Set<string>(); // reasoning streams not done yet
  private reasoningAtLineStart = true;
  private readonly chatUris = new Set<string>(); // chat documents the server named

  constructor(private readonly context: vscode.ExtensionContext) {
    const log = vscode.window.createOutputChannel('DeepSeek (ds-lsp)', { log: true });
    this.log = new RedactingLogChannel(log, () => (this.apiKey ? [this.apiKey] : []));
    this.reasoning = vscode.window.createOutputChannel('DeepSeek Reasoning');
    this.status = vscode.window.createStatusBarItem('deepseek.status', vscode.StatusBarAlignment.Right, 100);
    this.status.name = 'DeepSeek';
    this.status.command = 'deepseek.showReasoning';
    this.status.show();
    this.updateStatus();
  }

  /** Stops the server; deactivate() waits for it. */
  async shutdown(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.dispose().catch(() => undefined);
  }

  dispose(): void {
    void this.shutdown();
    this.log.dispose();
    this.reasoning.dispose();
    this.status.dispose();
  }

  // -- the server ------------------------------------------------------------

  start(): Promise<void> {
    this.starting = this.startClient();
    return this.starting;
  }

  private async startClient(): Promise<void> {
    this.failure = undefined;
    const resolved = await resolveServer();
    if ('problem' in resolved) {
      this.fail(resolved.problem);
      return;
    }
    this.apiKey = await this.context.secrets.get(API_KEY_SECRET);
    const urlSetting = this.apiKey ? workspaceUrlSetting() : undefined;
    this.keySent = !!this.apiKey && !urlSetting;
    if (urlSetting) {
      this.withholdKey(urlSetting);
    }
    const client = new LanguageClient(
      SECTION, // also names the trace setting: dsLsp.trace.server
      'DeepSeek (ds-lsp)',
      { run: resolved.executable, debug: resolved.executable },
      {
        documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
        initializationOptions: initializationOptions(this.keySent ? this.apiKey : undefined),
        outputChannel: this.log,
        middleware: {
          workspace: {
            // The server asks for the "dsLsp" section: give it the server's settings only.
            configuration: async (params, token, next) => {
              const answers = await next(params, token);
              if (!Array.isArray(answers)) {
                return answers;
              }
              return params.items.map((item, i) =>
                item.section === SECTION ? serverSettings() : answers[i],
              );
            },
          },
        },
      },
    );
    client.onNotification('dsLsp/reasoning', (params: ReasoningParams) => this.onReasoning(params));
    client.onDidChangeState(({ newState }) => {
      if (newState === State.Stopped) {
        this.streams.clear(); // a stream cut off by a crash never says done
      }
      this.updateStatus();
    });
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.fail(`ds-lsp failed to start: ${errorText(error)}. See the "DeepSeek (ds-lsp)" output.`);
    }
    this.updateStatus();
  }

  /** Restarts the server; restarts asked for at once run one after the other. */
  restart(): Promise<void> {
    this.restarting = this.restarting.then(async () => {
      await this.starting;
      const old = this.client;
      this.client = undefined;
      this.streams.clear();
      await old?.dispose().catch(() => undefined); // stops the server, unregisters its commands
      await this.start();
    });
    return this.restarting;
  }

  /** The running client, or undefined after telling the user why there is none. */
  private async ready(): Promise<LanguageClient | undefined> {
    await this.starting;
    if (this.client?.isRunning()) {
      return this.client;
    }
    const choice = await vscode.window.showErrorMessage(
      this.failure ?? 'ds-lsp is not running.',
      'Restart Server',
    );
    if (choice) {
      await this.restart();
    }
    return undefined;
  }

  /** The workspace chose the model's URL: the key stays home, and the user learns why. */
  private withholdKey(setting: string): void {
    const message =
      `DeepSeek: the API key was not sent to the model server: this workspace sets "${SECTION}.${setting}", ` +
      'and the key only goes to a URL from your user settings. Set the URL there, or remove it ' +
      "from this workspace's settings, to use the key.";
    this.log.warn(message);
    void vscode.window.showWarningMessage(message, 'Open Workspace Settings').then((choice) => {
      if (choice) {
        void vscode.commands.executeCommand('workbench.action.openWorkspaceSettingsFile');
      }
    });
  }

  private fail(message: string): void {
    this.failure = message;
    this.log.error(message);
    this.updateStatus();
    void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Log').then((choice) => {
      if (choice === 'Open Settings') {
        void vscode.commands.executeCommand('workbench.action.openSettings', SECTION);
      } else if (choice === 'Show Log') {
        this.log.show();
      }
    });
  }

  onSettingsChanged(event: vscode.ConfigurationChangeEvent): void {
    if (!event.affectsConfiguration(SECTION)) {
      return;
    }
    this.updateStatus();
    // A server holding the key must never learn a URL the workspace chose: restart
    // (without the key) instead of passing the new settings on; and the other way round.
    const keyAllowed = !!this.apiKey && !workspaceUrlSetting();
    if (keyAllowed !== this.keySent || RESTART_SETTINGS.some((setting) => event.affectsConfiguration(setting))) {
      void this.restart();
    } else if (this.client?.isRunning()) {
      // settings: null makes the server ask for them (workspace/configuration, above).
      void this.client.sendNotification(DidChangeConfigurationNotification.type, { settings: null });
    }
  }

  /** Runs one of the server's commands (docs/protocol.md). With a `busy` title, the
   * status bar spins and a notification shows the latest line of reasoning, with a
   * Cancel button: the language client shows the server's own progress in the
   * status bar only, where it cannot be cancelled. */
  private async execute<T>(command: string, argument: object, busy?: string): Promise<T | undefined> {
    const client = await this.ready();
    if (!client) {
      return undefined;
    }
    const offered = client.initializeResult?.capabilities.executeCommandProvider?.commands ?? [];
    if (!offered.includes(command)) {
      void vscode.window.showErrorMessage(
        `This ds-lsp does not offer ${command}: update it (pip install -U ds-lsp, or git pull and make install).`,
      );
      return undefined;
    }
    const send = async (token?: vscode.CancellationToken): Promise<T | undefined> => {
      try {
        const params = { command, arguments: [argument] };
        return (await client.sendRequest(ExecuteCommandRequest.type, params, token)) as T;
      } catch (error) {
        if (!token?.isCancellationRequested) {
          void vscode.window.showErrorMessage(`DeepSeek: ${command} failed: ${errorText(error)}`);
        }
        return undefined;
      }
    };
    if (!busy) {
      return send();
    }
    const options = { location: vscode.ProgressLocation.Notification, title: busy, cancellable: true };
    return vscode.window.withProgress(options, async (progress, token) => {
      const report = (line: string) => progress.report({ message: line });
      this.pending.add(report);
      this.updateStatus();
      try {
        return await send(token); // cancelling sends $/cancelRequest: the server stops the model
      } finally {
        this.pending.delete(report);
        this.updateStatus();
      }
    });
  }

  private selection(client: LanguageClient, editor: vscode.TextEditor): { uri: string; range: LspRange } {
    const convert = client.code2ProtocolConverter;
    return { uri: convert.asUri(editor.document.uri), range: convert.asRange(editor.selection) };
  }

  // -- commands ----------------------------------------------------------------

  async editSelection(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return;
    }
    const client = await this.ready();
    if (!client) {
      return;
    }
    const target = this.selection(client, editor); // now: the selection may move while the user types
    const instruction = await vscode.window.showInputBox({
      title: 'Edit with DeepSeek',
      prompt: 'What should change? (Empty: a "# ds: ..." comment on the first selected line says it.)',
      placeHolder: 'e.g. add type hints',
      ignoreFocusOut: true,
    });
    if (instruction === undefined) {
      return; // cancelled
    }
    // The server shows every outcome but success itself (window/showMessage).
    const title = `DeepSeek is editing ${path.basename(editor.document.uri.path)}`;
    await this.execute('dsLsp.editSelection', { ...target, instruction }, title);
  }

  async addToChat(): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) {
      return;
    }
    const client = await this.ready();
    if (!client) {
      return;
    }
    // The server opens the chat itself (window/showDocument).
    const result = await this.execute<{ uri?: string }>('dsLsp.addToChat', this.selection(client, editor));
    this.rememberChat(result?.uri);
  }

  async openChat(): Promise<void> {
    const result = await this.execute<{ uri?: string }>('dsLsp.openChat', {});
    const uri = this.rememberChat(result?.uri);
    if (uri) {
      await vscode.window.showTextDocument(uri);
    }
  }

  async sendChat(): Promise<void> {
    const active = vscode.window.activeTextEditor?.document;
    const chat =
      active && this.isChat(active)
        ? active
        : vscode.window.visibleTextEditors.map((editor) => editor.document).find((doc) => this.isChat(doc));
    if (!chat) {
      void vscode.window.showInformationMessage(
        'Open the DeepSeek chat first ("DeepSeek: Open chat", or add a selection to it with Ctrl+L).',
      );
      return;
    }
    const client = await this.ready();
    if (client) {
      const uri = client.code2ProtocolConverter.asUri(chat.uri);
      await this.execute('dsLsp.sendChat', { uri }, 'DeepSeek is answering');
    }
  }

  showReasoning(): void {
    this.reasoning.show(true);
  }

  async setApiKey(): Promise<void> {
    const key = await vscode.window.showInputBox({
      title: 'DeepSeek: API key',
      prompt:
        'For the openai backend (the DeepSeek API, a server that wants one). ' +
        "Kept in VS Code's secret storage. Empty: remove the key.",
      password: true,
      ignoreFocusOut: true,
    });
    if (key === undefined) {
      return;
    }
    if (key.trim()) {
      await this.context.secrets.store(API_KEY_SECRET, key.trim());
    } else {
      await this.context.secrets.delete(API_KEY_SECRET);
    }
    await this.restart(); // the key travels in initializationOptions
    void vscode.window.showInformationMessage(
      key.trim() ? 'DeepSeek: API key saved.' : 'DeepSeek: API key removed.',
    );
  }

  // -- chat documents ------------------------------------------------------------

  private rememberChat(uri: string | undefined): vscode.Uri | undefined {
    if (!uri || !this.client) {
      return undefined;
    }
    const parsed = this.client.protocol2CodeConverter.asUri(uri);
    this.chatUris.add(parsed.toString());
    this.updateChatContext();
    return parsed;
  }

  /** A chat document: one the server named, or a Markdown file in a ds-lsp chat folder
   * (`.ds-lsp/` in the workspace, or `<state dir>/ds-lsp/chats/...`; see docs/chat.md),
   * e.g. one reopened after a restart. */
  private isChat(document: vscode.TextDocument): boolean {
    if (this.chatUris.has(document.uri.toString())) {
      return true;
    }
    const file = document.uri.fsPath;
    const inFolder = (...parts: string[]) => file.includes(path.sep + parts.join(path.sep) + path.sep);
    const chatFolder = inFolder('.ds-lsp') || inFolder('ds-lsp', 'chats');
    return document.uri.scheme === 'file' && file.endsWith('.md') && chatFolder;
  }

  updateChatContext(): void {
    const document = vscode.window.activeTextEditor?.document;
    void vscode.commands.executeCommand('setContext', CHAT_CONTEXT, !!document && this.isChat(document));
  }

  // -- reasoning and status ------------------------------------------------------

  private onReasoning(params: ReasoningParams): void {
    const id = String(params.id);
    if (!this.streams.has(id)) {
      this.streams.add(id);
      this.writeReasoning(`── ${describe(params)} ──\n`);
    }
    if (params.text) {
      this.writeReasoning(params.text);
      const line = params.text.trim().split('\n').pop();
      if (line) {
        this.pending.forEach((report) => report(line));
      }
    }
    if (params.done) {
      this.streams.delete(id);
      this.writeReasoning(`${this.reasoningAtLineStart ? '' : '\n'}${'─'.repeat(40)}\n`);
    }
    this.updateStatus();
  }

  private writeReasoning(text: string): void {
    this.reasoning.append(text);
    this.reasoningAtLineStart = text.endsWith('\n');
  }

  updateStatus(): void {
    const busy = this.pending.size > 0 || this.streams.size > 0;
    const running = this.client?.state === State.Running;
    const icon = busy ? '$(sync~spin)' : running ? '$(sparkle)' : '$(warning)';
    this.status.text = `${icon} ${modelLabel()}`;
    this.status.tooltip = busy
      ? 'DeepSeek is thinking… (click to see its reasoning)'
      : running
        ? "ds-lsp is running (click to see the model's reasoning)"
        : (this.failure ?? 'ds-lsp is not running');
  }
}

function describe(params: ReasoningParams): string {
  let name = params.uri;
  try {
    name = path.basename(vscode.Uri.parse(params.uri).path);
  } catch {
    // keep the URI as it came
  }
  const lines = params.range ? `:${params.range.start.line + 1}-${params.range.end.line + 1}` : '';
  return `${name}${lines}, ${new Date().toLocaleTimeString()}`;
}

function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

let deepSeek: DeepSeek | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const ext = new DeepSeek(context);
  deepSeek = ext;
  context.subscriptions.push(
    ext,
    vscode.commands.registerCommand('deepseek.editSelection', () => ext.editSelection()),
    vscode.commands.registerCommand('deepseek.addToChat', () => ext.addToChat()),
    vscode.commands.registerCommand('deepseek.sendChat', () => ext.sendChat()),
    vscode.commands.registerCommand('deepseek.openChat', () => ext.openChat()),
    vscode.commands.registerCommand('deepseek.showReasoning', () => ext.showReasoning()),
    vscode.commands.registerCommand('deepseek.setApiKey', () => ext.setApiKey()),
    vscode.commands.registerCommand('deepseek.restartServer', () => ext.restart()),
    vscode.workspace.onDidChangeConfiguration((event) => ext.onSettingsChanged(event)),
    vscode.window.onDidChangeActiveTextEditor(() => ext.updateChatContext()),
  );
  ext.updateChatContext();
  void ext.start(); // commands wait for it; activation need not
}

export async function deactivate(): Promise<void> {
  await deepSeek?.shutdown();
  deepSeek = undefined;
}
