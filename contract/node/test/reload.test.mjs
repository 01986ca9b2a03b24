// GetModelStatus and Reload: all workers switch together, a broken version switches none.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, test } from 'node:test';

import { closeAll, contract, recommender, rejectsWith, status, unary } from '../lib/client.mjs';

const { main } = contract();
const { versions } = main;
const client = recommender(main.address);
const workers = main.worker_addresses.map((address) => recommender(address));
after(closeAll);

async function servedVersions() {
  const out = [];
  for (const worker of workers) out.push((await unary(worker, 'GetModelStatus', {})).version);
  return out;
}

const stateOf = (s, version) => s.versions.find((v) => v.version === version)?.state;

test('GetModelStatus describes the served version with typed fields', async () => {
  const s = await unary(client, 'GetModelStatus', {});
  assert.equal(s.model, main.model);
  assert.equal(s.version, versions.first);
  assert.equal(s.state, 'MODEL_STATE_AVAILABLE');
  assert.equal(typeof s.user_count, 'number', 'uint64 as Number');
  assert.ok(s.user_count > 0 && s.item_count > 0 && s.factors > 0);
  assert.ok(s.algorithm.length > 0);
  assert.ok(s.loaded_at > 1_600_000_000 && s.load_seconds >= 0);
  assert.ok(path.isAbsolute(s.path), `path is absolute: ${s.path}`);
  assert.ok(s.path.endsWith(path.join(main.model, String(versions.first))), s.path);
  assert.equal(s.has_item_metadata, true);
  assert.deepEqual(s.metrics, {}, 'this version was published without evaluation');
  assert.equal(stateOf(s, versions.first), 'MODEL_STATE_AVAILABLE');
});

test('Reload switches every worker and answers with the new version', async () => {
  const r = await unary(client, 'Reload', { version: String(versions.good) }, { timeoutMs: 120_000 });
  assert.deepEqual([r.model, r.old_version, r.new_version, r.workers],
    [main.model, versions.first, versions.good, main.worker_addresses.length]);
  assert.ok(r.load_seconds >= 0);
  assert.deepEqual(await servedVersions(), main.worker_addresses.map(() => versions.good));
  assert.deepEqual((await unary(client, 'GetModelStatus', {})).metrics, main.metrics);
  for (const worker of workers) {
    assert.equal((await unary(worker, 'Recommend', { user_id: 'u0000001', n: 3 })).version, versions.good);
  }
});

test('a version whose checksum fails: FAILED_PRECONDITION naming the file; none switches', async () => {
  await assert.rejects(unary(client, 'Reload', { version: String(versions.broken) }, { timeoutMs: 120_000 }),
    (err) => {
      assert.equal(err.code, status.FAILED_PRECONDITION, err.details);
      assert.ok(err.details.startsWith('version: '), err.details);
      assert.ok(err.details.includes(main.broken_file), err.details);
      return true;
    });
  assert.deepEqual(await servedVersions(), main.worker_addresses.map(() => versions.good));
});

test('a version that fails when opened: FAILED on every worker, with its error', async () => {
  await rejectsWith(unary(client, 'Reload', { version: String(versions.poisoned) }, { timeoutMs: 120_000 }),
    status.FAILED_PRECONDITION, 'version');
  assert.deepEqual(await servedVersions(), main.worker_addresses.map(() => versions.good));
  for (const worker of workers) {
    const s = await unary(worker, 'GetModelStatus', {});
    const failed = s.versions.find((v) => v.version === versions.poisoned);
    assert.equal(failed?.state, 'MODEL_STATE_FAILED', JSON.stringify(s.versions));
    assert.ok(failed.error.length > 0);
    assert.equal(stateOf(s, versions.good), 'MODEL_STATE_AVAILABLE');
  }
});

test('Reload: missing version NOT_FOUND, malformed INVALID_ARGUMENT, both naming version', async () => {
  await rejectsWith(unary(client, 'Reload', { version: '999' }), status.NOT_FOUND, 'version');
  for (const version of ['abc', '-1', '1.5', '²']) {
    await rejectsWith(unary(client, 'Reload', { version }), status.INVALID_ARGUMENT, 'version');
  }
});

test('Reload back to the first version', async () => {
  const r = await unary(client, 'Reload', { version: String(versions.first) }, { timeoutMs: 120_000 });
  assert.deepEqual([r.old_version, r.new_version], [versions.good, versions.first]);
  assert.deepEqual(await servedVersions(), main.worker_addresses.map(() => versions.first));
});
