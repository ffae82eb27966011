'use strict';
// "Generation Finished" (REST hook) against the live genhook: subscribe registers a webhook
// endpoint for Zapier's target URL (a local server here), a real job's signed event is
// accepted by perform with the endpoint's own secret, forgeries are refused, performList
// gives samples shaped like the event, and unsubscribe deletes the endpoint.
const zapier = require('zapier-platform-core');
const App = require('../index');
const { env, api, signup, authFor, startReceiver, asZapierRequest, resigned, appError } = require('./helpers');

const appTester = zapier.createAppTester(App);
const trigger = App.triggers.generation_finished.operation;

let account;
let receiver;
let subscribeData;
let job;
let event; // the request genhook POSTed to the target URL

beforeAll(async () => {
  env();
  account = await signup('trigger');
  receiver = await startReceiver();
});
afterAll(() => receiver && receiver.close());

test('performSubscribe registers the target URL as a webhook endpoint with its own secret', async () => {
  const targetUrl = `${receiver.url}/hooks/standard/999/target`;
  subscribeData = await appTester(trigger.performSubscribe, {
    authData: authFor(account),
    targetUrl,
    inputData: { events: ['completed', 'canceled'] },
  });
  expect(subscribeData.id).toMatch(/^we_/);
  expect(subscribeData.secret).toMatch(/^whsec_/);
  expect(subscribeData.secret).not.toBe(account.signing_secret);

  const { data } = await api(account.api_key, 'GET', '/v1/webhook-endpoints');
  const endpoint = data.data.find((e) => e.id === subscribeData.id);
  expect(endpoint).toBeDefined();
  expect(endpoint.url).toBe(targetUrl);
  expect(endpoint.events.sort()).toEqual(['video.generation.canceled', 'video.generation.completed']);
  expect(endpoint.enabled).toBe(true);
});

test('events default to completed only', async () => {
  const other = await signup('trigger-default');
  const created = await appTester(trigger.performSubscribe, {
    authData: authFor(other),
    targetUrl: `${receiver.url}/hooks/default`,
    inputData: {},
  });
  expect(created.events).toEqual(['video.generation.completed']);
});

test('a real job\'s signed event is accepted by perform', async () => {
  expect(subscribeData).toBeDefined();
  const created = await api(account.api_key, 'POST', '/v1/video/generations', {
    model: 'wan-2.5',
    prompt: 'Waves on a pebble beach',
    metadata: { source: 'zap' },
  });
  expect(created.status).toBe(202);
  job = created.data;
  event = await receiver.waitFor((r) => r.path === '/hooks/standard/999/target');

  const results = await appTester(trigger.perform, {
    authData: authFor(account),
    subscribeData,
    ...asZapierRequest(event),
  });
  expect(results).toHaveLength(1);
  expect(results[0].id).toBe(job.id);
  expect(results[0].event).toBe('video.generation.completed');
  expect(results[0].status).toBe('completed');
  expect(results[0].output_url).toMatch(/\/v1\/outputs\//);
  expect(results[0].metadata).toEqual({ source: 'zap' });
  expect(results[0].webhook_id).toBe(event.headers['webhook-id']);
});

test('the same webhook-id triggers the Zap once (a retry or a replay within 5 minutes)', async () => {
  expect(event).toBeDefined();
  const again = await appTester(trigger.perform, {
    authData: authFor(account),
    subscribeData,
    ...asZapierRequest(event),
  });
  expect(again).toEqual([]);
  // another subscription (another Zap) is not affected by this one's memory
  const other = await appTester(trigger.perform, {
    authData: authFor(account),
    subscribeData: { ...subscribeData, id: 'we_other_zap' },
    ...asZapierRequest(event),
  });
  expect(other).toHaveLength(1);
});

test('perform refuses a tampered event', async () => {
  const content = event.content.replace('Waves on a pebble beach', 'Waves on a sandy beach');
  expect(content).not.toBe(event.content);
  const err = await appTester(trigger.perform, {
    authData: authFor(account),
    subscribeData,
    ...asZapierRequest(event, { content }),
  }).catch((e) => e);
  expect(err).toBeInstanceOf(Error);
  expect(appError(err).message).toMatch(/signature/);
});

test('perform refuses an event signed with the account secret instead of the endpoint\'s', async () => {
  const forged = resigned(event, account.signing_secret, Math.floor(Date.now() / 1000));
  const err = await appTester(trigger.perform, { authData: authFor(account), subscribeData, ...forged }).catch((e) => e);
  expect(appError(err).message).toMatch(/signature/);
});

test('perform refuses a replayed (stale) event', async () => {
  const stale = resigned(event, subscribeData.secret, Math.floor(Date.now() / 1000) - 3600);
  const err = await appTester(trigger.perform, { authData: authFor(account), subscribeData, ...stale }).catch((e) => e);
  expect(appError(err).message).toMatch(/timestamp/);
});

test('perform refuses an unsigned request', async () => {
  const err = await appTester(trigger.perform, {
    authData: authFor(account),
    subscribeData,
    rawRequest: { method: 'POST', querystring: '', headers: { 'Content-Type': 'application/json' }, content: event.content },
    cleanedRequest: JSON.parse(event.content),
  }).catch((e) => e);
  expect(appError(err).message).toMatch(/missing/);
});

test('performList returns recent completed generations shaped like the event', async () => {
  expect(job).toBeDefined();
  const list = await appTester(trigger.performList, { authData: authFor(account), inputData: {} });
  expect(list.length).toBeGreaterThanOrEqual(1);
  const item = list.find((g) => g.id === job.id);
  expect(item).toBeDefined();
  expect(item.event).toBe('video.generation.completed');
  expect(item.output_url).toMatch(/\/v1\/outputs\//);
  for (const g of list) expect(g.status).toBe('completed');
  const payload = JSON.parse(event.content);
  // the same fields as perform's output: the payload plus webhook_id
  expect(Object.keys(item).sort()).toEqual([...Object.keys(payload), 'webhook_id'].sort());
});

test('performUnsubscribe deletes the endpoint', async () => {
  expect(subscribeData).toBeDefined();
  await appTester(trigger.performUnsubscribe, { authData: authFor(account), subscribeData });
  const { data } = await api(account.api_key, 'GET', '/v1/webhook-endpoints');
  expect(data.data.find((e) => e.id === subscribeData.id)).toBeUndefined();
  const gone = await api(account.api_key, 'GET', `/v1/webhook-endpoints/${subscribeData.id}`);
  expect(gone.status).toBe(404);
  // Turning the Zap off again (the endpoint already deleted by hand) still succeeds.
  const again = await appTester(trigger.performUnsubscribe, { authData: authFor(account), subscribeData });
  expect(again.deleted).toBe(true);
});
