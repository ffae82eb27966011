'use strict';
// Helpers shared by the app's steps: the account's base URL, requests for generated
// operations, and genhook's problem details turned into errors a Zap user can act on.
const { requestFor } = require('../generated/utils');

/** The connection's genhook URL without a trailing slash. */
const baseUrl = (bundle) => String((bundle.authData || {}).baseUrl || '').trim().replace(/\/+$/, '');

/** A z.request for a generated operation (see generated/utils.js `requestFor`). */
const requestOperation = (z, bundle, operation, inputData, options = {}) => {
  const { method, path, params, headers, body } = requestFor(operation, inputData);
  const request = { method, url: `${baseUrl(bundle)}${path}`, params, headers, ...options };
  if (body !== undefined) request.body = body;
  return z.request(request);
};

const parseProblem = (response) => {
  const type = String(response.getHeader ? response.getHeader('content-type') || '' : '');
  if (!/json/i.test(type)) return null;
  try {
    const problem = JSON.parse(response.content);
    return problem && typeof problem === 'object' ? problem : null;
  } catch (err) {
    return null;
  }
};

/**
 * The z.errors.Error for a genhook error response (RFC 9457 problem details: title,
 * detail, errors[{field, message}]). 401 says the API key is wrong; a 422 names the field.
 */
const problemError = (z, response) => {
  const problem = parseProblem(response) || {};
  const status = response.status;
  const detail = problem.detail || (typeof response.content === 'string' ? response.content.slice(0, 500) : '');
  const fields = (Array.isArray(problem.errors) ? problem.errors : [])
    .map((e) => e && e.field)
    .filter(Boolean);
  const slug = String(problem.type || '').replace(/^urn:genhook:problem:/, '') || `http-${status}`;
  if (status === 401) {
    return new z.errors.Error(
      `genhook rejected the API key (401 ${problem.title || 'Unauthorized'}): ${detail || 'invalid API key'}. ` +
        'Reconnect the account with a valid API key.',
      'AuthenticationError',
      status,
    );
  }
  let message = `genhook: ${problem.title || 'Request failed'} (${status}): ${detail}`;
  if (fields.length > 0) message += ` [field${fields.length > 1 ? 's' : ''}: ${fields.join(', ')}]`;
  return new z.errors.Error(message, slug, status);
};

module.exports = { baseUrl, requestOperation, problemError };
