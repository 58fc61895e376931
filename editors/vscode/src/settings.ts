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
  'reviewEdits',
] as const;

export type ServerSettings = Record<string, unknown> & { trusted: boolean };

/** `explicit(key)` is the value the user set (any scope), or undefined. Unset keys are sent as null: "back to the
 * default" for the server, so removing a setting takes effect without a restart. */
export function buildSettings(explicit: (key: string) => unknown, trusted: boolean): ServerSettings {
  const settings: ServerSettings = { trusted };
  for (const key of SERVER_SETTINGS) {
    const value = explicit(key);
    settings[key] = value === undefined || value === '' ? null : value;
  }
  return settings;
}

/** initializationOptions: only what is set (null means nothing there). */
export function initializationOptions(settings: ServerSettings): { ohLsp: Record<string, unknown> } {
  return { ohLsp: Object.fromEntries(Object.entries(settings).filter(([, value]) => value !== null)) };
}
