import { strict as assert } from 'node:assert';
import { test } from 'node:test';
import type { WorkspaceEdit } from 'vscode-languageserver-protocol';
import { createdFiles, needsConfirmation, touchedFiles, withoutConfirmation } from '../../src/edits';
import { TaskOutcome, detailsMarkdown, outcomeActions, outcomeMessage } from '../../src/outcome';

const completed: TaskOutcome = {
  taskId: 'abc', kind: 'unit_test', status: 'completed', target: 'pkg/calc.py', outputFile: 'tests/pkg/test_calc.py',
  outputUri: 'file:///p/tests/pkg/test_calc.py', written: true, delivery: 'applied in the editor', score: 0.92,
  testsKept: ['test_add', 'test_divide'], testsDropped: [{ name: 'test_flaky', reason: 'flaky: failed 1 of 3 runs' }],
  coverage: { before: 40, after: 95.4 }, cost: 0.0015, model: 'deepseek-chat',
};

test('a completed task: what was kept where, the score, coverage before → after, the cost; Open tests first', () => {
  assert.deepEqual(outcomeMessage(completed), { level: 'info',
    text: 'oh-lsp: 2 tests kept in tests/pkg/test_calc.py, 1 dropped (score 0.92, coverage 40% → 95%, $0.0015).' });
  assert.deepEqual(outcomeActions(completed), ['Open tests', 'Show details']);
  assert.deepEqual(outcomeActions({ ...completed, kind: 'documentation' }), ['Open file', 'Show details']);
  const notApplied = { ...completed, written: false, delivery: 'not applied: the editor did not apply the edit' };
  assert.equal(outcomeMessage(notApplied).level, 'warning');
  assert.deepEqual(outcomeActions(notApplied), ['Show details']);
});

test('a failed task offers its details and its rejected candidate', () => {
  const failed: TaskOutcome = { taskId: 'f', kind: 'unit_test', status: 'failed', target: 'pkg/other.py',
    error: 'no generated test was kept', cost: 0.0004, candidate: { attempt: 1 } };
  assert.deepEqual(outcomeMessage(failed), { level: 'warning',
    text: 'oh-lsp: nothing delivered for pkg/other.py: no generated test was kept ($0.0004).' });
  assert.deepEqual(outcomeActions(failed), ['Show details', 'Open candidate']);
  assert.deepEqual(outcomeActions({ ...failed, status: 'cancelled' }), []);
});

test('the details page lists the tests kept and dropped with the reason', () => {
  const page = detailsMarkdown(completed);
  assert.match(page, /^# oh-lsp: unit_test for pkg\/calc\.py\n/);
  assert.match(page, /- Score: 0\.92/);
  assert.match(page, /- Line coverage of the target: 40% → 95%/);
  assert.match(page, /- Cost: \$0\.0015 \(deepseek-chat\)/);
  assert.match(page, /## Tests kept \(2\)\n\n- `test_add`\n- `test_divide`/);
  assert.match(page, /\| `test_flaky` \| flaky: failed 1 of 3 runs \|/);
  assert.doesNotMatch(page, /Mutants/);
  assert.match(detailsMarkdown({ ...completed, mutation: { before: 40, after: 62.5 } }),
    /- Line coverage of the target: 40% → 95%\n- Mutants of the target detected: 40% → 63%\n/);
  assert.match(detailsMarkdown({ ...completed, mutation: { before: null, after: 80 } }),
    /- Mutants of the target detected: 80%\n/);
});

test('an edit: the files it creates, whether it asks for review, and the same edit without the review', () => {
  const edit: WorkspaceEdit = {
    documentChanges: [
      { kind: 'create', uri: 'file:///p/tests/__init__.py', annotationId: 'r' },
      { kind: 'create', uri: 'file:///p/tests/test_m.py', annotationId: 'r' },
      { textDocument: { uri: 'file:///p/tests/test_m.py', version: null },
        edits: [{ range: { start: { line: 0, character: 0 }, end: { line: 0, character: 0 } }, newText: 'x', annotationId: 'r' }] },
    ],
    changeAnnotations: { r: { label: 'oh-lsp', needsConfirmation: true } },
  };
  assert.deepEqual(createdFiles(edit), ['file:///p/tests/__init__.py', 'file:///p/tests/test_m.py']);
  assert.deepEqual(touchedFiles(edit), ['file:///p/tests/__init__.py', 'file:///p/tests/test_m.py']);
  assert.deepEqual(touchedFiles({ changes: { 'file:///p/m.py': [] } }), ['file:///p/m.py']);
  assert.equal(needsConfirmation(edit), true);
  const direct = withoutConfirmation(edit);
  assert.equal(needsConfirmation(direct), false);
  assert.equal(direct.documentChanges, edit.documentChanges);
  assert.equal(edit.changeAnnotations!.r.needsConfirmation, true, 'the original is left alone');
  assert.equal(needsConfirmation({ changes: {} }), false);
});
