// The second sidecar: bearer tokens, a model without item metadata, at most two RPCs in
// flight, and (last, since it ends that sidecar) shutdown refusing new calls.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  bearer, closeAll, collect, contract, health, recommender, rejectsWith, status, stream, unary, until,
} from '../lib/client.mjs';

const { guarded } = contract();
const client = recommender(guarded.address);
const user = bearer(guarded.user_token);
const admin = bearer(guarded.admin_token);
after(closeAll);

const USER = 'u0000002';
const allUsers = (count) => Array.from({ length: count }, (_, i) => `u${String(i % 600).padStart(7, '0')}`);

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

test('no, malformed or unknown token: UNAUTHENTICATED on every RPC', async () => {
  const calls = [
    ['Recommend', { user_id: USER, n: 3 }],
    ['Similar', { item_id: 'i0000001', n: 3 }],
    ['Reload', {}],
    ['GetModelStatus', {}],
  ];
  for (const [method, request] of calls) {
    await rejectsWith(unary(client, method, request), status.UNAUTHENTICATED);
    await rejectsWith(unary(client, method, request, { metadata: bearer('not-a-token') }), status.UNAUTHENTICATED);
  }
  await rejectsWith(collect(stream(client, 'BatchRecommend', { user_ids: [USER], n: 3 })), status.UNAUTHENTICATED);
});

test('a caller token calls everything but Reload, which is PERMISSION_DENIED', async () => {
  assert.equal((await unary(client, 'Recommend', { user_id: USER, n: 3 }, { metadata: user })).items.length, 3);
  const batch = await collect(stream(client, 'BatchRecommend', { user_ids: [USER], n: 3 }, { metadata: user }));
  assert.equal(batch.length, 1);
  await rejectsWith(unary(client, 'Reload', {}, { metadata: user }), status.PERMISSION_DENIED);
  const r = await unary(client, 'Reload', { version: 'latest' }, { metadata: admin, timeoutMs: 120_000 });
  assert.equal(r.model, guarded.model);
  assert.equal(r.workers, 1);
});

test('health needs no token', async () => {
  assert.equal((await unary(health(guarded.address), 'Check', { service: '' })).status, 'SERVING');
});

test('category or tag filters on a model without item metadata: FAILED_PRECONDITION', async () => {
  const s = await unary(client, 'GetModelStatus', {}, { metadata: user });
  assert.equal(s.has_item_metadata, false);
  await rejectsWith(unary(client, 'Recommend', { user_id: USER, n: 3, filter: { categories: ['cat1'] } },
    { metadata: user }), status.FAILED_PRECONDITION, 'filter.categories');
  await rejectsWith(unary(client, 'Similar', { item_id: 'i0000001', n: 3, filter: { tags: ['even'] } },
    { metadata: user }), status.FAILED_PRECONDITION, 'filter.tags');
  await rejectsWith(collect(stream(client, 'BatchRecommend', { user_ids: [USER], n: 3, filter: { tags: ['odd'] } },
    { metadata: user })), status.FAILED_PRECONDITION, 'filter.tags');
});

test('more calls in flight than --max-concurrent-rpcs: RESOURCE_EXHAUSTED', async () => {
  const users = allUsers(200_000);
  const held = [];
  for (let i = 0; i < guarded.max_concurrent_rpcs; i += 1) {
    const call = stream(client, 'BatchRecommend', { user_ids: users, n: 50 }, { metadata: user });
    await firstThenPause(call); // running, and unread it stays in flight
    held.push(call);
  }
  await rejectsWith(unary(client, 'Recommend', { user_id: USER, n: 3 }, { metadata: user }),
    status.RESOURCE_EXHAUSTED);
  const ended = held.map((call) => new Promise((resolve) => { call.once('error', resolve); }));
  held.forEach((call) => call.cancel());
  await Promise.all(ended);
  // The server sees the cancellations asynchronously: wait until a call gets through.
  const r = await until(
    () => unary(client, 'Recommend', { user_id: USER, n: 3 }, { metadata: user }).catch((err) => err),
    (result) => result.items !== undefined || result.code !== status.RESOURCE_EXHAUSTED,
    { what: 'the limit freeing up' },
  );
  assert.equal(r.items.length, 3);
});

test('SIGTERM: new calls UNAVAILABLE while a stream in flight still finishes', async () => {
  const users = allUsers(5_000);
  const call = stream(client, 'BatchRecommend', { user_ids: users, n: 10 }, { metadata: user, timeoutMs: 120_000 });
  const first = await firstThenPause(call);
  assert.equal(first.index, 0);
  process.kill(guarded.pid, 'SIGTERM');
  const refused = await until(
    () => unary(client, 'Recommend', { user_id: USER, n: 3 }, { metadata: user }).catch((err) => err),
    (result) => result.code === status.UNAVAILABLE,
    { what: 'new calls refused', attempts: 10_000 },
  );
  assert.equal(refused.code, status.UNAVAILABLE);
  const rest = await collect(call); // resumes the paused stream
  assert.equal(rest.length, users.length - 1);
  rest.forEach((r, i) => assert.equal(r.index, i + 1));
});
