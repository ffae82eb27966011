// The declarative "Genhook" node, run by n8n-core's WorkflowExecute against a live genhook.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { GENHOOK, TYPES, api, methodOptions, newAccount, outputOf, routedOptions, runNode, workflowWith } from './harness.mjs';

const genhook = (credentials, parameters, items) =>
	runNode({ type: TYPES.genhook, parameters, credentials, items }).then(({ run }) => outputOf(run));

describe('Genhook node', () => {
	let account;
	before(async () => {
		account = await newAccount();
	});

	test('account get authenticates with the credential\'s Bearer key', async () => {
		const { items } = await genhook(account, { resource: 'account', operation: 'get' });
		assert.equal(items[0].object, 'account');
		assert.equal(items[0].credits, 50);
	});

	test('a wrong API key is a clear 401 error, not an output', async () => {
		const { error } = await genhook({ ...account, apiKey: 'gh_wrong' }, { resource: 'account', operation: 'get' });
		assert.equal(error.httpCode, '401');
		assert.match(error.message, /API key/i);
	});

	test('the credential test request reaches GET /v1/account with the key', async () => {
		const { default: credentials } = await import('../dist/credentials/GenhookApi.credentials.js');
		const request = new credentials.GenhookApi().test.request;
		assert.equal(request.url, '/v1/account');
		const ok = await fetch(`${GENHOOK.baseUrl}${request.url}`, { headers: { Authorization: `Bearer ${account.apiKey}` } });
		assert.equal(ok.status, 200);
	});

	test('models get many lists the catalog with prices', async () => {
		const { items } = await genhook(account, { resource: 'model', operation: 'getAll' });
		const ids = items.flatMap((page) => page.data ?? [page]).map((m) => m.id);
		assert.ok(ids.includes('kling-v3'), `kling-v3 in ${ids}`);
	});

	test('generation create sends required fields and only the additional fields set', async () => {
		const { items } = await genhook(account, {
			resource: 'generation',
			operation: 'create',
			model: 'kling-v3',
			prompt: 'A slow dolly shot through a sunlit kitchen',
			additionalFields: { duration: '5s', metadata: '{"listing_id": "MLS-1"}' },
		});
		const job = items[0];
		assert.equal(job.status, 'pending');
		assert.equal(job.duration, '5s');
		assert.deepEqual(job.metadata, { listing_id: 'MLS-1' });
		assert.equal(job.webhook_url, null);
		const stored = await api('GET', `/v1/video/generations/${job.id}`, undefined, account.apiKey);
		assert.equal(stored.status, 200);
		assert.equal(stored.body.aspect_ratio, job.aspect_ratio);
	});

	test('one item per input item, each its own generation', async () => {
		const { items } = await genhook(
			account,
			{ resource: 'generation', operation: 'create', model: 'kling-v3', prompt: '={{ $json.prompt }}' },
			[{ json: { prompt: 'first listing' } }, { json: { prompt: 'second listing' } }],
		);
		assert.deepEqual(items.map((j) => j.prompt), ['first listing', 'second listing']);
		assert.notEqual(items[0].id, items[1].id);
	});

	test('an Idempotency Key makes a re-run answer the first generation, charged once', async () => {
		const params = {
			resource: 'generation',
			operation: 'create',
			model: 'kling-v3',
			prompt: 'Listing MLS-77 walkthrough',
			additionalFields: { idempotencyKey: `mls-77-${Date.now()}` },
		};
		const before = (await api('GET', '/v1/account', undefined, account.apiKey)).body.credits;
		const first = (await genhook(account, params)).items[0];
		const again = (await genhook(account, params)).items[0];
		assert.equal(again.id, first.id);
		const after = (await api('GET', '/v1/account', undefined, account.apiKey)).body.credits;
		assert.equal(before - after, first.credits);
	});

	test('bad input is the API\'s 422 naming the field', async () => {
		const { error } = await genhook(account, {
			resource: 'generation',
			operation: 'create',
			model: 'no-such-model',
			prompt: 'x',
		});
		assert.ok(error, 'the node failed');
		assert.match(error.message, /^Request validation failed: model: unknown model/);
		assert.equal(error.httpCode, '422');
	});

	test('get, get many with a status filter, and cancel', async () => {
		const created = await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'to cancel' }, account.apiKey);
		assert.equal(created.status, 202);
		const id = created.body.id;
		const got = await genhook(account, { resource: 'generation', operation: 'get', jobId: id });
		assert.equal(got.items[0].id, id);
		const canceled = await genhook(account, { resource: 'generation', operation: 'cancel', jobId: id });
		assert.equal(canceled.items[0].status, 'canceled');
		const page = await genhook(account, {
			resource: 'generation',
			operation: 'getAll',
			additionalFields: { status: 'canceled', limit: 10 },
		});
		const listed = page.items.flatMap((p) => p.data ?? [p]);
		assert.ok(listed.some((j) => j.id === id));
		assert.ok(listed.every((j) => j.status === 'canceled'));
	});

	test('another account\'s generation is not found', async () => {
		const other = await newAccount();
		const created = await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'private' }, other.apiKey);
		const { error } = await genhook(account, { resource: 'generation', operation: 'get', jobId: created.body.id });
		assert.match(JSON.stringify(error), /404/);
	});

	test('the Model dropdown lists the catalog (name shown, id sent), in both nodes', async () => {
		const catalog = (await api('GET', '/v1/models', undefined, account.apiKey)).body.data;
		const expected = catalog
			.map((m) => ({ name: m.name, value: m.id }))
			.sort((a, b) => a.name.localeCompare(b.name));
		const declarative = await routedOptions({ type: TYPES.genhook, parameter: 'model', credentials: account, parameters: { resource: 'generation', operation: 'create' } });
		assert.deepEqual(declarative.map(({ name, value }) => ({ name, value })), expected);
		assert.ok(declarative.every((o) => o.description), 'each choice says what the model is good at');
		const programmatic = await methodOptions({ type: TYPES.generateAndWait, parameter: 'model', credentials: account });
		assert.deepEqual(programmatic.map(({ name, value }) => ({ name, value })), expected);
		assert.ok(programmatic.every((o) => o.description));
	});

	test('a base URL with a trailing slash works in every node and in the credential test', async () => {
		const slashed = { ...account, baseUrl: `${account.baseUrl}/` };
		const { items } = await genhook(slashed, { resource: 'account', operation: 'get' });
		assert.equal(items[0].object, 'account');
		const models = await methodOptions({ type: TYPES.generateAndWait, parameter: 'model', credentials: slashed });
		assert.ok(models.length > 0);
		const { default: credentials } = await import('../dist/credentials/GenhookApi.credentials.js');
		const { workflow, node } = workflowWith(TYPES.genhook, {});
		const baseURL = workflow.expression.getSimpleParameterValue(node, new credentials.GenhookApi().test.request.baseURL, 'internal', { $credentials: slashed }, undefined, '');
		assert.equal(baseURL, account.baseUrl);
	});
});
