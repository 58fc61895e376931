import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { OhLspStatus, formatCost, problems, renderStatus } from '../../src/status';

const idle: OhLspStatus = {
  queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0, tokens: 0, costSession: 0, costToday: 0,
  successRate: 0, model: null, cooldowns: [], breakers: [], budgetLeftToday: null,
};

test('the text shows running and queued tasks, the cost today and the success rate', () => {
  const view = renderStatus({ ...idle, running: 1, queued: 2, costToday: 0.01234, successRate: 0.916 });
  assert.equal(view.text, '$(sync~spin) oh-lsp 1 running, 2 queued · $0.0123 today · 92% ok');
  assert.equal(view.error, false);
  assert.equal(renderStatus(idle).text, '$(beaker) oh-lsp 0 running, 0 queued · $0.00 today · 0% ok');
});

test('costs keep enough digits for cents and fractions of cents', () => {
  assert.equal(formatCost(0), '$0.00');
  assert.equal(formatCost(0.00123), '$0.0012');
  assert.equal(formatCost(0.25), '$0.25');
  assert.equal(formatCost(0.125), '$0.125');
  assert.equal(formatCost(12.4), '$12.40');
  assert.equal(formatCost(Number.NaN), '$0.00');
});

test('an open breaker or a spent daily budget turns the item to the error look, and the tooltip says why', () => {
  const open = renderStatus({ ...idle, breakers: [{ model: 'mistral-small', state: 'open' }] });
  assert.equal(open.error, true);
  assert.ok(open.text.startsWith('$(error) oh-lsp'));
  assert.match(open.tooltip, /circuit breaker open for mistral-small/);

  const spent = renderStatus({ ...idle, budgetLeftToday: 0 });
  assert.equal(spent.error, true);
  assert.match(spent.tooltip, /daily budget is spent/);

  assert.deepEqual(problems({ ...idle, breakers: [{ model: 'm', state: 'half_open' }], budgetLeftToday: 0.5 }), []);
  assert.equal(renderStatus({ ...idle, budgetLeftToday: 0.5 }).error, false);
});

test('the tooltip names the model, the session counts and the cooldowns', () => {
  const view = renderStatus({ ...idle, completed: 3, failed: 1, tokens: 420, costSession: 0.002, model: 'deepseek-chat',
    cooldowns: [{ model: 'mistral-small', secondsLeft: 12.2 }] });
  assert.match(view.tooltip, /3 completed, 1 failed, 0 cancelled, 420 tokens, \$0\.002/);
  assert.match(view.tooltip, /Model: deepseek-chat/);
  assert.match(view.tooltip, /mistral-small cools down for 13 s/);
});
