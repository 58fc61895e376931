// Read-only Markdown pages (the metrics, a task's details) shown in the Markdown preview.
import * as vscode from 'vscode';

export class MarkdownViews implements vscode.TextDocumentContentProvider, vscode.Disposable {
  static readonly scheme = 'oh-lsp-view';
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly registration = vscode.workspace.registerTextDocumentContentProvider(MarkdownViews.scheme, this);

  /** Shows `text` as the page `name` (a page of the same name is replaced). */
  async show(name: string, text: string): Promise<vscode.Uri> {
    const uri = vscode.Uri.from({ scheme: MarkdownViews.scheme, path: `/${name}.md` });
    this.texts.set(uri.toString(), text);
    this.changed.fire(uri);
    try {
      await vscode.commands.executeCommand('markdown.showPreview', uri);
    } catch {
      await vscode.window.showTextDocument(uri, { preview: true });
    }
    return uri;
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    return this.texts.get(uri.toString()) ?? '';
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
  }
}
