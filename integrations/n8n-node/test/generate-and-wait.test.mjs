// "Genhook: Generate and Wait": the execution waits, genhook's real signed webhook resumes it
// (n8n-core's WorkflowExecute and WebhookContext against a live genhook), forgeries do not.
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { TYPES, api, callWebhook, newAccount, nodeTypes, outputOf, receiver, resume, runNode } from './harness.mjs';

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
		assert.equal(unsigned.result.workflowData, undefined);

		const futureAt = Number(headers['webhook-timestamp']) + 600;
		const future = await webhook(
			fakeRequest(raw, { ...headers, 'webhook-timestamp': String(futureAt), 'webhook-signature': sign(account.signingSecret, headers['webhook-id'], futureAt, raw) }),
		);
		assert.equal(future.answer.status, 401, 'a timestamp 10 minutes ahead is refused too');
		assert.equal(future.result.workflowData, undefined);

		const staleAt = Number(headers['webhook-timestamp']) - 600;
		const stale = await webhook(
			fakeRequest(raw, { ...headers, 'webhook-timestamp': String(staleAt), 'webhook-signature': sign(account.signingSecret, headers['webhook-id'], staleAt, raw) }),
		);
		assert.equal(stale.answer.status, 401, 'a replay older than 5 minutes is refused');
		assert.equal(stale.result.workflowData, undefined);

		const other = await newAccount();
		const wrongKey = await webhook(
			fakeRequest(raw, { ...headers, 'webhook-signature': sign(other.signingSecret, headers['webhook-id'], headers['webhook-timestamp'], raw) }),
		);
		assert.equal(wrongKey.answer.status, 401, 'another account\'s secret does not verify');
		assert.equal(wrongKey.result.workflowData, undefined);

		const now = Math.floor(Date.now() / 1000);
		const otherJobBody = JSON.stringify({ ...JSON.parse(raw), id: 'vgen_someoneelse' });
		const otherJob = await webhook(
			fakeRequest(otherJobBody, { ...headers, 'webhook-timestamp': String(now), 'webhook-signature': sign(account.signingSecret, 'msg_x', now, otherJobBody), 'webhook-id': 'msg_x' }),
		);
		assert.equal(otherJob.answer.status, 401, 'a genuine webhook of another generation resumes nothing');
		assert.equal(otherJob.result.workflowData, undefined);

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

	test('a signing secret that is not a whsec_ value fails before anything is submitted', async () => {
		const before = (await api('GET', '/v1/account', undefined, account.apiKey)).body.credits;
		const { run } = await runNode({ type: TYPES.generateAndWait, parameters: PARAMETERS, credentials: { ...account, signingSecret: account.apiKey }, baseUrl: n8n.baseUrl });
		assert.match(outputOf(run).error.message, /not a whsec_/);
		assert.equal((await api('GET', '/v1/account', undefined, account.apiKey)).body.credits, before);
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

describe('Generate and Wait, what it sends', () => {
	/** A stand-in genhook that records each create and answers reads from `script`:
	 * per prompt, the statuses successive reads return (the last one repeats). */
	async function stubGenhook(script = {}) {
		const creates = [];
		const reads = {};
		const jobs = {};
		const stub = await receiver((req) => {
			if (req.method === 'POST' && req.url === '/v1/video/generations') {
				const id = `vgen_stub${creates.length}`;
				creates.push(req.body);
				jobs[id] = { prompt: req.body.prompt, steps: script[req.body.prompt] ?? ['completed'] };
				return { status: 202, body: { id, status: 'pending', prompt: req.body.prompt } };
			}
			const id = req.url.split('/').pop();
			reads[id] = (reads[id] ?? 0) + 1;
			const { prompt, steps } = jobs[id];
			const status = steps[Math.min(reads[id], steps.length) - 1];
			if (/^\d{3}$/.test(status)) return { status: Number(status), body: { title: 'Unavailable' } };
			return { status: 200, body: { id, prompt, status, output_url: status === 'completed' ? `https://x/${id}.mp4` : null } };
		});
		return { stub, creates, reads, credentials: { baseUrl: stub.baseUrl, apiKey: 'gh_stub', signingSecret: 'whsec_c3R1Yg==' } };
	}

	test('only the fields a user set are sent; an emptied field is left out', async () => {
		const { stub, creates, credentials } = await stubGenhook();
		try {
			await runNode({ type: TYPES.generateAndWait, parameters: { model: 'kling-v3', prompt: 'p' }, credentials, baseUrl: stub.baseUrl });
			assert.deepEqual(Object.keys(creates[0]).sort(), ['model', 'prompt', 'webhook_url']);
			await runNode({ type: TYPES.generateAndWait, parameters: { model: 'kling-v3', prompt: 'p', additionalFields: { imageUrl: '', duration: '10s' } }, credentials, baseUrl: stub.baseUrl });
			assert.deepEqual(Object.keys(creates[1]).sort(), ['duration', 'model', 'prompt', 'webhook_url']);
		} finally {
			await stub.close();
		}
	});

	test('an Idempotency Key goes as the header, never in the body', async () => {
		const { stub, creates, credentials } = await stubGenhook();
		try {
			await runNode({
				type: TYPES.generateAndWait,
				parameters: { model: 'kling-v3', prompt: 'p', additionalFields: { idempotencyKey: 'row-17' } },
				credentials,
				baseUrl: stub.baseUrl,
			});
			assert.deepEqual(Object.keys(creates[0]).sort(), ['model', 'prompt', 'webhook_url']);
			const post = stub.received.find((req) => req.method === 'POST');
			assert.equal(post.headers['idempotency-key'], 'row-17');
		} finally {
			await stub.close();
		}
	});

	test('poll mode waits for every item, however long each takes', async () => {
		const { stub, reads, credentials } = await stubGenhook({ slow: ['processing', 'processing', 'completed'] });
		try {
			const { run } = await runNode({
				type: TYPES.generateAndWait,
				parameters: { model: 'kling-v3', prompt: '={{ $json.prompt }}', waitMode: 'poll', pollInterval: 2 },
				credentials,
				items: [{ json: { prompt: 'fast' } }, { json: { prompt: 'slow' } }],
			});
			assert.deepEqual(outputOf(run).items.map((j) => [j.prompt, j.status]), [['fast', 'completed'], ['slow', 'completed']]);
			assert.equal(reads.vgen_stub1, 3, 'the slow one was read until it completed');
			assert.equal(reads.vgen_stub0, 1, 'the finished one was not read again');
		} finally {
			await stub.close();
		}
	});

	test('poll mode reads again after a failed read (503) rather than giving up on a paid job', async () => {
		const { stub, reads, credentials } = await stubGenhook({ blip: ['processing', '503', 'completed'] });
		try {
			const { run } = await runNode({
				type: TYPES.generateAndWait,
				parameters: { model: 'kling-v3', prompt: 'blip', waitMode: 'poll', pollInterval: 2 },
				credentials,
			});
			assert.equal(run.status, 'success');
			assert.equal(outputOf(run).items[0].status, 'completed');
			assert.equal(reads.vgen_stub0, 3);
		} finally {
			await stub.close();
		}
	});

	test('the resume URL is the only webhook: there is no Webhook URL option', () => {
		const { properties } = nodeTypes.getByName(TYPES.generateAndWait).description;
		const collection = properties.find((p) => p.name === 'additionalFields');
		assert.ok(collection.options.some((o) => o.name === 'imageUrl'));
		assert.ok(!collection.options.some((o) => o.name === 'webhookUrl'));
	});

	test('metadata that is not JSON fails the node before anything is charged', async () => {
		const account = await newAccount();
		const { run } = await runNode({
			type: TYPES.generateAndWait,
			parameters: { ...PARAMETERS, additionalFields: { metadata: '{not json' } },
			credentials: account,
		});
		assert.match(outputOf(run).error.message, /Metadata is not valid JSON/);
		const { body } = await api('GET', '/v1/account', undefined, account.apiKey);
		assert.equal(body.credits, 50);
		assert.equal((await api('GET', '/v1/video/generations', undefined, account.apiKey)).body.data.length, 0);
	});

	test('a rejected submission names the field in the error message', async () => {
		const account = await newAccount();
		const { run } = await runNode({ type: TYPES.generateAndWait, parameters: { ...PARAMETERS, model: 'nope', waitMode: 'poll' }, credentials: account });
		assert.match(outputOf(run).error.message, /model: /);
	});

	test('poll mode with "continue on fail" outputs the failed item\'s error and the others', async () => {
		const account = await newAccount();
		const { run } = await runNode({
			type: TYPES.generateAndWait,
			parameters: { ...PARAMETERS, model: '={{ $json.model }}', waitMode: 'poll', pollInterval: 2 },
			credentials: account,
			items: [{ json: { model: 'nope' } }, { json: { model: 'kling-v3' } }],
			settings: { onError: 'continueRegularOutput' },
		});
		const { items } = outputOf(run);
		assert.equal(items.length, 2);
		assert.match(items[0].error, /model/);
		assert.equal(items[1].status, 'completed');
	});
});
