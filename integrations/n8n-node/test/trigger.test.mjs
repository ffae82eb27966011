// "Genhook Trigger": registers a genhook webhook endpoint on activation (n8n-core's
// HookContext), verifies and dedups the real signed events genhook sends it (WebhookContext),
// and deletes the endpoint on deactivation. Against a live genhook.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { TYPES, api, callWebhook, eventually, hook, newAccount, receiver, workflowWith } from './harness.mjs';

function replay(request, headers = request.headers, rawBody = request.rawBody) {
	return { rawBody, headers, body: JSON.parse(rawBody.toString()), readRawBody: async () => {} };
}

describe('Genhook Trigger', () => {
	let account;
	let n8n;
	let trigger;
	const calls = [];
	const refuse = new Set();
	before(async () => {
		account = await newAccount();
		// n8n's webhook server: each event genhook POSTs goes to the trigger's webhook().
		n8n = await receiver(async (request) => {
			const state = trigger.workflow.staticData['node:Genhook'];
			if (state && refuse.has(state.endpointId)) {
				// n8n is "down" for this endpoint: genhook's attempt fails.
				calls.push({ request, answer: { status: 503 } });
				return { status: 503, body: {} };
			}
			const call = await callWebhook({ ...trigger, request, credentials: account, baseUrl: n8n.baseUrl });
			calls.push({ request, ...call });
			return call.answer;
		});
		trigger = workflowWith(TYPES.trigger, { events: ['video.generation.completed', 'video.generation.canceled'] }, {});
	});
	after(() => n8n.close());
	const activate = (method) => hook(method, { ...trigger, baseUrl: n8n.baseUrl, credentials: account });
	const endpoints = async () => (await api('GET', '/v1/webhook-endpoints', undefined, account.apiKey)).body.data;

	test('activation registers one endpoint with the chosen events and keeps its secret', async () => {
		assert.equal(await activate('checkExists'), false);
		assert.equal(await activate('create'), true);
		const [endpoint, ...more] = await endpoints();
		assert.equal(more.length, 0);
		assert.equal(endpoint.url, `${n8n.baseUrl}/webhook/hook-1/webhook`);
		assert.deepEqual([...endpoint.events].sort(), ['video.generation.canceled', 'video.generation.completed']);
		const state = trigger.workflow.staticData['node:Genhook'];
		assert.equal(state.endpointId, endpoint.id);
		assert.match(state.secret, /^whsec_/);
		assert.equal(await activate('checkExists'), true, 'a second activation reuses it');
		assert.equal((await endpoints()).length, 1);
	});

	test('a completed generation starts the workflow with the verified payload, once', async () => {
		const job = (await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'porch at dusk' }, account.apiKey)).body;
		const call = await eventually(() => calls.find((c) => c.request.body?.id === job.id && c.result.workflowData));
		const [[item]] = call.result.workflowData;
		assert.equal(item.json.event, 'video.generation.completed');
		assert.equal(item.json.id, job.id);
		assert.ok(item.json.output_url);
		assert.equal(item.json.webhook_id, call.request.headers['webhook-id'], 'the item carries the webhook-id');

		const again = await callWebhook({ ...trigger, request: replay(call.request), credentials: account, baseUrl: n8n.baseUrl });
		assert.equal(again.answer.status, 200, 'genhook is told it arrived, so it stops retrying');
		assert.equal(again.result.workflowData, undefined, 'a repeated webhook-id starts nothing');
		assert.equal(again.answer.body.duplicate, true);

		// n8n 2.41 does not save the static data a webhook() changes when it starts an
		// execution: with only the endpoint's id and secret saved, the repeat is still caught.
		const { endpointId, secret, seen } = trigger.workflow.staticData['node:Genhook'];
		assert.ok(seen[call.request.headers['webhook-id']], 'kept in static data too, for when n8n saves it');
		const reloaded = workflowWith(TYPES.trigger, trigger.node.parameters, { 'node:Genhook': { endpointId, secret } });
		const afterReload = await callWebhook({ ...reloaded, request: replay(call.request), credentials: account, baseUrl: n8n.baseUrl });
		assert.equal(afterReload.answer.status, 200);
		assert.equal(afterReload.result.workflowData, undefined);
	});

	test('forged, tampered and stale events get 401 and start nothing', async () => {
		const genuine = calls.find((c) => c.result.workflowData).request;
		const tamperedBody = Buffer.from(genuine.rawBody.toString().replace('"completed"', '"failed"'));
		const tampered = await callWebhook({ ...trigger, request: replay(genuine, { ...genuine.headers, 'webhook-id': 'msg_new' }, tamperedBody), credentials: account, baseUrl: n8n.baseUrl });
		assert.equal(tampered.answer.status, 401);
		assert.equal(tampered.result.workflowData, undefined);

		const accountSigned = await fetch(`${n8n.baseUrl}/webhook/hook-1/webhook`, {
			method: 'POST',
			headers: { 'content-type': 'application/json', 'webhook-id': 'msg_1', 'webhook-timestamp': String(Math.floor(Date.now() / 1000)), 'webhook-signature': 'v1,AAAA' },
			body: '{"event":"video.generation.completed"}',
		});
		assert.equal(accountSigned.status, 401);

		const stale = await callWebhook({ ...trigger, request: replay(genuine, { ...genuine.headers, 'webhook-timestamp': String(Number(genuine.headers['webhook-timestamp']) - 3600) }), credentials: account, baseUrl: n8n.baseUrl });
		assert.equal(stale.answer.status, 401);
	});

	test('events the trigger did not choose start nothing', async () => {
		await api('PATCH', `/v1/webhook-endpoints/${(await endpoints())[0].id}`, { events: ['video.generation.completed', 'video.generation.canceled', 'video.generation.status_changed'] }, account.apiKey);
		const job = (await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'garden' }, account.apiKey)).body;
		await eventually(() => calls.find((c) => c.request.body?.id === job.id && c.request.body.event === 'video.generation.completed'));
		const phases = calls.filter((c) => c.request.body?.id === job.id && c.request.body.event === 'video.generation.status_changed');
		assert.ok(phases.length > 0, 'genhook sent phase changes');
		assert.ok(phases.every((c) => c.answer.status === 200 && c.result.workflowData === undefined));
		const [patched] = await endpoints();
		assert.equal(await activate('checkExists'), true, 'an endpoint whose events differ is repaired');
		const [repaired, ...more] = await endpoints();
		assert.equal(more.length, 0);
		assert.equal(repaired.id, patched.id);
		assert.deepEqual([...repaired.events].sort(), ['video.generation.canceled', 'video.generation.completed']);
	});

	test('deactivation deletes the endpoint; a second delete is harmless', async () => {
		const [endpoint] = await endpoints();
		assert.equal(await activate('delete'), true);
		assert.equal((await api('GET', `/v1/webhook-endpoints/${endpoint.id}`, undefined, account.apiKey)).status, 404);
		assert.equal(await activate('checkExists'), false);
		assert.equal(await activate('delete'), true);
	});

	test('an endpoint deleted behind n8n\'s back is registered again on activation', async () => {
		assert.equal(await activate('create'), true);
		const [endpoint] = await endpoints();
		await api('DELETE', `/v1/webhook-endpoints/${endpoint.id}`, undefined, account.apiKey);
		assert.equal(await activate('checkExists'), false);
		assert.equal(await activate('create'), true);
		assert.equal((await endpoints()).length, 1);
		await activate('delete');
	});

	test('after the endpoint\'s secret is rotated, the secret the trigger holds still verifies', async () => {
		assert.equal(await activate('create'), true);
		const [endpoint] = await endpoints();
		const rotated = await api('POST', `/v1/webhook-endpoints/${endpoint.id}/rotate-secret`, undefined, account.apiKey);
		assert.equal(rotated.status, 200);
		const job = (await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'after rotation' }, account.apiKey)).body;
		const call = await eventually(() => calls.find((c) => c.request.body?.id === job.id && c.request.body.event === 'video.generation.completed'));
		assert.equal(call.request.headers['webhook-signature'].split(' ').length, 2, 'new and old signatures');
		assert.equal(call.answer.status, 200);
		assert.ok(call.result.workflowData, 'verified with the old secret (the second signature)');
		await activate('delete');
	});

	test('a trigger that holds no secret verifies nothing, not even an empty-key signature', async () => {
		const bare = workflowWith(TYPES.trigger, trigger.node.parameters, { 'node:Genhook': { endpointId: 'whep_x' } });
		const body = '{"event":"video.generation.completed","id":"vgen_x"}';
		const now = String(Math.floor(Date.now() / 1000));
		const mac = createHmac('sha256', Buffer.alloc(0)).update(`msg_empty.${now}.${body}`).digest('base64');
		const request = { rawBody: Buffer.from(body), headers: { 'webhook-id': 'msg_empty', 'webhook-timestamp': now, 'webhook-signature': `v1,${mac}` }, readRawBody: async () => {} };
		const { answer, result } = await callWebhook({ ...bare, request, credentials: account, baseUrl: n8n.baseUrl });
		assert.equal(answer.status, 401);
		assert.equal(result.workflowData, undefined);
	});

	test('an endpoint moved, disabled or edited behind n8n\'s back is repaired in place', async () => {
		for (const change of [{ url: `${n8n.baseUrl}/elsewhere` }, { enabled: false }, { events: ['video.generation.failed'] }]) {
			assert.equal(await activate('create'), true);
			const [endpoint] = await endpoints();
			const patched = await api('PATCH', `/v1/webhook-endpoints/${endpoint.id}`, change, account.apiKey);
			assert.equal(patched.status, 200, JSON.stringify(patched.body));
			assert.equal(await activate('checkExists'), true, JSON.stringify(change));
			const [repaired, ...more] = await endpoints();
			assert.equal(more.length, 0);
			assert.equal(repaired.id, endpoint.id, 'same endpoint: its secret and delivery log are kept');
			assert.equal(repaired.url, `${n8n.baseUrl}/webhook/hook-1/webhook`);
			assert.equal(repaired.enabled, true);
			assert.deepEqual([...repaired.events].sort(), ['video.generation.canceled', 'video.generation.completed']);
			await activate('delete');
		}
	});

	test('events that failed before the endpoint was disabled arrive once it is repaired', async () => {
		assert.equal(await activate('create'), true);
		const [endpoint] = await endpoints();
		refuse.add(endpoint.id);
		const job = (await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'while n8n was away' }, account.apiKey)).body;
		await eventually(() => calls.find((c) => c.request.body?.id === job.id && c.answer.status === 503));
		await api('PATCH', `/v1/webhook-endpoints/${endpoint.id}`, { enabled: false }, account.apiKey);
		refuse.delete(endpoint.id);
		assert.equal(await activate('checkExists'), true);
		const started = await eventually(() => calls.find((c) => c.request.body?.id === job.id && c.result?.workflowData));
		assert.equal(started.result.workflowData[0][0].json.event, 'video.generation.completed');
		await activate('delete');
	});

	test('a trigger whose static data lost the secret fetches it again on activation', async () => {
		assert.equal(await activate('create'), true);
		const state = trigger.workflow.staticData['node:Genhook'];
		const secret = state.secret;
		delete state.secret;
		assert.equal(await activate('checkExists'), true);
		assert.equal(state.secret, secret);
		await activate('delete');
	});

	test('an API error during activation is an error, and the endpoint is not forgotten', async () => {
		assert.equal(await activate('create'), true);
		const state = trigger.workflow.staticData['node:Genhook'];
		const held = state.endpointId;
		await assert.rejects(() => hook('checkExists', { ...trigger, baseUrl: n8n.baseUrl, credentials: { ...account, apiKey: 'gh_wrong' } }), /401|uthori/);
		assert.equal(state.endpointId, held);
		assert.equal(await activate('checkExists'), true);
		await activate('delete');
	});
});

describe('Genhook Trigger on phase changes', () => {
	test('every phase a generation enters starts the workflow once', async () => {
		const account = await newAccount();
		const started = [];
		let phases;
		const n8n = await receiver(async (request) => {
			const call = await callWebhook({ ...phases, request, credentials: account, baseUrl: n8n.baseUrl });
			if (call.result.workflowData) started.push(call.result.workflowData[0][0].json);
			return call.answer;
		});
		try {
			phases = workflowWith(TYPES.trigger, { events: ['video.generation.status_changed'] }, {});
			assert.equal(await hook('create', { ...phases, baseUrl: n8n.baseUrl, credentials: account }), true);
			const job = (await api('POST', '/v1/video/generations', { model: 'kling-v3', prompt: 'phases' }, account.apiKey)).body;
			await eventually(async () => (await api('GET', `/v1/video/generations/${job.id}`, undefined, account.apiKey)).body.status === 'completed');
			await eventually(() => started.some((p) => p.phase === 'finishing'));
			const seen = started.filter((p) => p.id === job.id).map((p) => p.phase);
			assert.ok(seen.length >= 2, `phases ${seen}`);
			assert.equal(new Set(seen).size, seen.length, 'each phase once');
			assert.ok(started.every((p) => p.event === 'video.generation.status_changed'));
			await hook('delete', { ...phases, baseUrl: n8n.baseUrl, credentials: account });
		} finally {
			await n8n.close();
		}
	});
});
