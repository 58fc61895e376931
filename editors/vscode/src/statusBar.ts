// The status bar item: running and queued tasks, today's cost and the success rate (once something finished), fed
// by `ohLsp/status`.
import * as vscode from 'vscode';
import { Server } from './server';
import { STARTING, StatusView, renderStatus, stoppedView } from './status';

export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private readonly changed = new vscode.EventEmitter<string>();
  private readonly disposables: vscode.Disposable[];
  /** Fires with the new text whenever it changes (the self-test records them). */
  readonly onDidChangeText = this.changed.event;

  constructor(server: Server) {
    this.item = vscode.window.createStatusBarItem('ohLsp.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'oh-lsp';
    this.show(STARTING, 'oh-lsp.showLogs');
    this.disposables = [
      this.item,
      this.changed,
      server.onStatus((status) => this.show(renderStatus(status), 'oh-lsp.showMetrics')),
      server.onState((state) => {
        if (state.running) {
          this.show(server.lastStatus ? renderStatus(server.lastStatus) : STARTING, 'oh-lsp.showMetrics');
        } else {
          this.show(stoppedView(state.reason), 'oh-lsp.showLogs');
        }
      }),
    ];
  }

  get text(): string {
    return this.item.text;
  }

  /** The hover's Markdown. */
  get tooltip(): string {
    const tooltip = this.item.tooltip;
    return typeof tooltip === 'string' ? tooltip : tooltip?.value ?? '';
  }

  get isError(): boolean {
    return this.item.backgroundColor !== undefined;
  }

  private show(view: StatusView, command: string): void {
    const before = this.item.text;
    this.item.text = view.text;
    this.item.tooltip = new vscode.MarkdownString(view.tooltip, true);
    this.item.backgroundColor = view.error ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
    this.item.command = command;
    this.item.show();
    if (view.text !== before) {
      this.changed.fire(view.text);
    }
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }
}
