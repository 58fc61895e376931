import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import { formatCost, shortText } from '../../src/format';
import { OhLspStatus, problems, renderStatus } from '../../src/status';

const idle: OhLspStatus = {
  queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0, tokens: 0, costSession: 0, costToday: 0,
  successRate: null, model: null, modelSelected: null, cooldowns: [], breakers: [], budgetLeftToday: null,
};

test('the text shows the tasks, the cost today, and the success rate once something finished', () => {
  const view = renderStatus({ ...idle, running: 1, queued: 2, completed: 3, costToday: 0.01234, successRate: 0.916 });
  assert.equal(view.text, '$(sync~spin) oh-lsp 1 running, 2 queued · $0.0123 today · 92% ok');
  assert.equal(view.error, false);
  assert.equal(renderStatus(idle).text, '$(beaker) oh-lsp idle · $0.00 today', 'no rate before anything finished');
  assert.match(renderStatus(idle).tooltip, /No task has finished yet\./);
  // an older server sends 0 for "nothing yet": still no rate
  assert.equal(renderStatus({ ...idle, successRate: 0 }).text, '$(beaker) oh-lsp idle · $0.00 today');
  assert.equal(renderStatus({ ...idle, failed: 1, successRate: 0 }).text, '$(beaker) oh-lsp idle · $0.00 today · 0% ok');
});

test('money and percentages look the same as in Neovim', () => {
  assert.equal(formatCost(0), '$0.00');
  assert.equal(formatCost(0.0015), '$0.0015');
  assert.equal(formatCost(0.00123), '$0.0012');
  assert.equal(formatCost(0.00004), '<$0.0001', 'a real cost never shows as zero');
  assert.equal(formatCost(0.25), '$0.25');
  assert.equal(formatCost(0.125), '$0.125');
  assert.equal(formatCost(12.4), '$12.40');
  assert.equal(formatCost(Number.NaN), '$0.00');
  assert.equal(formatCost(null), '$0.00');
});

test('progress text is cut to 60 characters on a word, on one line', () => {
  const long = 'model fake/model (fake/model: the only model that meets the requirements for unit_test/moderate)';
  const short = shortText(long);
  assert.ok(short.length <= 60, short);
  assert.equal(short, 'model fake/model (fake/model: the only model that meets the…');
  assert.equal(shortText('streaming 1.2k tokens'), 'streaming 1.2k tokens');
  assert.equal(shortText('validating\n2/3'), 'validating 2/3');
  assert.equal(shortText('x'.repeat(80)).length, 60, 'no word boundary: cut at 59 characters and …');
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

test('the tooltip names the model used last, the model for new tasks, the session counts and the cooldowns', () => {
  const view = renderStatus({ ...idle, completed: 3, failed: 1, tokens: 420, costSession: 0.002, successRate: 0.75,
    model: 'deepseek-chat', modelSelected: null, cooldowns: [{ model: 'mistral-small', secondsLeft: 12.2 }] });
  assert.match(view.tooltip, /3 completed, 1 failed, 0 cancelled, 420 tokens, \$0\.002/);
  assert.match(view.tooltip, /Last model used: deepseek-chat/);
  assert.match(view.tooltip, /Model for new tasks: chosen per task/);
  assert.match(view.tooltip, /mistral-small cools down for 13 s/);
  assert.match(renderStatus(idle).tooltip, /Last model used: none yet/);
  assert.match(renderStatus({ ...idle, modelSelected: 'qwen' }).tooltip, /Model for new tasks: qwen/);
});
