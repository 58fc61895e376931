// Every message this extension shows goes through here, so that the real-editor self-test can see what the user
// was told (and with which buttons). The language client's own pop-ups are reported here too (server.ts).
import * as vscode from 'vscode';

export type Level = 'info' | 'warning' | 'error';

export interface ShownMessage {
  level: Level;
  text: string;
  actions: string[];
  /** `oh-lsp` for this extension's messages, `languageclient` for the library's own pop-ups. */
  source: 'oh-lsp' | 'languageclient';
}

const shown = new vscode.EventEmitter<ShownMessage>();
export const onDidShowMessage = shown.event;

export function reportShown(message: ShownMessage): void {
  shown.fire(message);
}

/** Shows `text` with `actions` as buttons; resolves with the button picked (undefined: closed). */
export function showMessage(level: Level, text: string, ...actions: string[]): Thenable<string | undefined> {
  reportShown({ level, text, actions, source: 'oh-lsp' });
  const show = level === 'error' ? vscode.window.showErrorMessage
    : level === 'warning' ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
  return show(text, ...actions);
}
