// `ohLsp.showMetrics`'s answer as a Markdown page. No VS Code imports: the unit tests run it under plain Node.
import { formatCost, formatRate } from './format';
import { OhLspStatus, problems } from './status';

interface Aggregate {
  executions?: number;
  successful?: number;
  failed?: number;
  success_rate?: number;
  total_tokens?: number;
  total_cost?: number;
  avg_duration_seconds?: number;
  avg_quality_score?: number;
  cost_today?: number;
  tokens_today?: number;
  /** What the providers' prompt caches and the result cache saved (USD). */
  saved_cost?: number;
  /** The share of prompt tokens read from a provider's prompt cache (0-1). */
  cached_share?: number;
  /** Results served from the result cache (no model call). */
  cache_hits?: number;
}

interface ModelState {
  cooldown_seconds_left?: number;
  cooldown_reason?: string | null;
  breaker?: string;
  recent_failures?: number;
  last_error?: string | null;
}

export interface MetricsSummary {
  system?: Aggregate;
  models?: Record<string, Aggregate>;
  task_types?: Record<string, Aggregate>;
  model_state?: Record<string, ModelState>;
  budget?: { per_task_usd?: number | null; per_day_usd?: number | null; spent_today_usd?: number;
    left_today_usd?: number | null };
  rotations?: number;
  session?: OhLspStatus;
  folders?: Record<string, unknown>;
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

function table(title: string, rows: Record<string, Aggregate> | undefined): string[] {
  const names = Object.keys(rows ?? {});
  if (names.length === 0) {
    return [];
  }
  const lines = ['', `## ${title}`, '', '| | attempts | ok | success | tokens | cost | avg time | avg quality |',
    '|---|---:|---:|---:|---:|---:|---:|---:|'];
  for (const name of names) {
    const row = rows![name];
    lines.push(`| ${cell(name)} | ${row.executions ?? 0} | ${row.successful ?? 0} | ${formatRate(row.success_rate ?? 0)}`
      + ` | ${row.total_tokens ?? 0} | ${formatCost(row.total_cost ?? 0)}`
      + ` | ${(row.avg_duration_seconds ?? 0).toFixed(1)} s | ${(row.avg_quality_score ?? 0).toFixed(1)}/5 |`);
  }
  return lines;
}

/** "saved $x (y % cached)", as `oh-lsp metrics` says it (oh_lsp/progress_text.py). */
export function savingsText(system: Aggregate): string {
  const hits = system.cache_hits ?? 0;
  return `Saved ${formatCost(system.saved_cost ?? 0)} (${Math.round(100 * (system.cached_share ?? 0))} % cached)`
    + (hits > 0 ? `, ${hits} result${hits === 1 ? '' : 's'} from cache` : '');
}

export function metricsMarkdown(summary: MetricsSummary, when: Date = new Date()): string {
  const system = summary.system ?? {};
  const lines = ['# oh-lsp metrics', '', `As of ${when.toLocaleString()}.`, ''];
  const session = summary.session;
  if (session) {
    lines.push('## Now', '',
      `- Running: ${session.running}, queued: ${session.queued}`,
      `- This session: ${session.completed} completed, ${session.failed} failed, ${session.cancelled} cancelled,`
        + ` ${session.tokens} tokens, ${formatCost(session.costSession)}`,
      `- Last model used: ${session.model ?? 'none yet'}; for new tasks: ${session.modelSelected ?? 'chosen per task'}`);
    for (const problem of problems(session)) {
      lines.push(`- **${problem}**`);
    }
    lines.push('');
  }
  lines.push('## All tasks of this project', '',
    `- Attempts: ${system.executions ?? 0} (${system.successful ?? 0} succeeded, ${system.failed ?? 0} failed)`,
    `- Success rate: ${formatRate(system.success_rate ?? 0)}`,
    `- Tokens: ${system.total_tokens ?? 0}; cost: ${formatCost(system.total_cost ?? 0)}`,
    `- ${savingsText(system)}`,
    `- Today: ${formatCost(system.cost_today ?? 0)}, ${system.tokens_today ?? 0} tokens`,
    `- Average time per attempt: ${(system.avg_duration_seconds ?? 0).toFixed(1)} s;`
      + ` average quality: ${(system.avg_quality_score ?? 0).toFixed(1)}/5`);
  const budget = summary.budget;
  if (budget) {
    const perDay = budget.per_day_usd;
    const perTask = budget.per_task_usd;
    lines.push(`- Budget: ${perDay === null || perDay === undefined ? 'no daily cap' : `${formatCost(perDay)} a day,`
      + ` ${formatCost(budget.left_today_usd ?? 0)} left today`}; `
      + `${perTask === null || perTask === undefined ? 'no per-task cap' : `${formatCost(perTask)} per task`}`);
  }
  lines.push(...table('By model', summary.models), ...table('By task kind', summary.task_types));
  const states = Object.entries(summary.model_state ?? {});
  if (states.length > 0) {
    lines.push('', '## Model health', '', '| model | breaker | cooldown | recent failures | last error |',
      '|---|---|---|---:|---|');
    for (const [name, state] of states) {
      const cooldown = (state.cooldown_seconds_left ?? 0) > 0
        ? `${Math.ceil(state.cooldown_seconds_left!)} s${state.cooldown_reason ? ` (${state.cooldown_reason})` : ''}`
        : '—';
      lines.push(`| ${cell(name)} | ${state.breaker ?? 'closed'} | ${cell(cooldown)} | ${state.recent_failures ?? 0}`
        + ` | ${cell(state.last_error ?? '—')} |`);
    }
  }
  if (summary.folders) {
    lines.push('', `Added up over ${Object.keys(summary.folders).length} workspace folders.`);
  }
  return lines.join('\n') + '\n';
}
