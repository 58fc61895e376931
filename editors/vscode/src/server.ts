// Starting, restarting and talking to `oh-lsp serve`: the interpreter check, the language client, the settings and
// the key it is given, and what the user sees when it cannot start or stops.
import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';
import {
  ApplyWorkspaceEditParams, ApplyWorkspaceEditResult, CloseAction, CloseHandlerResult,
  DidChangeConfigurationNotification, ErrorAction, ExecuteCommandRequest, LanguageClient, LanguageClientOptions,
  ProgressToken, State, Trace,
} from 'vscode-languageclient/node';
import { ApiKeyStore } from './apiKey';
import { checkPython } from './interpreter';
import { reportShown, showMessage } from './messages';
import { TaskOutcome } from './outcome';
import { TASK_ENDED_NOTIFICATION } from './outcomes';
import { hasPythonExtension, selectedInterpreter } from './python';
import {
  ImportStrategy, ServerCommand, commandLine, lastErrorLine, pythonProblem, resolveServerCommand,
  startFailureMessage,
} from './serverCommand';
import {
  SECTION, SERVER_SETTINGS, ServerSettings, USER_ONLY_SETTINGS, buildSettings, initializationOptions,
} from './settings';
import { OhLspStatus } from './status';
import { TraceChannel } from './trace';

export { SECTION };
export const STATUS_NOTIFICATION = 'ohLsp/status';
const SESSION_MODEL = 'ohLsp.sessionModel'; // workspaceState: the model chosen with "Select Model" (null: automatic)
const MAX_RESTARTS = 3; // restarts after a crash within RESTART_WINDOW_MS before giving up
const RESTART_WINDOW_MS = 3 * 60 * 1000;

/** The language client, with the library's own start-failure pop-ups turned off while this extension says what
 * went wrong itself; the pop-ups it still shows are reported (messages.ts). */
class OhLspClient extends LanguageClient {
  quiet = false;

  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    const show = this.quiet ? false : showNotification;
    if (show) {
      reportShown({ level: 'error', text: message, actions: [], source: 'languageclient' });
    }
    // while this extension starts the server it says what went wrong itself: the log gets the reason, not a stack
    super.error(message, this.quiet && data instanceof Error ? data.message : data, show);
  }
}

export type ServerState = { running: true } | { running: false; reason: string };

/** The `ohLsp` settings as the server takes them: what the user set explicitly, plus workspace trust. */
export function currentSettings(): ServerSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  const workspaceValue = (key: string): unknown => {
    const inspected = config.inspect(key);
    return USER_ONLY_SETTINGS.includes(key) ? undefined : inspected?.workspaceFolderValue ?? inspected?.workspaceValue;
  };
  return buildSettings(
    (key) => workspaceValue(key) ?? config.inspect(key)?.globalValue,
    vscode.workspace.isTrusted,
    (key) => workspaceValue(key) !== undefined,
  );
}

function spawnReason(error: NodeJS.ErrnoException, command: ServerCommand): string {
  if (error.code === 'ENOENT') {
    return `\`${command.command}\` was not found`;
  }
  if (error.code === 'EACCES') {
    return `\`${command.command}\` cannot be run (permission denied)`;
  }
  return error.message;
}

function exitText(exit: { code: number | null; signal: string | null } | undefined): string | undefined {
  if (!exit) {
    return undefined;
  }
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

export class Server implements vscode.Disposable {
  private client?: OhLspClient;
  private process?: ChildProcess;
  private exited?: Promise<{ code: number | null; signal: string | null }>;
  private command?: ServerCommand;
  private stderrTail = '';
  private crashes: number[] = [];
  private stopping = false;
  private startup?: Promise<boolean>;
  private readonly statusEmitter = new vscode.EventEmitter<OhLspStatus>();
  private readonly stateEmitter = new vscode.EventEmitter<ServerState>();
  private readonly outcomeEmitter = new vscode.EventEmitter<TaskOutcome>();
  private readonly disposables: vscode.Disposable[] = [this.statusEmitter, this.stateEmitter, this.outcomeEmitter];
  /** bundled/tool/launch.py: runs the bundled server, and answers `--check` about an interpreter. */
  readonly launcher: string;
  /** The bundled packages are in this build (bundled/libs/manifest.json). */
  readonly bundled: boolean;
  /** Stands in for the language client's trace channel (`ohLsp.trace.server`). */
  readonly trace: TraceChannel;
  /** The latest `ohLsp/status`, for the status bar and the self-test. */
  lastStatus?: OhLspStatus;
  /** What the user was last told about a server that did not start or stopped for good. */
  lastFailure?: string;
  /** Where `$/progress` of the server goes (taskProgress.ts); unset: the language client's status-bar progress. */
  progressMiddleware?: (token: ProgressToken, value: unknown, next: () => void) => void;
  /** Wraps the server commands VS Code runs (a code action's command): taskProgress.ts watches task-starting ones. */
  commandMiddleware?: (command: string, args: unknown[], next: (command: string, args: unknown[]) => Promise<unknown>)
    => Promise<unknown>;
  /** Who applies the server's `workspace/applyEdit` (review.ts). */
  editMiddleware?: (params: ApplyWorkspaceEditParams,
                    next: (params: ApplyWorkspaceEditParams) => Promise<ApplyWorkspaceEditResult>)
    => Promise<ApplyWorkspaceEditResult>;
  readonly onStatus = this.statusEmitter.event;
  readonly onState = this.stateEmitter.event;
  /** `ohLsp/taskEnded`. */
  readonly onTaskEnded = this.outcomeEmitter.event;

  constructor(private readonly context: vscode.ExtensionContext, readonly log: vscode.LogOutputChannel,
              private readonly apiKeys: ApiKeyStore) {
    this.launcher = context.asAbsolutePath(path.join('bundled', 'tool', 'launch.py'));
    this.bundled = fs.existsSync(context.asAbsolutePath(path.join('bundled', 'libs', 'manifest.json')));
    this.trace = new TraceChannel(log, () => vscode.workspace.getConfiguration(SECTION).get<string>('trace.server'));
    this.disposables.push(this.trace, apiKeys.onDidChange(() => void this.apiKeyChanged()));
  }

  get running(): boolean {
    return this.client?.state === State.Running;
  }

  /** The server's process id while it runs (the self-test stops it to see a crash handled). */
  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** The command the server was last started with. */
  get commandLine(): string | undefined {
    return this.command && commandLine(this.command);
  }

  /** Starts the server (once at a time); true when it runs. A failure is shown to the user, not thrown. */
  start(): Promise<boolean> {
    this.startup ??= this.startOnce().finally(() => { this.startup = undefined; });
    return this.startup;
  }

  /** Waits for a start in progress; true when the server runs. */
  async ready(): Promise<boolean> {
    return this.startup ? this.startup : this.running;
  }

  private async resolveCommand(): Promise<ServerCommand> {
    const config = vscode.workspace.getConfiguration(SECTION);
    const command = config.get<string[]>('server.command') ?? [];
    const pythonPath = config.get<string>('server.pythonPath') ?? '';
    const needsInterpreter = command.length === 0 && pythonPath.trim() === '';
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    return resolveServerCommand({
      command,
      pythonPath,
      pythonExtensionInterpreter: needsInterpreter ? await selectedInterpreter(folder) : undefined,
      importStrategy: config.get<ImportStrategy>('server.importStrategy', 'useBundled'),
      launcher: this.bundled ? this.launcher : undefined,
    });
  }

  private async startOnce(): Promise<boolean> {
    this.command = await this.resolveCommand();
    this.lastFailure = undefined;
    this.log.info(`starting the server: ${commandLine(this.command)} (${this.command.bundled
      ? 'the oh-lsp bundled in this extension' : 'oh-lsp from that environment'}; from ${this.command.source})`);
    if (this.command.python && !(await this.interpreterUsable(this.command))) {
      return false;
    }
    const client = this.client ?? this.createClient();
    client.quiet = true;
    try {
      await client.start();
    } catch (error) {
      const reason = await this.failureReason(error);
      this.log.error(`the server did not start: ${reason}`);
      this.stateEmitter.fire({ running: false, reason });
      await this.dropClient();
      void this.showFailure(startFailureMessage(this.command, reason), ['Show Logs', 'Open Settings', 'Restart']);
      return false;
    } finally {
      client.quiet = false;
    }
    return true;
  }

  /** Whether the interpreter can run the server; if not, the user is told once, with what to do. */
  private async interpreterUsable(command: ServerCommand): Promise<boolean> {
    const check = await checkPython(command, this.launcher);
    const problem = pythonProblem(command, check, hasPythonExtension());
    if (!problem) {
      if (check !== 'missing') {
        this.log.info(`Python ${check.version} at ${check.executable}`);
      }
      return true;
    }
    this.log.error(problem);
    this.stateEmitter.fire({ running: false, reason: problem });
    const actions = hasPythonExtension() ? ['Select Interpreter', 'Open Settings'] : ['Open Settings', 'Show Logs'];
    void this.showFailure(problem, actions);
    return false;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    try {
      if (this.startup) {
        await this.startup;
      }
      await this.dropClient();
    } finally {
      this.stopping = false;
    }
  }

  async restart(): Promise<boolean> {
    await this.stop();
    this.crashes = [];
    return this.start();
  }

  private createClient(): OhLspClient {
    const options: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file', language: 'python' }],
      outputChannel: this.log,
      traceOutputChannel: this.trace,
      initializationOptions: () => initializationOptions(currentSettings()),
      errorHandler: {
        error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
        closed: () => this.closed(),
      },
      middleware: {
        executeCommand: (command, args, next) => (this.commandMiddleware
          ? this.commandMiddleware(command, args, async (c, a) => next(c, a)) : next(command, args)),
        handleWorkDoneProgress: (token, params, next) => (this.progressMiddleware
          ? this.progressMiddleware(token, params, () => next(token, params)) : next(token, params)),
        workspace: {
          // The server may ask for its section: answer with the settings it takes, not VS Code's whole section.
          configuration: async (params, token, next) => {
            const answer = await next(params, token);
            if (!Array.isArray(answer)) {
              return answer;
            }
            return params.items.map((item, index) => (item.section === SECTION ? currentSettings() : answer[index]));
          },
          // (the library's `next` takes the params alone, whatever its type says)
          handleApplyEdit: (params, next) => {
            const apply = next as unknown as (p: ApplyWorkspaceEditParams) => Promise<ApplyWorkspaceEditResult>;
            return this.editMiddleware ? this.editMiddleware(params, apply) : apply(params);
          },
        },
      },
    };
    const client = new OhLspClient(SECTION, 'oh-lsp', () => this.spawnServer(), options);
    client.onNotification(STATUS_NOTIFICATION, (status: OhLspStatus) => {
      this.lastStatus = status;
      this.statusEmitter.fire(status);
    });
    client.onNotification(TASK_ENDED_NOTIFICATION, (outcome: TaskOutcome) => this.outcomeEmitter.fire(outcome));
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.stateEmitter.fire({ running: true });
        // Running is announced before `initialized` is sent; start() resolves after it (also on a crash restart)
        void client.start().then(() => this.afterStart(client), () => undefined);
      }
    });
    this.client = client;
    return client;
  }

  private async spawnServer(): Promise<ChildProcess> {
    const command = this.command ?? await this.resolveCommand();
    this.stderrTail = '';
    this.exited = undefined; // the last process's end is no reason for this one
    const child = spawn(command.command, command.args, {
      cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath,
      env: { ...process.env, PYTHONUNBUFFERED: '1' },
      stdio: 'pipe',
      windowsHide: true,
    });
    try {
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
    } catch (error) {
      throw new Error(spawnReason(error as NodeJS.ErrnoException, command));
    }
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-4000);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    this.process = child;
    return child;
  }

  /** How the process ended, if it did within `ms`. */
  private async exit(ms: number): Promise<{ code: number | null; signal: string | null } | undefined> {
    const exited = this.exited;
    return exited && Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms))]);
  }

  /** Why a start failed: the spawn error, or the last line the server printed before it exited. */
  private async failureReason(error: unknown): Promise<string> {
    const exit = await this.exit(2000);
    const printed = lastErrorLine(this.stderrTail);
    if (printed) {
      return exit ? `it ended (${exitText(exit)}): ${printed}` : printed;
    }
    if (exit) {
      return `it ended (${exitText(exit)})`;
    }
    return error instanceof Error ? error.message : String(error);
  }

  private async dropClient(): Promise<void> {
    const client = this.client;
    const child = this.process;
    this.client = undefined;
    this.process = undefined;
    if (client) {
      try {
        if (client.needsStop()) {
          await client.stop(5000);
        }
      } catch (error) {
        this.log.warn(`stopping the server: ${String(error)}`);
      }
      await client.dispose().catch(() => undefined);
    }
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill();
    }
  }

  /** The connection closed without a stop: restart, at most MAX_RESTARTS times in RESTART_WINDOW_MS. */
  private closed(): CloseHandlerResult {
    if (this.stopping || this.startup) { // a start failure is reported by startOnce
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < RESTART_WINDOW_MS), now];
    const count = this.crashes.length;
    const restart = count <= MAX_RESTARTS;
    void this.tellCrash(count, restart);
    this.stateEmitter.fire({ running: false, reason: restart ? 'it stopped unexpectedly; restarting' : 'it stopped' });
    return { action: restart ? CloseAction.Restart : CloseAction.DoNotRestart, handled: true };
  }

  private async tellCrash(count: number, restarted: boolean): Promise<void> {
    const exit = exitText(await this.exit(1000));
    const printed = lastErrorLine(this.stderrTail);
    const why = [exit, printed].filter(Boolean).join(': ') || 'no reason given';
    if (restarted) {
      this.log.warn(`the server stopped unexpectedly (${why}); restarting it (${count} of ${MAX_RESTARTS})`);
      const choice = await showMessage('warning', `oh-lsp: the language server stopped unexpectedly (${why}). It was`
        + ` restarted (${count} of ${MAX_RESTARTS} restarts in 3 minutes); tasks that were running go back to the`
        + ' queue and resume.', 'Show Logs');
      if (choice === 'Show Logs') {
        this.log.show();
      }
      return;
    }
    const reason = `it stopped ${count} times in 3 minutes; last: ${why}`;
    this.log.error(`the server is not restarted again: ${reason}`);
    await this.showFailure(`oh-lsp: the language server is not restarted again: ${reason}.`, ['Restart', 'Show Logs']);
  }

  private async showFailure(message: string, actions: string[]): Promise<void> {
    this.lastFailure = message;
    const choice = await showMessage('error', message, ...actions);
    if (choice === 'Show Logs') {
      this.log.show();
    } else if (choice === 'Open Settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'ohLsp.server');
    } else if (choice === 'Select Interpreter') {
      await vscode.commands.executeCommand('python.setInterpreter');
    } else if (choice === 'Restart') {
      await this.restart();
    }
  }

  /** After every (re)start: hand over the key and the session's model, which the server keeps in memory only (to
   * this client only: a server that stopped meanwhile is not started again from here). */
  private async afterStart(client: OhLspClient): Promise<void> {
    try {
      const key = await this.apiKeys.get();
      if (key && this.client === client && this.running) {
        await this.sendApiKey(key);
        this.log.info('handed the API key from the secret storage to the server');
      }
      const model = this.context.workspaceState.get<string | null>(SESSION_MODEL);
      if (model && this.client === client && this.running) {
        await client.sendRequest(ExecuteCommandRequest.type, { command: 'ohLsp.setModel', arguments: [{ name: model }] });
        this.log.info(`the model selected for this workspace, ${model}, is the server's model again`);
      }
    } catch (error) {
      this.log.error(`handing the key or the model to the server: ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  private async apiKeyChanged(): Promise<void> {
    const key = await this.apiKeys.get();
    if (key && this.running) {
      await this.sendApiKey(key);
      this.log.info('the API key from the secret storage was handed to the server');
    } else if (!key && this.running) {
      await this.restart(); // the server forgets a key only when it restarts
    }
  }

  /** `ohLsp.setApiKey`, with message tracing off for this one request so that the key never reaches the trace. */
  private async sendApiKey(key: string): Promise<void> {
    const client = this.client;
    if (!client) {
      return;
    }
    const setting = vscode.workspace.getConfiguration(SECTION).get<string>('trace.server') ?? 'off';
    const trace = this.trace.logLevel === vscode.LogLevel.Trace ? Trace.fromString(setting) : Trace.Off;
    if (trace !== Trace.Off) {
      await client.setTrace(Trace.Off);
    }
    try {
      await client.sendRequest(ExecuteCommandRequest.type, { command: 'ohLsp.setApiKey', arguments: [{ apiKey: key }] });
    } finally {
      if (trace !== Trace.Off) {
        await client.setTrace(trace);
      }
    }
  }

  private async connected(): Promise<OhLspClient> {
    if (!this.running && !(await this.ready()) && !(await this.start())) {
      throw new Error('the oh-lsp server is not running (see oh-lsp: Show Logs)');
    }
    return this.client!;
  }

  /** Runs a server command (`workspace/executeCommand`); starts the server first if needed. */
  async execute<T>(command: string, argument: object): Promise<T> {
    return (await this.connected()).sendRequest(ExecuteCommandRequest.type, { command, arguments: [argument] }) as Promise<T>;
  }

  /** Sends one of the server's own requests (such as `ohLsp/candidate`). */
  async request<T>(method: string, params: object): Promise<T> {
    return (await this.connected()).sendRequest<T>(method, params);
  }

  async rememberModel(name: string | null): Promise<void> {
    await this.context.workspaceState.update(SESSION_MODEL, name);
  }

  /** Sends the settings again (a setting changed, or the workspace became trusted). */
  async sendSettings(): Promise<void> {
    if (this.running) {
      await this.client!.sendNotification(DidChangeConfigurationNotification.type,
        { settings: { [SECTION]: currentSettings() } });
    }
  }

  /** What a configuration change needs: a restart for the server command, the settings for the others. */
  async configurationChanged(event: vscode.ConfigurationChangeEvent): Promise<void> {
    if (event.affectsConfiguration(`${SECTION}.trace.server`)) {
      this.trace.refresh();
    }
    if (event.affectsConfiguration(`${SECTION}.server`)) {
      this.log.info('the server command changed: restarting the server');
      await this.restart();
    } else if (SERVER_SETTINGS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
      await this.sendSettings();
    }
  }

  /** The workspace was trusted: restricted settings now apply, so the command may differ; tell the server. */
  async trustGranted(): Promise<void> {
    const command = await this.resolveCommand();
    const current = this.command;
    if (!current || command.command !== current.command || command.args.join('\0') !== current.args.join('\0')) {
      await this.restart();
    } else {
      await this.sendSettings();
    }
  }

  dispose(): void {
    void this.stop();
    this.disposables.forEach((d) => d.dispose());
  }
}
