// The `ohLsp` settings the server takes (initializationOptions and workspace/didChangeConfiguration), built from
// what the user set explicitly, so that anything left unset falls back to the server's environment and defaults.

export const SECTION = 'ohLsp';

/** The settings of the editor contract that the editor passes on (`trusted` comes from workspace trust). */
export const SERVER_SETTINGS = [
  'model',
  'baseUrl',
  'apiKeyEnv',
  'workers',
  'timeoutSeconds',
  'budgetPerTaskUsd',
  'budgetPerDayUsd',
  'qualityThreshold',
  'maxRepairIterations',
  'mutation',
  'mutationSeconds',
  'reviewEdits',
  'sandbox',
] as const;

/** Settings a workspace may not choose: only the user's own value is read (`scope: machine` in package.json). */
export const USER_ONLY_SETTINGS: readonly string[] = ['sandbox', 'apiKeyEnv'];

/** The key naming the settings whose values come from the workspace or a folder, not from the user's settings: the
 * server leaves out those a repository may not choose (a remote `baseUrl`, the user-only ones). */
export const WORKSPACE_KEYS = 'workspaceSettings';

export type ServerSettings = Record<string, unknown> & { trusted: boolean };

/** `explicit(key)` is the value the user set (any scope), or undefined; `fromWorkspace(key)` says whether that value
 * is the workspace's or a folder's. Unset keys are sent as null: "back to the default" for the server, so removing a
 * setting takes effect without a restart. */
export function buildSettings(
  explicit: (key: string) => unknown,
  trusted: boolean,
  fromWorkspace: (key: string) => boolean = () => false,
): ServerSettings {
  const settings: ServerSettings = { trusted };
  const workspace: string[] = [];
  for (const key of SERVER_SETTINGS) {
    const value = explicit(key);
    settings[key] = value === undefined || value === '' ? null : value;
    if (settings[key] !== null && fromWorkspace(key)) {
      workspace.push(key);
    }
  }
  if (workspace.length > 0) {
    settings[WORKSPACE_KEYS] = workspace;
  }
  return settings;
}

/** initializationOptions: only what is set (null means nothing there). */
export function initializationOptions(settings: ServerSettings): { ohLsp: Record<string, unknown> } {
  return { ohLsp: Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== null)) };
}
