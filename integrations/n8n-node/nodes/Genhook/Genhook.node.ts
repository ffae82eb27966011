import { NodeConnectionTypes, type INodeType, type INodeTypeDescription } from 'n8n-workflow';

import { withProblemDetails } from '../shared/problemDetails';
import { genhookProperties } from './generated';

/**
 * The genhook API as n8n operations: generations (create, get, get many, cancel), models and
 * the account. Declarative: every operation and field is generated from genhook's OpenAPI
 * document into ./generated (see integrations/codegen); this file only wires them up.
 */
export class Genhook implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Genhook',
		name: 'genhook',
		icon: { light: 'file:../../icons/genhook.svg', dark: 'file:../../icons/genhook.dark.svg' },
		group: ['transform'],
		version: 1,
		subtitle: '={{$parameter["operation"] + ": " + $parameter["resource"]}}',
		description: 'Generate AI videos through genhook and manage generations',
		defaults: {
			name: 'Genhook',
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
		requestDefaults: {
			baseURL: '={{$credentials.baseUrl.replace(new RegExp("/+$"), "")}}',
			headers: {
				Accept: 'application/json',
				'Content-Type': 'application/json',
			},
		},
		properties: withProblemDetails(genhookProperties),
	};
}
