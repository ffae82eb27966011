'use strict';
// lib/verify.js on its own: the Standard Webhooks reference vector, and every way to reject.
const { verifyWebhook, sign, getHeader, WebhookVerificationError } = require('../lib/verify');

// From the Standard Webhooks specification's test vectors (independent of this code).
const SPEC = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  content: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const request = (overrides = {}) => ({
  headers: {
    'Http-Webhook-Id': SPEC.id,
    'Http-Webhook-Timestamp': String(SPEC.timestamp),
    'Http-Webhook-Signature': SPEC.signature,
    ...(overrides.headers || {}),
  },
  content: overrides.content !== undefined ? overrides.content : SPEC.content,
});
const at = { now: SPEC.timestamp + 10 };

test('signs the reference vector like the spec', () => {
  expect(`v1,${sign(SPEC.secret, SPEC.id, SPEC.timestamp, SPEC.content)}`).toBe(SPEC.signature);
});

test('accepts the reference vector with Zapier-renamed headers and returns the body', () => {
  expect(verifyWebhook(request(), SPEC.secret, at)).toEqual({ test: 2432232314 });
});

test('header lookup ignores case and the Http- prefix', () => {
  const lower = { 'http-webhook-id': 'a', 'WEBHOOK-TIMESTAMP': 'b', Http_Webhook_Signature: 'c' };
  expect(getHeader(lower, 'webhook-id')).toBe('a');
  expect(getHeader(lower, 'webhook-timestamp')).toBe('b');
  expect(getHeader(lower, 'webhook-signature')).toBe('c');
  const headers = {
    'http-webhook-id': SPEC.id,
    'http-webhook-timestamp': String(SPEC.timestamp),
    'http-webhook-signature': SPEC.signature,
  };
  expect(verifyWebhook({ headers, content: SPEC.content }, SPEC.secret, at)).toEqual({ test: 2432232314 });
});

test('accepts any one of several v1 signatures (secret rotation)', () => {
  const other = `v1,${Buffer.alloc(32, 7).toString('base64')}`;
  const headers = { 'Http-Webhook-Signature': `${other} v2,xyz ${SPEC.signature}` };
  expect(verifyWebhook(request({ headers }), SPEC.secret, at)).toEqual({ test: 2432232314 });
});

test.each([
  ['tampered body', request({ content: '{"test": 2432232315}' }), SPEC.secret, /signature/],
  ['wrong secret', request(), 'whsec_' + Buffer.alloc(24, 1).toString('base64'), /signature/],
  ['other version only', request({ headers: { 'Http-Webhook-Signature': SPEC.signature.replace('v1,', 'v2,') } }), SPEC.secret, /signature/],
  ['truncated signature', request({ headers: { 'Http-Webhook-Signature': SPEC.signature.slice(0, 20) } }), SPEC.secret, /signature/],
  ['changed id', request({ headers: { 'Http-Webhook-Id': 'msg_other' } }), SPEC.secret, /signature/],
  ['missing signature', { headers: { 'Http-Webhook-Id': SPEC.id, 'Http-Webhook-Timestamp': '1' }, content: SPEC.content }, SPEC.secret, /missing/],
  ['not a whsec_ secret', request(), 'secret', /whsec_/],
])('rejects: %s', (name, raw, secret, reason) => {
  expect(() => verifyWebhook(raw, secret, at)).toThrow(WebhookVerificationError);
  expect(() => verifyWebhook(raw, secret, at)).toThrow(reason);
});

test('rejects a timestamp more than 5 minutes off, either way', () => {
  expect(() => verifyWebhook(request(), SPEC.secret, { now: SPEC.timestamp + 301 })).toThrow(/timestamp/);
  expect(() => verifyWebhook(request(), SPEC.secret, { now: SPEC.timestamp - 301 })).toThrow(/timestamp/);
  expect(verifyWebhook(request(), SPEC.secret, { now: SPEC.timestamp + 299 })).toEqual({ test: 2432232314 });
  // and with the real clock, the 2021 vector is stale
  expect(() => verifyWebhook(request(), SPEC.secret)).toThrow(/timestamp/);
});
