import {
	NodeConnectionTypes,
	type IDataObject,
	type IHookFunctions,
	type INodeType,
	type INodeTypeDescription,
	type IWebhookFunctions,
	type IWebhookResponseData,
} from 'n8n-workflow';

import { parseBody, verifyWebhook } from '../shared/signature';
import { genhookRequest, genhookRequestUnlessGone } from '../shared/transport';

/** How long a delivered `webhook-id` is remembered, and how many: genhook retries a delivery
 * for hours at most, and redeliveries reuse the id. */
const SEEN_FOR_MS = 7 * 24 * 3600 * 1000;
const SEEN_MAX = 2000;

interface EndpointState {
	endpointId?: string;
	secret?: string;
	seen?: Record<string, number>;
}

/**
 * Starts a workflow when a generation of the account ends (or changes phase). On activation
 * it registers a genhook webhook endpoint pointing at this trigger and keeps the endpoint's
 * signing secret; on deactivation it deletes the endpoint. Every event is checked (Standard
 * Webhooks signature and timestamp on the raw body) and a repeated `webhook-id` is dropped.
 */
export class GenhookTrigger implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Genhook Trigger',
		name: 'genhookTrigger',
		icon: { light: 'file:../../icons/genhook.svg', dark: 'file:../../icons/genhook.dark.svg' },
		group: ['trigger'],
		version: 1,
		subtitle: '={{$parameter["events"].join(", ")}}',
		description: 'Starts the workflow when a genhook generation completes, fails or is canceled',
		defaults: {
			name: 'Genhook Trigger',
		},
		inputs: [],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'genhookApi',
				required: true,
			},
		],
		webhooks: [
			{
				name: 'default',
				httpMethod: 'POST',
				responseMode: 'onReceived',
				path: 'webhook',
			},
		],
		properties: [
			{
				displayName: 'Events',
				name: 'events',
				type: 'multiOptions',
				required: true,
				options: [
					{
						name: 'Generation Canceled',
						value: 'video.generation.canceled',
						description: 'Its owner canceled it; its credits were refunded',
					},
					{
						name: 'Generation Completed',
						value: 'video.generation.completed',
						description: 'The video is ready; <code>output_url</code> links to it',
					},
					{
						name: 'Generation Failed',
						value: 'video.generation.failed',
						description:
							'The generation failed; <code>error</code> says why, and its credits were refunded',
					},
					{
						name: 'Generation Status Changed',
						value: 'video.generation.status_changed',
						description:
							'The generation entered a new phase (preparing, rendering, encoding, finishing)',
					},
				],
				default: ['video.generation.completed'],
				description: 'Which events start the workflow',
			},
		],
	};

	webhookMethods = {
		default: {
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const state = this.getWorkflowStaticData('node') as EndpointState;
				if (!state.endpointId) return false;
				const endpoint = await genhookRequestUnlessGone.call(
					this,
					'GET',
					`/v1/webhook-endpoints/${encodeURIComponent(state.endpointId)}`,
				);
				if (!endpoint) {
					forget(state);
					return false;
				}
				const wanted = [...(this.getNodeParameter('events') as string[])].sort();
				const current = [...((endpoint.events as string[]) ?? [])].sort();
				const same =
					endpoint.url === this.getNodeWebhookUrl('default') &&
					endpoint.enabled === true &&
					Boolean(state.secret) &&
					JSON.stringify(wanted) === JSON.stringify(current);
				if (!same) {
					// Outdated (moved URL, other events, disabled): replace it rather than keep two.
					await genhookRequest.call(
						this,
						'DELETE',
						`/v1/webhook-endpoints/${encodeURIComponent(state.endpointId)}`,
					);
					forget(state);
				}
				return same;
			},

			async create(this: IHookFunctions): Promise<boolean> {
				const endpoint = await genhookRequest.call(this, 'POST', '/v1/webhook-endpoints', {
					url: this.getNodeWebhookUrl('default'),
					events: this.getNodeParameter('events') as string[],
					description: `n8n workflow "${this.getWorkflow().name ?? this.getWorkflow().id}"`,
				});
				const state = this.getWorkflowStaticData('node') as EndpointState;
				state.endpointId = String(endpoint.id);
				state.secret = String(endpoint.secret);
				state.seen = {};
				return true;
			},

			async delete(this: IHookFunctions): Promise<boolean> {
				const state = this.getWorkflowStaticData('node') as EndpointState;
				if (state.endpointId) {
					await genhookRequestUnlessGone.call(
						this,
						'DELETE',
						`/v1/webhook-endpoints/${encodeURIComponent(state.endpointId)}`,
					);
				}
				forget(state);
				return true;
			},
		},
	};

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const request = this.getRequestObject();
		const response = this.getResponseObject();
		if (!request.rawBody) await request.readRawBody();
		const state = this.getWorkflowStaticData('node') as EndpointState;
		const verdict = verifyWebhook(request.rawBody, request.headers, [state.secret ?? '']);
		if (!verdict.ok) {
			response.status(401).json({ error: verdict.reason });
			return { noWebhookResponse: true };
		}
		const payload = parseBody(request.rawBody);
		if (!payload) {
			response.status(400).json({ error: 'the body is not a JSON object' });
			return { noWebhookResponse: true };
		}
		const now = Date.now();
		const seen = remembered(state, now);
		const events = this.getNodeParameter('events') as string[];
		if (seen[verdict.id] !== undefined || !events.includes(String(payload.event))) {
			// Already handled (a retry or redelivery), or an event this trigger does not want.
			return { webhookResponse: { received: true, duplicate: seen[verdict.id] !== undefined } };
		}
		seen[verdict.id] = now;
		return { workflowData: [this.helpers.returnJsonArray(payload as IDataObject)] };
	}
}

function forget(state: EndpointState): void {
	delete state.endpointId;
	delete state.secret;
	delete state.seen;
}

/** The webhook ids seen recently, oldest dropped first. */
function remembered(state: EndpointState, now: number): Record<string, number> {
	const kept = Object.entries(state.seen ?? {})
		.filter(([, at]) => now - at < SEEN_FOR_MS)
		.sort((a, b) => b[1] - a[1])
		.slice(0, SEEN_MAX - 1);
	state.seen = Object.fromEntries(kept);
	return state.seen;
}
