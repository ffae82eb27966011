'use strict';
// Helpers for the live tests: genhook accounts, a local webhook receiver (what Zapier's
// callback / hook URL would be), Zapier's renaming of incoming headers, a PNG for image input.
const http = require('http');
const zlib = require('zlib');
const { sign } = require('../lib/verify');

const env = () => {
  const { GENHOOK_URL, GENHOOK_API_KEY, GENHOOK_SIGNING_SECRET } = process.env;
  if (!GENHOOK_URL || !GENHOOK_API_KEY || !GENHOOK_SIGNING_SECRET) {
    throw new Error(
      'GENHOOK_URL, GENHOOK_API_KEY and GENHOOK_SIGNING_SECRET must be set: run the tests with scripts/test-zapier (or under scripts/with-genhook)',
    );
  }
  return { url: GENHOOK_URL.replace(/\/+$/, ''), apiKey: GENHOOK_API_KEY, signingSecret: GENHOOK_SIGNING_SECRET };
};

/** Plain HTTP to genhook (setup and checks), independent of the app under test. */
const api = async (apiKey, method, path, body) => {
  const headers = { Accept: 'application/json' };
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(`${env().url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null };
};

let counter = 0;
/** A fresh account (50 credits): its api_key, signing_secret, email. */
const signup = async (label = 'zapier') => {
  counter += 1;
  const email = `${label}-${process.pid}-${Date.now()}-${counter}@example.com`;
  const { status, data } = await api(null, 'POST', '/v1/signup', { email });
  if (status !== 201) throw new Error(`signup failed: ${status} ${JSON.stringify(data)}`);
  return data;
};

/** The app's authData for an account. */
const authFor = (account) => ({
  baseUrl: env().url,
  apiKey: account.api_key,
  signingSecret: account.signing_secret,
});

/** An HTTP server on 127.0.0.1 recording every request (raw body kept as received). */
const startReceiver = async () => {
  const requests = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const entry = {
        method: req.method,
        path: req.url,
        headers: req.headers,
        content: Buffer.concat(chunks).toString('utf8'),
      };
      requests.push(entry);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"status":"ok"}');
      for (const waiter of [...waiters]) waiter();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  /** The first recorded request matching `predicate`, waiting up to `timeoutMs`. */
  const waitFor = (predicate, timeoutMs = 30000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = requests.find(predicate);
        if (found) {
          clearTimeout(timer);
          waiters.splice(waiters.indexOf(check), 1);
          resolve(found);
        }
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(check), 1);
        reject(new Error(`no matching webhook within ${timeoutMs} ms (got ${requests.length} requests)`));
      }, timeoutMs);
      waiters.push(check);
      check();
    });
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    waitFor,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
};

const camelCase = (name) =>
  name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1).toLowerCase())
    .join('-');

/** Header names as Zapier passes them to a hook: Camel-Case, `Http-` prefix except Content-Type/Length. */
const zapierHeaders = (headers) =>
  Object.fromEntries(
    Object.entries(headers).map(([key, value]) =>
      /^content-(type|length)$/i.test(key) ? [camelCase(key), value] : [`Http-${camelCase(key)}`, value],
    ),
  );

/** bundle.rawRequest / cleanedRequest for a request the receiver got, as Zapier builds them. */
const asZapierRequest = (received, overrides = {}) => {
  const content = overrides.content !== undefined ? overrides.content : received.content;
  const headers = { ...zapierHeaders(received.headers), ...(overrides.headers || {}) };
  return {
    rawRequest: { method: received.method, querystring: '', headers, content },
    cleanedRequest: JSON.parse(content),
  };
};

/** Re-signs `received` with `secret` at `timestamp` (to test staleness separately from signatures). */
const resigned = (received, secret, timestamp) => {
  const id = received.headers['webhook-id'];
  return asZapierRequest(received, {
    headers: {
      'Http-Webhook-Timestamp': String(timestamp),
      'Http-Webhook-Signature': `v1,${sign(secret, id, timestamp, received.content)}`,
    },
  });
};

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k += 1) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
const crc32 = (buf) => {
  let c = 0xffffffff;
  for (const byte of buf) c = crcTable[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
};
const chunk = (type, data) => {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
};
/** A `data:image/png;base64,` URL of a width×height RGB gradient. */
const pngDataUrl = (width = 320, height = 320) => {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  const raw = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    const row = y * (width * 3 + 1);
    for (let x = 0; x < width; x += 1) {
      raw[row + 1 + x * 3] = (x * 255) / width;
      raw[row + 2 + x * 3] = (y * 255) / height;
      raw[row + 3 + x * 3] = 128;
    }
  }
  const png = Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
  return `data:image/png;base64,${png.toString('base64')}`;
};

/** Parses the JSON envelope of a z.errors.Error (message, code, status). */
const appError = (err) => {
  try {
    return JSON.parse(err.message);
  } catch (e) {
    return { message: err.message };
  }
};

module.exports = { env, api, signup, authFor, startReceiver, zapierHeaders, asZapierRequest, resigned, pngDataUrl, appError };
