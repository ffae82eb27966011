import {
	NodeConnectionTypes,
	NodeOperationError,
	sleep,
	WAIT_INDEFINITELY,
	type IDataObject,
	type IExecuteFunctions,
	type INodeExecutionData,
	type INodeType,
	type INodeTypeDescription,
	type IWebhookDescription,
	type IWebhookFunctions,
	type IWebhookResponseData,
} from 'n8n-workflow';

import { createFieldsWithoutWebhookUrl, createRequest, getModels } from '../shared/createFields';
import { parseBody, verifyWebhook } from '../shared/signature';
import { genhookRequest, statusOf } from '../shared/transport';

const FINISHED = ['completed', 'failed', 'canceled'];

/** The execution's resume webhook: genhook POSTs the finished generation here. (A const, not
 * an inline array: the linter's trigger rule would otherwise ask for webhookMethods.) */
const RESUME_WEBHOOKS: IWebhookDescription[] = [
	{
		name: 'default',
		httpMethod: 'POST',
		responseMode: 'onReceived',
		path: '',
		restartWebhook: true,
		// Answer with the webhookResponse below, not n8n's default ("firstEntryJson").
		responseData: '',
	},
];

/**
 * Submits a generation and continues the workflow with its result when it ends, with no
 * polling loop in the workflow: genhook's signed webhook resumes the waiting execution (or,
 * where resume webhooks do not reach n8n, the node polls the API).
 */
export class GenhookGenerateAndWait implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Genhook: Generate and Wait',
		name: 'genhookGenerateAndWait',
		icon: { light: 'file:../../icons/genhook.svg', dark: 'file:../../icons/genhook.dark.svg' },
		group: ['transform'],
		version: 1,
		subtitle: '={{$parameter["model"]}}',
		description: 'Generate an AI video and wait for the result',
		defaults: {
			name: 'Generate and Wait',
		},
		usableAsTool: true,
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'genhookApi',
				required: true,
			},
		],
		webhooks: RESUME_WEBHOOKS,
		waitingNodeTooltip:
			'=Waiting for genhook to finish the generation{{ $parameter["waitMode"] === "poll" ? " (polling)" : " (its signed webhook resumes this execution)" }}',
		properties: [
			...createFieldsWithoutWebhookUrl(),
			{
				displayName: 'Wait Mode',
				name: 'waitMode',
				type: 'options',
				options: [
					{
						name: 'Signed Webhook',
						value: 'webhook',
						description:
							"Genhook POSTs the result to this execution's resume URL; the node checks its signature and continues. n8n must be reachable from genhook.",
					},
					{
						name: 'Poll the API',
						value: 'poll',
						description:
							'The node asks genhook for the generation until it ends. For n8n instances genhook cannot reach, or queue-mode setups where resume webhooks fail.',
					},
				],
				default: 'webhook',
			},
			{
				displayName: 'Poll Interval (Seconds)',
				name: 'pollInterval',
				type: 'number',
				typeOptions: { minValue: 2 },
				default: 15,
				displayOptions: { show: { waitMode: ['poll'] } },
				description: 'How long to wait between two reads of the generation',
			},
			{
				displayName: 'Limit Wait Time',
				name: 'limitWaitTime',
				type: 'boolean',
				default: false,
				description:
					'Whether to stop waiting after a while. When the limit passes first, the node outputs the generation as it was when submitted (webhook mode) or last read (poll mode); its status tells it did not finish.',
			},
			{
				displayName: 'Maximum Wait (Minutes)',
				name: 'maxWaitMinutes',
				type: 'number',
				typeOptions: { minValue: 1 },
				default: 60,
				displayOptions: { show: { limitWaitTime: [true] } },
				description: 'How long to wait for the generation to end',
			},
		],
	};

	methods = { loadOptions: { getModels } };

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		if (this.getNodeParameter('waitMode', 0) === 'poll') {
			return [await submitAndPoll.call(this, items)];
		}
		if (items.length !== 1) {
			throw new NodeOperationError(
				this.getNode(),
				`Webhook mode waits for one generation per execution, and this node received ${items.length} items`,
				{
					description:
						'Put a "Loop Over Items" node with batch size 1 before it, or set Wait Mode to "Poll the API".',
				},
			);
		}
		const credentials = await this.getCredentials('genhookApi');
		const secret = String(credentials.signingSecret ?? '');
		if (!secret) {
			throw new NodeOperationError(
				this.getNode(),
				'The Genhook credential has no signing secret, so the webhook could not be verified',
				{ description: "Add the account's whsec_… signing secret to the credential." },
			);
		}
		if (!/^whsec_[A-Za-z0-9+/]+={0,2}$/.test(secret)) {
			throw new NodeOperationError(
				this.getNode(),
				"The Genhook credential's signing secret is not a whsec_… value",
				{
					description:
						"Copy the account's signing secret exactly as genhook gave it (signup, the genhook up banner, or POST /v1/account/rotate-signing-secret).",
				},
			);
		}
		const resumeUrl = this.getWorkflowDataProxy(0).$execution.resumeUrl as string;
		const { body, headers } = createRequest.call(this, 0);
		const job = await genhookRequest.call(
			this,
			'POST',
			'/v1/video/generations',
			{ ...body, webhook_url: resumeUrl },
			undefined,
			headers,
		);
		// What the waiting execution holds: the webhook checks the generation's id against it,
		// and a wait that times out continues with it.
		const waiting: INodeExecutionData[] = [{ json: job, pairedItem: { item: 0 } }];
		this.getExecuteData().data = { main: [waiting] };
		await this.putExecutionToWait(waitUntil.call(this));
		return [waiting];
	}

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const request = this.getRequestObject();
		const response = this.getResponseObject();
		if (!request.rawBody) await request.readRawBody();
		const credentials = await this.getCredentials('genhookApi');
		const verdict = verifyWebhook(request.rawBody, request.headers, [
			String(credentials.signingSecret ?? ''),
		]);
		if (!verdict.ok) {
			response.status(401).json({ error: verdict.reason });
			return { noWebhookResponse: true };
		}
		const payload = parseBody(request.rawBody);
		// Fails closed: a webhook is only taken for the generation this execution submitted.
		if (!payload || payload.id !== waitingGenerationId.call(this)) {
			response
				.status(401)
				.json({ error: 'this webhook is not for the generation being waited for' });
			return { noWebhookResponse: true };
		}
		return {
			webhookResponse: { received: true },
			workflowData: [[{ json: payload as IDataObject }]],
		};
	}
}

function waitUntil(this: IExecuteFunctions): Date {
	if (!this.getNodeParameter('limitWaitTime', 0, false)) return WAIT_INDEFINITELY;
	const minutes = this.getNodeParameter('maxWaitMinutes', 0) as number;
	return new Date(Date.now() + minutes * 60_000);
}

/** The id of the generation this execution submitted (held as the waiting node's input). */
function waitingGenerationId(this: IWebhookFunctions): string | undefined {
	const id = this.evaluateExpression('{{ $json.id }}', 0);
	return typeof id === 'string' && id ? id : undefined;
}

function isTransient(error: unknown): boolean {
	const status = statusOf(error);
	return status === undefined || status === 429 || status >= 500;
}

/** Poll mode: submits every item's generation, then reads them until each has ended (or the
 * time limit passes), sleeping between rounds with n8n's own sleep. */
async function submitAndPoll(
	this: IExecuteFunctions,
	items: INodeExecutionData[],
): Promise<INodeExecutionData[]> {
	const jobs: Array<IDataObject | undefined> = [];
	const results: INodeExecutionData[] = [];
	for (let i = 0; i < items.length; i++) {
		try {
			const { body, headers } = createRequest.call(this, i);
			jobs.push(
				await genhookRequest.call(this, 'POST', '/v1/video/generations', body, undefined, headers),
			);
		} catch (error) {
			if (!this.continueOnFail()) {
				throw new NodeOperationError(this.getNode(), error as Error, { itemIndex: i });
			}
			jobs.push(undefined);
			results[i] = { json: { error: (error as Error).message }, pairedItem: { item: i } };
		}
	}
	const interval = (this.getNodeParameter('pollInterval', 0, 15) as number) * 1000;
	const deadline = waitUntil.call(this).getTime();
	let pending = jobs.map((job, i) => (job ? i : -1)).filter((i) => i >= 0);
	while (pending.length) {
		for (const i of pending) {
			const job = jobs[i] as IDataObject;
			try {
				jobs[i] = await genhookRequest.call(
					this,
					'GET',
					`/v1/video/generations/${encodeURIComponent(String(job.id))}`,
				);
			} catch (error) {
				// A blip (no answer, 429, 5xx) is read again next round: the generation is paid
				// for and still rendering. Anything else ends this item.
				if (isTransient(error)) continue;
				if (!this.continueOnFail()) {
					throw new NodeOperationError(this.getNode(), error as Error, { itemIndex: i });
				}
				jobs[i] = undefined;
				results[i] = {
					json: { ...job, error: (error as Error).message },
					pairedItem: { item: i },
				};
			}
		}
		pending = pending.filter(
			(i) => jobs[i] !== undefined && !FINISHED.includes(String((jobs[i] as IDataObject).status)),
		);
		if (!pending.length || Date.now() + interval > deadline) break;
		await sleep(interval);
	}
	jobs.forEach((job, i) => {
		if (job) results[i] = { json: job, pairedItem: { item: i } };
	});
	return results;
}
