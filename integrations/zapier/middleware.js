'use strict';
const { baseUrl, problemError } = require('./lib/genhook');

/** Whether `url` is under `base`: same origin, and a path at or below the base's path
 * (so `https://genhook.example.com.evil.net` or `…/v1evil` never get the key). */
const isUnder = (url, base) => {
  try {
    const target = new URL(url);
    const root = new URL(base);
    const prefix = root.pathname.replace(/\/+$/, '');
    return (
      target.origin === root.origin &&
      (target.pathname === prefix || target.pathname.startsWith(`${prefix}/`) || prefix === '')
    );
  } catch (err) {
    return false;
  }
};

/** Adds `Authorization: Bearer <apiKey>` to requests to the connection's genhook (only). */
const addApiKey = (request, z, bundle) => {
  const base = baseUrl(bundle);
  const { apiKey } = bundle.authData || {};
  if (apiKey && base && isUnder(String(request.url || ''), base)) {
    request.headers = request.headers || {};
    request.headers.Authorization = `Bearer ${apiKey}`;
    if (!request.headers.Accept) request.headers.Accept = 'application/json';
  }
  return request;
};

/**
 * Turns genhook's 4xx problem details into z.errors.Error with the detail and field names.
 * 429 is left to Zapier's throttling handling, 5xx to its generic error; a request made
 * with `skipThrowForStatus` (e.g. Find Generation's 404) handles its own status.
 */
const handleProblems = (response, z) => {
  if (response.skipThrowForStatus) return response;
  if (response.status >= 400 && response.status < 500 && response.status !== 429) {
    throw problemError(z, response);
  }
  return response;
};

module.exports = { befores: [addApiKey], afters: [handleProblems], isUnder };
