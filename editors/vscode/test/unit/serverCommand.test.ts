import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { commandLine, lastErrorLine, resolveServerCommand, startFailureMessage } from '../../src/serverCommand';

test('the whole command wins, then the Python path, then the Python extension, then python3', () => {
  assert.deepEqual(resolveServerCommand({ command: ['uv', 'run', 'oh-lsp', 'serve'], pythonPath: '/venv/bin/python',
    pythonExtensionInterpreter: '/ext/python' }),
  { command: 'uv', args: ['run', 'oh-lsp', 'serve'], source: 'ohLsp.server.command' });
  assert.deepEqual(resolveServerCommand({ command: [], pythonPath: '/venv/bin/python', pythonExtensionInterpreter: '/x' }),
    { command: '/venv/bin/python', args: ['-m', 'oh_lsp', 'serve'], source: 'ohLsp.server.pythonPath' });
  assert.deepEqual(resolveServerCommand({ pythonPath: ' ', pythonExtensionInterpreter: '/home/u/.venv/bin/python' }),
    { command: '/home/u/.venv/bin/python', args: ['-m', 'oh_lsp', 'serve'], source: 'the Python extension' });
  assert.deepEqual(resolveServerCommand({}), { command: 'python3', args: ['-m', 'oh_lsp', 'serve'], source: 'the default' });
  assert.equal(resolveServerCommand({ command: ['', '  '] }).source, 'the default'); // blank items are no command
});

test('the failure message names the command, where it came from, the reason and what to do', () => {
  const python = resolveServerCommand({ pythonPath: '/opt/my python/bin/python' });
  const message = startFailureMessage(python, 'it exited with code 1: No module named oh_lsp');
  assert.match(message, /"\/opt\/my python\/bin\/python" -m oh_lsp serve/);
  assert.match(message, /from ohLsp\.server\.pythonPath\): it exited with code 1: No module named oh_lsp\./);
  assert.match(message, /Install oh-lsp into that interpreter, or choose another with ohLsp.server.pythonPath/);
  const custom = startFailureMessage(resolveServerCommand({ command: ['oh-lsp', 'serve'] }), '`oh-lsp` was not found');
  assert.match(custom, /Check ohLsp\.server\.command\.$/);
  assert.equal(commandLine(resolveServerCommand({})), 'python3 -m oh_lsp serve');
});

test('the reason is the last line the server printed', () => {
  const traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nModuleNotFoundError: No module named \'pygls\'\n\n';
  assert.equal(lastErrorLine(traceback), 'ModuleNotFoundError: No module named \'pygls\'');
  assert.equal(lastErrorLine('  \n'), undefined);
});
