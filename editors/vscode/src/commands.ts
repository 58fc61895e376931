// The command palette's commands, and `ohLsp.refactorPrompt` (the server's "Refactor …" code action).
import * as vscode from 'vscode';
import { ApiKeyStore } from './apiKey';
import { MetricsSummary, metricsMarkdown } from './metrics';
import { Server } from './server';
import { formatCost } from './status';

interface TaskStarted {
  taskId: string;
  progressToken: string;
  duplicate?: boolean;
}

interface TaskRow {
  taskId: string;
  kind: string;
  target: string | null;
  status: string;
  model: string | null;
  cost: number | null;
}

interface ModelRow {
  name: string;
  id?: string | null;
  qualityScore?: number | null;
  pricePrompt?: number | null;
  priceCompletion?: number | null;
  contextLength?: number | null;
  state?: string | null;
}

const pickShown = new vscode.EventEmitter<string>();
/** Fires with a quick pick's title once it is on screen with its items (the real-editor self-test waits for it). */
export const onDidShowPick = pickShown.event;

function pick<T extends vscode.QuickPickItem>(items: T[], options: vscode.QuickPickOptions & { title: string }):
    Thenable<T | undefined> {
  const picked = vscode.window.showQuickPick(items, options);
  pickShown.fire(options.title);
  return picked;
}

const METRICS_URI = vscode.Uri.parse('oh-lsp-metrics:/oh-lsp%20metrics.md');

/** The server's error text (a JSON-RPC error's message says what was wrong and what the command takes). */
function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `action`; a failure becomes an error message instead of a rejected command. */
async function reporting<T>(what: string, action: () => Promise<T>): Promise<T | undefined> {
  try {
    return await action();
  } catch (error) {
    void vscode.window.showErrorMessage(`oh-lsp: ${what} failed: ${messageOf(error)}`);
    return undefined;
  }
}

/** A price per token as US dollars per million tokens. */
function perMillion(usdPerToken: number | null | undefined): string {
  return usdPerToken === null || usdPerToken === undefined ? '?' : `$${(usdPerToken * 1e6).toFixed(2)}`;
}

function pythonEditor(): vscode.TextEditor | undefined {
  const editor = vscode.window.activeTextEditor;
  if (editor?.document.languageId === 'python' && editor.document.uri.scheme === 'file') {
    return editor;
  }
  void vscode.window.showWarningMessage('oh-lsp: open a Python file of the workspace first.');
  return undefined;
}

class MetricsDocument implements vscode.TextDocumentContentProvider {
  private text = '';
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  update(text: string): void {
    this.text = text;
    this.changed.fire(METRICS_URI);
  }

  provideTextDocumentContent(): string {
    return this.text;
  }
}

export function registerCommands(context: vscode.ExtensionContext, server: Server, apiKeys: ApiKeyStore): void {
  const metrics = new MetricsDocument();

  const startTask = (command: string, what: string) => async (): Promise<TaskStarted | undefined> => {
    const editor = pythonEditor();
    if (!editor) {
      return undefined;
    }
    const started = await reporting(what, () => server.execute<TaskStarted>(command,
      { uri: editor.document.uri.toString() }));
    if (started?.duplicate) {
      void vscode.window.showInformationMessage(`oh-lsp: the same task is already queued (${started.taskId.slice(0, 8)}).`);
    }
    return started;
  };

  const cancelTask = async (): Promise<boolean | undefined> => {
    const tasks = await reporting('listing the tasks', async () => [
      ...await server.execute<TaskRow[]>('ohLsp.listTasks', { status: 'running' }),
      ...await server.execute<TaskRow[]>('ohLsp.listTasks', { status: 'pending' }),
    ]);
    if (!tasks) {
      return undefined;
    }
    if (tasks.length === 0) {
      void vscode.window.showInformationMessage('oh-lsp: no task is running or queued.');
      return undefined;
    }
    const picked = await pick(tasks.map((task) => ({
      label: `${task.kind} ${task.target ?? ''}`.trim(),
      description: task.status,
      detail: `${task.taskId}${task.model ? ` · ${task.model}` : ''}${task.cost ? ` · ${formatCost(task.cost)}` : ''}`,
      task,
    })), { title: 'oh-lsp: cancel which task?', placeHolder: 'running and queued tasks' });
    if (!picked) {
      return undefined;
    }
    const answer = await reporting('cancelling', () => server.execute<{ cancelled: boolean }>('ohLsp.cancelTask',
      { taskId: picked.task.taskId }));
    if (answer) {
      void vscode.window.showInformationMessage(answer.cancelled
        ? `oh-lsp: cancelled ${picked.label}.` : `oh-lsp: ${picked.label} had already finished.`);
    }
    return answer?.cancelled;
  };

  const showMetrics = async (): Promise<string | undefined> => {
    const summary = await reporting('reading the metrics', () => server.execute<MetricsSummary>('ohLsp.showMetrics', {}));
    if (!summary) {
      return undefined;
    }
    const text = metricsMarkdown(summary);
    metrics.update(text);
    try {
      await vscode.commands.executeCommand('markdown.showPreview', METRICS_URI);
    } catch {
      await vscode.window.showTextDocument(METRICS_URI, { preview: true });
    }
    return text;
  };

  const selectModel = async (): Promise<string | null | undefined> => {
    const models = await reporting('listing the models', () => server.execute<ModelRow[]>('ohLsp.listModels', {}));
    if (!models) {
      return undefined;
    }
    const automatic = { label: '$(sparkle) Automatic', description: 'oh-lsp chooses per task', name: null };
    const items = [automatic, ...models.map((model) => ({
      label: model.name,
      description: [
        model.qualityScore !== null && model.qualityScore !== undefined ? `quality ${model.qualityScore}/5` : undefined,
        model.pricePrompt !== null && model.pricePrompt !== undefined
          ? `${perMillion(model.pricePrompt)}/${perMillion(model.priceCompletion)} per M tokens in/out` : undefined,
        model.contextLength ? `${Math.round(model.contextLength / 1000)}k context` : undefined,
      ].filter(Boolean).join(' · '),
      detail: model.state && model.state !== 'ready' ? model.state : undefined,
      name: model.name as string | null,
    }))];
    const picked = await pick(items, { title: 'oh-lsp: model for new tasks (this workspace)',
      matchOnDescription: true });
    if (!picked) {
      return undefined;
    }
    const answer = await reporting('selecting the model', () => server.execute<{ model: string | null }>(
      'ohLsp.setModel', { name: picked.name }));
    if (!answer) {
      return undefined;
    }
    await server.rememberModel(picked.name);
    void vscode.window.showInformationMessage(picked.name
      ? `oh-lsp: new tasks use ${picked.name}.` : 'oh-lsp: the model is chosen per task again.');
    return picked.name;
  };

  const setApiKey = async (): Promise<boolean> => {
    const key = await vscode.window.showInputBox({
      title: 'oh-lsp: API key',
      prompt: 'Kept in VS Code\'s secret storage and handed to the oh-lsp server; never written to settings.',
      placeHolder: 'sk-or-…',
      password: true,
      ignoreFocusOut: true,
      validateInput: (value) => (value.trim() === '' ? 'Enter the key, or press Escape.' : undefined),
    });
    if (!key) {
      return false;
    }
    await apiKeys.set(key);
    void vscode.window.showInformationMessage('oh-lsp: the API key is stored in the secret storage.');
    return true;
  };

  const refactorPrompt = async (args?: { uri?: string; symbol?: unknown }): Promise<TaskStarted | undefined> => {
    if (!args?.uri || args.symbol === undefined) {
      void vscode.window.showWarningMessage('oh-lsp: use the "Refactor …" code action on a function or class.');
      return undefined;
    }
    const name = typeof args.symbol === 'string' ? args.symbol : 'the symbol';
    const instruction = await vscode.window.showInputBox({
      title: `oh-lsp: refactor ${name}`,
      prompt: 'What should change? The result must keep the public names and the existing tests green.',
      placeHolder: 'e.g. replace the nested loops with a dictionary lookup',
      ignoreFocusOut: true,
      validateInput: (value) => (value.trim() === '' ? 'Say what to change, or press Escape.' : undefined),
    });
    if (!instruction) {
      return undefined;
    }
    return reporting('refactoring', () => server.execute<TaskStarted>('ohLsp.refactor',
      { uri: args.uri, symbol: args.symbol, instruction: instruction.trim() }));
  };

  context.subscriptions.push(
    vscode.workspace.registerTextDocumentContentProvider(METRICS_URI.scheme, metrics),
    vscode.commands.registerCommand('oh-lsp.generateTests', startTask('ohLsp.generateTests', 'generating tests')),
    vscode.commands.registerCommand('oh-lsp.documentFile', startTask('ohLsp.documentModule', 'documenting')),
    vscode.commands.registerCommand('oh-lsp.cancelTask', cancelTask),
    vscode.commands.registerCommand('oh-lsp.showMetrics', showMetrics),
    vscode.commands.registerCommand('oh-lsp.selectModel', selectModel),
    vscode.commands.registerCommand('oh-lsp.setApiKey', setApiKey),
    vscode.commands.registerCommand('oh-lsp.clearApiKey', async () => {
      await apiKeys.clear();
      void vscode.window.showInformationMessage('oh-lsp: the API key was removed from the secret storage.');
    }),
    vscode.commands.registerCommand('oh-lsp.restartServer', () => server.restart()),
    vscode.commands.registerCommand('oh-lsp.showLogs', () => server.log.show()),
    vscode.commands.registerCommand('ohLsp.refactorPrompt', refactorPrompt),
  );
}
