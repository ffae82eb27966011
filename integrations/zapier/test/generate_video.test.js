'use strict';
// "Generate Video" end to end against the live genhook: perform sends the step's callback URL
// as webhook_url (a local server stands in for Zapier's callback URL, which createAppTester
// fixes to a staging host), genhook delivers the real signed webhook there, and
// performResume gets it as Zapier passes it (headers renamed `Http-…`).
const zapier = require('zapier-platform-core');
const createLambdaHandler = require('zapier-platform-core/src/tools/create-lambda-handler');
const App = require('../index');
const { env, api, signup, authFor, startReceiver, asZapierRequest, resigned, pngDataUrl, appError } = require('./helpers');

const appTester = zapier.createAppTester(App);
const handler = createLambdaHandler(App);
const PERFORM = 'creates.generate_video.operation.perform';
const RESUME = App.creates.generate_video.operation.performResume;

/** Runs perform the way Zapier does, with our callback URL; returns the envelope. */
const performWithCallback = (bundle, callbackUrl) =>
  handler({ command: 'execute', method: PERFORM, bundle, callback_url: callbackUrl });

let account;
let receiver;
let pending; // the job perform returned
let received; // genhook's webhook to the callback URL

beforeAll(async () => {
  env();
  account = await signup('generate');
  receiver = await startReceiver();
});
afterAll(() => receiver && receiver.close());

test('the input fields are the generated create fields without webhook_url', () => {
  const keys = App.creates.generate_video.operation.inputFields.map((f) => f.key);
  expect(keys).toEqual(expect.arrayContaining(['model', 'prompt', 'image_url', 'duration', 'metadata']));
  expect(keys).not.toContain('webhook_url');
});

test('perform submits an image-to-video job with the callback URL as webhook_url and waits', async () => {
  const callbackUrl = `${receiver.url}/hooks/standard/123/abc`;
  const envelope = await performWithCallback(
    {
      authData: authFor(account),
      inputData: {
        model: 'kling-v3',
        prompt: 'The camera pushes in on the front door',
        image_url: pngDataUrl(320, 320),
        duration: '5s',
        aspect_ratio: '1:1',
        metadata: { sheet_row: '12' },
        webhook_url: 'https://attacker.example/steal', // not a field of this step: ignored
      },
    },
    callbackUrl,
  );
  expect(envelope.status).toBe('CALLBACK'); // Zapier pauses the Zap step
  pending = envelope.results;
  expect(pending.id).toMatch(/^vgen_/);
  expect(pending.status).toBe('pending');
  expect(pending.webhook_url).toBe(callbackUrl);
  expect(pending.image_id).toMatch(/^img_/);
  expect(pending.metadata).toEqual({ sheet_row: '12' });

  received = await receiver.waitFor((r) => r.path === '/hooks/standard/123/abc');
  expect(received.method).toBe('POST');
  expect(received.headers['webhook-signature']).toMatch(/^v1,/);
});

test('performResume verifies the real signed webhook and returns the finished generation', async () => {
  expect(received).toBeDefined();
  const result = await appTester(RESUME, {
    authData: authFor(account),
    outputData: pending,
    ...asZapierRequest(received),
  });
  expect(result.id).toBe(pending.id);
  expect(result.status).toBe('completed');
  expect(result.event).toBe('video.generation.completed');
  expect(result.output_url).toMatch(new RegExp(`/v1/outputs/${pending.id}\\?`));
  expect(result.image_id).toBe(pending.image_id); // from outputData, not in the payload
  expect(result.metadata).toEqual({ sheet_row: '12' });
  // the output link really serves the video
  const video = await fetch(result.output_url);
  expect(video.status).toBe(200);
});

test('performResume rejects a tampered body', async () => {
  const content = received.content.replace('"completed"', '"failed"');
  expect(content).not.toBe(received.content);
  const err = await appTester(RESUME, {
    authData: authFor(account),
    outputData: pending,
    ...asZapierRequest(received, { content }),
  }).catch((e) => e);
  expect(err).toBeInstanceOf(Error);
  expect(appError(err).message).toMatch(/signature/);
});

test('performResume rejects the webhook checked with another secret', async () => {
  const other = await signup('generate-other');
  const err = await appTester(RESUME, {
    authData: authFor(other),
    outputData: pending,
    ...asZapierRequest(received),
  }).catch((e) => e);
  expect(appError(err).message).toMatch(/signature/);
});

test('performResume rejects a stale timestamp, even correctly signed', async () => {
  const stale = Math.floor(Date.now() / 1000) - 6 * 60;
  const err = await appTester(RESUME, {
    authData: authFor(account),
    outputData: pending,
    ...resigned(received, account.signing_secret, stale),
  }).catch((e) => e);
  expect(appError(err).message).toMatch(/timestamp/);
  // the same re-signing at the current time passes: only the age was wrong
  const fresh = await appTester(RESUME, {
    authData: authFor(account),
    outputData: pending,
    ...resigned(received, account.signing_secret, Math.floor(Date.now() / 1000)),
  });
  expect(fresh.status).toBe('completed');
});

test('performResume rejects a missing signature', async () => {
  const { rawRequest, cleanedRequest } = asZapierRequest(received);
  delete rawRequest.headers['Http-Webhook-Signature'];
  const err = await appTester(RESUME, {
    authData: authFor(account),
    outputData: pending,
    rawRequest,
    cleanedRequest,
  }).catch((e) => e);
  expect(appError(err).message).toMatch(/missing/);
});

test('performResume rejects a genuine webhook about another generation', async () => {
  const err = await appTester(RESUME, {
    authData: authFor(account),
    outputData: { ...pending, id: 'vgen_01bbbbbbbbbbbbbbbbbbbbbbbb' },
    ...asZapierRequest(received),
  }).catch((e) => e);
  expect(appError(err).message).toMatch(/not this step's generation/);
});

test('performResume without the step\'s own generation id takes no webhook at all', async () => {
  const { id, ...withoutId } = pending;
  const err = await appTester(RESUME, {
    authData: authFor(account),
    outputData: withoutId,
    ...asZapierRequest(received),
  }).catch((e) => e);
  expect(id).toMatch(/^vgen_/);
  expect(appError(err).message).toMatch(/not this step's generation/);
});

test('after a signing-secret rotation both the old and the new secret verify', async () => {
  const rotated = await api(account.api_key, 'POST', '/v1/account/rotate-signing-secret');
  expect(rotated.status).toBe(200);
  const newSecret = rotated.data.secret;
  expect(newSecret).toMatch(/^whsec_/);
  expect(newSecret).not.toBe(account.signing_secret);

  const callbackUrl = `${receiver.url}/hooks/standard/123/rotated`;
  const envelope = await performWithCallback(
    { authData: authFor(account), inputData: { model: 'wan-2.5', prompt: 'Rotating secrets' } },
    callbackUrl,
  );
  const hook = await receiver.waitFor((r) => r.path === '/hooks/standard/123/rotated');
  expect(hook.headers['webhook-signature'].split(' ')).toHaveLength(2);
  for (const signingSecret of [account.signing_secret, newSecret]) {
    const result = await appTester(RESUME, {
      authData: { ...authFor(account), signingSecret },
      outputData: envelope.results,
      ...asZapierRequest(hook),
    });
    expect(result.id).toBe(envelope.results.id);
  }
});

test('while Zapier loads a sample, perform submits nothing and uses no callback', async () => {
  const before = await api(account.api_key, 'GET', '/v1/video/generations?limit=100');
  const envelope = await performWithCallback(
    { authData: authFor(account), meta: { isLoadingSample: true }, inputData: { model: 'wan-2.5', prompt: 'x' } },
    `${receiver.url}/hooks/sample`,
  );
  expect(envelope.status).not.toBe('CALLBACK');
  expect(envelope.results.output_url).toBeTruthy();
  const after = await api(account.api_key, 'GET', '/v1/video/generations?limit=100');
  expect(after.data.data.length).toBe(before.data.data.length);
});

test('performResume stops the Zap with the reason when the generation was canceled', async () => {
  const callbackUrl = `${receiver.url}/hooks/standard/123/canceled`;
  const envelope = await performWithCallback(
    { authData: authFor(account), inputData: { model: 'wan-2.5', prompt: 'Cancel me' } },
    callbackUrl,
  );
  const canceled = await api(account.api_key, 'POST', `/v1/video/generations/${envelope.results.id}/cancel`);
  expect(canceled.status).toBe(200);
  const hook = await receiver.waitFor((r) => r.path === '/hooks/standard/123/canceled');
  const err = await appTester(RESUME, {
    authData: authFor(account),
    outputData: envelope.results,
    ...asZapierRequest(hook),
  }).catch((e) => e);
  expect(err).toBeInstanceOf(Error);
  const { message, code } = appError(err);
  expect(code).toBe('GenerationCanceled');
  expect(message).toContain(envelope.results.id);
});
