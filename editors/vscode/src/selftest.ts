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
  scenario: 'trusted' | 'untrusted';
  result: string;
  apiKey: string;
  passing: string; // a module the scripted model answers with good tests
  generated: string; // where its tests go
  failing: string; // a module the scripted model answers with a failing test
  slow: string; // a module whose answer takes long (to cancel it)
  slowModule: string; // its dotted name
  modelServer: string; // the scripted model server's base URL (its /__requests lists what it was asked)
  modelToSelect: string; // picked in "Select Model…"
  modelPosition: number; // where it is in the quick pick (0: "Automatic")
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

/** Waits for oh-lsp's diagnostics on `uri` and writes them down. */
async function ohLspDiagnostics(uri: vscode.Uri, r: Record<string, unknown>): Promise<vscode.Diagnostic[]> {
  const diagnostics = await until(`oh-lsp diagnostics on ${uri.fsPath}`, () => {
    const found = vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'oh-lsp');
    return found.length > 0 ? found : undefined;
  }, 120);
  r.diagnostics = diagnostics.map((d) => ({
    code: typeof d.code === 'object' ? d.code.value : d.code, message: d.message,
    severity: vscode.DiagnosticSeverity[d.severity], line: d.range.start.line,
  }));
  return diagnostics;
}

/** Runs a command that shows a quick pick, moves `down` items down and accepts, as a person with the keyboard would.
 * The quick input in the browser may still be settling its focus when the keys arrive: an answer that is not the
 * `expected` one is tried again (at most 3 times, waiting longer each time); `attempts` counts the tries. */
async function pickInQuickPick<T>(command: string, down: number, expected: (answer: T) => boolean,
                                  attempts: number[]): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    attempts.push(attempt);
    const shown = new Promise<void>((resolve) => {
      const listener = onDidShowPick(() => { listener.dispose(); resolve(); });
    });
    const answer = Promise.resolve(vscode.commands.executeCommand<T>(command));
    await Promise.race([shown, answer, sleep(30000)]); // the pick's items come from a server request
    await sleep(500 * attempt);
    for (let i = 0; i < down; i++) {
      await vscode.commands.executeCommand('workbench.action.quickOpenSelectNext');
    }
    await vscode.commands.executeCommand('workbench.action.acceptSelectedQuickOpenItem');
    const settled = await Promise.race([answer.then((value) => ({ value })), sleep(5000).then(() => undefined)]);
    if (settled && expected(settled.value)) {
      return settled.value;
    }
    if (!settled) {
      await vscode.commands.executeCommand('workbench.action.closeQuickOpen');
      await answer;
    }
    if (attempt === 3) {
      throw new Error(`${command}: the quick pick did not give the expected answer in 3 tries`);
    }
  }
}

/** What a flow can use: the extension's parts, where files are, and a notebook for what it saw. */
interface Context {
  input: SelfTestInput;
  server: Server;
  statusBar: StatusBar;
  apiKeys: ApiKeyStore;
  uri: (relative: string) => vscode.Uri;
  r: Record<string, unknown>;
  step: (name: string) => void;
}

export async function runSelfTest(inputFile: string, server: Server, statusBar: StatusBar,
                                  apiKeys: ApiKeyStore): Promise<void> {
  const input = JSON.parse(fs.readFileSync(inputFile, 'utf8')) as SelfTestInput;
  const started = Date.now();
  const r: Record<string, unknown> = { steps: [] as string[] };
  const step = (name: string) => (r.steps as string[]).push(`${((Date.now() - started) / 1000).toFixed(1)}s ${name}`);
  const texts: string[] = [statusBar.text];
  statusBar.onDidChangeText((text) => texts.push(text));
  try {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const uri = (relative: string) => vscode.Uri.file(path.join(folder, relative));
    r.isTrusted = vscode.workspace.isTrusted;
    const context = { input, server, statusBar, apiKeys, uri, r, step };
    await (input.scenario === 'untrusted' ? untrusted(context) : trusted(context));
  } catch (error) {
    r.error = error instanceof Error ? `${error.message}\n${error.stack}` : String(error);
  }
  r.statusTexts = texts;
  r.seconds = (Date.now() - started) / 1000;
  fs.writeFileSync(input.result, JSON.stringify(r, null, 1));
}

/** The whole flow in a trusted workspace. */
async function trusted({ input, server, statusBar, apiKeys, uri, r, step }: Context): Promise<void> {
  let statuses = 0;
  server.onStatus(() => statuses++);
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
  const diagnostics = await ohLspDiagnostics(failing.uri, r);
  step('diagnostics shown');
  const fixes = await vscode.commands.executeCommand<vscode.CodeAction[]>(
    'vscode.executeCodeActionProvider', failing.uri, diagnostics[0].range, vscode.CodeActionKind.QuickFix.value);
  r.quickFixes = fixes.map((a) => a.title);
  r.statusAfterFailing = await until('a status counting the failed task',
    () => (server.lastStatus?.failed ?? 0) >= 1 && statusBar.text, 30);

  r.metricsText = await vscode.commands.executeCommand('oh-lsp.showMetrics');
  step('metrics shown');
  const attempts: number[] = [];
  r.pickAttempts = attempts;
  r.selectedModel = await pickInQuickPick<string | null>('oh-lsp.selectModel', input.modelPosition,
    (name) => name === input.modelToSelect, attempts);
  step('model selected');

  // a task whose answer is slow: cancel it through the palette's pick
  const slow = await vscode.workspace.openTextDocument(uri(input.slow));
  await vscode.window.showTextDocument(slow);
  r.slowResult = await vscode.commands.executeCommand('oh-lsp.generateTests');
  r.statusWhileRunning = await until('the slow task to run',
    () => (server.lastStatus?.running ?? 0) >= 1 && statusBar.text, 30);
  await until('the slow task to wait for its answer', async () => {
    const asked = await (await fetch(`${input.modelServer}/__requests`)).json() as { body: unknown }[];
    return asked.some((request) => JSON.stringify(request.body).includes(`module ${input.slowModule}`));
  }, 30);
  r.cancelAnswer = await pickInQuickPick<boolean>('oh-lsp.cancelTask', 0, (cancelled) => cancelled === true, attempts);
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
}

/** A restricted (untrusted) workspace: the extension still runs, the workspace's own server command and endpoint
 * are ignored, and the server, told the workspace is not trusted, does not run the generated tests. */
async function untrusted({ input, server, apiKeys, uri, r, step }: Context): Promise<void> {
  r.serverStarted = await server.ready();
  await apiKeys.set(input.apiKey);
  const passing = await vscode.workspace.openTextDocument(uri(input.passing));
  await vscode.window.showTextDocument(passing);
  r.paletteResult = await vscode.commands.executeCommand('oh-lsp.generateTests');
  await ohLspDiagnostics(passing.uri, r);
  step('diagnostics shown');
  r.testFileWritten = fs.existsSync(uri(input.generated).fsPath);
  r.lastStatus = server.lastStatus;
}
