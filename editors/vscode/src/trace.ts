// `ohLsp.trace.server`: the JSON-RPC messages in the oh-lsp output channel.
//
// vscode-languageclient 9+ traces only when its trace channel's log level is Trace, and writes the trace at that
// level: with the default level (Info) the setting alone showed nothing. This channel stands in for the trace
// channel: its level follows the setting, and it writes the trace lines into the oh-lsp channel at a level that is
// shown.
import * as vscode from 'vscode';

function levelOf(setting: string | undefined): vscode.LogLevel {
  return setting === 'messages' || setting === 'verbose' ? vscode.LogLevel.Trace : vscode.LogLevel.Info;
}

export class TraceChannel implements vscode.LogOutputChannel {
  private readonly levelChanged = new vscode.EventEmitter<vscode.LogLevel>();
  readonly onDidChangeLogLevel = this.levelChanged.event;
  logLevel: vscode.LogLevel;

  constructor(private readonly log: vscode.LogOutputChannel, private readonly setting: () => string | undefined) {
    this.logLevel = levelOf(setting());
  }

  /** The setting may have changed: tell the language client, which then turns tracing on or off. */
  refresh(): void {
    const level = levelOf(this.setting());
    if (level !== this.logLevel) {
      this.logLevel = level;
      this.levelChanged.fire(level);
    }
  }

  get name(): string {
    return this.log.name;
  }

  trace(message: string): void {
    if (this.logLevel === vscode.LogLevel.Trace) {
      this.log.info(`[trace] ${message}`);
    }
  }

  debug(message: string, ...args: unknown[]): void {
    this.log.debug(message, ...args);
  }

  info(message: string, ...args: unknown[]): void {
    this.log.info(message, ...args);
  }

  warn(message: string, ...args: unknown[]): void {
    this.log.warn(message, ...args);
  }

  error(error: string | Error, ...args: unknown[]): void {
    this.log.error(error, ...args);
  }

  append(value: string): void {
    this.log.append(value);
  }

  appendLine(value: string): void {
    this.log.appendLine(value);
  }

  replace(value: string): void {
    this.log.replace(value);
  }

  clear(): void {
    this.log.clear();
  }

  show(columnOrPreserveFocus?: vscode.ViewColumn | boolean, preserveFocus?: boolean): void {
    this.log.show(columnOrPreserveFocus as vscode.ViewColumn, preserveFocus);
  }

  hide(): void {
    this.log.hide();
  }

  dispose(): void {
    this.levelChanged.dispose(); // the oh-lsp channel itself belongs to the extension
  }
}
