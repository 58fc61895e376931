// Which command starts `oh-lsp serve`. No VS Code imports: the unit tests run it under plain Node.

export interface ServerCommand {
  command: string;
  args: string[];
  /** Where it came from, for messages: "ohLsp.server.command", "ohLsp.server.pythonPath", "the Python extension",
   * or "the default". */
  source: string;
}

export interface CommandSettings {
  /** `ohLsp.server.command`: the whole command, one argument per item. */
  command?: readonly string[];
  /** `ohLsp.server.pythonPath`. */
  pythonPath?: string;
  /** The interpreter selected in the Python extension, when it is installed. */
  pythonExtensionInterpreter?: string;
}

export const DEFAULT_PYTHON = 'python3';
const MODULE_ARGS = ['-m', 'oh_lsp', 'serve'];

export function resolveServerCommand(settings: CommandSettings): ServerCommand {
  const command = (settings.command ?? []).map((part) => part.trim()).filter((part) => part !== '');
  if (command.length > 0) {
    return { command: command[0], args: command.slice(1), source: 'ohLsp.server.command' };
  }
  const pythonPath = settings.pythonPath?.trim();
  if (pythonPath) {
    return { command: pythonPath, args: [...MODULE_ARGS], source: 'ohLsp.server.pythonPath' };
  }
  const fromExtension = settings.pythonExtensionInterpreter?.trim();
  if (fromExtension) {
    return { command: fromExtension, args: [...MODULE_ARGS], source: 'the Python extension' };
  }
  return { command: DEFAULT_PYTHON, args: [...MODULE_ARGS], source: 'the default' };
}

/** The command as a person would type it (arguments with spaces quoted). */
export function commandLine(command: ServerCommand): string {
  return [command.command, ...command.args].map((part) => (/[\s"']/.test(part) ? JSON.stringify(part) : part))
    .join(' ');
}

/** A sentence saying why the server did not start and what to do, from the spawn error or what it printed. */
export function startFailureMessage(command: ServerCommand, reason: string): string {
  const line = commandLine(command);
  const advice = command.source === 'ohLsp.server.command'
    ? 'Check ohLsp.server.command.'
    : 'Install oh-lsp into that interpreter, or choose another with ohLsp.server.pythonPath,'
      + ' or set the whole command with ohLsp.server.command (for example ["uv", "run", "oh-lsp", "serve"]).';
  return `oh-lsp: the language server did not start (\`${line}\`, from ${command.source}): ${reason}. ${advice}`;
}

/** The last meaningful line a failed server printed (a Python traceback ends with the error itself). */
export function lastErrorLine(stderr: string): string | undefined {
  const lines = stderr.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  return lines.length > 0 ? lines[lines.length - 1].slice(0, 300) : undefined;
}
