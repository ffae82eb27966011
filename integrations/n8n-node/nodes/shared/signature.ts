import { createHmac, timingSafeEqual } from 'crypto';

/** How far a webhook's timestamp may be from now: older (or future) messages are replays. */
export const TOLERANCE_SECONDS = 5 * 60;

export type Verdict = { ok: true; id: string } | { ok: false; reason: string };

/** Request headers as Node gives them (lower-case names). */
export type Headers = Record<string, string | string[] | undefined>;

function header(headers: Headers, name: string): string | undefined {
	const value = headers[name];
	return Array.isArray(value) ? value[0] : value;
}

/** The HMAC key of a Standard Webhooks secret: the base64 after the `whsec_` prefix. */
function keyOf(secret: string): Buffer {
	return Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
}

/**
 * Checks a genhook webhook the way https://www.standardwebhooks.com prescribes: the
 * `webhook-signature` header holds one or more `v1,<base64 HMAC-SHA256>` signatures (two
 * during a secret rotation) of `webhook-id.webhook-timestamp.raw body`, and the timestamp is
 * within five minutes. The raw bytes matter: a re-serialised JSON body would not verify.
 */
export function verifyWebhook(
	rawBody: Buffer,
	headers: Headers,
	secrets: string[],
	nowSeconds: number = Math.floor(Date.now() / 1000),
): Verdict {
	const id = header(headers, 'webhook-id');
	const timestamp = header(headers, 'webhook-timestamp');
	const signatures = header(headers, 'webhook-signature');
	if (!id || !timestamp || !signatures) {
		return { ok: false, reason: 'missing webhook-id, webhook-timestamp or webhook-signature' };
	}
	const sentAt = Number(timestamp);
	if (!/^\d+$/.test(timestamp) || Math.abs(nowSeconds - sentAt) > TOLERANCE_SECONDS) {
		return { ok: false, reason: 'webhook-timestamp is not within 5 minutes of now' };
	}
	const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`), rawBody]);
	const offered = signatures
		.split(' ')
		.filter((part) => part.startsWith('v1,'))
		.map((part) => Buffer.from(part.slice(3), 'base64'));
	for (const secret of secrets.filter((s) => s)) {
		const expected = createHmac('sha256', keyOf(secret)).update(signed).digest();
		if (offered.some((sig) => sig.length === expected.length && timingSafeEqual(sig, expected))) {
			return { ok: true, id };
		}
	}
	return { ok: false, reason: 'no webhook-signature matches the signing secret' };
}

/** Parses a verified raw body; genhook always sends a JSON object. */
export function parseBody(rawBody: Buffer): Record<string, unknown> | undefined {
	try {
		const parsed: unknown = JSON.parse(rawBody.toString('utf8'));
		return parsed && typeof parsed === 'object' && !Array.isArray(parsed)
			? (parsed as Record<string, unknown>)
			: undefined;
	} catch {
		return undefined;
	}
}
