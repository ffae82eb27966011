import type {
	IExecuteSingleFunctions,
	IN8nHttpFullResponse,
	INodeExecutionData,
	INodeProperties,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';

import { problemText } from './transport';

/** A declarative operation's first postReceive step: an error answer becomes a NodeApiError
 * carrying genhook's own words (n8n's default is a generic text per status code). */
async function throwProblemDetails(
	this: IExecuteSingleFunctions,
	items: INodeExecutionData[],
	response: IN8nHttpFullResponse,
): Promise<INodeExecutionData[]> {
	if (response.statusCode < 400) return items;
	const body = response.body as JsonObject;
	throw new NodeApiError(this.getNode(), body, {
		message: problemText(body) ?? `genhook answered HTTP ${response.statusCode}`,
		description: typeof body?.detail === 'string' ? body.detail : undefined,
		httpCode: String(response.statusCode),
	});
}

/** The generated properties with every operation's routing reading errors itself: the
 * request lets error statuses through, and throwProblemDetails runs first on the answer. */
export function withProblemDetails(properties: INodeProperties[]): INodeProperties[] {
	return properties.map((property) => {
		if (property.name !== 'operation' || !property.options) return property;
		return {
			...property,
			options: property.options.map((option) => {
				if (!('routing' in option) || !option.routing) return option;
				const { routing } = option;
				return {
					...option,
					routing: {
						...routing,
						request: { ...routing.request, ignoreHttpStatusErrors: true },
						output: {
							...routing.output,
							postReceive: [throwProblemDetails, ...(routing.output?.postReceive ?? [])],
						},
					},
				};
			}),
		};
	});
}
