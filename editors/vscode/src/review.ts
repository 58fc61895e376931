// `workspace/applyEdit` from the server: reviewed first when `ohLsp.reviewEdits` is on (the server marks the edit
// with a change annotation that needs confirmation, and VS Code shows it in its Refactor Preview, each change
// unticked until the user ticks it and applies; with the setting off the annotation is dropped and the edit lands
// at once), and a file the edit creates is saved once applied, so that
// it is on disk for pytest, git and the shell, not only in an unsaved editor.
import * as vscode from 'vscode';
import type { ApplyWorkspaceEditParams, ApplyWorkspaceEditResult } from 'vscode-languageclient';
import { createdFiles, needsConfirmation, touchedFiles, withoutConfirmation } from './edits';
import { SECTION } from './settings';

/** One edit the server sent, as the self-test reads it. */
export interface EditRecord {
  label?: string;
  /** Every file the edit touches, in order. */
  files: string[];
  created: string[];
  reviewed: boolean;
  applied?: boolean;
  saved: string[];
  problems: string[];
}

export function reviewEdits(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('reviewEdits', true);
}

export class EditReview implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<EditRecord>();
  readonly onDidChange = this.changed.event;
  readonly records: EditRecord[] = [];

  constructor(private readonly log: vscode.LogOutputChannel) {}

  async handle(params: ApplyWorkspaceEditParams,
               next: (params: ApplyWorkspaceEditParams) => Promise<ApplyWorkspaceEditResult>): Promise<ApplyWorkspaceEditResult> {
    const review = reviewEdits();
    const edit = review ? params.edit : withoutConfirmation(params.edit);
    const record: EditRecord = {
      label: params.label, files: touchedFiles(params.edit), created: createdFiles(params.edit), reviewed: review && needsConfirmation(params.edit),
      saved: [], problems: [],
    };
    this.records.push(record);
    this.changed.fire(record);
    const result = await next({ ...params, edit });
    record.applied = result.applied;
    if (result.applied) {
      await this.saveCreated(record);
    }
    this.changed.fire(record);
    return result;
  }

  private async saveCreated(record: EditRecord): Promise<void> {
    for (const created of record.created) {
      const uri = vscode.Uri.parse(created);
      const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
      if (!document?.isDirty) {
        continue; // an empty new file (a package's __init__.py) is on disk already
      }
      if (await document.save()) {
        record.saved.push(created);
      } else {
        const problem = `could not save ${uri.fsPath}; it stays open with its text`;
        record.problems.push(problem);
        this.log.warn(problem);
      }
    }
  }

  dispose(): void {
    this.changed.dispose();
  }
}
