import type {
	IAuthenticateGeneric,
	Icon,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

/** One genhook account: where its API is, its API key, and the signing secret that proves a
 * webhook came from genhook (the "Generate and Wait" node checks it before resuming). */
export class GenhookApi implements ICredentialType {
	name = 'genhookApi';

	displayName = 'Genhook API';

	icon: Icon = { light: 'file:../icons/genhook.svg', dark: 'file:../icons/genhook.dark.svg' };

	documentationUrl =
		'https://github.com/genhook/genhook/tree/main/integrations/n8n-node#credentials';

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: 'http://127.0.0.1:8000',
			required: true,
			placeholder: 'https://genhook.example.com',
			description: 'Where your genhook API answers, without a trailing /v1',
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			required: true,
			description: "The account's <code>gh_…</code> key, sent as a Bearer token",
		},
		{
			displayName: 'Signing Secret',
			name: 'signingSecret',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description:
				"The account's <code>whsec_…</code> signing secret (from signup, <code>genhook up</code>, or <code>POST /v1/account/rotate-signing-secret</code>). Generate and Wait verifies every webhook with it before resuming; it is required in webhook mode.",
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
			},
		},
	};

	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.baseUrl.replace(new RegExp("/+$"), "")}}',
			url: '/v1/account',
			method: 'GET',
		},
	};
}
