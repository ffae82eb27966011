'use strict';
// Start Video Generation and Find Generation against the live genhook.
const zapier = require('zapier-platform-core');
const App = require('../index');
const { env, api, signup, authFor, startReceiver, asZapierRequest, appError } = require('./helpers');
const { verifyWebhook } = require('../lib/verify');

const appTester = zapier.createAppTester(App);
let account;
let receiver;

beforeAll(async () => {
  env();
  account = await signup('generations');
  receiver = await startReceiver();
});
afterAll(() => receiver && receiver.close());

test('Start Video Generation submits the job and returns it pending at once', async () => {
  const webhookUrl = `${receiver.url}/start?ref=42`;
  const job = await appTester(App.creates.start_video_generation.operation.perform, {
    authData: authFor(account),
    inputData: {
      model: 'wan-2.5',
      prompt: 'A paper boat on a rainy street',
      duration: '5s',
      aspect_ratio: '',
      end_image_url: null,
      metadata: { row: '7' },
      webhook_url: webhookUrl,
    },
  });
  expect(job.id).toMatch(/^vgen_/);
  expect(job.status).toBe('pending');
  expect(job.model).toBe('wan-2.5');
  expect(job.metadata).toEqual({ row: '7' });
  expect(job.webhook_url).toBe(webhookUrl);
  expect(job.aspect_ratio).toBe('16:9'); // left empty: not sent, genhook's default

  const { status, data } = await api(account.api_key, 'GET', `/v1/video/generations/${job.id}`);
  expect(status).toBe(200);
  expect(data.id).toBe(job.id);
  const account2 = await api(account.api_key, 'GET', '/v1/account');
  expect(account2.data.credits).toBe(50 - job.credits);

  // the optional webhook_url gets the signed result, query kept
  const received = await receiver.waitFor((r) => r.path === '/start?ref=42');
  const payload = verifyWebhook(asZapierRequest(received).rawRequest, account.signing_secret);
  expect(payload.id).toBe(job.id);
  expect(payload.event).toBe('video.generation.completed');
});

test('a bad field is an error naming the field', async () => {
  const err = await appTester(App.creates.start_video_generation.operation.perform, {
    authData: authFor(account),
    inputData: { model: 'wan-2.5', prompt: 'x', duration: '7s' },
  }).catch((e) => e);
  expect(err).toBeInstanceOf(Error);
  const { message, status, code } = appError(err);
  expect(status).toBe(422);
  expect(code).toBe('validation-failed');
  expect(message).toMatch(/duration/);
  expect(message).toMatch(/\[field: duration\]/);
});

test('an unknown model is an error with genhook\'s detail', async () => {
  const err = await appTester(App.creates.start_video_generation.operation.perform, {
    authData: authFor(account),
    inputData: { model: 'no-such-model', prompt: 'x' },
  }).catch((e) => e);
  const { message, status } = appError(err);
  expect(status).toBeGreaterThanOrEqual(400);
  expect(status).toBeLessThan(500);
  expect(message).toMatch(/no-such-model|model/);
});

test('Find Generation returns [generation] for an id, [] when there is none', async () => {
  const created = await api(account.api_key, 'POST', '/v1/video/generations', {
    model: 'wan-2.5',
    prompt: 'A lighthouse at dusk',
  });
  expect(created.status).toBe(202);
  const found = await appTester(App.searches.find_generation.operation.perform, {
    authData: authFor(account),
    inputData: { job_id: created.data.id },
  });
  expect(found).toHaveLength(1);
  expect(found[0].id).toBe(created.data.id);
  expect(found[0].prompt).toBe('A lighthouse at dusk');

  const missing = await appTester(App.searches.find_generation.operation.perform, {
    authData: authFor(account),
    inputData: { job_id: 'vgen_01aaaaaaaaaaaaaaaaaaaaaaaa' },
  });
  expect(missing).toEqual([]);

  // another account's generation is not found either
  const other = await signup('generations-other');
  const foreign = await appTester(App.searches.find_generation.operation.perform, {
    authData: authFor(other),
    inputData: { job_id: created.data.id },
  });
  expect(foreign).toEqual([]);
});

test('Find Generation with a wrong API key is an error, not "not found"', async () => {
  const err = await appTester(App.searches.find_generation.operation.perform, {
    authData: { ...authFor(account), apiKey: 'gh_wrong' },
    inputData: { job_id: 'vgen_01aaaaaaaaaaaaaaaaaaaaaaaa' },
  }).catch((e) => e);
  expect(appError(err).status).toBe(401);
});

test('the Model dropdown is filled from GET /v1/models by the hidden list_models trigger', async () => {
  const field = App.creates.start_video_generation.operation.inputFields.find((f) => f.key === 'model');
  expect(field.dynamic).toBe('list_models.id.name');
  const trigger = App.triggers.list_models;
  expect(trigger.display.hidden).toBe(true);
  const models = await appTester(trigger.operation.perform, { authData: authFor(account), inputData: {} });
  const { data } = await api(account.api_key, 'GET', '/v1/models');
  expect(models.map((m) => m.id)).toEqual(data.data.map((m) => m.id));
  const kling = models.find((m) => m.id === 'kling-v3');
  expect(kling.name).toMatch(/^Kling/);
});

test('each step declares its output fields with labels, as the contract describes them', () => {
  const labels = (def) => Object.fromEntries(def.operation.outputFields.map((f) => [f.key, [f.label, f.type]]));
  const find = labels(App.searches.find_generation);
  expect(find.output_url).toEqual(['Output URL', 'string']);
  expect(find.credits_billed).toEqual(['Credits Billed', 'integer']);
  expect(find.error__code).toEqual(['Error Code', 'string']);
  expect(find.completed_at).toEqual(['Completed At', 'datetime']);
  const generate = labels(App.creates.generate_video);
  expect(generate.event).toEqual(['Event', 'string']);
  expect(generate.output_url).toEqual(['Output URL', 'string']);
  expect(labels(App.triggers.generation_finished).eta_seconds).toEqual(['ETA Seconds', 'number']);
  expect(Object.keys(labels(App.creates.start_video_generation))).toContain('status');
});
