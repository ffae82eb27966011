import type { IDataObject, IExecuteFunctions, INodeProperties } from 'n8n-workflow';
import { NodeOperationError } from 'n8n-workflow';

import { generationFields } from '../Genhook/generated';

/** The generated "create a generation" fields, with the API name each one is sent as. */
const generated = generationFields.filter((field) =>
	field.displayOptions?.show?.operation?.includes('create'),
);

function apiName(field: INodeProperties): string {
	return String(field.routing?.send?.property ?? field.name);
}

function forProgrammaticNode(field: INodeProperties): INodeProperties {
	const rest = { ...field };
	delete rest.routing;
	delete rest.displayOptions;
	return rest;
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

/** The request body for item `itemIndex`: required fields always, additional ones only when
 * set, JSON fields parsed (a parse error names the field). */
export function createBody(this: IExecuteFunctions, itemIndex: number): IDataObject {
	const body: IDataObject = {};
	for (const field of generated) {
		if (field.name === 'additionalFields') {
			const chosen = this.getNodeParameter('additionalFields', itemIndex, {}) as IDataObject;
			for (const option of field.options as INodeProperties[]) {
				const value = chosen[option.name];
				if (value === undefined || value === '' || value === null) continue;
				body[apiName(option)] =
					option.type === 'json' ? parseJson.call(this, option, value, itemIndex) : value;
			}
		} else {
			body[apiName(field)] = this.getNodeParameter(field.name, itemIndex);
		}
	}
	return body;
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
