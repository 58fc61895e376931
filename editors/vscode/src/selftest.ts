// The real-editor test's eyes and hands inside VS Code. It runs only when OH_LSP_VSCODE_SELFTEST names its input
// file (tests/editors/test_vscode.py writes it): it drives the extension as a user would, through VS Code's own
// commands (code actions, the palette commands, the quick pick), and writes down what it saw as JSON. The pytest
// side makes the assertions.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { ApiKeyStore } from './apiKey';
import { onDidShowPick } from './commands';
import { Server } from './server';
import { StatusBar } from './statusBar';

interface SelfTestInput {
  result: string;
  apiKey: string;
  passing: string; // a module the scripted model answers with good tests
  generated: string; // where its tests go
  failing: string; // a module the scripted model answers with a failing test
  slow: string; // a module whose answer takes long (to cancel it)
  modelPosition: number; // where the model to select is in the quick pick (0: "Automatic")
  pythonWithoutOhLsp: string; // an interpreter that cannot run the server
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, check: () => T | undefined | Promise<T | undefined>, seconds: number): Promise<T> {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== null && (value as unknown) !== false) {
      return value;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${seconds} s waiting for ${what}`);
    }
    await sleep(200);
  }
}

/** Runs a command that shows a quick pick, moves `down` items down and accepts, as a person with the keyboard. */
async function pickInQuickPick<T>(command: string, down: number): Promise<T> {
  const shown = new Promise<void>((resolve) => {
    const listener = onDidShowPick(() => { listener.dispose(); resolve(); });
  });
  const answer = vscode.commands.executeCommand<T>(command);
  await Promise.race([shown, answer, sleep(30000)]); // the pick's items come from a server request
  await sleep(300);
  for (let i = 0; i < down; i++) {
    await vscode.commands.executeCommand('workbench.action.quickOpenSelectNext');
  }
  await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
  return answer;
}

export async function runSelfTest(inputFile: string, server: Server, statusBar: StatusBar,
                                  apiKeys: ApiKeyStore): Promise<void> {
  const input = JSON.parse(fs.readFileSync(inputFile, 'utf8')) as SelfTestInput;
  const started = Date.now();
  const r: Record<string, unknown> = { steps: [] as string[] };
  const step = (name: string) => (r.steps as string[]).push(`${((Date.now() - started) / 1000).toFixed(1)}s ${name}`);
  const texts: string[] = [statusBar.text];
  statusBar.onDidChangeText((text) => texts.push(text));
  let statuses = 0;
  const statusModels: (string | null)[] = [];
  server.onStatus((status) => { statuses++; statusModels.push(status.model); });
  try {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const uri = (relative: string) => vscode.Uri.file(path.join(folder, relative));
    r.serverStarted = await server.ready();
    step('server started');
    r.statusBefore = await until('the first ohLsp/status', () => server.lastStatus && statusBar.text, 30);
    r.statusErrorBefore = statusBar.isError;

    // the key goes into the secret storage (as "Set API Key…" does), then the server restarts and gets it again
    await apiKeys.set(input.apiKey);
    await vscode.commands.executeCommand('oh-lsp.restartServer');
    r.restarted = await server.ready();
    step('key stored, server restarted');

    const passing = await vscode.workspace.openTextDocument(uri(input.passing));
    await vscode.window.showTextDocument(passing);
    await until('the server to run', () => server.running, 30);
    const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
      'vscode.executeCodeActionProvider', passing.uri, new vscode.Range(4, 4, 4, 4));
    r.codeActions = actions.map((a) => ({ title: a.title, kind: a.kind?.value, command: a.command?.command }));
    step('code actions listed');
    const action = actions.find((a) => a.kind?.value === 'source.ohLsp.generateTests');
    if (!action?.command) {
      throw new Error('no "Generate tests" code action');
    }
    r.commandResult = await vscode.commands.executeCommand(action.command.command, ...(action.command.arguments ?? []));
    step('code action command ran');
    const generatedPath = uri(input.generated).fsPath;
    const generated = await until('the generated test file', () => vscode.workspace.textDocuments.find(
      (d) => d.uri.fsPath === generatedPath && d.getText().length > 0), 120);
    r.generatedText = generated.getText();
    r.generatedSaved = await generated.save();
    r.generatedOnDisk = fs.readFileSync(generatedPath, 'utf8');
    step('generated test file appeared');
    r.statusAfterPassing = await until('a status counting the completed task',
      () => (server.lastStatus?.completed ?? 0) >= 1 && statusBar.text, 30);

    // the palette command on the active editor, for a module whose tests fail: diagnostics and a quick fix
    const failing = await vscode.workspace.openTextDocument(uri(input.failing));
    await vscode.window.showTextDocument(failing);
    r.paletteResult = await vscode.commands.executeCommand('oh-lsp.generateTests');
    step('palette command ran');
    const diagnostics = await until('oh-lsp diagnostics on the failing module', () => {
      const found = vscode.languages.getDiagnostics(failing.uri).filter((d) => d.source === 'oh-lsp');
      return found.length > 0 ? found : undefined;
    }, 120);
    r.diagnostics = diagnostics.map((d) => ({
      code: typeof d.code === 'object' ? d.code.value : d.code, message: d.message,
      severity: vscode.DiagnosticSeverity[d.severity], line: d.range.start.line,
    }));
    step('diagnostics shown');
    const fixes = await vscode.commands.executeCommand<vscode.CodeAction[]>(
      'vscode.executeCodeActionProvider', failing.uri, diagnostics[0].range, vscode.CodeActionKind.QuickFix.value);
    r.quickFixes = fixes.map((a) => a.title);
    r.statusAfterFailing = await until('a status counting the failed task',
      () => (server.lastStatus?.failed ?? 0) >= 1 && statusBar.text, 30);

    r.metricsText = await vscode.commands.executeCommand('oh-lsp.showMetrics');
    step('metrics shown');
    r.selectedModel = await pickInQuickPick('oh-lsp.selectModel', input.modelPosition);
    step('model selected');

    // a task whose answer is slow: cancel it through the palette's pick
    const slow = await vscode.workspace.openTextDocument(uri(input.slow));
    await vscode.window.showTextDocument(slow);
    r.slowResult = await vscode.commands.executeCommand('oh-lsp.generateTests');
    r.statusWhileRunning = await until('the slow task to run',
      () => (server.lastStatus?.running ?? 0) >= 1 && statusBar.text, 30);
    r.cancelAnswer = await pickInQuickPick('oh-lsp.cancelTask', 0);
    r.statusAfterCancel = await until('a status counting the cancelled task',
      () => (server.lastStatus?.cancelled ?? 0) >= 1 && server.lastStatus?.running === 0 && statusBar.text, 30);
    step('slow task cancelled');
    r.lastStatus = server.lastStatus;

    // a setting changed in the workspace reaches the server at once: a daily budget that is already spent
    const settings = vscode.workspace.getConfiguration('ohLsp');
    await settings.update('budgetPerDayUsd', 0.001, vscode.ConfigurationTarget.Workspace);
    r.statusBudgetSpent = await until('a status with the daily budget spent',
      () => server.lastStatus?.budgetLeftToday === 0 && statusBar.text, 30);
    r.statusErrorBudgetSpent = statusBar.isError;
    await settings.update('budgetPerDayUsd', undefined, vscode.ConfigurationTarget.Workspace);
    r.statusBudgetUnset = await until('a status without a daily budget',
      () => server.lastStatus?.budgetLeftToday === null && statusBar.text, 30);
    r.statusErrorBudgetUnset = statusBar.isError;
    step('budget setting applied and reset');

    // an interpreter without oh-lsp: the server cannot start, and the user is told why
    const pythonPath = settings.inspect<string>('server.pythonPath')?.workspaceValue;
    await settings.update('server.pythonPath', input.pythonWithoutOhLsp, vscode.ConfigurationTarget.Workspace);
    r.failure = await until('the start failure message', () => server.lastFailure, 60);
    r.statusStopped = statusBar.text;
    r.statusErrorStopped = statusBar.isError;
    step('start failure shown');
    const statusesBefore = statuses;
    await settings.update('server.pythonPath', pythonPath, vscode.ConfigurationTarget.Workspace);
    r.recovered = await until('the server to run again', () => server.running && !server.lastFailure, 60);
    r.modelAfterRestart = await until('a status of the new server naming the selected model', () => (
      statuses > statusesBefore && server.lastStatus?.model === r.selectedModel ? server.lastStatus?.model : undefined), 30);
    step('server running again');
  } catch (error) {
    r.error = error instanceof Error ? `${error.message}\n${error.stack}` : String(error);
  }
  r.statusTexts = texts;
  r.statusModels = statusModels;
  r.seconds = (Date.now() - started) / 1000;
  fs.writeFileSync(input.result, JSON.stringify(r, null, 1));
}
