// A Node service's view of the sidecar: the loader and channel options that matter
// (docs/api.md, "From other languages") and small promise helpers over grpc-js callbacks.
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const here = path.dirname(fileURLToPath(import.meta.url));
const PROTO_DIRS = [path.resolve(here, '../../../protos'), path.resolve(here, '../protos')];

// proto-loader's defaults make a client silently wrong: camelCase field names (so
// {user_id} is dropped), int64 as Long objects, enums as numbers, and fields at their
// default value (index 0, an empty list) missing instead of present.
export const LOADER_OPTIONS = Object.freeze({ keepCase: true, longs: Number, enums: String, defaults: true });

// grpc-js ignores 'grpc.lb_policy_name'; only a service config selects round_robin.
export const ROUND_ROBIN = Object.freeze({
  'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
});

const definition = protoLoader.loadSync(['reco/v1/reco.proto', 'grpc/health/v1/health.proto'],
  { ...LOADER_OPTIONS, includeDirs: PROTO_DIRS });
const loaded = grpc.loadPackageDefinition(definition);

export const { status } = grpc;
export const { Metadata } = grpc;

/** What the pytest driver started, as JSON in RECO_CONTRACT. */
export function contract() {
  const raw = process.env.RECO_CONTRACT;
  assert.ok(raw, 'RECO_CONTRACT is not set: run this suite through tests/test_node_client.py');
  return JSON.parse(raw);
}

const open = [];

export function recommender(target, options = {}) {
  const client = new loaded.reco.v1.Recommender(target, grpc.credentials.createInsecure(), options);
  open.push(client);
  return client;
}

export function health(target) {
  const client = new loaded.grpc.health.v1.Health(target, grpc.credentials.createInsecure());
  open.push(client);
  return client;
}

/** One channel over every worker, calls spread round robin. */
export function roundRobin(addresses) {
  return recommender(`ipv4:${addresses.join(',')}`, ROUND_ROBIN);
}

/** Closes every client this process made, so node can exit. */
export function closeAll() {
  for (const client of open.splice(0)) client.close();
}

export function bearer(token) {
  const md = new Metadata();
  md.set('authorization', `Bearer ${token}`);
  return md;
}

/** A unary call as a promise; rejects with grpc-js's ServiceError (code, details). */
export function unary(client, method, request, { metadata = new Metadata(), timeoutMs = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, { deadline: Date.now() + timeoutMs },
      (err, response) => (err ? reject(err) : resolve(response)));
  });
}

export function stream(client, method, request, { metadata = new Metadata(), timeoutMs = 60_000 } = {}) {
  return client[method](request, metadata, { deadline: Date.now() + timeoutMs });
}

export async function collect(call) {
  const out = [];
  for await (const message of call) out.push(message);
  return out;
}

/** Asserts the call failed with `code` and a message starting with the offending field. */
export async function rejectsWith(promise, code, field) {
  await assert.rejects(promise, (err) => {
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.details}`);
    if (field !== undefined) {
      assert.ok(err.details.startsWith(`${field}: `), `message should name ${field}: ${err.details}`);
    }
    return true;
  });
}

/** Resolves with the first value `probe` returns that `done` accepts; no fixed sleeps. */
export async function until(probe, done, { attempts = 200, what = 'condition' } = {}) {
  let last;
  for (let i = 0; i < attempts; i += 1) {
    last = await probe();
    if (done(last)) return last;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail(`${what} not reached after ${attempts} attempts; last: ${JSON.stringify(last)}`);
}
