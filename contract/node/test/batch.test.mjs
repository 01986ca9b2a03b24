// BatchRecommend as a Node stream: one response per user in request order, per-user errors
// inside a stream that succeeds, results equal to Recommend's, cancellation and deadlines.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import {
  closeAll, collect, contract, recommender, rejectsWith, status, stream, unary,
} from '../lib/client.mjs';

const { main } = contract();
const client = recommender(main.address);
after(closeAll);

const userId = (i) => `u${String(i % 600).padStart(7, '0')}`;
const ids = (response) => response.items.map((item) => item.item_id);

/** Demo ids the model knows (a generated user without interactions is not in it). */
const trained = [];
before(async () => {
  for (let i = 0; trained.length < 100; i += 1) {
    try {
      await unary(client, 'Recommend', { user_id: userId(i), n: 1, disable_fallback: true });
      trained.push(userId(i));
    } catch (err) {
      assert.equal(err.code, status.NOT_FOUND, err.details);
    }
  }
});
const known = (i) => trained[i % trained.length];

/** Known users, unknown ones and repeats; longer than several --batch-chunk chunks. */
function mixedUsers(count) {
  return Array.from({ length: count }, (_, i) => (i % 7 === 3 ? `stranger-${i}` : known(i * 37)));
}

/** Resolves with the first message and leaves the stream paused: the server cannot finish. */
function firstThenPause(call) {
  return new Promise((resolve, reject) => {
    call.once('error', reject);
    call.once('data', (message) => {
      call.pause();
      call.off('error', reject);
      resolve(message);
    });
  });
}

function failure(call) {
  return new Promise((resolve) => { call.once('error', resolve); });
}

test('one response per user, in request order, unknown users as per-user NOT_FOUND', async () => {
  const users = mixedUsers(200);
  const call = stream(client, 'BatchRecommend', { user_ids: users, n: 5, disable_fallback: true });
  const statusSeen = new Promise((resolve) => { call.on('status', resolve); });
  const responses = await collect(call);
  assert.equal((await statusSeen).code, status.OK);
  assert.equal(responses.length, users.length);
  responses.forEach((r, i) => {
    assert.equal(r.index, i, 'index 0 is present as 0 with defaults: true');
    assert.equal(r.user_id, users[i]);
    assert.equal(r.model, main.model);
    assert.equal(typeof r.version, 'number');
    if (users[i].startsWith('stranger-')) {
      assert.equal(r.error.code, 'NOT_FOUND');
      assert.ok(r.error.message.startsWith('user_id: '), r.error.message);
      assert.deepEqual(r.items, []);
    } else {
      assert.equal(r.error, null, 'no error on an answered user');
      assert.equal(r.source, 'SOURCE_MODEL');
      assert.equal(r.items.length, 5);
      assert.equal(r.jsonld, '', 'JSON-LD only when include_jsonld is set');
    }
  });
});

test('without disable_fallback unknown users get popular items', async () => {
  const responses = await collect(stream(client, 'BatchRecommend', { user_ids: ['stranger-1', known(1)], n: 4 }));
  assert.deepEqual(responses.map((r) => r.source), ['SOURCE_POPULAR', 'SOURCE_MODEL']);
  assert.deepEqual(responses.map((r) => r.items.length), [4, 4]);
});

test("results equal Recommend's bit for bit, JSON-LD included on request", async () => {
  const users = Array.from({ length: 40 }, (_, i) => known(i * 13));
  const filter = { exclude_item_ids: ['i0000001', 'i0000002'] };
  const batch = await collect(stream(client, 'BatchRecommend',
    { user_ids: users, n: 10, filter, include_jsonld: true }));
  for (const [i, user_id] of users.entries()) {
    const single = await unary(client, 'Recommend', { user_id, n: 10, filter });
    assert.deepEqual(ids(batch[i]), ids(single), user_id);
    assert.deepEqual(batch[i].items.map((it) => it.rank), single.items.map((it) => it.rank));
    // Bit for bit (docs/api.md, Determinism): the same float the Node client decoded.
    assert.deepEqual(batch[i].items, single.items, user_id);
    const doc = JSON.parse(batch[i].jsonld);
    assert.equal(doc['@type'], 'ItemList');
    assert.equal(doc.numberOfItems, 10);
  }
});

test('a cancelled stream ends CANCELLED and the worker keeps serving', async () => {
  const users = Array.from({ length: main.limits.max_batch_users }, (_, i) => userId(i));
  const call = stream(client, 'BatchRecommend', { user_ids: users, n: main.limits.max_n });
  const first = await firstThenPause(call);
  assert.equal(first.index, 0);
  const ended = failure(call);
  call.cancel();
  assert.equal((await ended).code, status.CANCELLED);
  assert.equal((await unary(client, 'Recommend', { user_id: known(5), n: 3 })).items.length, 3);
});

test('a deadline that passes mid-stream ends it DEADLINE_EXCEEDED', async () => {
  const users = Array.from({ length: main.limits.max_batch_users }, (_, i) => userId(i));
  const call = stream(client, 'BatchRecommend', { user_ids: users, n: main.limits.max_n }, { timeoutMs: 2_000 });
  await firstThenPause(call); // unread, the stream cannot finish before the deadline
  assert.equal((await failure(call)).code, status.DEADLINE_EXCEEDED);
  assert.equal((await unary(client, 'Recommend', { user_id: known(6), n: 3 })).items.length, 3);
});

test('a bad batch fails the whole call with the field named', async () => {
  const bad = (request) => collect(stream(client, 'BatchRecommend', request));
  await rejectsWith(bad({ user_ids: [], n: 5 }), status.INVALID_ARGUMENT, 'user_ids');
  await rejectsWith(bad({ user_ids: [known(1)], n: 0 }), status.INVALID_ARGUMENT, 'n');
  await rejectsWith(bad({ user_ids: [known(1)], n: main.limits.max_n + 1 }), status.INVALID_ARGUMENT, 'n');
  await rejectsWith(bad({ model: 'other', user_ids: [known(1)], n: 5 }), status.NOT_FOUND, 'model');
  const tooMany = Array.from({ length: main.limits.max_batch_users + 1 }, (_, i) => known(i));
  await rejectsWith(bad({ user_ids: tooMany, n: 5 }), status.RESOURCE_EXHAUSTED, 'user_ids');
  const ids21 = Array.from({ length: main.limits.max_ids + 1 }, (_, i) => `i${i}`);
  await rejectsWith(bad({ user_ids: [known(1)], n: 5, filter: { exclude_item_ids: ids21 } }),
    status.RESOURCE_EXHAUSTED, 'filter.exclude_item_ids');
});
