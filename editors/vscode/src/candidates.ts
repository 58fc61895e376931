// A rejected candidate, opened read-only: `oh-lsp://candidate/<taskId>/<attempt>/<path>`, whose text the server
// gives with the `ohLsp/candidate` request (the editor contract). Every location in a failure message points into
// such a document.
import * as vscode from 'vscode';
import { Server } from './server';

export const CANDIDATE_SCHEME = 'oh-lsp';
export const CANDIDATE_REQUEST = 'ohLsp/candidate';

export interface CandidateParams {
  taskId: string;
  attempt?: number;
  segment?: string;
}

/** `oh-lsp://candidate/<taskId>/<attempt>/<path>` -> its parts (undefined: not a candidate's URI). */
export function parseCandidateUri(uri: vscode.Uri): CandidateParams | undefined {
  if (uri.scheme !== CANDIDATE_SCHEME || uri.authority !== 'candidate') {
    return undefined;
  }
  const [taskId, attempt] = uri.path.split('/').filter((part) => part !== '');
  if (!taskId) {
    return undefined;
  }
  const number = Number(attempt);
  return { taskId, attempt: Number.isInteger(number) && number > 0 ? number : undefined };
}

export class Candidates implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly texts = new Map<string, string>();
  private readonly registration = vscode.workspace.registerTextDocumentContentProvider(CANDIDATE_SCHEME, this);

  constructor(private readonly server: Server) {}

  private async fetch(params: CandidateParams): Promise<{ uri: string; text: string }> {
    try {
      return await this.server.request<{ uri: string; text: string }>(CANDIDATE_REQUEST, params);
    } catch (error) {
      throw new Error(`the server could not give the rejected candidate of task ${params.taskId}:`
        + ` ${error instanceof Error ? error.message : String(error)}`);
    }
  }

  /** Opens the candidate read-only, as Python; returns its document. */
  async open(params: CandidateParams): Promise<vscode.TextDocument> {
    const { uri, text } = await this.fetch(params);
    this.texts.set(vscode.Uri.parse(uri).toString(), text);
    const document = await vscode.workspace.openTextDocument(vscode.Uri.parse(uri));
    const python = await vscode.languages.setTextDocumentLanguage(document, 'python');
    await vscode.window.showTextDocument(python, { preview: true });
    return python;
  }

  /** A location in a failure message points into the candidate: VS Code asks here for its text. */
  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const known = this.texts.get(uri.toString());
    if (known !== undefined) {
      return known;
    }
    const params = parseCandidateUri(uri);
    if (!params) {
      throw new Error(`${uri.toString()} is not a rejected candidate's address`);
    }
    const { text } = await this.fetch(params);
    this.texts.set(uri.toString(), text);
    return text;
  }

  dispose(): void {
    this.registration.dispose();
  }
}
