// Runs the package's nodes the way n8n does, without a whole n8n: n8n-core's WorkflowExecute
// (declarative nodes go through its RoutingNode), its WebhookContext for webhook() and its
// HookContext for a trigger's webhookMethods. What n8n's server adds around them (the
// credential store, the resume of a waiting execution) is reproduced here in a few lines,
// following n8n 2.41's WaitingWebhooks. scripts/e2e-n8n runs the same nodes in a real n8n.
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

process.env.N8N_USER_FOLDER ??= mkdtempSync(path.join(os.tmpdir(), 'n8n-user-'));
const require = createRequire(import.meta.url);
const core = require('n8n-core');
const wf = require('n8n-workflow');

const { Genhook } = require('../dist/nodes/Genhook/Genhook.node.js');
const { GenhookGenerateAndWait } = require('../dist/nodes/GenhookGenerateAndWait/GenhookGenerateAndWait.node.js');
const { GenhookTrigger } = require('../dist/nodes/GenhookTrigger/GenhookTrigger.node.js');
const { GenhookApi } = require('../dist/credentials/GenhookApi.credentials.js');

export const TYPES = {
	genhook: 'n8n-nodes-genhook.genhook',
	generateAndWait: 'n8n-nodes-genhook.genhookGenerateAndWait',
	trigger: 'n8n-nodes-genhook.genhookTrigger',
};
const nodeTypeByName = {
	[TYPES.genhook]: new Genhook(),
	[TYPES.generateAndWait]: new GenhookGenerateAndWait(),
	[TYPES.trigger]: new GenhookTrigger(),
};
export const nodeTypes = {
	getByName: (type) => nodeTypeByName[type],
	getByNameAndVersion: (type) => nodeTypeByName[type],
	getKnownTypes: () => ({}),
};

/** The live genhook the tests talk to (scripts/with-genhook exports these). */
export const GENHOOK = {
	baseUrl: process.env.GENHOOK_URL,
	apiKey: process.env.GENHOOK_API_KEY,
	signingSecret: process.env.GENHOOK_SIGNING_SECRET,
};
if (!GENHOOK.baseUrl) throw new Error('GENHOOK_URL is not set: run the tests under scripts/with-genhook');

/** n8n's credential store for one `genhookApi` credential; authentication resolves the
 * credential type's own `authenticate` expressions, as n8n's CredentialsHelper does. */
class CredentialsHelper extends wf.ICredentialsHelper {
	constructor(data) {
		super();
		this.data = data;
	}
	getParentTypes() {
		return [];
	}
	isCredentialUsableByNode() {
		return true;
	}
	async authenticate(credentials, typeName, requestOptions, workflow, node) {
		const { headers } = new GenhookApi().authenticate.properties;
		requestOptions.headers ??= {};
		for (const [name, value] of Object.entries(headers)) {
			requestOptions.headers[name] = workflow.expression.getSimpleParameterValue(
				node, value, 'internal', { $credentials: credentials }, undefined, value,
			);
		}
		return requestOptions;
	}
	async preAuthentication() {
		return undefined;
	}
	async runPreAuthentication() {
		return undefined;
	}
	async getCredentials() {
		throw new Error('not used');
	}
	async getDecrypted() {
		return this.data;
	}
	async updateCredentials() {}
	async updateCredentialsOauthTokenData() {}
	getCredentialsProperties() {
		return new GenhookApi().properties;
	}
}

/** Where n8n would be: the base of webhook and resume URLs (a test server, see receiver()). */
export function additionalData({ credentials, baseUrl, executionId = 'exec-1', httpRequest, httpResponse }) {
	const known = {
		credentialsHelper: new CredentialsHelper(credentials),
		hooks: new core.ExecutionLifecycleHooks('manual', executionId, { id: 'wf-1', name: 'test', nodes: [], connections: {} }),
		executionId,
		currentNodeExecutionIndex: 0,
		restApiUrl: `${baseUrl}/rest`,
		instanceBaseUrl: baseUrl,
		webhookBaseUrl: `${baseUrl}/webhook`,
		webhookWaitingBaseUrl: `${baseUrl}/webhook-waiting`,
		webhookTestBaseUrl: `${baseUrl}/webhook-test`,
		formBaseUrl: `${baseUrl}/form`,
		formWaitingBaseUrl: `${baseUrl}/form-waiting`,
		formTestBaseUrl: `${baseUrl}/form-test`,
		mcpBaseUrl: `${baseUrl}/mcp`,
		mcpTestBaseUrl: `${baseUrl}/mcp-test`,
		variables: {},
		httpRequest,
		httpResponse,
		getRunExecutionData: async () => undefined,
		executeWorkflow: async () => {
			throw new Error('not used');
		},
		logAiEvent: () => {},
		setExecutionStatus: () => {},
		sendDataToUI: () => {},
		getRuntimeCredential: async () => undefined,
	};
	return new Proxy(known, { get: (target, key) => target[key] });
}

/** A one-node workflow (plus its static data, which triggers keep between calls);
 * `settings` are node settings such as `{ onError: 'continueRegularOutput' }`. */
export function workflowWith(type, parameters, staticData = {}, settings = {}) {
	const node = {
		...settings,
		id: 'node-1',
		name: 'Genhook',
		type,
		typeVersion: 1,
		position: [0, 0],
		parameters,
		credentials: { genhookApi: { id: 'cred-1', name: 'genhook' } },
		webhookId: 'hook-1',
	};
	const workflow = new wf.Workflow({
		id: 'wf-1',
		name: 'genhook test',
		nodes: [node],
		connections: {},
		active: false,
		nodeTypes,
		staticData,
		settings: {},
	});
	return { workflow, node };
}

/** Runs the node with `items` as input through n8n-core's WorkflowExecute; the IRun. */
export async function runNode({ type, parameters, items = [{ json: {} }], credentials = GENHOOK, baseUrl, settings }) {
	const { workflow, node } = workflowWith(type, parameters, {}, settings);
	const data = additionalData({ credentials, baseUrl: baseUrl ?? 'http://127.0.0.1:9' });
	const runExecutionData = wf.createRunExecutionData({
		executionData: { nodeExecutionStack: [{ node, data: { main: [items] }, source: null }] },
	});
	const run = await new core.WorkflowExecute(data, 'manual', runExecutionData).processRunExecutionData(workflow);
	return { run, workflow, node, data };
}

/** The node's output items (first output) of a run, or its error. */
export function outputOf(run) {
	const task = run.data.resultData.runData.Genhook.at(-1);
	if (task.error) return { error: task.error };
	return { items: task.data.main[0].map((item) => item.json) };
}

/** n8n's registration of the node's (only) webhook. */
function webhookDataOf(workflow, node, data) {
	const description = nodeTypes.getByName(node.type).description.webhooks[0];
	return {
		httpMethod: description.httpMethod,
		node: node.name,
		path: description.path,
		webhookDescription: description,
		workflowId: workflow.id,
		workflowExecuteAdditionalData: data,
		webhookId: node.webhookId,
	};
}

/** Calls the node's webhook() with a real request, as n8n's webhook server does; what the
 * node answered (status, body) and its workflowData. */
export async function callWebhook({ workflow, node, request, runExecutionData, credentials = GENHOOK, baseUrl }) {
	const answer = { status: 200, body: undefined };
	const response = {
		status(code) {
			answer.status = code;
			return this;
		},
		json(body) {
			answer.body = body;
			return this;
		},
		send(body) {
			answer.body = body;
			return this;
		},
		end() {
			return this;
		},
	};
	const data = additionalData({ credentials, baseUrl, httpRequest: request, httpResponse: response });
	const nodeType = nodeTypes.getByName(node.type);
	const webhookData = webhookDataOf(workflow, node, data);
	const context = new core.WebhookContext(workflow, node, data, 'webhook', webhookData, [], runExecutionData ?? null);
	const result = await nodeType.webhook.call(context);
	if (!result.noWebhookResponse) {
		answer.body = result.webhookResponse ?? answer.body;
	}
	return { answer, result };
}

/** Resumes a waiting execution with a webhook's workflowData, as n8n's WaitingWebhooks does
 * (the waiting node is disabled, so its new input passes through as its output). */
export async function resume({ workflow, run, workflowData, baseUrl }) {
	const runExecutionData = run.data;
	const entry = runExecutionData.executionData.nodeExecutionStack[0];
	entry.node.disabled = true;
	entry.data.main = workflowData;
	runExecutionData.waitTill = undefined;
	runExecutionData.resultData.runData[runExecutionData.resultData.lastNodeExecuted].pop();
	const data = additionalData({ credentials: GENHOOK, baseUrl });
	return await new core.WorkflowExecute(data, 'webhook', runExecutionData).processRunExecutionData(workflow);
}

/** Runs one of a trigger's webhookMethods (checkExists, create, delete) with n8n's HookContext. */
export async function hook(method, { workflow, node, baseUrl, credentials = GENHOOK }) {
	const data = additionalData({ credentials, baseUrl });
	const nodeType = nodeTypes.getByName(node.type);
	const webhookData = webhookDataOf(workflow, node, data);
	const context = new core.HookContext(workflow, node, data, 'trigger', 'activate', webhookData);
	return await nodeType.webhookMethods.default[method].call(context);
}

/**
 * An HTTP server on 127.0.0.1 standing in for n8n's webhook endpoints: every request is
 * read whole (rawBody, like n8n's body parser) and handed to `handle(request)`, whose
 * `{status, body}` is the answer genhook gets. Requests are also kept in `received`.
 */
export async function receiver(handle) {
	const received = [];
	const server = http.createServer((req, res) => {
		const chunks = [];
		req.on('data', (chunk) => chunks.push(chunk));
		req.on('end', async () => {
			req.rawBody = Buffer.concat(chunks);
			req.body = safeJson(req.rawBody);
			received.push(req);
			let answer = { status: 200, body: { received: true } };
			try {
				answer = (await handle(req)) ?? answer;
			} catch (error) {
				answer = { status: 500, body: { error: String(error) } };
			}
			res.writeHead(answer.status, { 'content-type': 'application/json' });
			res.end(JSON.stringify(answer.body ?? {}));
		});
	});
	await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
	const baseUrl = `http://127.0.0.1:${server.address().port}`;
	return {
		baseUrl,
		received,
		close: () => new Promise((resolve) => server.close(resolve)),
		/** Resolves with the first request matching `predicate` (already received or later). */
		async waitFor(predicate, timeoutMs = 30000) {
			const deadline = Date.now() + timeoutMs;
			while (Date.now() < deadline) {
				const found = received.find(predicate);
				if (found) return found;
				await new Promise((r) => setTimeout(r, 50));
			}
			throw new Error('no matching request arrived in time');
		},
	};
}

function safeJson(buffer) {
	try {
		return JSON.parse(buffer.toString('utf8'));
	} catch {
		return undefined;
	}
}

/** Calls the genhook API directly (to set up or check what a node did). */
export async function api(method, path, body, apiKey = GENHOOK.apiKey) {
	const response = await fetch(`${GENHOOK.baseUrl}${path}`, {
		method,
		headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	const text = await response.text();
	return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** A fresh account (its own credits and endpoints), so tests do not see each other's jobs. */
export async function newAccount() {
	const email = `n8n-${Date.now()}-${Math.random().toString(36).slice(2)}@example.com`;
	const { status, body } = await api('POST', '/v1/signup', { email });
	if (status !== 201 && status !== 200) throw new Error(`signup failed: ${status} ${JSON.stringify(body)}`);
	return { baseUrl: GENHOOK.baseUrl, apiKey: body.api_key, signingSecret: body.signing_secret };
}

/** Polls until `check()` returns something truthy. */
export async function eventually(check, timeoutMs = 30000) {
	const deadline = Date.now() + timeoutMs;
	for (;;) {
		const value = await check();
		if (value) return value;
		if (Date.now() > deadline) throw new Error('timed out waiting');
		await new Promise((r) => setTimeout(r, 100));
	}
}

/** A declarative `loadOptions.routing` dropdown's options, computed the way n8n's
 * DynamicNodeParametersService does: a temporary node whose one property carries the
 * routing, run by n8n-core's RoutingNode with the node type's requestDefaults. */
export async function routedOptions({ type, parameter, parameters = {}, credentials = GENHOOK }) {
	const nodeType = nodeTypes.getByName(type);
	const property = nodeType.description.properties.find(
		(p) => p.name === parameter && p.typeOptions?.loadOptions,
	);
	const { workflow, node } = workflowWith(type, parameters);
	const data = additionalData({ credentials, baseUrl: 'http://127.0.0.1:9' });
	const tempNodeType = {
		...nodeType,
		description: {
			...nodeType.description,
			properties: [{ displayName: '', type: 'string', name: '', default: '', routing: property.typeOptions.loadOptions.routing }],
		},
	};
	const context = new core.ExecuteContext(workflow, node, data, 'internal', wf.createRunExecutionData(), 0, [], { main: [[{ json: {} }]] }, { node, source: null, data: {} }, []);
	const result = await new core.RoutingNode(context, tempNodeType).runNode();
	return result[0].map((item) => item.json);
}

/** A programmatic `loadOptionsMethod`'s options, through n8n-core's LoadOptionsContext. */
export async function methodOptions({ type, parameter, parameters = {}, credentials = GENHOOK }) {
	const nodeType = nodeTypes.getByName(type);
	const property = nodeType.description.properties.find((p) => p.name === parameter);
	const { workflow, node } = workflowWith(type, parameters);
	const data = additionalData({ credentials, baseUrl: 'http://127.0.0.1:9' });
	const context = new core.LoadOptionsContext(workflow, node, data, parameter);
	return await nodeType.methods.loadOptions[property.typeOptions.loadOptionsMethod].call(context);
}
