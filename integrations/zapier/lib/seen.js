'use strict';
// Drops a webhook-id a Zap has already handled. genhook delivers at least once (a retry
// after a lost answer, a redelivery) and Zapier does not de-duplicate REST hooks, so the
// trigger remembers each id in Zapier's cache (`z.cache`) for as long as genhook itself
// dedups: 7 days.
const SEEN_TTL_SECONDS = 7 * 24 * 3600;

const seenKey = (subscriptionId, webhookId) => `genhook:seen:${subscriptionId}:${webhookId}`;

/**
 * True the first time a subscription sees this webhook-id. The `get` catches a repeat that
 * comes later; `set` with `nx` catches two copies racing (it answers false when the id was
 * stored in between). If the cache cannot be reached the event goes through: a duplicate
 * Zap run is better than a lost one.
 */
const firstDelivery = async (z, subscriptionId, webhookId) => {
  const key = seenKey(subscriptionId, webhookId);
  try {
    if (await z.cache.get(key)) return false;
    return (await z.cache.set(key, true, SEEN_TTL_SECONDS, null, true)) !== false;
  } catch (err) {
    z.console.log(`genhook: could not check webhook-id ${webhookId} for repeats (${err.message}); letting it through`);
    return true;
  }
};

module.exports = { firstDelivery, SEEN_TTL_SECONDS };
