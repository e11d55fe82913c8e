import type { SseEvent } from '../sse.js';

type Body = Record<string, unknown> & { output?: Record<string, unknown>[] };

const parse = (event: SseEvent): Record<string, unknown> | undefined => {
  try {
    const data = JSON.parse(event.data) as unknown;
    return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
};

/** The response a Responses stream ended with (its `response.completed` event), or undefined when it did not complete. */
export function completedResponse(events: readonly SseEvent[]): Body | undefined {
  for (let index = events.length - 1; index >= 0; index--) {
    const data = parse(events[index]!);
    if (!data) continue;
    if (data.type === 'response.completed' && typeof data.response === 'object' && data.response !== null) return data.response as Body;
    if (typeof data.type === 'string') return undefined;
  }
  return undefined;
}

/**
 * A completed response as the events a streamed request would have received: created, each
 * output item added and done (a message's text as one delta), completed. Clients that read the
 * deltas get the text; clients that wait for `response.completed` get the whole response.
 */
export function responseEvents(response: Body): SseEvent[] {
  let sequence = 0;
  const event = (type: string, payload: Record<string, unknown>): SseEvent => ({
    event: type,
    data: JSON.stringify({ type, sequence_number: sequence++, ...payload }),
  });
  const events: SseEvent[] = [event('response.created', { response: { ...response, status: 'in_progress', output: [] } })];
  (response.output ?? []).forEach((item, outputIndex) => {
    events.push(event('response.output_item.added', { output_index: outputIndex, item }));
    if (item.type === 'message' && Array.isArray(item.content)) {
      (item.content as Record<string, unknown>[]).forEach((part, contentIndex) => {
        const where = { item_id: item.id, output_index: outputIndex, content_index: contentIndex };
        events.push(event('response.content_part.added', { ...where, part: { ...part, text: '' } }));
        if (part.type === 'output_text' && typeof part.text === 'string') {
          events.push(event('response.output_text.delta', { ...where, delta: part.text }));
          events.push(event('response.output_text.done', { ...where, text: part.text }));
        }
        events.push(event('response.content_part.done', { ...where, part }));
      });
    }
    events.push(event('response.output_item.done', { output_index: outputIndex, item }));
  });
  events.push(event('response.completed', { response }));
  return events;
}
