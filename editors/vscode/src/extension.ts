// oh-lsp for VS Code: starts `oh-lsp serve`, passes the settings, the key and workspace trust on, and adds the
// palette commands and the status bar item.
import * as vscode from 'vscode';
import { ApiKeyStore } from './apiKey';
import { registerCommands } from './commands';
import { onInterpreterChange } from './python';
import { SECTION, Server } from './server';
import { StatusBar } from './statusBar';

/** Set to a JSON file to run the self-test of the real-editor suite (tests/editors/test_vscode.py). */
export const SELFTEST_VARIABLE = 'OH_LSP_VSCODE_SELFTEST';

let server: Server | undefined;

export function activate(context: vscode.ExtensionContext): void {
  const log = vscode.window.createOutputChannel('oh-lsp', { log: true });
  const apiKeys = new ApiKeyStore(context.secrets);
  server = new Server(context, log, apiKeys);
  const running = server;
  const statusBar = new StatusBar(running);
  context.subscriptions.push(
    log,
    statusBar,
    vscode.workspace.onDidChangeConfiguration((event) => void running.configurationChanged(event)),
    vscode.workspace.onDidGrantWorkspaceTrust(() => void running.trustGranted()),
  );
  registerCommands(context, running, apiKeys);

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
    void import('./selftest').then(({ runSelfTest }) => runSelfTest(selftest, running, statusBar, apiKeys));
  }
}

export async function deactivate(): Promise<void> {
  await server?.stop();
  server?.dispose();
  server = undefined;
}
