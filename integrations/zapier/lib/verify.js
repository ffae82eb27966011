'use strict';
// Standard Webhooks verification (https://www.standardwebhooks.com/), as genhook signs:
// `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256>` over
// `${webhook-id}.${webhook-timestamp}.${raw body}`, keyed with the base64 part of `whsec_…`.
// Zapier hands a hook the headers renamed (`webhook-id` → `Http-Webhook-Id`), so lookups
// ignore case and an `Http-` prefix.
const crypto = require('crypto');

const TOLERANCE_SECONDS = 5 * 60;

class WebhookVerificationError extends Error {
  constructor(message) {
    super(message);
    this.name = 'WebhookVerificationError';
  }
}

const normalize = (name) =>
  String(name)
    .toLowerCase()
    .replace(/_/g, '-')
    .replace(/^http-/, '');

/** A header's value, whatever Zapier did to its name (case, `Http-` prefix). */
const getHeader = (headers, name) => {
  const wanted = normalize(name);
  for (const [key, value] of Object.entries(headers || {})) {
    if (normalize(key) === wanted) return Array.isArray(value) ? value.join(' ') : value;
  }
  return undefined;
};

const secretKey = (secret) => {
  if (typeof secret !== 'string' || !secret.startsWith('whsec_') || secret.length <= 6) {
    throw new WebhookVerificationError('the signing secret must be a whsec_… value');
  }
  return Buffer.from(secret.slice('whsec_'.length), 'base64');
};

/** The `v1,` signature genhook would send for this message (used by the tests too). */
const sign = (secret, id, timestamp, content) =>
  crypto
    .createHmac('sha256', secretKey(secret))
    .update(`${id}.${timestamp}.${content}`, 'utf8')
    .digest('base64');

/**
 * Checks a webhook request `{headers, content}` (Zapier's `bundle.rawRequest`) against the
 * secret; throws WebhookVerificationError unless one `v1` signature matches and the
 * timestamp is within 5 minutes of `now` (seconds). Returns the parsed JSON body.
 */
const verifyWebhook = (rawRequest, secret, { now = Date.now() / 1000, tolerance = TOLERANCE_SECONDS } = {}) => {
  const { headers, content } = rawRequest || {};
  const id = getHeader(headers, 'webhook-id');
  const timestamp = getHeader(headers, 'webhook-timestamp');
  const signatures = getHeader(headers, 'webhook-signature');
  if (!id || !timestamp || !signatures) {
    throw new WebhookVerificationError(
      'missing webhook-id, webhook-timestamp or webhook-signature header: not a signed genhook webhook',
    );
  }
  if (typeof content !== 'string') {
    throw new WebhookVerificationError('the raw request body is missing');
  }
  if (!/^\d{1,15}$/.test(String(timestamp).trim())) {
    throw new WebhookVerificationError('the webhook-timestamp header is not a Unix time');
  }
  if (Math.abs(now - Number(timestamp)) > tolerance) {
    throw new WebhookVerificationError(
      `the webhook timestamp is more than ${Math.round(tolerance / 60)} minutes away from now (stale or replayed)`,
    );
  }
  const expected = Buffer.from(sign(secret, id, String(timestamp).trim(), content), 'base64');
  let matched = false;
  for (const part of String(signatures).trim().split(/\s+/)) {
    const comma = part.indexOf(',');
    if (comma < 0 || part.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(part.slice(comma + 1), 'base64');
    // Check every candidate (no early exit) in constant time per candidate.
    if (given.length === expected.length && crypto.timingSafeEqual(given, expected)) matched = true;
  }
  if (!matched) {
    throw new WebhookVerificationError('no webhook signature matches the signing secret');
  }
  try {
    return JSON.parse(content);
  } catch (err) {
    throw new WebhookVerificationError('the signed webhook body is not JSON');
  }
};

module.exports = { verifyWebhook, sign, getHeader, WebhookVerificationError, TOLERANCE_SECONDS };
