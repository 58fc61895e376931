// Which command starts `oh-lsp serve`, and what the user is told when it cannot. No VS Code imports: the unit tests
// run it under plain Node.

/** `useBundled`: the oh-lsp this extension bundles (bundled/libs), run by the chosen interpreter. `fromEnvironment`:
 * the oh-lsp installed in that interpreter (`<python> -m oh_lsp serve`). */
export type ImportStrategy = 'useBundled' | 'fromEnvironment';

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where the command, or its interpreter, came from, for messages: "ohLsp.server.command",
   * "ohLsp.server.pythonPath", "the Python extension", or "the default: python3 on PATH". */
  source: string;
  /** The interpreter, when the command is one (everything but ohLsp.server.command). */
  python?: string;
  /** The server is the bundled one (bundled/tool/launch.py). */
  bundled: boolean;
}

export interface CommandSettings {
  /** `ohLsp.server.command`: the whole command, one argument per item. */
  command?: readonly string[];
  /** `ohLsp.server.pythonPath`. */
  pythonPath?: string;
  /** The interpreter selected in the Python extension, when it is installed. */
  pythonExtensionInterpreter?: string;
  /** `ohLsp.server.importStrategy` (default `useBundled`). */
  importStrategy?: ImportStrategy;
  /** bundled/tool/launch.py, when this build of the extension carries the bundle (bundled/libs/manifest.json). */
  launcher?: string;
  /** process.platform (the default interpreter's name differs on Windows). */
  platform?: string;
}

const MODULE_ARGS = ['-m', 'oh_lsp', 'serve'];
/** The exit code of bundled/tool/launch.py for "this Python cannot run the bundled server". */
export const UNSUPPORTED_PYTHON_EXIT = 85;

export function defaultPython(platform: string = process.platform): string {
  return platform === 'win32' ? 'python' : 'python3';
}

export function resolveServerCommand(settings: CommandSettings): ServerCommand {
  const command = (settings.command ?? []).map((part) => part.trim()).filter((part) => part !== '');
  if (command.length > 0) {
    return { command: command[0], args: command.slice(1), source: 'ohLsp.server.command', bundled: false };
  }
  const python = settings.pythonPath?.trim() || settings.pythonExtensionInterpreter?.trim()
    || defaultPython(settings.platform);
  const source = settings.pythonPath?.trim() ? 'ohLsp.server.pythonPath'
    : settings.pythonExtensionInterpreter?.trim() ? 'the Python extension'
      : `the default: ${python} on PATH`;
  const bundled = settings.importStrategy !== 'fromEnvironment' && settings.launcher !== undefined;
  return { command: python, args: bundled ? [settings.launcher!] : [...MODULE_ARGS], source, python, bundled };
}

/** The command as a person would type it (arguments with spaces quoted). */
export function commandLine(command: ServerCommand): string {
  return [command.command, ...command.args].map((part) => (/[\s"']/.test(part) ? JSON.stringify(part) : part))
    .join(' ');
}

/** What `launch.py --check` printed about an interpreter. */
export interface PythonCheck {
  ok: boolean;
  version?: string;
  executable?: string;
  supported?: string[];
  reason?: string;
  tooOld?: boolean;
  /** Whether the interpreter itself can import oh-lsp (what `fromEnvironment` runs). */
  installed?: boolean;
}

/** The interpreter cannot be used: why, and what to do, in one message for the user (undefined when it can). With
 * `fromEnvironment` the interpreter's own oh-lsp decides which newer Pythons it runs on; too old is still too old.
 * `pythonExtension`: the Python extension is installed (its "Select Interpreter" is offered). */
export function pythonProblem(command: ServerCommand, check: PythonCheck | 'missing',
                              pythonExtension = false): string | undefined {
  const who = `\`${command.python}\` (${command.source})`;
  const advice = ' Install Python 3.11 or newer, or choose another interpreter'
    + ` (${pythonExtension ? 'Python: Select Interpreter, or ' : ''}ohLsp.server.pythonPath).`;
  if (check === 'missing') {
    return `oh-lsp needs Python 3.11 or newer to run its language server, and ${who} was not found.${advice}`;
  }
  if (!command.bundled && check.version && !check.tooOld) {
    return check.installed === false
      ? `oh-lsp is not installed in ${who}: No module named oh_lsp (ohLsp.server.importStrategy is fromEnvironment).`
        + ' Install oh-lsp into that interpreter, or set ohLsp.server.importStrategy to useBundled (the oh-lsp this'
        + ' extension carries).'
      : undefined;
  }
  if (check.ok) {
    return undefined;
  }
  return `oh-lsp cannot run its language server with ${who}: ${check.reason ?? 'it did not say which Python it is'}.`
    + advice;
}

/** A sentence saying why the server did not start and what to do, from the spawn error or what it printed. */
export function startFailureMessage(command: ServerCommand, reason: string): string {
  const line = commandLine(command);
  const advice = command.source === 'ohLsp.server.command'
    ? 'Check ohLsp.server.command.'
    : command.bundled
      ? 'See the logs; ohLsp.server.pythonPath chooses another interpreter.'
      : 'Install oh-lsp into that interpreter, or set ohLsp.server.importStrategy to useBundled (the oh-lsp this'
        + ' extension carries).';
  return `oh-lsp: the language server did not start (\`${line}\`, from ${command.source}): ${reason}. ${advice}`;
}

/** The last meaningful line a failed server printed (a Python traceback ends with the error itself). */
export function lastErrorLine(stderr: string): string | undefined {
  const lines = stderr.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  return lines.length > 0 ? lines[lines.length - 1].slice(0, 300) : undefined;
}
