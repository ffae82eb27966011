'use strict';
// "Generate Video": submits the job with Zapier's callback URL as `webhook_url` and pauses
// the Zap until genhook POSTs the signed result there; performResume verifies the Standard
// Webhooks signature with the account's signing secret before the Zap continues.
const { createVideoGeneration: op, webhookPayload } = require('../generated/operations');
const { requestOperation } = require('../lib/genhook');
const { verifyWebhook, WebhookVerificationError } = require('../lib/verify');

const inputFields = op.inputFields.filter((field) => field.key !== 'webhook_url');

/** What the step hands on: the generation, plus the webhook's own fields (e.g. `event`). */
const outputFields = [
  ...op.outputFields,
  ...webhookPayload.outputFields.filter((field) => !op.outputFields.some((f) => f.key === field.key)),
];

const perform = async (z, bundle) => {
  if (bundle.meta && bundle.meta.isLoadingSample) {
    // Setting up the Zap: no job, no callback; a finished generation shows the fields.
    return op.sample;
  }
  const webhookUrl = z.generateCallbackUrl();
  const input = {};
  for (const field of inputFields) input[field.key] = bundle.inputData[field.key];
  input.webhook_url = webhookUrl;
  const response = await requestOperation(z, bundle, op, input);
  return response.data;
};

const performResume = async (z, bundle) => {
  let payload;
  try {
    payload = verifyWebhook(bundle.rawRequest, (bundle.authData || {}).signingSecret);
  } catch (err) {
    if (err instanceof WebhookVerificationError) {
      throw new z.errors.Error(`Refused the genhook webhook: ${err.message}.`, 'InvalidWebhookSignature', 401);
    }
    throw err;
  }
  const pending = bundle.outputData || {};
  // Fails closed: only the generation this step submitted continues the Zap.
  if (!pending.id || payload.id !== pending.id) {
    throw new z.errors.Error(
      `Refused the genhook webhook: it is about ${payload.id}, not this step's generation ${pending.id}.`,
      'WebhookForOtherGeneration',
      400,
    );
  }
  if (payload.status === 'failed' || payload.status === 'canceled') {
    const reason = (payload.error && (payload.error.message || payload.error.code)) || payload.status;
    throw new z.errors.Error(
      `genhook generation ${payload.id} ${payload.status}: ${reason} (credits refunded).`,
      `Generation${payload.status[0].toUpperCase()}${payload.status.slice(1)}`,
      400,
    );
  }
  return { ...pending, ...payload };
};

module.exports = {
  key: 'generate_video',
  noun: op.noun,
  display: {
    label: 'Generate Video',
    description:
      'Generates a video from a prompt (and optionally a first/last frame image) and waits until it is done: the Zap continues with the finished video\'s output_url when genhook\'s signed webhook arrives.',
  },
  operation: {
    inputFields,
    perform,
    performResume,
    outputFields,
    sample: op.sample,
  },
};
