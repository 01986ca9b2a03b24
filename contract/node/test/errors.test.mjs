// docs/api.md's status table, row by row, from a Node client: the code, and a message
// that starts with the offending field. (Auth, FAILED_PRECONDITION on metadata, the
// concurrency limit and shutdown are in guarded.test.mjs; Reload's in reload.test.mjs;
// deadlines and cancellation in batch.test.mjs.)
import { after, test } from 'node:test';
import assert from 'node:assert/strict';

import { closeAll, contract, recommender, rejectsWith, status, unary } from '../lib/client.mjs';

const { main } = contract();
const { limits } = main;
const client = recommender(main.address);
after(closeAll);

const USER = 'u0000004';
const ITEM = 'i0000004';
const many = (count, prefix) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

test('INVALID_ARGUMENT: ids, n and offset out of range', async () => {
  const cases = [
    ['Recommend', { user_id: '', n: 5 }, 'user_id'],
    ['Recommend', { user_id: 'é'.repeat(257), n: 5 }, 'user_id'], // 514 bytes, 257 characters
    ['Recommend', { user_id: USER, n: 0 }, 'n'],
    ['Recommend', { user_id: USER, n: limits.max_n + 1 }, 'n'],
    ['Recommend', { user_id: USER, n: 5, offset: -1 }, 'offset'],
    ['Recommend', { user_id: USER, n: 5, offset: limits.max_offset + 1 }, 'offset'],
    ['Similar', { item_id: '', n: 5 }, 'item_id'],
    ['Similar', { item_id: 'x'.repeat(513), n: 5 }, 'item_id'],
    ['Similar', { item_id: ITEM, n: -3 }, 'n'],
    ['Similar', { item_id: ITEM, n: 5, offset: limits.max_offset + 1 }, 'offset'],
  ];
  for (const [method, request, field] of cases) {
    await rejectsWith(unary(client, method, request), status.INVALID_ARGUMENT, field);
  }
  // The limits themselves are allowed.
  const edge = await unary(client, 'Recommend',
    { user_id: 'x'.repeat(512), n: limits.max_n, offset: limits.max_offset });
  assert.equal(edge.source, 'SOURCE_POPULAR');
});

test('NOT_FOUND: another model, an unknown item, an unknown user without fallback', async () => {
  const cases = [
    ['Recommend', { model: 'other', user_id: USER, n: 5 }, 'model'],
    ['Similar', { model: 'other', item_id: ITEM, n: 5 }, 'model'],
    ['GetModelStatus', { model: 'other' }, 'model'],
    ['Reload', { model: 'other', version: '1' }, 'model'],
    ['Similar', { item_id: 'no-such-item', n: 5 }, 'item_id'],
    ['Recommend', { user_id: 'no-such-user', n: 5, disable_fallback: true }, 'user_id'],
  ];
  for (const [method, request, field] of cases) {
    await rejectsWith(unary(client, method, request), status.NOT_FOUND, field);
  }
});

test('RESOURCE_EXHAUSTED: id lists over --max-ids, messages over --max-message-bytes', async () => {
  const over = limits.max_ids + 1;
  const cases = [
    ['Recommend', { user_id: USER, n: 5, filter: { exclude_item_ids: many(over, 'i') } }, 'filter.exclude_item_ids'],
    ['Recommend', { user_id: USER, n: 5, filter: { candidate_item_ids: many(over, 'i') } },
      'filter.candidate_item_ids'],
    ['Recommend', { user_id: USER, n: 5, recent_item_ids: many(over, 'i') }, 'recent_item_ids'],
    ['Similar', { item_id: ITEM, n: 5, filter: { candidate_item_ids: many(over, 'i') } },
      'filter.candidate_item_ids'],
  ];
  for (const [method, request, field] of cases) {
    await rejectsWith(unary(client, method, request), status.RESOURCE_EXHAUSTED, field);
  }
  // Refused by gRPC itself before any field is read: no field to name.
  const huge = { user_id: USER, n: 5, filter: { exclude_item_ids: ['x'.repeat(limits.max_message_bytes)] } };
  await rejectsWith(unary(client, 'Recommend', huge), status.RESOURCE_EXHAUSTED);
});

test('after all of that every worker still answers', async () => {
  for (const address of main.worker_addresses) {
    const worker = recommender(address);
    const r = await unary(worker, 'Recommend', { user_id: USER, n: 3 });
    assert.equal(r.items.length, 3);
  }
});
