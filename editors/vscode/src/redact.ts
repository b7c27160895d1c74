// A log output channel that hides secrets. The language client writes the
// server's stderr and, at log level Trace, every LSP message (initialize
// included, which carries the API key) to its channel: whatever writes there,
// the key never shows.
import { format } from 'util';
import * as vscode from 'vscode';

const HIDDEN = '<api key hidden>';

export class RedactingLogChannel implements vscode.LogOutputChannel {
  constructor(
    private readonly channel: vscode.LogOutputChannel,
    private readonly secrets: () => string[],
  ) {}

  get name(): string {
    return this.channel.name;
  }

  get logLevel(): vscode.LogLevel {
    return this.channel.logLevel;
  }

  get onDidChangeLogLevel(): vscode.Event<vscode.LogLevel> {
    return this.channel.onDidChangeLogLevel;
  }

  /** The message with its arguments formatted in, and every secret replaced. */
  private redact(message: string | Error, args: unknown[]): string {
    let text = format(message instanceof Error ? (message.stack ?? message.message) : message, ...args);
    for (const secret of this.secrets()) {
      // Also as JSON escapes it, should the key hold quotes or backslashes.
      for (const form of new Set([secret, JSON.stringify(secret).slice(1, -1)])) {
        text = text.split(form).join(HIDDEN);
      }
    }
    return text;
  }

  trace(message: string, ...args: unknown[]): void {
    this.channel.trace(this.redact(message, args));
  }

  debug(message: string, ...args: unknown[]): void {
    this.channel.debug(this.redact(message, args));
  }

  info(message: string, ...args: unknown[]): void {
    this.channel.info(this.redact(message, args));
  }

  warn(message: string, ...args: unknown[]): void {
    this.channel.warn(this.redact(message, args));
  }

  error(error: string | Error, ...args: unknown[]): void {
    this.channel.error(this.redact(error, args));
  }

  append(value: string): void {
    this.channel.append(this.redact(value, []));
  }

  appendLine(value: string): void {
    this.channel.appendLine(this.redact(value, []));
  }

  replace(value: string): void {
    this.channel.replace(this.redact(value, []));
  }

  clear(): void {
    this.channel.clear();
  }

  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    if (typeof columnOrPreserveFocus === 'boolean' || columnOrPreserveFocus === undefined) {
      this.channel.show(columnOrPreserveFocus);
    } else {
      this.channel.show(columnOrPreserveFocus, preserveFocus);
    }
  }

  hide(): void {
    this.channel.hide();
  }

  dispose(): void {
    this.channel.dispose();
  }
}
