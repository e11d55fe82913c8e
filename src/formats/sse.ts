import { createParser } from 'eventsource-parser';

/** One server-sent event, as stored and replayed. */
export interface SseEvent {
  event?: string;
  data: string;
}

/** Incremental SSE reader over text chunks (eventsource-parser does the framing). */
export function sseCollector(): { push(text: string): void; events: SseEvent[] } {
  const events: SseEvent[] = [];
  const parser = createParser({
    onEvent: (message) => events.push(message.event ? { event: message.event, data: message.data } : { data: message.data }),
  });
  return { push: (text) => parser.feed(text), events };
}

/** Serialise events back to the wire format. */
export function encodeSse(events: readonly SseEvent[]): string {
  let text = '';
  for (const event of events) {
    if (event.event) text += `event: ${event.event}\n`;
    for (const line of event.data.split('\n')) text += `data: ${line}\n`;
    text += '\n';
  }
  return text;
}
