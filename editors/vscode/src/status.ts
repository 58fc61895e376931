// The status bar's text and look, from the server's `ohLsp/status` notification. No VS Code imports here, so that
// the unit tests can run it under plain Node.

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
  successRate: number;
  model: string | null;
  cooldowns: { model: string; secondsLeft: number }[];
  breakers: { model: string; state: 'closed' | 'open' | 'half_open' }[];
  budgetLeftToday: number | null;
}

export interface StatusView {
  text: string;
  /** Markdown shown on hover. */
  tooltip: string;
  /** Shown with the theme's error colours: a breaker is open or the daily budget is spent. */
  error: boolean;
}

/** `$0.0012`, `$0.25`, `$12.40`: enough digits that a few cents of test runs don't show as zero. */
export function formatCost(usd: number): string {
  if (!Number.isFinite(usd) || usd <= 0) {
    return '$0.00';
  }
  if (usd >= 1) {
    return `$${usd.toFixed(2)}`;
  }
  return `$${usd.toFixed(4).replace(/(\.\d\d)(\d*?)0+$/, '$1$2')}`;
}

export function formatRate(rate: number): string {
  return `${Math.round(Math.max(0, Math.min(1, rate || 0)) * 100)}%`;
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

export function renderStatus(status: OhLspStatus): StatusView {
  const trouble = problems(status);
  const busy = status.running > 0 || status.queued > 0;
  const icon = trouble.length > 0 ? '$(error)' : busy ? '$(sync~spin)' : '$(beaker)';
  const text = `${icon} oh-lsp ${status.running} running, ${status.queued} queued · ${formatCost(status.costToday)}`
    + ` today · ${formatRate(status.successRate)} ok`;
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
      + `. Success rate: ${formatRate(status.successRate)}.`,
    '',
    `Model: ${status.model ?? 'chosen per task'}`,
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
