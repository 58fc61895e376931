import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { SERVER_SETTINGS, WORKSPACE_KEYS, buildSettings, initializationOptions } from '../../src/settings';

test('only what the user set is sent; the rest is null (the server\'s default) and trust comes from VS Code', () => {
  const explicit: Record<string, unknown> = { model: 'deepseek-chat', workers: 4, budgetPerDayUsd: 1.5, baseUrl: '' };
  const settings = buildSettings((key) => explicit[key], false);
  assert.equal(settings.trusted, false);
  assert.equal(settings.model, 'deepseek-chat');
  assert.equal(settings.workers, 4);
  assert.equal(settings.budgetPerDayUsd, 1.5);
  assert.equal(settings.baseUrl, null); // an empty string is "unset"
  assert.equal(settings.qualityThreshold, null);
  assert.deepEqual(Object.keys(settings).sort(), [...SERVER_SETTINGS, 'trusted'].sort());
  assert.ok(SERVER_SETTINGS.includes('reviewEdits'), 'the review setting reaches the server too');
  assert.ok(!('apiKey' in settings)); // the key never travels as a setting
});

test('initializationOptions carry the ohLsp section without the unset keys', () => {
  const options = initializationOptions(buildSettings((key) => (key === 'qualityThreshold' ? 0.8 : undefined), true));
  assert.deepEqual(options, { ohLsp: { trusted: true, qualityThreshold: 0.8 } });
});

test('values from the workspace are named, so that the server leaves out what a repository may not choose', () => {
  const values: Record<string, unknown> = { baseUrl: 'https://evil.example/v1', model: 'm', sandbox: 'none' };
  const settings = buildSettings((key) => values[key], true, (key) => key === 'baseUrl');
  assert.deepEqual(settings[WORKSPACE_KEYS], ['baseUrl']);
  assert.equal(settings.sandbox, 'none'); // the user's own value (a user-only setting is read from there alone)
  assert.ok(!(WORKSPACE_KEYS in buildSettings((key) => values[key], true)), 'nothing from the workspace: no list');
});

test('every server setting the extension declares reaches the server', () => {
  // package.json's (this test runs bundled from dist-test/) `ohLsp.*` settings, less the extension's own (how to start the server, the trace)
  const manifest = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8'));
  const sections = Array.isArray(manifest.contributes.configuration)
    ? manifest.contributes.configuration
    : [manifest.contributes.configuration];
  const declared: string[] = sections
    .flatMap((section: { properties: Record<string, unknown> }) => Object.keys(section.properties))
    .map((key: string) => key.slice('ohLsp.'.length))
    .filter((key: string) => !key.startsWith('server.') && !key.startsWith('trace.'));
  assert.ok(declared.includes('mutationSeconds'), declared.join(', '));
  assert.deepEqual(new Set(declared), new Set<string>(SERVER_SETTINGS));
  assert.equal(declared.length, SERVER_SETTINGS.length);
});
