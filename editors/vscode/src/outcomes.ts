// The message at the end of a task started from this editor, with its buttons: "Open tests", "Show details",
// "Open candidate". Its facts come from the server's `ohLsp/taskEnded` notification; without one (an older server)
// the message is the progress's last words.
import * as vscode from 'vscode';
import { Candidates } from './candidates';
import { shortText } from './format';
import { showMessage } from './messages';
import {
  OPEN_CANDIDATE, OPEN_FILE, OPEN_TESTS, SHOW_DETAILS, TaskOutcome, detailsMarkdown, outcomeActions, outcomeMessage,
} from './outcome';
import { MarkdownViews } from './views';

export const TASK_ENDED_NOTIFICATION = 'ohLsp/taskEnded';

export interface ShownOutcome {
  taskId: string;
  text: string;
  actions: string[];
  picked?: string;
}

export class Outcomes implements vscode.Disposable {
  private readonly byTask = new Map<string, TaskOutcome>();
  private readonly shown = new vscode.EventEmitter<ShownOutcome>();
  private readonly picked = new vscode.EventEmitter<ShownOutcome>();
  /** Fires when the message is shown. */
  readonly onDidShow = this.shown.event;
  /** Fires when the user picked a button (or closed the message), after its action ran. */
  readonly onDidPick = this.picked.event;

  constructor(private readonly views: MarkdownViews, private readonly candidates: Candidates) {}

  /** `ohLsp/taskEnded` arrived. */
  received(outcome: TaskOutcome): void {
    if (outcome && typeof outcome.taskId === 'string') {
      this.byTask.set(outcome.taskId, outcome);
    }
  }

  /** The task's progress ended with `endText`: say how it went. */
  async show(taskId: string, title: string, endText: string | undefined): Promise<ShownOutcome> {
    const outcome = this.byTask.get(taskId);
    this.byTask.delete(taskId);
    let shown: ShownOutcome;
    let choice: string | undefined;
    if (outcome) {
      const { level, text } = outcomeMessage(outcome);
      shown = { taskId, text, actions: outcomeActions(outcome) };
      const answer = showMessage(level, text, ...shown.actions);
      this.shown.fire(shown);
      choice = await answer;
      await this.act(outcome, choice);
    } else {
      const text = `${title}: ${shortText(endText ?? 'ended', 200)}`;
      shown = { taskId, text, actions: [] };
      const failed = /^(failed|not applied)/.test(endText ?? '') || /not applied/.test(endText ?? '');
      const answer = showMessage(failed ? 'warning' : 'info', text);
      this.shown.fire(shown);
      choice = await answer;
    }
    shown.picked = choice;
    this.picked.fire(shown);
    return shown;
  }

  private async act(outcome: TaskOutcome, choice: string | undefined): Promise<void> {
    if ((choice === OPEN_TESTS || choice === OPEN_FILE) && outcome.outputUri) {
      await vscode.window.showTextDocument(vscode.Uri.parse(outcome.outputUri));
    } else if (choice === SHOW_DETAILS) {
      await this.views.show(`oh-lsp task ${outcome.taskId.slice(0, 8)}`, detailsMarkdown(outcome));
    } else if (choice === OPEN_CANDIDATE) {
      try {
        await this.candidates.open({ taskId: outcome.taskId, attempt: outcome.candidate?.attempt });
      } catch (error) {
        void showMessage('error', `oh-lsp: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }

  dispose(): void {
    this.shown.dispose();
    this.picked.dispose();
  }
}
