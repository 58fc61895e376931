// oh-lsp for VS Code: starts `oh-lsp serve` (the one bundled in the extension, with the user's Python), passes the
// settings, the key and workspace trust on, shows this editor's tasks as notifications, reviews and saves the edits
// they bring, and adds the palette commands and the status bar item.
import * as vscode from 'vscode';
import { ApiKeyStore } from './apiKey';
import { Candidates } from './candidates';
import { registerCommands } from './commands';
import { Outcomes } from './outcomes';
import { onInterpreterChange } from './python';
import { EditReview } from './review';
import { SECTION, Server } from './server';
import { StatusBar } from './statusBar';
import { TaskProgress } from './taskProgress';
import { MarkdownViews } from './views';

/** Set to a JSON file to run the self-test of the real-editor suite (tests/editors/test_vscode.py). */
export const SELFTEST_VARIABLE = 'OH_LSP_VSCODE_SELFTEST';

let server: Server | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('oh-lsp', { log: true });
  const apiKeys = new ApiKeyStore(context.secrets);
  server = new Server(context, log, apiKeys);
  const running = server;
  const statusBar = new StatusBar(running);
  const views = new MarkdownViews();
  const candidates = new Candidates(running);
  const outcomes = new Outcomes(views, candidates);
  const progress = new TaskProgress(running, outcomes);
  const edits = new EditReview(log);
  running.editMiddleware = (params, next) => edits.handle(params, next);
  context.subscriptions.push(
    log,
    statusBar,
    views,
    candidates,
    outcomes,
    progress,
    edits,
    running.onTaskEnded((outcome) => outcomes.received(outcome)),
    vscode.workspace.onDidChangeConfiguration((event) => void running.configurationChanged(event)),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void running.trustGranted()),
  );
  registerCommands(context, { server: running, apiKeys, progress, views, candidates });

  void running.start();
  // A new interpreter selected in the Python extension is the server's interpreter when none is configured.
  void onInterpreterChange(() => {
    const config = vscode.workspace.getConfiguration(SECTION);
    if ((config.get<string[]>('server.command') ?? []).length === 0 && !config.get<string>('server.pythonPath')) {
      log.info('the Python extension selected another interpreter: restarting the server with it');
      void running.restart();
    }
  }).then((listener) => listener && context.subscriptions.push(listener));

  const selftest = process.env[SELFTEST_VARIABLE];
  if (selftest) {
    void import('./selftest').then(({ runSelfTest }) => runSelfTest(selftest,
      { server: running, statusBar, apiKeys, progress, edits, outcomes }));
  }
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server?.dispose();
  server = undefined;
}
