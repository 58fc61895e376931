import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { metricsMarkdown } from '../../src/metrics';

test('the metrics page shows the totals, the per-model table, the budget and the model health', () => {
  const text = metricsMarkdown({
    system: { executions: 4, successful: 3, failed: 1, success_rate: 0.75, total_tokens: 1200, total_cost: 0.0042,
      cost_today: 0.0042, tokens_today: 1200, avg_duration_seconds: 12.34, avg_quality_score: 4.5 },
    models: { 'mistral-small': { executions: 4, successful: 3, success_rate: 0.75, total_tokens: 1200, total_cost: 0.0042 } },
    task_types: { unit_test: { executions: 4, successful: 3, success_rate: 0.75 } },
    model_state: { 'mistral-small': { breaker: 'open', cooldown_seconds_left: 20, cooldown_reason: '429 | per-minute',
      recent_failures: 3, last_error: 'HTTP 500' } },
    budget: { per_day_usd: 1, per_task_usd: null, spent_today_usd: 0.0042, left_today_usd: 0.9958 },
    session: { queued: 1, running: 2, completed: 3, failed: 1, cancelled: 0, tokens: 1200, costSession: 0.0042,
      costToday: 0.0042, successRate: 0.75, model: 'mistral-small', cooldowns: [],
      breakers: [{ model: 'mistral-small', state: 'open' }], budgetLeftToday: 0.9958 },
  }, new Date(0));
  assert.ok(text.startsWith('# oh-lsp metrics\n'));
  assert.match(text, /- Running: 2, queued: 1/);
  assert.match(text, /\*\*circuit breaker open for mistral-small/);
  assert.match(text, /- Attempts: 4 \(3 succeeded, 1 failed\)\n- Success rate: 75%/);
  assert.match(text, /- Budget: \$1\.00 a day, \$0\.9958 left today; no per-task cap/);
  assert.match(text, /\| mistral-small \| 4 \| 3 \| 75% \| 1200 \| \$0\.0042 \|/);
  assert.match(text, /## By task kind\n\n.*\n.*\n\| unit_test \|/);
  assert.match(text, /\| mistral-small \| open \| 20 s \(429 \\\| per-minute\) \| 3 \| HTTP 500 \|/);
});

test('an empty store gives a page of zeros, not an error', () => {
  const text = metricsMarkdown({});
  assert.match(text, /- Attempts: 0 \(0 succeeded, 0 failed\)/);
  assert.doesNotMatch(text, /## By model/);
});

test('the metrics page says what caching saved, as `oh-lsp metrics` does', () => {
  const text = metricsMarkdown({
    system: { executions: 3, successful: 3, total_tokens: 900, total_cost: 0.002, saved_cost: 0.0031, cached_share: 0.62,
      cache_hits: 1 },
  });
  assert.match(text, /- Saved \$0\.0031 \(62 % cached\), 1 result from cache\n/);
  assert.match(metricsMarkdown({}), /- Saved \$0\.00 \(0 % cached\)\n/);
});
