// What docs/api.md warns about: proto-loader's default options give silently wrong answers.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

import { contract, rejectsWith, status, unary } from '../lib/client.mjs';

const { main } = contract();
const protos = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../protos');
const plain = grpc.loadPackageDefinition(protoLoader.loadSync('reco/v1/reco.proto', { includeDirs: [protos] }));
const client = new plain.reco.v1.Recommender(main.address, grpc.credentials.createInsecure());
after(() => client.close());

test('without keepCase a snake_case field is dropped: the server sees no user_id', async () => {
  await rejectsWith(unary(client, 'Recommend', { user_id: 'u0000001', n: 3 }), status.INVALID_ARGUMENT, 'user_id');
});

test('without longs/enums/defaults: version is a Long, enums numbers, zero values missing', async () => {
  const r = await unary(client, 'Recommend', { userId: 'u0000001', n: 3 });
  assert.equal(r.items.length, 3);
  assert.equal(typeof r.version, 'object', 'a Long, not a number');
  assert.equal(r.version.toNumber(), Number(r.version.toString()));
  assert.equal(r.source, 1, 'SOURCE_MODEL as its number');
  const batch = [];
  for await (const m of client.BatchRecommend({ userIds: ['u0000001'], n: 1 })) batch.push(m);
  assert.equal(batch[0].index, undefined, 'index 0 is absent without defaults: true');
  assert.equal(batch[0].error, undefined, 'an unset message is undefined, not null');
});
