// Where a task's progress shows. A task started from this editor (a command or a code action) shows as a
// notification with a Cancel button (mapped to `ohLsp.cancelTask`), and a message with actions when it ends; the
// language client's own status-bar progress is not shown for it. A task started elsewhere (the CLI, a pre-commit
// hook, a restart of the server) stays in the status bar. Progress text is shortened to 60 characters.
//
// The server announces a task's progress token with `window/workDoneProgress/create` while the command that started
// it is still answering `{taskId, progressToken}`: progress values that arrive while such a command is in flight are
// held until its answer says whose token it is.
import * as vscode from 'vscode';
import type { WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport } from 'vscode-languageclient';
import { shortText } from './format';
import { Outcomes } from './outcomes';
import { Server } from './server';

export interface TaskStarted {
  taskId: string;
  progressToken: string;
  duplicate?: boolean;
}

type Value = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/** Where one progress was shown, and what it said (the self-test reads these). */
export interface ProgressRecord {
  token: string;
  taskId?: string;
  location: 'notification' | 'statusBar';
  title?: string;
  messages: string[];
  end?: string;
  cancelRequested?: boolean;
  cancelAnswer?: boolean;
}

/** A task of this editor: its notification. */
class OwnProgress {
  private progress?: vscode.Progress<{ message?: string }>;
  private finish?: () => void;
  private opened = false;
  private ended = false;

  constructor(readonly record: ProgressRecord, private readonly onCancel: () => void,
              private readonly onEnd: (end: string | undefined) => void) {}

  update(value: Value): void {
    if (value.kind === 'begin') {
      this.record.title = value.title;
      this.open();
      this.report(value.message);
    } else if (value.kind === 'report') {
      this.report(value.message);
    } else if (!this.ended) {
      this.ended = true;
      this.record.end = value.message;
      this.finish?.();
      this.onEnd(value.message);
    }
  }

  /** The server went away: the notification closes without an outcome. */
  abandon(): void {
    this.ended = true;
    this.finish?.();
  }

  private report(message: string | undefined): void {
    if (message) {
      const short = shortText(message);
      this.record.messages.push(short);
      this.progress?.report({ message: short });
    }
  }

  private open(): void {
    if (this.opened) {
      return;
    }
    this.opened = true;
    void vscode.window.withProgress({
      location: vscode.ProgressLocation.Notification,
      title: this.record.title ?? 'oh-lsp',
      cancellable: true,
    }, (progress, cancellation) => {
      this.progress = progress;
      const last = this.record.messages[this.record.messages.length - 1];
      if (last) {
        progress.report({ message: last });
      }
      cancellation.onCancellationRequested(() => this.onCancel());
      return new Promise<void>((resolve) => {
        this.finish = resolve;
        if (this.ended) {
          resolve();
        }
      });
    });
  }
}

export class TaskProgress implements vscode.Disposable {
  private inFlight = 0;
  private readonly own = new Map<string, OwnProgress>();
  private readonly held = new Map<string, { value: Value; next: () => void }[]>();
  private readonly elsewhere = new Set<string>(); // tokens handed to the language client (status bar)
  private readonly changed = new vscode.EventEmitter<ProgressRecord>();
  /** Every progress seen, in order (the self-test reads them). */
  readonly records: ProgressRecord[] = [];
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[];

  constructor(private readonly server: Server, private readonly outcomes: Outcomes) {
    this.disposables = [this.changed, server.onState((state) => {
      if (!state.running) {
        this.own.forEach((progress) => progress.abandon());
        this.own.clear();
      }
    })];
    server.progressMiddleware = (token, value, next) => this.handle(String(token), value as Value, next);
  }

  /** Runs a task-starting command; its task's progress becomes a notification. */
  async run<T extends TaskStarted>(start: () => Promise<T | undefined>): Promise<T | undefined> {
    this.inFlight++;
    let started: T | undefined;
    try {
      started = await start();
    } finally {
      this.inFlight--;
    }
    if (started?.progressToken !== undefined && !this.elsewhere.has(String(started.progressToken))
        && !this.own.has(String(started.progressToken))) {
      this.adopt(String(started.progressToken), started.taskId);
    }
    this.release();
    return started;
  }

  private adopt(token: string, taskId: string): void {
    const record: ProgressRecord = { token, taskId, location: 'notification', messages: [] };
    this.records.push(record);
    const progress = new OwnProgress(record, () => void this.cancel(record), (end) => {
      this.own.delete(token);
      this.changed.fire(record);
      void this.outcomes.show(taskId, record.title ?? 'oh-lsp', end);
    });
    this.own.set(token, progress);
    for (const { value, next } of this.held.get(token) ?? []) {
      this.deliver(token, progress, value, next);
    }
    this.held.delete(token);
  }

  private async cancel(record: ProgressRecord): Promise<void> {
    record.cancelRequested = true;
    this.changed.fire(record);
    try {
      const answer = await this.server.execute<{ cancelled: boolean }>('ohLsp.cancelTask', { taskId: record.taskId });
      record.cancelAnswer = answer.cancelled;
    } catch (error) {
      this.server.log.error(`cancelling task ${record.taskId}: ${error instanceof Error ? error.message : String(error)}`);
      record.cancelAnswer = false;
    }
    this.changed.fire(record);
  }

  /** Values of tokens no command claimed go to the status bar. */
  private release(): void {
    if (this.inFlight > 0) {
      return;
    }
    for (const [token, values] of this.held) {
      for (const { value, next } of values) {
        this.toStatusBar(token, value, next);
      }
    }
    this.held.clear();
  }

  private handle(token: string, value: Value, next: () => void): void {
    const own = this.own.get(token);
    if (own) {
      this.deliver(token, own, value, next);
    } else if (this.inFlight > 0 && !this.elsewhere.has(token)) {
      this.held.set(token, [...(this.held.get(token) ?? []), { value, next }]);
    } else {
      this.toStatusBar(token, value, next);
    }
  }

  private deliver(token: string, own: OwnProgress, value: Value, next: () => void): void {
    own.update(value);
    this.changed.fire(own.record);
    if (value.kind === 'end') {
      next(); // lets the language client forget the token; it never showed it
    }
  }

  private toStatusBar(token: string, value: Value, next: () => void): void {
    if (!this.elsewhere.has(token)) {
      this.elsewhere.add(token);
      this.records.push({ token, location: 'statusBar', messages: [] });
    }
    const record = [...this.records].reverse().find((r) => r.token === token)!;
    if (value.kind === 'begin') {
      record.title = value.title;
    }
    if (value.kind !== 'end' && value.message) {
      value.message = shortText(value.message);
      record.messages.push(value.message);
    } else if (value.kind === 'end') {
      record.end = value.message;
      this.elsewhere.delete(token);
    }
    this.changed.fire(record);
    next();
  }

  dispose(): void {
    this.disposables.forEach((d) => d.dispose());
  }
}
