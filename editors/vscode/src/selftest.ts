// The real-editor test's eyes and hands inside VS Code. It runs only when OH_LSP_VSCODE_SELFTEST names its input
// file (tests/editors/test_vscode.py writes it): it drives the extension as a user would, through VS Code's own
// commands (code actions, the palette commands, the quick pick, the refactor preview's Apply, a notification's
// button), and writes down what it saw as JSON. The pytest side makes the assertions.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import { ApiKeyStore } from './apiKey';
import { onDidShowPick } from './commands';
import { ShownMessage, onDidShowMessage } from './messages';
import { Outcomes, ShownOutcome } from './outcomes';
import { EditRecord, EditReview } from './review';
import { Server } from './server';
import { StatusBar } from './statusBar';
import { ProgressRecord, TaskProgress } from './taskProgress';

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
  pythonWithoutOhLsp: string; // an interpreter that has no oh-lsp installed
  oldPython: string; // an interpreter older than 3.11 ('' when the machine has none)
}

/** What a flow can use: the extension's parts, where files are, and a notebook for what it saw. */
export interface SelfTestParts {
  server: Server;
  statusBar: StatusBar;
  apiKeys: ApiKeyStore;
  progress: TaskProgress;
  edits: EditReview;
  outcomes: Outcomes;
}

interface Context extends SelfTestParts {
  input: SelfTestInput;
  uri: (relative: string) => vscode.Uri;
  r: Record<string, unknown>;
  step: (name: string) => void;
  messages: ShownMessage[];
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

/** Runs a part of the flow whose failure is written down (and checked by its own test) instead of stopping the
 * flow. */
async function optional(r: Record<string, unknown>, name: string, part: () => Promise<void>): Promise<void> {
  try {
    await part();
  } catch (error) {
    (r.optionalErrors as Record<string, string>)[name] = error instanceof Error ? error.message : String(error);
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
    related: (d.relatedInformation ?? []).map((info) => info.location.uri.toString()),
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

/** Clicks the first button of the newest notification, as the keyboard's "Accept Primary Action" does. */
async function clickPrimary(): Promise<void> {
  await vscode.commands.executeCommand('notification.acceptPrimaryAction');
}

export async function runSelfTest(inputFile: string, parts: SelfTestParts): Promise<void> {
  const input = JSON.parse(fs.readFileSync(inputFile, 'utf8')) as SelfTestInput;
  const started = Date.now();
  const r: Record<string, unknown> = { steps: [] as string[], optionalErrors: {} };
  const step = (name: string) => (r.steps as string[]).push(`${((Date.now() - started) / 1000).toFixed(1)}s ${name}`);
  const texts: string[] = [parts.statusBar.text];
  parts.statusBar.onDidChangeText((text) => texts.push(text));
  const messages: ShownMessage[] = [];
  onDidShowMessage((message) => messages.push(message));
  try {
    const folder = vscode.workspace.workspaceFolders![0].uri.fsPath;
    const uri = (relative: string) => vscode.Uri.file(path.join(folder, relative));
    r.isTrusted = vscode.workspace.isTrusted;
    const context = { ...parts, input, uri, r, step, messages };
    await (input.scenario === 'untrusted' ? untrusted(context) : trusted(context));
  } catch (error) {
    r.error = error instanceof Error ? `${error.message}\n${error.stack}` : String(error);
  }
  r.statusTexts = texts;
  r.messages = messages;
  r.progressRecords = parts.progress.records;
  r.seconds = (Date.now() - started) / 1000;
  fs.writeFileSync(input.result, JSON.stringify(r, null, 1));
}

/** The next end-of-task message of task `taskId`: when it is shown, or (`picked`) once it was answered. */
function outcomeOf(outcomes: Outcomes, taskId: string, picked = false): Promise<ShownOutcome> {
  return new Promise((resolve) => {
    const listener = (picked ? outcomes.onDidPick : outcomes.onDidShow)((shown) => {
      if (shown.taskId === taskId) {
        listener.dispose();
        resolve(shown);
      }
    });
  });
}

/** The whole flow in a trusted workspace that has no oh-lsp setting: the model endpoint and model come from the
 * environment, the key from the secret storage. */
async function trusted(c: Context): Promise<void> {
  const { input, server, statusBar, apiKeys, progress, edits, outcomes, uri, r, step, messages } = c;
  let statuses = 0;
  server.onStatus(() => statuses++);
  r.settingsAtStart = vscode.workspace.getConfiguration('ohLsp').inspect('server.pythonPath');
  r.serverStarted = await server.ready();
  r.serverCommand = server.commandLine;
  r.messagesAtStart = [...messages];
  step('server started');
  r.statusBefore = await until('the first ohLsp/status', () => server.lastStatus && statusBar.text, 30);
  r.statusErrorBefore = statusBar.isError;
  r.tooltipBefore = (statusBar.tooltip);

  // the trace on (a workspace setting), then the key into the secret storage (as "Set API Key…" does) and a
  // restart: the key reaches the new server, and never the trace
  const settings = vscode.workspace.getConfiguration('ohLsp');
  await settings.update('trace.server', 'messages', vscode.ConfigurationTarget.Workspace);
  await apiKeys.set(input.apiKey);
  await vscode.commands.executeCommand('oh-lsp.restartServer');
  r.restarted = await server.ready();
  step('trace on, key stored, server restarted');

  // 1. the code action "Generate tests for pkg.calc": a notification while it runs; the edit shown in the refactor
  // preview; accepted; the new file saved; a message with "Open tests"
  const passing = await vscode.workspace.openTextDocument(uri(input.passing));
  await vscode.window.showTextDocument(passing);
  await until('the server to run', () => server.running, 30);
  await vscode.commands.executeCommand('notifications.clearAll');
  const actions = await vscode.commands.executeCommand<vscode.CodeAction[]>(
    'vscode.executeCodeActionProvider', passing.uri, new vscode.Range(4, 4, 4, 4));
  r.codeActions = actions.map((a) => ({ title: a.title, kind: a.kind?.value, command: a.command?.command }));
  step('code actions listed');
  const action = actions.find((a) => a.kind?.value === 'source.ohLsp.generateTests');
  if (!action?.command) {
    throw new Error('no "Generate tests" code action');
  }
  const editsBefore = edits.records.length;
  r.commandResult = await vscode.commands.executeCommand(action.command.command, ...(action.command.arguments ?? []));
  const taskId = (r.commandResult as { taskId: string }).taskId;
  const ended = outcomeOf(outcomes, taskId);
  const answered = outcomeOf(outcomes, taskId, true);
  step('code action command ran');
  const generatedPath = uri(input.generated).fsPath;
  const edit = await until('the edit of the generated tests', () => edits.records.slice(editsBefore)
    .find((e) => e.created.some((u) => vscode.Uri.parse(u).fsPath === generatedPath)), 120);
  await sleep(1500); // the preview is up; the edit must wait for it
  r.editPendingWhileReviewed = edit.applied === undefined;
  r.onDiskWhileReviewed = fs.existsSync(generatedPath);
  // VS Code's Refactor Preview lists the files with their changes unticked (they need confirmation): tick each
  // file as a keyboard user does (the tree has the focus), then Apply
  let applyTries = 0;
  for (const command of ['list.collapseAll', 'list.focusFirst']) {
    await vscode.commands.executeCommand(command);
  }
  for (let file = 0; file < edit.files.length; file++) {
    await vscode.commands.executeCommand('refactorPreview.toggleCheckedState');
    await vscode.commands.executeCommand('list.focusDown');
  }
  await until('the reviewed edit to be applied', async () => {
    if (edit.applied === undefined && applyTries < 3) {
      applyTries++;
      await vscode.commands.executeCommand('refactorPreview.apply').then(undefined, () => undefined);
    }
    return edit.applied !== undefined ? true : undefined;
  }, 60);
  r.applyTries = applyTries;
  await until('the created file to be saved', () => (edit.saved.length > 0 || edit.problems.length > 0 ? true : undefined), 30);
  r.edit = { ...edit } satisfies EditRecord;
  r.generatedOnDisk = fs.existsSync(generatedPath) ? fs.readFileSync(generatedPath, 'utf8') : null;
  r.generatedDirty = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === generatedPath)?.isDirty ?? null;
  step('edit reviewed, applied and saved');
  const endMessage = await Promise.race([ended, sleep(60000).then(() => undefined)]);
  r.endShown = messages.find((m) => endMessage && m.text === endMessage.text) ?? null;
  r.progressPassing = progress.records.filter((p) => p.taskId === taskId || p.token === (r.commandResult as { progressToken: string }).progressToken);
  r.statusAfterPassing = await until('a status counting the completed task',
    () => (server.lastStatus?.completed ?? 0) >= 1 && statusBar.text, 30);
  r.tooltipAfterPassing = statusBar.tooltip;
  await optional(r, 'openTests', async () => {
    if (!r.endShown || !(r.endShown as ShownMessage).actions.includes('Open tests')) {
      throw new Error(`the end message has no "Open tests" button: ${JSON.stringify(r.endShown)}`);
    }
    await clickPrimary();
    const picked = await Promise.race([answered, sleep(10000).then(() => undefined)]);
    r.endPicked = picked?.picked ?? null;
    r.activeAfterOpenTests = (await until('the test module in the editor', () => (
      vscode.window.activeTextEditor?.document.uri.fsPath === generatedPath
        ? vscode.window.activeTextEditor.document.uri.fsPath : undefined), 10));
  });
  step('end message');

  // 2. the palette command on a module whose tests fail: diagnostics, a quick fix, the rejected candidate
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
  await optional(r, 'candidate', async () => {
    // the quick fix "Open the rejected candidate" carries the client command ohLsp.openCandidate {taskId, attempt}
    const fix = fixes.find((a) => a.title === 'Open the rejected candidate');
    if (!fix?.command) {
      throw new Error(`no "Open the rejected candidate" quick fix: ${JSON.stringify(r.quickFixes)}`);
    }
    r.candidateCommand = { command: fix.command.command, arguments: fix.command.arguments };
    const opened = await vscode.commands.executeCommand<string | undefined>(fix.command.command,
      ...(fix.command.arguments ?? []));
    if (!opened) {
      throw new Error(`no candidate document opened: ${JSON.stringify(messages.slice(-2))}`);
    }
    const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === opened)!;
    r.candidate = { uri: opened, text: document.getText(), languageId: document.languageId, scheme: document.uri.scheme };
  });
  step('candidate');

  r.metricsText = await vscode.commands.executeCommand('oh-lsp.showMetrics');
  step('metrics shown');
  const attempts: number[] = [];
  r.pickAttempts = attempts;
  r.selectedModel = await pickInQuickPick<string | null>('oh-lsp.selectModel', input.modelPosition,
    (name) => name === input.modelToSelect, attempts);
  step('model selected');

  // 3. a task whose answer is slow: cancelled with the Cancel button of its notification
  await vscode.commands.executeCommand('notifications.clearAll');
  const slow = await vscode.workspace.openTextDocument(uri(input.slow));
  await vscode.window.showTextDocument(slow);
  r.slowResult = await vscode.commands.executeCommand('oh-lsp.generateTests');
  const slowToken = (r.slowResult as { progressToken: string }).progressToken;
  r.statusWhileRunning = await until('the slow task to run',
    () => (server.lastStatus?.running ?? 0) >= 1 && statusBar.text, 30);
  await until('the slow task to wait for its answer', async () => {
    const asked = await (await fetch(`${input.modelServer}/__requests`)).json() as { body: unknown }[];
    return asked.some((request) => JSON.stringify(request.body).includes(`module ${input.slowModule}`));
  }, 30);
  await until('the slow task\'s notification', () => progress.records.find((p) => p.token === slowToken && p.title), 10);
  await sleep(500);
  await clickPrimary();
  const cancelled = await until('the Cancel of the notification to reach the server',
    () => progress.records.find((p) => p.token === slowToken && p.cancelAnswer !== undefined), 30);
  r.slowProgress = progress.records.filter((p) => p.token === slowToken);
  r.cancelAnswer = cancelled.cancelAnswer;
  r.statusAfterCancel = await until('a status counting the cancelled task',
    () => (server.lastStatus?.cancelled ?? 0) >= 1 && server.lastStatus?.running === 0 && statusBar.text, 30);
  step('slow task cancelled from its notification');
  r.lastStatus = server.lastStatus;

  // 4. a setting changed in the workspace reaches the server at once: a daily budget that is already spent
  await settings.update('budgetPerDayUsd', 0.001, vscode.ConfigurationTarget.Workspace);
  r.statusBudgetSpent = await until('a status with the daily budget spent',
    () => server.lastStatus?.budgetLeftToday === 0 && statusBar.text, 30);
  r.statusErrorBudgetSpent = statusBar.isError;
  await settings.update('budgetPerDayUsd', undefined, vscode.ConfigurationTarget.Workspace);
  r.statusBudgetUnset = await until('a status without a daily budget',
    () => server.lastStatus?.budgetLeftToday === null && statusBar.text, 30);
  r.statusErrorBudgetUnset = statusBar.isError;
  step('budget setting applied and reset');

  // 5. a task this editor did not start in this session (the server restarted under it: it goes back to the queue
  // and the new server resumes it) shows in the status bar, not as a notification
  await vscode.window.showTextDocument(slow);
  const resumed = await vscode.commands.executeCommand<{ taskId: string }>('oh-lsp.generateTests');
  await until('the task to run', () => (server.lastStatus?.running ?? 0) >= 1, 30);
  await vscode.commands.executeCommand('oh-lsp.restartServer');
  r.resumedProgress = await until('the resumed task\'s progress', () => progress.records.find((p) => p.location === 'statusBar'
    && p.title === 'oh-lsp: Generate tests for pkg/slow.py' && p.messages.some((m) => m.startsWith('resumed'))), 60);
  r.resumedCancel = await server.execute('ohLsp.cancelTask', { taskId: resumed.taskId });
  await until('the resumed task to end', () => (server.lastStatus?.running === 0 ? true : undefined), 30);
  step('a resumed task in the status bar');

  // 6. bad input: each gives one message with what to do, and the server runs again once it is fixed
  r.badInput = {};
  const bad = r.badInput as Record<string, unknown>;
  const failure = async (name: string, key: string, value: unknown, prepare?: [string, unknown]): Promise<void> => {
    if (prepare) { // a setting that goes with this one: its own restart done before this one is watched
      await settings.update(prepare[0], prepare[1], vscode.ConfigurationTarget.Workspace);
      await until(`the restart after ${prepare[0]}`, () => (server.running || server.lastFailure ? true : undefined), 60);
      await sleep(1000);
    }
    const before = messages.length;
    await settings.update(key, value, vscode.ConfigurationTarget.Workspace);
    const text = await until(`the failure message (${name})`, () => server.lastFailure, 60);
    await sleep(1000); // nothing else follows
    bad[name] = { failure: text, statusText: statusBar.text, statusError: statusBar.isError,
      messages: messages.slice(before) };
    await settings.update(key, undefined, vscode.ConfigurationTarget.Workspace);
    if (prepare) {
      await settings.update(prepare[0], undefined, vscode.ConfigurationTarget.Workspace);
    }
    await until(`the server to run again after ${name}`, () => server.running && !server.lastFailure, 60);
  };
  await failure('missingPython', 'server.pythonPath', path.join(path.dirname(input.result), 'no-such-python3'));
  if (input.oldPython) {
    await failure('oldPython', 'server.pythonPath', input.oldPython);
  }
  await failure('brokenCommand', 'server.command', [path.join(path.dirname(input.result), 'no-such-oh-lsp'), 'serve']);
  await failure('notInstalled', 'server.pythonPath', input.pythonWithoutOhLsp,
    ['server.importStrategy', 'fromEnvironment']);
  step('bad settings explained');

  // a server that crashes while a task runs: restarted 3 times in 3 minutes, then not again
  await vscode.window.showTextDocument(slow);
  r.crashTask = await vscode.commands.executeCommand('oh-lsp.generateTests');
  await until('the task to run', () => (server.lastStatus?.running ?? 0) >= 1, 30);
  const before = messages.length;
  const pids: number[] = [];
  for (let crash = 1; crash <= 4; crash++) {
    const pid = await until('the server to run', () => (server.running ? server.pid : undefined), 60);
    pids.push(pid);
    process.kill(pid, 'SIGKILL');
    await until(`crash ${crash} to be told`, () => (messages.length - before >= crash ? true : undefined), 30);
  }
  await sleep(3000); // no fifth start
  bad.crash = { pids, messages: messages.slice(before), running: server.running, failure: server.lastFailure,
    statusText: statusBar.text };
  await vscode.commands.executeCommand('oh-lsp.restartServer');
  r.recovered = await until('the server to run again', () => server.running && !server.lastFailure, 60);
  const statusesBefore = statuses;
  r.modelAfterRestart = await until('a status of the new server naming the selected model', () => (
    statuses > statusesBefore && server.lastStatus?.modelSelected === r.selectedModel
      ? server.lastStatus?.modelSelected : undefined), 30);
  for (const task of await server.execute<{ taskId: string }[]>('ohLsp.listTasks', { status: 'running' })) {
    await server.execute('ohLsp.cancelTask', { taskId: task.taskId });
  }
  step('crashes handled, server running again');
}

/** A restricted (untrusted) workspace: the extension still runs, the workspace's own server command and endpoint
 * are ignored, and the server, told the workspace is not trusted, does not run the generated tests. */
async function untrusted({ input, server, apiKeys, uri, r, step }: Context): Promise<void> {
  r.serverStarted = await server.ready();
  r.serverCommand = server.commandLine;
  await apiKeys.set(input.apiKey);
  const passing = await vscode.workspace.openTextDocument(uri(input.passing));
  await vscode.window.showTextDocument(passing);
  r.paletteResult = await vscode.commands.executeCommand('oh-lsp.generateTests');
  await ohLspDiagnostics(passing.uri, r);
  step('diagnostics shown');
  r.testFileWritten = fs.existsSync(uri(input.generated).fsPath);
  r.lastStatus = server.lastStatus;
}

export type { ProgressRecord };
