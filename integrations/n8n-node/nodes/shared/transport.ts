import type {
	IDataObject,
	IExecuteFunctions,
	IHookFunctions,
	IHttpRequestMethods,
	ILoadOptionsFunctions,
	IWebhookFunctions,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';

type Context = IExecuteFunctions | IHookFunctions | ILoadOptionsFunctions | IWebhookFunctions;

/** The credential's base URL without trailing slashes. */
export async function baseUrlOf(this: Context): Promise<string> {
	const credentials = await this.getCredentials('genhookApi');
	return String(credentials.baseUrl).replace(/\/+$/, '');
}

/**
 * One call to the genhook API with the credential's Bearer key. genhook's errors are
 * problem details (`title`, `detail`, `errors[].field`); they become a NodeApiError whose
 * message names the field, so a workflow shows what to fix.
 */
export async function genhookRequest(
	this: Context,
	method: IHttpRequestMethods,
	path: string,
	body?: IDataObject,
	qs?: IDataObject,
	headers?: IDataObject,
): Promise<IDataObject> {
	const url = `${await baseUrlOf.call(this)}${path}`;
	try {
		return (await this.helpers.httpRequestWithAuthentication.call(this, 'genhookApi', {
			method,
			url,
			body,
			qs,
			json: true,
			headers: { ...headers, Accept: 'application/json' },
		})) as IDataObject;
	} catch (error) {
		const message = problemMessage(error);
		// n8n's HTTP helper already throws a NodeApiError (re-wrapping returns it as it is),
		// with a generic text per status; genhook's own words are more useful.
		const wrapped = new NodeApiError(this.getNode(), error as JsonObject, { message });
		if (message) wrapped.message = message;
		throw wrapped;
	}
}

/** Like genhookRequest, but a 404 (the thing is gone) is `undefined` rather than an error. */
export async function genhookRequestUnlessGone(
	this: Context,
	method: IHttpRequestMethods,
	path: string,
): Promise<IDataObject | undefined> {
	try {
		return await genhookRequest.call(this, method, path);
	} catch (error) {
		if (statusOf(error) === 404) return undefined;
		throw new NodeApiError(this.getNode(), error as JsonObject);
	}
}

/** The status code of a failed request, wherever the HTTP helper put it. */
export function statusOf(error: unknown): number | undefined {
	const e = error as { httpCode?: string; response?: { status?: number } };
	const status = Number(e?.httpCode ?? e?.response?.status);
	return Number.isInteger(status) && status > 0 ? status : undefined;
}

function problemMessage(error: unknown): string | undefined {
	const e = error as {
		response?: { data?: unknown };
		cause?: { response?: { data?: unknown } };
		context?: { data?: unknown };
	};
	return problemText(e?.response?.data ?? e?.cause?.response?.data ?? e?.context?.data);
}

/** One line from genhook's problem details (`title: detail`, then each field error the
 * detail does not already say), or undefined for any other body. */
export function problemText(body: unknown): string | undefined {
	const data = body as IDataObject | undefined;
	if (!data || typeof data !== 'object') return undefined;
	const fields = Array.isArray(data.errors)
		? (data.errors as IDataObject[]).map((f) => `${String(f.field)}: ${String(f.message)}`)
		: [];
	const text = [data.title, data.detail].filter((part) => part).join(': ');
	const unsaid = fields.filter((field) => !text.includes(field));
	return [text, ...unsaid].filter((part) => part).join('; ') || undefined;
}
