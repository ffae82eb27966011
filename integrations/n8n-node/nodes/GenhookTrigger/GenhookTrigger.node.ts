import {
	NodeConnectionTypes,
	type IDataObject,
	type IHookFunctions,
	type INodeType,
	type INodeTypeDescription,
	type IWebhookFunctions,
	type IWebhookResponseData,
} from 'n8n-workflow';

import { firstDelivery, forgetDeliveries } from '../shared/seenIds';
import { parseBody, verifyWebhook } from '../shared/signature';
import { genhookRequest, genhookRequestUnlessGone } from '../shared/transport';

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
				// Answer with the webhookResponse below, not n8n's default ("firstEntryJson").
				responseData: '',
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
				const path = `/v1/webhook-endpoints/${encodeURIComponent(state.endpointId)}`;
				const endpoint = await genhookRequestUnlessGone.call(this, 'GET', path);
				if (!endpoint) {
					forget(state, triggerKey(this));
					return false;
				}
				const url = this.getNodeWebhookUrl('default');
				const events = [...(this.getNodeParameter('events') as string[])].sort();
				const current = [...((endpoint.events as string[]) ?? [])].sort();
				const enabled = endpoint.enabled === true;
				if (
					endpoint.url !== url ||
					!enabled ||
					JSON.stringify(events) !== JSON.stringify(current)
				) {
					// Repaired in place, not replaced: the endpoint keeps its id, secret and
					// delivery log, and what failed while it was failing or disabled is sent again.
					await genhookRequest.call(this, 'PATCH', path, { url, events, enabled: true });
					const since = endpoint.failing_since ?? endpoint.disabled_at;
					if (!enabled && since) {
						await genhookRequest.call(this, 'POST', `${path}/recover`, { since });
					}
				}
				if (!state.secret) {
					state.secret = String((await genhookRequest.call(this, 'GET', `${path}/secret`)).secret);
				}
				return true;
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
				forget(state, triggerKey(this));
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
		const events = this.getNodeParameter('events') as string[];
		if (!events.includes(String(payload.event))) {
			return { webhookResponse: { received: true, ignored: 'event not selected' } };
		}
		if (!firstDelivery(triggerKey(this), state, verdict.id)) {
			// A retry or redelivery of an event already handled: genhook is told it arrived.
			return { webhookResponse: { received: true, duplicate: true } };
		}
		return {
			workflowData: [
				this.helpers.returnJsonArray({ ...payload, webhook_id: verdict.id } as IDataObject),
			],
		};
	}
}

/** Which trigger this is, for the ids it has seen. */
function triggerKey(context: IWebhookFunctions | IHookFunctions): string {
	return `${context.getWorkflow().id}:${context.getNode().id}`;
}

function forget(state: EndpointState, key: string): void {
	forgetDeliveries(key);
	delete state.endpointId;
	delete state.secret;
	delete state.seen;
}
