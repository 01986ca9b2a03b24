// Recommend and Similar as a Node client sees them: field types, ranks, paging, filters,
// sources and the JSON-LD rendering.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import { closeAll, contract, recommender, rejectsWith, status, unary } from '../lib/client.mjs';

const { main } = contract();
const client = recommender(main.address);
after(closeAll);

const USER = 'u0000003';
const ids = (response) => response.items.map((item) => item.item_id);
const IRI = (id) => `https://uro.example/items/${encodeURIComponent(id)}`;

function assertRanked(response, offset) {
  response.items.forEach((item, i) => assert.equal(item.rank, offset + i + 1));
  for (let i = 1; i < response.items.length; i += 1) {
    assert.ok(response.items[i - 1].score >= response.items[i].score, 'scores descend');
  }
}

function assertJsonLd(response, offset) {
  const doc = JSON.parse(response.jsonld);
  assert.equal(typeof doc['@context'], 'object', 'the context is embedded, not a URL to fetch');
  assert.equal(doc['@type'], 'ItemList');
  assert.equal(doc.itemListOrder, 'ItemListOrderDescending');
  assert.equal(doc.numberOfItems, response.items.length);
  assert.equal(doc.model, response.model);
  assert.equal(doc.modelVersion, response.version);
  assert.deepEqual(doc.itemListElement.map((e) => e.position), response.items.map((item) => item.rank));
  assert.deepEqual(doc.itemListElement.map((e) => e.item['@id']), ids(response).map(IRI));
  assert.deepEqual(doc.itemListElement.map((e) => e.score), response.items.map((item) => item.score));
  assert.equal(offset + 1, doc.itemListElement[0].position);
  return doc;
}

test('Recommend answers a known user with typed fields, ranks and JSON-LD', async () => {
  const r = await unary(client, 'Recommend', { user_id: USER, n: 10 });
  assert.equal(r.model, main.model);
  assert.equal(typeof r.version, 'number', 'int64 version is a Number with longs: Number');
  assert.ok(r.version >= 1);
  assert.equal(r.user_id, USER);
  assert.equal(r.source, 'SOURCE_MODEL');
  assert.equal(r.items.length, 10);
  assertRanked(r, 0);
  assert.equal(assertJsonLd(r, 0).source, 'model');
});

test('pages from any worker concatenate to the longer list, score for score', async () => {
  const whole = await unary(client, 'Recommend', { user_id: USER, n: 30 });
  const workers = main.worker_addresses.map((address) => recommender(address));
  const pages = [];
  for (const [k, offset] of [0, 10, 20].entries()) {
    const page = await unary(workers[k % workers.length], 'Recommend', { user_id: USER, n: 10, offset });
    assertRanked(page, offset);
    assertJsonLd(page, offset);
    pages.push(...page.items);
  }
  assert.deepEqual(pages, whole.items);
});

test('exclude and candidate filters; tags need every tag', async () => {
  const top = ids(await unary(client, 'Recommend', { user_id: USER, n: 10 }));
  const without = await unary(client, 'Recommend',
    { user_id: USER, n: 7, filter: { exclude_item_ids: top.slice(0, 3).concat(['no-such-item']) } });
  assert.deepEqual(ids(without), top.slice(3));

  const candidates = [top[8], top[2], top[5], 'no-such-item'];
  const only = await unary(client, 'Recommend', { user_id: USER, n: 10, filter: { candidate_item_ids: candidates } });
  assert.deepEqual(ids(only), [top[2], top[5], top[8]]);

  // The demo catalogue tags items 'even' or 'odd' by the number in their id.
  const even = await unary(client, 'Recommend', { user_id: USER, n: 20, filter: { tags: ['even'] } });
  assert.equal(even.items.length, 20);
  for (const id of ids(even)) assert.equal(Number(id.slice(1)) % 2, 0, id);
});

test('seen items come back only with include_seen', async () => {
  const unseen = ids(await unary(client, 'Recommend', { user_id: USER, n: 50 }));
  const all = ids(await unary(client, 'Recommend', { user_id: USER, n: 50, filter: { include_seen: true } }));
  const seenInTop = all.filter((id) => !unseen.includes(id));
  assert.ok(seenInTop.length > 0, 'a trained user has seen some of its top items');
});

test('unknown users get popular items, or NOT_FOUND if the caller asks', async () => {
  const r = await unary(client, 'Recommend', { user_id: 'nobody-at-all', n: 5 });
  assert.equal(r.source, 'SOURCE_POPULAR');
  assert.equal(r.items.length, 5);
  assertJsonLd(r, 0);
  await rejectsWith(unary(client, 'Recommend', { user_id: 'nobody-at-all', n: 5, disable_fallback: true }),
    status.NOT_FOUND, 'user_id');
});

test('recent_item_ids fold a vector in and are excluded', async () => {
  const recent = ids(await unary(client, 'Recommend', { user_id: 'nobody-at-all', n: 3 }));
  const r = await unary(client, 'Recommend', { user_id: 'nobody-at-all', n: 10, recent_item_ids: recent });
  assert.equal(r.source, 'SOURCE_FOLD_IN');
  assert.equal(r.items.length, 10);
  for (const id of recent) assert.ok(!ids(r).includes(id), `${id} was a recent item`);
});

test('Similar never returns the item itself and says which item JSON-LD is about', async () => {
  const [item] = ids(await unary(client, 'Recommend', { user_id: USER, n: 1 }));
  const r = await unary(client, 'Similar', { item_id: item, n: 8 });
  assert.equal(r.item_id, item);
  assert.equal(r.source, 'SOURCE_ANN');
  assert.equal(r.items.length, 8);
  assert.ok(!ids(r).includes(item));
  assertRanked(r, 0);
  assert.equal(assertJsonLd(r, 0).about['@id'], IRI(item));

  const second = await unary(client, 'Similar', { item_id: item, n: 4, offset: 4 });
  assert.deepEqual(ids(second), ids(r).slice(4));
  assertJsonLd(second, 4);
});
