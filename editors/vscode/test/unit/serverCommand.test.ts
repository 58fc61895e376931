import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import {
  commandLine, lastErrorLine, pythonProblem, resolveServerCommand, startFailureMessage,
} from '../../src/serverCommand';

const launcher = '/ext/bundled/tool/launch.py';

test('with no setting, python3 on PATH runs the bundled server', () => {
  assert.deepEqual(resolveServerCommand({ launcher, platform: 'linux' }), {
    command: 'python3', args: [launcher], source: 'the default: python3 on PATH', python: 'python3', bundled: true,
  });
  assert.equal(resolveServerCommand({ launcher, platform: 'win32' }).command, 'python');
});

test('the whole command wins, then the Python path, then the Python extension, then python3', () => {
  assert.deepEqual(resolveServerCommand({ command: ['uv', 'run', 'oh-lsp', 'serve'], pythonPath: '/venv/bin/python',
    pythonExtensionInterpreter: '/ext/python', launcher }),
  { command: 'uv', args: ['run', 'oh-lsp', 'serve'], source: 'ohLsp.server.command', bundled: false });
  const fromPath = resolveServerCommand({ command: [], pythonPath: '/venv/bin/python', pythonExtensionInterpreter: '/x',
    launcher });
  assert.deepEqual([fromPath.command, fromPath.args, fromPath.source], ['/venv/bin/python', [launcher],
    'ohLsp.server.pythonPath']);
  const fromExtension = resolveServerCommand({ pythonPath: ' ', pythonExtensionInterpreter: '/home/u/.venv/bin/python',
    launcher });
  assert.deepEqual([fromExtension.command, fromExtension.source], ['/home/u/.venv/bin/python', 'the Python extension']);
  assert.equal(resolveServerCommand({ command: ['', '  '], launcher }).source, 'the default: python3 on PATH');
});

test('fromEnvironment, or a build without the bundle, runs the oh-lsp installed in the interpreter', () => {
  const installed = resolveServerCommand({ pythonPath: '/venv/bin/python', importStrategy: 'fromEnvironment', launcher });
  assert.deepEqual([installed.args, installed.bundled], [['-m', 'oh_lsp', 'serve'], false]);
  assert.deepEqual(resolveServerCommand({ platform: 'linux' }).args, ['-m', 'oh_lsp', 'serve']);
});

test('a missing or unusable Python is one sentence that names it and where it came from', () => {
  const python = resolveServerCommand({ launcher, platform: 'linux' });
  const advice = ' Install Python 3.11 or newer, or choose another interpreter (ohLsp.server.pythonPath).';
  assert.equal(pythonProblem(python, 'missing'),
    'oh-lsp needs Python 3.11 or newer to run its language server, and `python3` (the default: python3 on PATH) was not found.'
    + advice);
  assert.match(pythonProblem(python, 'missing', true)!, /\(Python: Select Interpreter, or ohLsp\.server\.pythonPath\)\.$/);
  const old = { ok: false, version: '3.9.18', tooOld: true, reason: 'it is Python 3.9.18; oh-lsp needs Python 3.11 or newer' };
  assert.equal(pythonProblem(python, old),
    'oh-lsp cannot run its language server with `python3` (the default: python3 on PATH): it is Python 3.9.18; oh-lsp needs Python 3.11 or newer.'
    + advice);
  assert.equal(pythonProblem(python, { ok: true, version: '3.12.1' }), undefined);
  // the oh-lsp of the environment decides for itself which newer Pythons it runs on; too old is still too old
  const installed = resolveServerCommand({ pythonPath: '/p', importStrategy: 'fromEnvironment', launcher });
  assert.equal(pythonProblem(installed, { ok: false, version: '3.15.0', reason: 'not bundled' }), undefined);
  assert.match(pythonProblem(installed, old)!, /needs Python 3\.11 or newer/);
  assert.equal(pythonProblem(installed, { ok: false, version: '3.12.1', installed: true }), undefined);
  assert.match(pythonProblem(installed, { ok: false, version: '3.12.1', installed: false })!,
    /^oh-lsp is not installed in `\/p` \(ohLsp\.server\.pythonPath\): No module named oh_lsp .* set ohLsp\.server\.importStrategy to useBundled/);
});

test('the failure message names the command, where it came from, the reason and what to do', () => {
  const installed = resolveServerCommand({ pythonPath: '/opt/my python/bin/python', importStrategy: 'fromEnvironment' });
  const message = startFailureMessage(installed, 'it ended (exit code 1): No module named oh_lsp');
  assert.match(message, /"\/opt\/my python\/bin\/python" -m oh_lsp serve/);
  assert.match(message, /from ohLsp\.server\.pythonPath\): it ended \(exit code 1\): No module named oh_lsp\./);
  assert.match(message, /Install oh-lsp into that interpreter, or set ohLsp\.server\.importStrategy to useBundled/);
  const custom = startFailureMessage(resolveServerCommand({ command: ['oh-lsp', 'serve'] }), '`oh-lsp` was not found');
  assert.match(custom, /Check ohLsp\.server\.command\.$/);
  assert.equal(commandLine(resolveServerCommand({ launcher, platform: 'linux' })), `python3 ${launcher}`);
});

test('the reason is the last line the server printed', () => {
  const traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nModuleNotFoundError: No module named \'pygls\'\n\n';
  assert.equal(lastErrorLine(traceback), 'ModuleNotFoundError: No module named \'pygls\'');
  assert.equal(lastErrorLine('  \n'), undefined);
});
