// "Genhook: Generate and Wait": the execution waits, genhook's real signed webhook resumes it
// (n8n-core's WorkflowExecute and WebhookContext against a live genhook), forgeries do not.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { TYPES, api, callWebhook, newAccount, outputOf, receiver, resume, runNode } from './harness.mjs';

const PARAMETERS = {
	model: 'kling-v3',
	prompt: 'Aerial orbit around a seaside villa at golden hour',
	additionalFields: { duration: '5s', metadata: '{"listing_id": "MLS-7"}' },
};

/** Signs a body the way genhook does (Standard Webhooks), for forgeries with a known key. */
function sign(secret, id, timestamp, body) {
	const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
	const mac = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest('base64');
	return `v1,${mac}`;
}

function fakeRequest(body, headers) {
	const rawBody = Buffer.from(body);
	return { rawBody, headers, body: JSON.parse(body), readRawBody: async () => {} };
}

describe('Generate and Wait, webhook mode', () => {
	let account;
	let n8n;
	before(async () => {
		account = await newAccount();
		n8n = await receiver(() => ({ status: 200, body: { received: true } }));
	});
	after(() => n8n.close());

	test('submits with the resume URL, waits, and resumes only on the genuine webhook', async () => {
		const { run, workflow, node } = await runNode({
			type: TYPES.generateAndWait,
			parameters: PARAMETERS,
			credentials: account,
			baseUrl: n8n.baseUrl,
		});
		assert.equal(run.status, 'waiting');
		assert.equal(run.waitTill.getUTCFullYear(), 3000, 'waits indefinitely by default');
		const waiting = run.data.executionData.nodeExecutionStack[0].data.main[0][0].json;
		assert.equal(waiting.status, 'pending');
		const job = (await api('GET', `/v1/video/generations/${waiting.id}`, undefined, account.apiKey)).body;
		assert.ok(job.webhook_url.startsWith(`${n8n.baseUrl}/webhook-waiting/exec-1`), job.webhook_url);
		assert.deepEqual(job.metadata, { listing_id: 'MLS-7' });

		const delivered = await n8n.waitFor((req) => req.url.startsWith('/webhook-waiting/exec-1'));
		const raw = delivered.rawBody.toString();
		const headers = delivered.headers;
		const webhook = (request) => callWebhook({ workflow, node, request, runExecutionData: run.data, credentials: account, baseUrl: n8n.baseUrl });

		const tampered = await webhook(fakeRequest(raw.replace('"completed"', '"failed"'), headers));
		assert.equal(tampered.answer.status, 401);
		assert.equal(tampered.result.workflowData, undefined, 'a forged body resumes nothing');

		const unsigned = await webhook(fakeRequest(raw, { ...headers, 'webhook-signature': undefined }));
		assert.equal(unsigned.answer.status, 401);

		const staleAt = Number(headers['webhook-timestamp']) - 600;
		const stale = await webhook(
			fakeRequest(raw, { ...headers, 'webhook-timestamp': String(staleAt), 'webhook-signature': sign(account.signingSecret, headers['webhook-id'], staleAt, raw) }),
		);
		assert.equal(stale.answer.status, 401, 'a replay older than 5 minutes is refused');

		const other = await newAccount();
		const wrongKey = await webhook(
			fakeRequest(raw, { ...headers, 'webhook-signature': sign(other.signingSecret, headers['webhook-id'], headers['webhook-timestamp'], raw) }),
		);
		assert.equal(wrongKey.answer.status, 401, 'another account\'s secret does not verify');

		const now = Math.floor(Date.now() / 1000);
		const otherJobBody = JSON.stringify({ ...JSON.parse(raw), id: 'vgen_someoneelse' });
		const otherJob = await webhook(
			fakeRequest(otherJobBody, { ...headers, 'webhook-timestamp': String(now), 'webhook-signature': sign(account.signingSecret, 'msg_x', now, otherJobBody), 'webhook-id': 'msg_x' }),
		);
		assert.equal(otherJob.answer.status, 401, 'a genuine webhook of another generation resumes nothing');

		const genuine = await webhook(fakeRequest(raw, headers));
		assert.equal(genuine.answer.status, 200);
		assert.deepEqual(genuine.answer.body, { received: true });
		const resumed = await resume({ workflow, run, workflowData: genuine.result.workflowData, baseUrl: n8n.baseUrl });
		assert.equal(resumed.status, 'success');
		const [result] = outputOf(resumed).items;
		assert.equal(result.id, waiting.id);
		assert.equal(result.event, 'video.generation.completed');
		assert.equal(result.status, 'completed');
		assert.deepEqual(result.metadata, { listing_id: 'MLS-7' });
		const video = await fetch(result.output_url);
		assert.equal(video.status, 200);
		assert.equal(video.headers.get('content-type'), 'video/mp4');
	});

	test('the signature is checked over the raw bytes, not re-serialised JSON', async () => {
		const { run, workflow, node } = await runNode({ type: TYPES.generateAndWait, parameters: PARAMETERS, credentials: account, baseUrl: n8n.baseUrl });
		const id = run.data.executionData.nodeExecutionStack[0].data.main[0][0].json.id;
		const delivered = await n8n.waitFor((req) => req.body?.id === id);
		const spaced = JSON.stringify(JSON.parse(delivered.rawBody.toString()), null, 2);
		const { answer } = await callWebhook({ workflow, node, request: fakeRequest(spaced, delivered.headers), runExecutionData: run.data, credentials: account, baseUrl: n8n.baseUrl });
		assert.equal(answer.status, 401);
	});

	test('a time limit makes the wait end; the generation as submitted is then the output', async () => {
		const { run } = await runNode({
			type: TYPES.generateAndWait,
			parameters: { ...PARAMETERS, limitWaitTime: true, maxWaitMinutes: 5 },
			credentials: account,
			baseUrl: n8n.baseUrl,
		});
		const minutes = (run.waitTill.getTime() - Date.now()) / 60000;
		assert.ok(minutes > 4.9 && minutes <= 5, `waits ${minutes} minutes`);
		assert.equal(run.data.executionData.nodeExecutionStack[0].data.main[0][0].json.status, 'pending');
	});

	test('several input items are refused in webhook mode with what to do instead', async () => {
		const { run } = await runNode({
			type: TYPES.generateAndWait,
			parameters: PARAMETERS,
			credentials: account,
			baseUrl: n8n.baseUrl,
			items: [{ json: {} }, { json: {} }],
		});
		const { error } = outputOf(run);
		assert.match(error.message, /one generation per execution/);
		assert.match(error.description, /Poll the API/);
	});

	test('a credential without a signing secret cannot wait for a webhook', async () => {
		const { run } = await runNode({ type: TYPES.generateAndWait, parameters: PARAMETERS, credentials: { ...account, signingSecret: '' }, baseUrl: n8n.baseUrl });
		assert.match(outputOf(run).error.message, /no signing secret/);
	});

	test('a rejected submission fails the node with the field named, and waits for nothing', async () => {
		const { run } = await runNode({ type: TYPES.generateAndWait, parameters: { ...PARAMETERS, model: 'nope' }, credentials: account, baseUrl: n8n.baseUrl });
		assert.notEqual(run.status, 'waiting');
		assert.match(JSON.stringify(outputOf(run).error), /model/);
	});
});

describe('Generate and Wait, poll mode', () => {
	test('submits every item and outputs each finished generation', async () => {
		const account = await newAccount();
		const started = Date.now();
		const { run } = await runNode({
			type: TYPES.generateAndWait,
			parameters: { ...PARAMETERS, prompt: '={{ $json.prompt }}', waitMode: 'poll', pollInterval: 2 },
			credentials: account,
			items: [{ json: { prompt: 'kitchen' } }, { json: { prompt: 'garden' } }],
		});
		assert.equal(run.status, 'success');
		const { items } = outputOf(run);
		assert.deepEqual(items.map((j) => [j.prompt, j.status]), [['kitchen', 'completed'], ['garden', 'completed']]);
		assert.ok(items.every((j) => j.output_url));
		assert.ok(Date.now() - started < 30000);
	});

	test('a time limit shorter than the render outputs the unfinished generation', async () => {
		const account = await newAccount();
		const { run } = await runNode({
			type: TYPES.generateAndWait,
			parameters: { ...PARAMETERS, waitMode: 'poll', pollInterval: 60, limitWaitTime: true, maxWaitMinutes: 1 },
			credentials: account,
		});
		const [job] = outputOf(run).items;
		assert.ok(['pending', 'processing'].includes(job.status), job.status);
	});
});
