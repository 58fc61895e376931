// Starting, restarting and talking to `oh-lsp serve`: the language client, the settings and the key it is given,
// and what the user sees when it cannot start.
import { ChildProcess, spawn } from 'child_process';
import * as vscode from 'vscode';
import {
  CloseAction, CloseHandlerResult, DidChangeConfigurationNotification, ErrorAction, ExecuteCommandRequest,
  LanguageClient, LanguageClientOptions, State, Trace,
} from 'vscode-languageclient/node';
import { ApiKeyStore } from './apiKey';
import { selectedInterpreter } from './python';
import { ServerCommand, lastErrorLine, resolveServerCommand, startFailureMessage } from './serverCommand';
import { SERVER_SETTINGS, ServerSettings, buildSettings, initializationOptions } from './settings';
import { OhLspStatus } from './status';

export const SECTION = 'ohLsp';
export const STATUS_NOTIFICATION = 'ohLsp/status';
const SESSION_MODEL = 'ohLsp.sessionModel'; // workspaceState: the model chosen with "Select Model" (null: automatic)
const MAX_CRASHES = 3; // restarts after a crash within CRASH_WINDOW_MS before giving up
const CRASH_WINDOW_MS = 3 * 60 * 1000;

/** The language client, with the library's own start-failure pop-ups turned off while this extension says what
 * went wrong itself (with the reason and a "Show Logs" action). */
class OhLspClient extends LanguageClient {
  quiet = false;

  override error(message: string, data?: unknown, showNotification: boolean | 'force' = true): void {
    super.error(message, data, this.quiet ? false : showNotification);
  }
}

export type ServerState = { running: true } | { running: false; reason: string };

/** The `ohLsp` settings as the server takes them: what the user set explicitly, plus workspace trust. */
export function currentSettings(): ServerSettings {
  const config = vscode.workspace.getConfiguration(SECTION);
  return buildSettings((key) => {
    const inspected = config.inspect(key);
    return inspected?.workspaceFolderValue ?? inspected?.workspaceValue ?? inspected?.globalValue;
  }, vscode.workspace.isTrusted);
}

async function serverCommand(): Promise<ServerCommand> {
  const config = vscode.workspace.getConfiguration(SECTION);
  const command = config.get<string[]>('server.command') ?? [];
  const pythonPath = config.get<string>('server.pythonPath') ?? '';
  const needsInterpreter = command.length === 0 && pythonPath.trim() === '';
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
  return resolveServerCommand({
    command, pythonPath, pythonExtensionInterpreter: needsInterpreter ? await selectedInterpreter(folder) : undefined,
  });
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

export class Server implements vscode.Disposable {
  private client?: OhLspClient;
  private process?: ChildProcess;
  private exited?: Promise<number | null>;
  private command?: ServerCommand;
  private stderrTail = '';
  private crashes: number[] = [];
  private stopping = false;
  private startup?: Promise<boolean>;
  private readonly statusEmitter = new vscode.EventEmitter<OhLspStatus>();
  private readonly stateEmitter = new vscode.EventEmitter<ServerState>();
  private readonly disposables: vscode.Disposable[] = [this.statusEmitter, this.stateEmitter];
  /** The latest `ohLsp/status`, for the status bar and the self-test. */
  lastStatus?: OhLspStatus;
  /** What the user was last told about a server that did not start or stopped for good. */
  lastFailure?: string;
  readonly onStatus = this.statusEmitter.event;
  readonly onState = this.stateEmitter.event;

  constructor(private readonly context: vscode.ExtensionContext, readonly log: vscode.LogOutputChannel,
              private readonly apiKeys: ApiKeyStore) {
    this.disposables.push(apiKeys.onDidChange(() => void this.apiKeyChanged()));
  }

  get running(): boolean {
    return this.client?.state === State.Running;
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

  private async startOnce(): Promise<boolean> {
    this.command = await serverCommand();
    this.lastFailure = undefined;
    this.log.info(`starting the server: ${[this.command.command, ...this.command.args].join(' ')}`
      + ` (from ${this.command.source})`);
    const client = this.client ?? this.createClient();
    client.quiet = true;
    try {
      await client.start();
    } catch (error) {
      const reason = await this.failureReason(error);
      this.log.error(`the server did not start: ${reason}`);
      this.stateEmitter.fire({ running: false, reason });
      await this.dropClient();
      void this.showFailure(startFailureMessage(this.command, reason));
      return false;
    } finally {
      client.quiet = false;
    }
    return true;
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
      initializationOptions: () => initializationOptions(currentSettings()),
      errorHandler: {
        error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
        closed: () => this.closed(),
      },
      middleware: {
        workspace: {
          // The server may ask for its section: answer with the settings it takes, not VS Code's whole section.
          configuration: async (params, token, next) => {
            const answer = await next(params, token);
            if (!Array.isArray(answer)) {
              return answer;
            }
            return params.items.map((item, index) => (item.section === SECTION ? currentSettings() : answer[index]));
          },
        },
      },
    };
    const client = new OhLspClient(SECTION, 'oh-lsp', () => this.spawnServer(), options);
    client.onNotification(STATUS_NOTIFICATION, (status: OhLspStatus) => {
      this.lastStatus = status;
      this.statusEmitter.fire(status);
    });
    client.onDidChangeState((event) => {
      if (event.newState === State.Running) {
        this.stateEmitter.fire({ running: true });
        // Running is announced before `initialized` is sent; start() resolves after it (also on a crash restart)
        void client.start().then(() => this.afterStart(), () => undefined);
      }
    });
    this.client = client;
    return client;
  }

  private async spawnServer(): Promise<ChildProcess> {
    const command = this.command ?? await serverCommand();
    this.stderrTail = '';
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
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    this.process = child;
    return child;
  }

  /** Why a start failed: the spawn error, or the last line the server printed before it exited. */
  private async failureReason(error: unknown): Promise<string> {
    const exited = this.exited;
    if (exited) {
      const code = await Promise.race([exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000))]);
      const printed = lastErrorLine(this.stderrTail);
      if (printed) {
        return code === undefined ? printed : `it exited with code ${code}: ${printed}`;
      }
      if (code !== undefined) {
        return `it exited with code ${code}`;
      }
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

  private closed(): CloseHandlerResult {
    if (this.stopping || this.startup) { // a start failure is reported by startOnce
      return { action: CloseAction.DoNotRestart, handled: true };
    }
    const now = Date.now();
    this.crashes = [...this.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    const printed = lastErrorLine(this.stderrTail);
    if (this.crashes.length <= MAX_CRASHES) {
      this.log.warn(`the server stopped unexpectedly${printed ? ` (${printed})` : ''}; restarting it`);
      return { action: CloseAction.Restart, handled: true };
    }
    const reason = `it stopped ${this.crashes.length} times in 3 minutes${printed ? `; last: ${printed}` : ''}`;
    this.stateEmitter.fire({ running: false, reason });
    void this.showFailure(`oh-lsp: the language server is not restarted again: ${reason}.`);
    return { action: CloseAction.DoNotRestart, handled: true };
  }

  private async showFailure(message: string): Promise<void> {
    this.lastFailure = message;
    const choice = await vscode.window.showErrorMessage(message, 'Show Logs', 'Open Settings', 'Restart');
    if (choice === 'Show Logs') {
      this.log.show();
    } else if (choice === 'Open Settings') {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'ohLsp.server');
    } else if (choice === 'Restart') {
      await this.restart();
    }
  }

  /** After every (re)start: hand over the key and the session's model, which the server keeps in memory only. */
  private async afterStart(): Promise<void> {
    try {
      const key = await this.apiKeys.get();
      if (key) {
        await this.sendApiKey(key);
        this.log.info('handed the API key from the secret storage to the server');
      }
      const model = this.context.workspaceState.get<string | null>(SESSION_MODEL);
      if (model) {
        await this.execute('ohLsp.setModel', { name: model });
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
    const trace = Trace.fromString(vscode.workspace.getConfiguration(SECTION).get<string>('trace.server') ?? 'off');
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

  /** Runs a server command (`workspace/executeCommand`); starts the server first if needed. */
  async execute<T>(command: string, argument: object): Promise<T> {
    if (!this.running && !(await this.ready()) && !(await this.start())) {
      throw new Error('the oh-lsp server is not running (see oh-lsp: Show Logs)');
    }
    return this.client!.sendRequest(ExecuteCommandRequest.type, { command, arguments: [argument] }) as Promise<T>;
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
    if (event.affectsConfiguration(`${SECTION}.server`)) {
      this.log.info('the server command changed: restarting the server');
      await this.restart();
    } else if (SERVER_SETTINGS.some((key) => event.affectsConfiguration(`${SECTION}.${key}`))) {
      await this.sendSettings();
    }
  }

  /** The workspace was trusted: restricted settings now apply, so the command may differ; tell the server. */
  async trustGranted(): Promise<void> {
    const command = await serverCommand();
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
