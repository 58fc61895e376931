// The end of a task started from this editor: the message, its buttons, and the details page, from the server's
// `ohLsp/taskEnded` notification. No VS Code imports: the unit tests run it under plain Node.
import { formatCost, shortText } from './format';

/** `ohLsp/taskEnded`: sent by the server when a task of this editor ends, just before its progress ends. */
export interface TaskOutcome {
  taskId: string;
  progressToken?: string;
  /** `unit_test`, `documentation` or `refactoring`. */
  kind: string;
  status: 'completed' | 'failed' | 'cancelled';
  /** The target, relative to its workspace folder. */
  target?: string | null;
  /** Where the result went (the test module), relative, and as a URI. */
  outputFile?: string | null;
  outputUri?: string | null;
  /** Whether the edit landed (applied in the editor or written to disk). */
  written?: boolean;
  /** How it was delivered, or why not ("applied in the editor", "not applied: …"). */
  delivery?: string | null;
  /** The validation score, 0–1. */
  score?: number | null;
  testsKept?: string[];
  testsDropped?: { name: string; reason: string }[];
  /** Line coverage of the target, in percent, before and after the kept tests. */
  coverage?: { before: number; after: number } | null;
  /** The share of the target's mutants the tests detect, in percent, before (null: not measured) and after. */
  mutation?: { before: number | null; after: number } | null;
  cost?: number;
  model?: string | null;
  /** Why it failed (failed tasks). */
  error?: string | null;
  /** The rejected candidate (failed tasks), for `ohLsp/candidate`. */
  candidate?: { attempt?: number; uri?: string } | null;
  /** The same text as the progress's end. */
  message?: string;
}

export const OPEN_TESTS = 'Open tests';
export const OPEN_FILE = 'Open file';
export const SHOW_DETAILS = 'Show details';
export const OPEN_CANDIDATE = 'Open candidate';

function plural(count: number, one: string, many: string = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

function coverageText(coverage: TaskOutcome['coverage']): string | undefined {
  return coverage ? `coverage ${Math.round(coverage.before)}% → ${Math.round(coverage.after)}%` : undefined;
}

/** The message shown when the task ends: what happened, in one sentence, and the level to show it at. */
export function outcomeMessage(outcome: TaskOutcome): { level: 'info' | 'warning' | 'error'; text: string } {
  const target = outcome.target ?? 'the file';
  const facts = [
    outcome.score !== null && outcome.score !== undefined ? `score ${outcome.score.toFixed(2)}` : undefined,
    coverageText(outcome.coverage),
    formatCost(outcome.cost),
  ].filter(Boolean).join(', ');
  if (outcome.status === 'completed') {
    const what = outcome.kind === 'unit_test'
      ? `${plural(outcome.testsKept?.length ?? 0, 'test')} kept in ${outcome.outputFile ?? 'the test module'}`
        + ((outcome.testsDropped?.length ?? 0) > 0 ? `, ${outcome.testsDropped!.length} dropped` : '')
      : `${outcome.kind === 'documentation' ? 'documented' : 'refactored'} ${target}`;
    if (outcome.written === false) {
      return { level: 'warning', text: `oh-lsp: ${what}, but ${shortText(outcome.delivery ?? 'not applied', 160)} (${facts}).` };
    }
    return { level: 'info', text: `oh-lsp: ${what} (${facts}).` };
  }
  if (outcome.status === 'failed') {
    return { level: 'warning', text: `oh-lsp: nothing delivered for ${target}: ${shortText(outcome.error ?? 'failed', 160)} (${facts}).` };
  }
  return { level: 'info', text: `oh-lsp: the task for ${target} was cancelled.` };
}

/** The message's buttons. */
export function outcomeActions(outcome: TaskOutcome): string[] {
  const actions: string[] = [];
  if (outcome.status === 'completed' && outcome.outputUri && outcome.written !== false) {
    actions.push(outcome.kind === 'unit_test' ? OPEN_TESTS : OPEN_FILE);
  }
  if (outcome.status !== 'cancelled') {
    actions.push(SHOW_DETAILS);
  }
  if (outcome.status === 'failed' && outcome.candidate) {
    actions.push(OPEN_CANDIDATE);
  }
  return actions;
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

/** "Show details": a Markdown page with the score, the tests kept and dropped, coverage before → after, the cost. */
export function detailsMarkdown(outcome: TaskOutcome): string {
  const lines = [`# oh-lsp: ${outcome.kind} for ${outcome.target ?? 'the file'}`, '',
    `- Status: ${outcome.status}${outcome.delivery ? ` (${outcome.delivery})` : ''}`];
  if (outcome.outputFile) {
    lines.push(`- Result: ${outcome.outputFile}`);
  }
  if (outcome.score !== null && outcome.score !== undefined) {
    lines.push(`- Score: ${outcome.score.toFixed(2)} (0–1: what the delivered result is worth)`);
  }
  const coverage = coverageText(outcome.coverage);
  if (coverage) {
    lines.push(`- Line coverage of the target: ${coverage.replace('coverage ', '')}`);
  }
  const mutation = outcome.mutation;
  if (mutation && typeof mutation.after === 'number') {
    const before = typeof mutation.before === 'number' ? `${Math.round(mutation.before)}% → ` : '';
    lines.push(`- Mutants of the target detected: ${before}${Math.round(mutation.after)}%`);
  }
  lines.push(`- Cost: ${formatCost(outcome.cost)}${outcome.model ? ` (${outcome.model})` : ''}`);
  if (outcome.error) {
    lines.push(`- Why it failed: ${outcome.error}`);
  }
  const kept = outcome.testsKept ?? [];
  const dropped = outcome.testsDropped ?? [];
  if (kept.length > 0) {
    lines.push('', `## Tests kept (${kept.length})`, '', ...kept.map((name) => `- \`${name}\``));
  }
  if (dropped.length > 0) {
    lines.push('', `## Tests dropped (${dropped.length})`, '', '| test | why |', '|---|---|',
      ...dropped.map((test) => `| \`${cell(test.name)}\` | ${cell(test.reason)} |`));
  }
  return lines.join('\n') + '\n';
}
