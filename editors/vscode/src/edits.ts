// What a `workspace/applyEdit` from the server holds: the files it creates, and whether it asks for a review.
// No VS Code imports: the unit tests run it under plain Node.
import type { WorkspaceEdit } from 'vscode-languageserver-protocol';

/** The URIs of the files the edit creates (its `CreateFile` operations). */
export function createdFiles(edit: WorkspaceEdit): string[] {
  return (edit.documentChanges ?? []).flatMap((change) => ('kind' in change && change.kind === 'create' ? [change.uri] : []));
}

/** Every file the edit touches (created or changed), each once, in order. */
export function touchedFiles(edit: WorkspaceEdit): string[] {
  const uris = (edit.documentChanges ?? []).map((change) => ('textDocument' in change ? change.textDocument.uri
    : 'uri' in change ? change.uri : change.oldUri));
  return [...new Set([...uris, ...Object.keys(edit.changes ?? {})])];
}

/** Whether a change of the edit carries an annotation that needs confirmation (VS Code then shows its preview). */
export function needsConfirmation(edit: WorkspaceEdit): boolean {
  return Object.values(edit.changeAnnotations ?? {}).some((annotation) => annotation.needsConfirmation === true);
}

/** The same edit with no annotation asking for confirmation (`ohLsp.reviewEdits` off): applied at once. */
export function withoutConfirmation(edit: WorkspaceEdit): WorkspaceEdit {
  if (!edit.changeAnnotations) {
    return edit;
  }
  const annotations = Object.fromEntries(Object.entries(edit.changeAnnotations)
    .map(([id, annotation]) => [id, { ...annotation, needsConfirmation: false }]));
  return { ...edit, changeAnnotations: annotations };
}
