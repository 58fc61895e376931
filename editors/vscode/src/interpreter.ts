// Asking an interpreter whether it can run the bundled server (`bundled/tool/launch.py --check`), before the
// language client starts it: a Python that is missing or too old gets one clear message instead of a failed start.
import { spawn } from 'child_process';
import { PythonCheck, ServerCommand, lastErrorLine } from './serverCommand';

const CHECK_SECONDS = 20;

export function checkPython(command: ServerCommand, launcher: string): Promise<PythonCheck | 'missing'> {
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    const child = spawn(command.python!, [launcher, '--check'], { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    const timer = setTimeout(() => {
      child.kill();
      resolve({ ok: false, reason: `it did not answer within ${CHECK_SECONDS} s` });
    }, CHECK_SECONDS * 1000);
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString('utf8'); });
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString('utf8'); });
    child.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(error.code === 'ENOENT' ? 'missing'
        : { ok: false, reason: error.code === 'EACCES' ? 'it cannot be run (permission denied)' : error.message });
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      const last = out.trim().split(/\r?\n/).pop() ?? '';
      try {
        resolve(JSON.parse(last) as PythonCheck);
      } catch {
        resolve({ ok: false, reason: lastErrorLine(err) ?? `it exited with code ${code} without saying which Python it is` });
      }
    });
  });
}
