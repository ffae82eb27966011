/** How long a delivered `webhook-id` is remembered, and how many per trigger: genhook's
 * retries of one delivery span hours at most, and redeliveries reuse the id. */
const SEEN_FOR_MS = 7 * 24 * 3600 * 1000;
const SEEN_MAX = 2000;

/** Per trigger (workflow id + node id): the ids this n8n process has handled. The
 * workflow's static data keeps them too, but n8n 2.41 does not save static data that a
 * webhook() changed when it starts an execution: the process's memory is what holds them
 * for certain (until n8n restarts, or in another webhook process of a queue-mode setup). */
const inProcess = new Map<string, Record<string, number>>();

function pruned(seen: Record<string, number>, now: number): Record<string, number> {
	return Object.fromEntries(
		Object.entries(seen)
			.filter(([, at]) => now - at < SEEN_FOR_MS)
			.sort((a, b) => b[1] - a[1])
			.slice(0, SEEN_MAX - 1),
	);
}

/**
 * Records `id` for the trigger `key`, in memory and in `stored` (the node's static data);
 * false when it was already there, i.e. this delivery was handled before.
 */
export function firstDelivery(
	key: string,
	stored: { seen?: Record<string, number> },
	id: string,
	now: number = Date.now(),
): boolean {
	const memory = pruned(inProcess.get(key) ?? {}, now);
	const saved = pruned(stored.seen ?? {}, now);
	const repeated = memory[id] !== undefined || saved[id] !== undefined;
	memory[id] = memory[id] ?? now;
	saved[id] = saved[id] ?? now;
	inProcess.set(key, memory);
	stored.seen = saved;
	return !repeated;
}

/** Forgets a trigger's ids (its endpoint is gone; a new one starts afresh). */
export function forgetDeliveries(key: string): void {
	inProcess.delete(key);
}
