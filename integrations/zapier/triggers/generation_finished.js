'use strict';
// "Generation Finished": a REST hook. Turning the Zap on registers Zapier's URL as a genhook
// webhook endpoint (which has its own whsec_ secret, kept in subscribeData); every event is
// verified with that secret before it triggers the Zap.
const { getVideoGeneration, webhookPayload } = require('../generated/operations');
const { baseUrl, problemError } = require('../lib/genhook');
const { verifyWebhook, getHeader, WebhookVerificationError } = require('../lib/verify');
const { firstDelivery } = require('../lib/seen');

const webhookIdOf = (rawRequest) => getHeader((rawRequest || {}).headers, 'webhook-id');

const EVENT_CHOICES = { completed: 'Completed', failed: 'Failed', canceled: 'Canceled' };

// The fields of genhook's WebhookPayload (schemas/openapi.json `webhooks`), in its order.
const PAYLOAD_KEYS = [
  'event', 'id', 'object', 'status', 'phase', 'phase_label', 'model', 'prompt', 'output_url',
  'credits', 'credits_billed', 'failover_used', 'rendered_model', 'metadata', 'created_at',
  'completed_at', 'elapsed_seconds', 'progress', 'eta_seconds', 'error', 'status_chain',
];

/** A generation as the webhook payload of its current status. */
const asPayload = (generation) => {
  const payload = {};
  for (const key of PAYLOAD_KEYS) {
    payload[key] = key === 'event' ? `video.generation.${generation.status}` : generation[key];
  }
  payload.webhook_id = null; // a sample was never delivered
  return payload;
};

/** The chosen statuses (completed, failed, canceled); `completed` when none. */
const chosenStatuses = (inputData) => {
  let value = (inputData || {}).events;
  if (typeof value === 'string') value = value.split(',');
  const statuses = (Array.isArray(value) ? value : [])
    .map((v) => String(v).trim().replace(/^video\.generation\./, ''))
    .filter((v) => v in EVENT_CHOICES);
  return statuses.length > 0 ? [...new Set(statuses)] : ['completed'];
};

const performSubscribe = async (z, bundle) => {
  const response = await z.request({
    method: 'POST',
    url: `${baseUrl(bundle)}/v1/webhook-endpoints`,
    body: {
      url: bundle.targetUrl,
      events: chosenStatuses(bundle.inputData).map((s) => `video.generation.${s}`),
      description: 'Zapier: Generation Finished',
    },
  });
  return response.data; // includes `id` and the endpoint's `secret`
};

const performUnsubscribe = async (z, bundle) => {
  const id = (bundle.subscribeData || {}).id;
  if (!id) return { deleted: false };
  const response = await z.request({
    method: 'DELETE',
    url: `${baseUrl(bundle)}/v1/webhook-endpoints/${encodeURIComponent(id)}`,
    skipThrowForStatus: true,
  });
  // Already gone (deleted by hand): turning the Zap off still succeeds.
  if (response.status === 204 || response.status === 404) return { id, deleted: true };
  throw problemError(z, response);
};

const perform = async (z, bundle) => {
  const secret = (bundle.subscribeData || {}).secret;
  try {
    const payload = verifyWebhook(bundle.rawRequest, secret);
    // genhook's delivery id, the same on every retry and redelivery: a repeat triggers nothing.
    const webhookId = webhookIdOf(bundle.rawRequest);
    if (!(await firstDelivery(z, (bundle.subscribeData || {}).id, webhookId))) return [];
    return [{ ...payload, webhook_id: webhookId }];
  } catch (err) {
    if (err instanceof WebhookVerificationError) {
      throw new z.errors.Error(`Refused the genhook webhook: ${err.message}.`, 'InvalidWebhookSignature', 401);
    }
    throw err;
  }
};

const performList = async (z, bundle) => {
  const [status] = chosenStatuses(bundle.inputData);
  const response = await z.request({
    url: `${baseUrl(bundle)}/v1/video/generations`,
    params: { status, limit: 10 },
  });
  return (response.data.data || []).map(asPayload);
};

module.exports = {
  key: 'generation_finished',
  noun: 'Generation',
  display: {
    label: 'Generation Finished',
    description:
      'Triggers when a video generation completes (or, if you choose, fails or is canceled), on genhook\'s signed webhook; output_url links to the video.',
  },
  operation: {
    type: 'hook',
    inputFields: [
      {
        key: 'events',
        label: 'Events',
        type: 'string',
        list: true,
        required: false,
        choices: EVENT_CHOICES,
        default: 'completed',
        helpText: 'Which endings trigger the Zap. Completed when left empty.',
      },
    ],
    performSubscribe,
    performUnsubscribe,
    perform,
    performList,
    outputFields: [...webhookPayload.outputFields, { key: 'webhook_id', label: 'Webhook ID', type: 'string' }],
    sample: asPayload(getVideoGeneration.sample),
  },
};
