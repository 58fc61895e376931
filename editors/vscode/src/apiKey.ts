// The API key lives in VS Code's secret storage (the OS keychain on the desktop), never in settings.json.
import * as vscode from 'vscode';

const SECRET = 'ohLsp.apiKey';

export class ApiKeyStore {
  readonly onDidChange: vscode.Event<void>;

  constructor(private readonly secrets: vscode.SecretStorage) {
    const emitter = new vscode.EventEmitter<void>();
    secrets.onDidChange((event) => {
      if (event.key === SECRET) {
        emitter.fire();
      }
    });
    this.onDidChange = emitter.event;
  }

  async get(): Promise<string | undefined> {
    return (await this.secrets.get(SECRET)) || undefined;
  }

  async set(key: string): Promise<void> {
    await this.secrets.store(SECRET, key.trim());
  }

  async clear(): Promise<void> {
    await this.secrets.delete(SECRET);
  }
}
