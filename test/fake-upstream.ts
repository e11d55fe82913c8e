import { once } from 'node:events';
import { gzipSync } from 'node:zlib';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { responseEvents } from '../src/formats/responses/stream.js';

export interface Recorded {
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown>;
  /** The body's bytes as received, as text. */
  raw: string;
}

/**
 * `held`: a JSON answer waits for `release()`; `held-stream`: a stream sends its first event, then
 * waits for `release()` (no test waits for real time).
 */
export type Behaviour = 'ok' | 'error-500' | 'hang' | 'drop' | 'held-stream' | 'gzip' | 'held';

/** A promise with its resolver (Promise.withResolvers is Node 22). */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((done) => {
    resolve = done;
  });
  return { promise, resolve };
}

/** The credential a request carries, in whichever header. */
export function credentialIn(headers: IncomingMessage['headers']): string | undefined {
  const value = headers.authorization ?? headers['x-api-key'] ?? headers['api-key'];
  const text = Array.isArray(value) ? value[0] : value;
  return text?.replace(/^bearer\s+/i, '');
}

/**
 * A local stand-in for OpenAI and Anthropic that records what it received. The answer names how
 * many messages it got, so tests can see compaction without parsing the upstream's logs.
 */
export async function fakeUpstream(): Promise<{
  url: string;
  calls: Recorded[];
  behaviour: Behaviour;
  server: Server;
  aborted: number;
  /** Credentials answered with a 401, as a revoked key is. */
  revoked: Set<string>;
  /** The answer's text for a call (default: how many messages it got). */
  answer: ((call: Recorded) => string) | undefined;
  nextAbort(): Promise<void>;
  /** Resolves when the upstream has received `count` calls in all (default: one more than now). */
  received(count?: number): Promise<void>;
  /** Let every held answer go on; answers held later wait for the next release. */
  release(): void;
  close(): Promise<void>;
}> {
  const state = { behaviour: 'ok' as Behaviour, aborted: 0, answer: undefined as ((call: Recorded) => string) | undefined };
  const revoked = new Set<string>();
  const abortWaiters: (() => void)[] = [];
  const calls: Recorded[] = [];
  const arrivals: { count: number; resolve: () => void }[] = [];
  let gate = deferred();
  const held = () => gate.promise;
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const body = chunks.length ? (JSON.parse(raw) as Record<string, unknown>) : {};
    const call = { path: request.url ?? '', headers: request.headers, body, raw };
    calls.push(call);
    for (const waiter of arrivals.filter((entry) => calls.length >= entry.count)) {
      arrivals.splice(arrivals.indexOf(waiter), 1);
      waiter.resolve();
    }
    const behaviour = state.behaviour;
    const credential = credentialIn(request.headers);
    if (credential !== undefined && revoked.has(credential)) {
      response.writeHead(401, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'Incorrect API key provided', type: 'invalid_request_error', code: 'invalid_api_key' } }));
      return;
    }
    if (behaviour === 'hang') return; // never answers
    const path = (request.url ?? '').split('?')[0]!;
    const json = (status: number, value: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json', 'x-upstream': 'fake' });
      response.end(JSON.stringify(value));
    };
    // Like OpenAI: models before GPT-5.6 refuse the explicit cache fields.
    const serialized = JSON.stringify(body);
    if ((serialized.includes('"prompt_cache_breakpoint"') || serialized.includes('"prompt_cache_options"')) && !String(body.model).startsWith('gpt-5.6')) {
      json(400, {
        error: {
          message: "Unknown parameter: 'prompt_cache_breakpoint'.",
          type: 'invalid_request_error',
          param: 'prompt_cache_breakpoint',
          code: 'unknown_parameter',
        },
      });
      return;
    }
    if (request.method === 'GET' && path.startsWith('/v1/models')) {
      json(200, { object: 'list', data: [{ id: 'gpt-4o-mini', object: 'model', created: 1, owned_by: 'fake' }] });
      return;
    }
    if (path === '/v1/messages/count_tokens') {
      json(200, { input_tokens: Array.isArray(body.messages) ? body.messages.length * 10 : 0 });
      return;
    }
    if (path === '/v1/responses/compact') {
      json(200, {
        id: 'cmp_1',
        object: 'response.compaction',
        created_at: 1,
        output: [{ id: 'cmp_item_1', type: 'compaction', encrypted_content: 'ENCRYPTED-BY-FAKE' }],
        usage: { input_tokens: 10, output_tokens: 2, total_tokens: 12 },
      });
      return;
    }
    if (path === '/v1/responses') {
      const answer = responsesAnswer(body, state.answer ? state.answer(call) : undefined);
      if (body.stream === true) {
        response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        for (const event of responseEvents(answer)) response.write(`event: ${event.event}\ndata: ${event.data}\n\n`);
        response.end();
      } else json(200, answer);
      return;
    }
    if (behaviour === 'error-500') {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ error: { message: 'upstream exploded', type: 'server_error', code: 'boom' } }));
      return;
    }
    const count = Array.isArray(body.messages) ? body.messages.length : 0;
    const text = state.answer ? state.answer(call) : `Received ${count} messages.`;
    const anthropic = request.url?.endsWith('/v1/messages') ?? false;
    if (body.stream === true) {
      // A caller that goes away mid-stream shows up here as a response closed before its end.
      response.on('close', () => {
        if (response.writableFinished) return;
        state.aborted++;
        for (const resolve of abortWaiters.splice(0)) resolve();
      });
      response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      const events = anthropic ? anthropicEvents(text) : openaiEvents(text);
      for (const [index, event] of events.entries()) {
        if (behaviour === 'drop' && index === 2) {
          response.destroy();
          return;
        }
        if (response.destroyed) return;
        response.write(event);
        if (behaviour === 'held-stream' && index === 0) await held();
      }
      response.end();
      return;
    }
    if (behaviour === 'drop') {
      response.destroy();
      return;
    }
    if (behaviour === 'held') await held();
    const encode = behaviour === 'gzip' ? (text: string) => gzipSync(text) : (text: string) => text;
    response.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'fake', ...(behaviour === 'gzip' ? { 'content-encoding': 'gzip' } : {}) });
    response.end(
      encode(
        JSON.stringify(
          anthropic
            ? {
                id: 'msg_1',
                type: 'message',
                role: 'assistant',
                model: body.model,
                content: [{ type: 'text', text }],
                stop_reason: 'end_turn',
                stop_sequence: null,
                usage: { input_tokens: 10, output_tokens: 5 },
              }
            : {
                id: 'chatcmpl-1',
                object: 'chat.completion',
                created: 1,
                model: body.model,
                choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop', logprobs: null }],
                usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
              },
        ),
      ),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    calls,
    server,
    get aborted() {
      return state.aborted;
    },
    revoked,
    get answer() {
      return state.answer;
    },
    set answer(value) {
      state.answer = value;
    },
    /** Resolves when the next caller goes away mid-stream. */
    nextAbort: () => new Promise<void>((resolve) => abortWaiters.push(resolve)),
    received(count = calls.length + 1) {
      if (calls.length >= count) return Promise.resolve();
      return new Promise<void>((resolve) => arrivals.push({ count, resolve }));
    },
    release() {
      gate.resolve();
      gate = deferred();
    },
    get behaviour() {
      return state.behaviour;
    },
    set behaviour(value: Behaviour) {
      state.behaviour = value;
    },
    close: async () => {
      gate.resolve();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function openaiEvents(text: string): string[] {
  const base = { id: 'chatcmpl-s', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
  const words = text.split(/(?<= )/);
  return [
    ...words.map(
      (word, index) =>
        `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: index === 0 ? { role: 'assistant', content: word } : { content: word }, finish_reason: null }] })}\n\n`,
    ),
    `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
    'data: [DONE]\n\n',
  ];
}

function anthropicEvents(text: string): string[] {
  const event = (type: string, data: unknown) => `event: ${type}\ndata: ${JSON.stringify(data)}\n\n`;
  return [
    event('message_start', {
      type: 'message_start',
      message: {
        id: 'msg_s',
        type: 'message',
        role: 'assistant',
        model: 'claude-haiku-3-5',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 10, output_tokens: 1 },
      },
    }),
    event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...text.split(/(?<= )/).map((piece) => event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: piece } })),
    event('content_block_stop', { type: 'content_block_stop', index: 0 }),
    event('message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } }),
    event('message_stop', { type: 'message_stop' }),
  ];
}

let responseCount = 0;

/**
 * A Responses API answer: a function call when the request offers tools and its input ends with
 * the user's turn (so an agent loops once through its tool), else a message saying how many input
 * items arrived.
 */
function responsesAnswer(body: Record<string, unknown>, text: string | undefined): Record<string, unknown> {
  const input = typeof body.input === 'string' ? [{ role: 'user', content: body.input }] : ((body.input as Record<string, unknown>[] | undefined) ?? []);
  const last = input[input.length - 1];
  const tools = (body.tools as { type?: string; name?: string }[] | undefined) ?? [];
  const tool = tools.find((candidate) => candidate.type === 'function');
  const id = `resp_${++responseCount}`;
  const output =
    tool && last && (last.type === undefined || last.type === 'message') && last.role === 'user'
      ? [
          {
            type: 'function_call',
            id: `fc_${responseCount}`,
            call_id: `call_${responseCount}`,
            name: tool.name,
            arguments: '{"city":"Paris"}',
            status: 'completed',
          },
        ]
      : [
          {
            type: 'message',
            id: `msg_${responseCount}`,
            role: 'assistant',
            status: 'completed',
            content: [{ type: 'output_text', text: text ?? `Received ${input.length} items.`, annotations: [] }],
          },
        ];
  return {
    id,
    object: 'response',
    created_at: 1,
    status: 'completed',
    model: body.model,
    output,
    previous_response_id: body.previous_response_id ?? null,
    usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15, input_tokens_details: { cached_tokens: 0 }, output_tokens_details: { reasoning_tokens: 0 } },
  };
}
