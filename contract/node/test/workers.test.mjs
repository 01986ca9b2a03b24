// Reaching every worker from grpc-js, and the health service on every port.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';

import {
  closeAll, contract, health, recommender, rejectsWith, roundRobin, status, unary, until,
} from '../lib/client.mjs';

const { main } = contract();
after(closeAll);

const addresses = main.worker_addresses;

async function workerPids() {
  const pids = new Map();
  for (const address of addresses) {
    const s = await unary(recommender(address), 'GetModelStatus', {});
    pids.set(address, s.worker.pid);
  }
  return pids;
}

test("each worker answers on its own address and lists every worker's", async () => {
  assert.ok(addresses.length >= 2, 'the suite runs the sidecar with two workers');
  for (const address of addresses) {
    const s = await unary(recommender(address), 'GetModelStatus', {});
    assert.equal(s.worker.address, address);
    assert.ok(s.worker.pid > 0);
    assert.deepEqual(s.workers.map((w) => w.address).sort(), [...addresses].sort());
    assert.equal(s.shared_address, main.address);
  }
  const pids = await workerPids();
  assert.equal(new Set(pids.values()).size, addresses.length, 'one process per worker address');
});

test("one round_robin channel from 'grpc.service_config' reaches every worker", async () => {
  const expected = new Set((await workerPids()).values());
  const client = roundRobin(addresses);
  const seen = new Set();
  await until(async () => {
    const s = await unary(client, 'GetModelStatus', {});
    seen.add(s.worker.pid);
    return seen.size;
  }, (size) => size === expected.size, { what: 'every worker answering' });
  assert.deepEqual([...seen].sort(), [...expected].sort());

});

test("'grpc.lb_policy_name' is ignored by grpc-js: such a channel reaches one worker", async () => {
  // What docs/api.md warns about: the C-core option does nothing here, pick_first stays.
  const client = recommender(`ipv4:${addresses.join(',')}`, { 'grpc.lb_policy_name': 'round_robin' });
  const seen = new Set();
  for (let i = 0; i < 20; i += 1) {
    seen.add((await unary(client, 'GetModelStatus', {})).worker.pid);
  }
  assert.equal(seen.size, 1);
});

test('health: SERVING for the server and for reco.v1.Recommender on every port', async () => {
  for (const address of [main.address, ...addresses]) {
    const h = health(address);
    assert.equal((await unary(h, 'Check', { service: '' })).status, 'SERVING');
    assert.equal((await unary(h, 'Check', { service: 'reco.v1.Recommender' })).status, 'SERVING');
    await rejectsWith(unary(h, 'Check', { service: 'no.such.Service' }), status.NOT_FOUND);
  }
});
