'use strict';
// Authentication against the live genhook: the test request, a bad key, the label.
const zapier = require('zapier-platform-core');
const App = require('../index');
const { env, signup, authFor, appError } = require('./helpers');

const appTester = zapier.createAppTester(App);
let account;

beforeAll(async () => {
  env();
  account = await signup('auth');
});

test('the test request returns the account the API key belongs to', async () => {
  const result = await appTester(App.authentication.test, { authData: authFor(account) });
  expect(result.id).toBe(account.id);
  expect(result.email).toBe(account.email);
  expect(result.credits).toBe(50);
});

test('a trailing slash on the genhook URL is fine', async () => {
  const authData = { ...authFor(account), baseUrl: `${env().url}/` };
  const result = await appTester(App.authentication.test, { authData });
  expect(result.id).toBe(account.id);
});

test('a wrong API key is rejected with 401 and genhook\'s detail', async () => {
  const authData = { ...authFor(account), apiKey: `${account.api_key}x` };
  const err = await appTester(App.authentication.test, { authData }).catch((e) => e);
  expect(err).toBeInstanceOf(Error);
  const { message, status, code } = appError(err);
  expect(status).toBe(401);
  expect(code).toBe('AuthenticationError');
  expect(message).toMatch(/401/);
  expect(message).toMatch(/the API key is not valid/);
});

test('a signing secret that is not whsec_… is refused at connection time', async () => {
  const authData = { ...authFor(account), signingSecret: 'not-a-secret' };
  await expect(appTester(App.authentication.test, { authData })).rejects.toThrow(/whsec_/);
});

test('the connection label is the account email from the test request', async () => {
  const authData = authFor(account);
  const me = await appTester(App.authentication.test, { authData });
  const label = await appTester(App.authentication.connectionLabel, { authData, inputData: me });
  expect(label).toBe(account.email);
});

test('the API key goes only to the connection\'s genhook URL', () => {
  const [addApiKey] = App.beforeRequest;
  const bundle = { authData: authFor(account) };
  const own = addApiKey({ url: `${env().url}/v1/account`, headers: {} }, null, bundle);
  expect(own.headers.Authorization).toBe(`Bearer ${account.api_key}`);
  const other = addApiKey({ url: 'https://elsewhere.example/v1/account', headers: {} }, null, bundle);
  expect(other.headers.Authorization).toBeUndefined();
  // A host that merely starts with genhook's host is another host.
  const lookalike = addApiKey({ url: `${env().url}.evil.example/v1/account`, headers: {} }, null, bundle);
  expect(lookalike.headers.Authorization).toBeUndefined();
  const under = { authData: { ...authFor(account), baseUrl: `${env().url}/api` } };
  const sibling = addApiKey({ url: `${env().url}/apix/v1/account`, headers: {} }, null, under);
  expect(sibling.headers.Authorization).toBeUndefined();
  const below = addApiKey({ url: `${env().url}/api/v1/account`, headers: {} }, null, under);
  expect(below.headers.Authorization).toBe(`Bearer ${account.api_key}`);
});
