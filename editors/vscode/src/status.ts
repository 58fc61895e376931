// The status bar's text and look, from the server's `ohLsp/status` notification. No VS Code imports here, so that
// the unit tests can run it under plain Node.
import { formatCost, formatRate } from './format';

export { formatCost, formatRate };

/** The `ohLsp/status` notification (see the editor contract). */
export interface OhLspStatus {
  queued: number;
  running: number;
  completed: number;
  failed: number;
  cancelled: number;
  tokens: number;
  costSession: number;
  costToday: number;
  /** The share of attempts that succeeded; null until one has ended (older servers send 0). */
  successRate: number | null;
  /** The model that answered the last call of this session; null until one did. */
  model: string | null;
  /** The model new tasks start with (a setting, "Select Model…" or OPENHANDS_MODEL); null: chosen per task. */
  modelSelected?: string | null;
  cooldowns: { model: string; secondsLeft: number }[];
  breakers: { model: string; state: 'closed' | 'open' | 'half_open' }[];
  budgetLeftToday: number | null;
  /** What caching saved (newer servers): USD, the share of prompt tokens cached, results from the result cache. */
  savings?: { saved: number; cachedShare: number; fromCache: number; text: string };
}

export interface StatusView {
  text: string;
  /** Markdown shown on hover. */
  tooltip: string;
  /** Shown with the theme's error colours: a breaker is open or the daily budget is spent. */
  error: boolean;
}

/** Why the status shows an error, one line each (empty when all is well). */
export function problems(status: OhLspStatus): string[] {
  const found: string[] = [];
  const open = (status.breakers ?? []).filter((b) => b.state === 'open').map((b) => b.model);
  if (open.length > 0) {
    found.push(`circuit breaker open for ${open.join(', ')}: oh-lsp is not sending it requests for now`);
  }
  if (status.budgetLeftToday === 0) {
    found.push('the daily budget is spent: no model call is made until midnight (ohLsp.budgetPerDayUsd)');
  }
  return found;
}

/** Whether a success rate means something yet: something has finished (in this session or in the store). */
export function hasRate(status: OhLspStatus): boolean {
  if (status.successRate === null || status.successRate === undefined) {
    return false;
  }
  return status.successRate > 0 || status.completed + status.failed > 0;
}

export function renderStatus(status: OhLspStatus): StatusView {
  const trouble = problems(status);
  const busy = status.running > 0 || status.queued > 0;
  const icon = trouble.length > 0 ? '$(error)' : busy ? '$(sync~spin)' : '$(beaker)';
  const tasks = busy ? `${status.running} running, ${status.queued} queued` : 'idle';
  const text = `${icon} oh-lsp ${tasks} · ${formatCost(status.costToday)} today`
    + (hasRate(status) ? ` · ${formatRate(status.successRate!)} ok` : '');
  const lines = [
    '**oh-lsp**',
    '',
    `Running ${status.running}, queued ${status.queued}; this session: ${status.completed} completed,`
      + ` ${status.failed} failed, ${status.cancelled} cancelled, ${status.tokens} tokens,`
      + ` ${formatCost(status.costSession)}.`,
    '',
    `Today: ${formatCost(status.costToday)}`
      + (status.budgetLeftToday === null || status.budgetLeftToday === undefined
        ? ' (no daily budget)' : `, ${formatCost(status.budgetLeftToday)} left of the daily budget`)
      + (hasRate(status) ? `. Success rate: ${formatRate(status.successRate!)}.` : '. No task has finished yet.'),
    '',
    `Last model used: ${status.model ?? 'none yet'}`,
    '',
    `Model for new tasks: ${status.modelSelected ?? 'chosen per task'}`,
  ];
  for (const cooldown of status.cooldowns ?? []) {
    lines.push('', `${cooldown.model} cools down for ${Math.ceil(cooldown.secondsLeft)} s`);
  }
  for (const problem of trouble) {
    lines.push('', `$(error) ${problem}`);
  }
  lines.push('', 'Click for the metrics.');
  return { text, tooltip: lines.join('\n'), error: trouble.length > 0 };
}

/** The status before the server has said anything, and when it is not running. */
export const STARTING: StatusView = { text: '$(sync~spin) oh-lsp', tooltip: 'oh-lsp is starting…', error: false };

export function stoppedView(reason: string): StatusView {
  return { text: '$(error) oh-lsp stopped', tooltip: `oh-lsp is not running: ${reason}\n\nClick for the logs.`, error: true };
}
