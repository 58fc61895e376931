// The command palette's commands, `ohLsp.refactorPrompt` (the server's "Refactor …" code action) and
// `ohLsp.openCandidate` (a rejected candidate, read-only).
import * as vscode from 'vscode';
import { ApiKeyStore } from './apiKey';
import { CandidateParams, Candidates } from './candidates';
import { formatCost } from './format';
import { showMessage } from './messages';
import { MetricsSummary, metricsMarkdown } from './metrics';
import { Server } from './server';
import { TaskProgress, TaskStarted } from './taskProgress';
import { MarkdownViews } from './views';

/** The server commands that start a task: their progress is this editor's (a notification with Cancel). */
export const TASK_COMMANDS = new Set(['ohLsp.generateTests', 'ohLsp.documentModule', 'ohLsp.refactor', 'ohLsp.retryTask']);

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

/** The server's error text (a JSON-RPC error's message says what was wrong and what the command takes). */
function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Runs `action`; a failure becomes an error message instead of a rejected command. */
async function reporting<T>(what: string, action: () => Promise<T>): Promise<T | undefined> {
  try {
    return await action();
  } catch (error) {
    void showMessage('error', `oh-lsp: ${what} failed: ${messageOf(error)}`);
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
  void showMessage('warning', 'oh-lsp: open a Python file of the workspace first.');
  return undefined;
}

export interface CommandParts {
  server: Server;
  apiKeys: ApiKeyStore;
  progress: TaskProgress;
  views: MarkdownViews;
  candidates: Candidates;
}

export function registerCommands(context: vscode.ExtensionContext,
                                 { server, apiKeys, progress, views, candidates }: CommandParts): void {
  // a code action's command (run by VS Code through the language client) is this editor's task too
  server.commandMiddleware = (command, args, next) => (TASK_COMMANDS.has(command)
    ? progress.run(() => next(command, args) as Promise<TaskStarted | undefined>) : next(command, args));

  const startTask = (command: string, what: string) => async (): Promise<TaskStarted | undefined> => {
    const editor = pythonEditor();
    if (!editor) {
      return undefined;
    }
    const started = await reporting(what, () => progress.run(() => server.execute<TaskStarted>(command,
      { uri: editor.document.uri.toString() })));
    if (started?.duplicate) {
      void showMessage('info', `oh-lsp: the same task is already queued (${started.taskId.slice(0, 8)}).`);
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
      void showMessage('info', 'oh-lsp: no task is running or queued.');
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
      void showMessage('info', answer.cancelled
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
    await views.show('oh-lsp metrics', text);
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
    void showMessage('info', picked.name
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
    void showMessage('info', 'oh-lsp: the API key is stored in the secret storage.');
    return true;
  };

  const refactorPrompt = async (args?: { uri?: string; symbol?: unknown }): Promise<TaskStarted | undefined> => {
    if (!args?.uri || args.symbol === undefined) {
      void showMessage('warning', 'oh-lsp: use the "Refactor …" code action on a function or class.');
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
    return reporting('refactoring', () => progress.run(() => server.execute<TaskStarted>('ohLsp.refactor',
      { uri: args.uri, symbol: args.symbol, instruction: instruction.trim() })));
  };

  // ohLsp.openCandidate {taskId, attempt?, segment?}: a client command (a failure's quick fix may carry it); the
  // palette's "Open Rejected Candidate…" asks which failed task
  const openCandidate = async (args?: CandidateParams): Promise<string | undefined> => {
    let params = args?.taskId ? args : undefined;
    if (!params) {
      const failed = await reporting('listing the failed tasks',
        () => server.execute<TaskRow[]>('ohLsp.listTasks', { status: 'failed' }));
      if (!failed) {
        return undefined;
      }
      if (failed.length === 0) {
        void showMessage('info', 'oh-lsp: no task has failed, so there is no rejected candidate to open.');
        return undefined;
      }
      const picked = await pick(failed.map((task) => ({ label: `${task.kind} ${task.target ?? ''}`.trim(),
        detail: task.taskId, task })), { title: 'oh-lsp: the rejected candidate of which task?' });
      if (!picked) {
        return undefined;
      }
      params = { taskId: picked.task.taskId };
    }
    const document = await reporting('opening the rejected candidate', () => candidates.open(params!));
    return document?.uri.toString();
  };

  context.subscriptions.push(
    vscode.commands.registerCommand('oh-lsp.generateTests', startTask('ohLsp.generateTests', 'generating tests')),
    vscode.commands.registerCommand('oh-lsp.documentFile', startTask('ohLsp.documentModule', 'documenting')),
    vscode.commands.registerCommand('oh-lsp.cancelTask', cancelTask),
    vscode.commands.registerCommand('oh-lsp.showMetrics', showMetrics),
    vscode.commands.registerCommand('oh-lsp.selectModel', selectModel),
    vscode.commands.registerCommand('oh-lsp.setApiKey', setApiKey),
    vscode.commands.registerCommand('oh-lsp.clearApiKey', async () => {
      await apiKeys.clear();
      void showMessage('info', 'oh-lsp: the API key was removed from the secret storage.');
    }),
    vscode.commands.registerCommand('oh-lsp.restartServer', () => server.restart()),
    vscode.commands.registerCommand('oh-lsp.showLogs', () => server.log.show()),
    vscode.commands.registerCommand('oh-lsp.openCandidate', () => openCandidate()),
    vscode.commands.registerCommand('ohLsp.openCandidate', openCandidate),
    vscode.commands.registerCommand('ohLsp.refactorPrompt', refactorPrompt),
  );
}
