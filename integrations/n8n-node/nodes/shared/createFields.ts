import type {
	IDataObject,
	IExecuteFunctions,
	ILoadOptionsFunctions,
	INodeProperties,
	INodePropertyOptions,
} from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

import { generationFields } from '../Genhook/generated';
import { genhookRequest } from './transport';

/** The generated "create a generation" fields, with the API name each one is sent as. */
const generated = generationFields.filter((field) =>
	field.displayOptions?.show?.operation?.includes('create'),
);

function apiName(field: INodeProperties): string {
	const header = Object.keys(field.routing?.request?.headers ?? {})[0];
	return String(header ?? field.routing?.send?.property ?? field.name);
}

/** The loadOptions method a programmatic node offers for the generated Model dropdown
 * (declarative loadOptions need the node's requestDefaults, which this node has none of). */
export const MODEL_OPTIONS_METHOD = 'getModels';

function forProgrammaticNode(field: INodeProperties): INodeProperties {
	const rest = { ...field };
	delete rest.routing;
	delete rest.displayOptions;
	if (rest.typeOptions?.loadOptions) {
		rest.typeOptions = { loadOptionsMethod: MODEL_OPTIONS_METHOD };
	}
	return rest;
}

/** The catalog as dropdown options: "Kling v3" → kling-v3, sorted by name. */
export async function getModels(this: ILoadOptionsFunctions): Promise<INodePropertyOptions[]> {
	const page = await genhookRequest.call(this, 'GET', '/v1/models');
	return ((page.data as IDataObject[]) ?? [])
		.map((model) => ({
			name: String(model.name),
			value: String(model.id),
			description: String(model.description ?? ''),
		}))
		.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * The create fields for a node that sets `webhook_url` itself: the generated ones without
 * their routing (a programmatic node sends the request) and without the Webhook URL option.
 */
export function createFieldsWithoutWebhookUrl(): INodeProperties[] {
	return generated.map((field) => {
		const plain = forProgrammaticNode(field);
		if (field.name === 'additionalFields') {
			plain.options = (field.options as INodeProperties[])
				.filter((option) => apiName(option) !== 'webhook_url')
				.map(forProgrammaticNode);
		}
		return plain;
	});
}

/** Whether a generated field is sent as a header (`Idempotency-Key`), not in the body. */
function isHeader(field: INodeProperties): boolean {
	return field.routing?.request?.headers !== undefined;
}

/** The request for item `itemIndex`: required fields always, additional ones only when set,
 * JSON fields parsed (a parse error names the field), header fields as headers. */
export function createRequest(
	this: IExecuteFunctions,
	itemIndex: number,
): { body: IDataObject; headers: IDataObject } {
	const body: IDataObject = {};
	const headers: IDataObject = {};
	for (const field of generated) {
		if (field.name === 'additionalFields') {
			const chosen = this.getNodeParameter('additionalFields', itemIndex, {}) as IDataObject;
			for (const option of field.options as INodeProperties[]) {
				const value = chosen[option.name];
				if (value === undefined || value === '' || value === null) continue;
				const target = isHeader(option) ? headers : body;
				target[apiName(option)] =
					option.type === 'json' ? parseJson.call(this, option, value, itemIndex) : value;
			}
		} else {
			body[apiName(field)] = this.getNodeParameter(field.name, itemIndex);
		}
	}
	return { body, headers };
}

function parseJson(
	this: IExecuteFunctions,
	field: INodeProperties,
	value: unknown,
	itemIndex: number,
): IDataObject {
	if (typeof value !== 'string') return value as IDataObject;
	try {
		return JSON.parse(value) as IDataObject;
	} catch {
		throw new NodeOperationError(this.getNode(), `${field.displayName} is not valid JSON`, {
			itemIndex,
		});
	}
}
