import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cosineVerifier } from '../src/cache/verifier.js';
import { createResponseCache, createRouteTable, type ChatMessage } from '../src/index.js';
import { createProxy, REDACT_PATHS, type ProxyServer } from '../src/proxy/server.js';
import { hashEmbedder } from '../src/testing/index.js';
import { fakeUpstream } from './fake-upstream.js';
import { locomoRequest } from './helpers.js';

const SECRET = 'sk-test-SECRET-4242-do-not-log';
const logLines: string[] = [];
const logStream = new Writable({
  write(chunk, _encoding, callback) {
    logLines.push(String(chunk));
    callback();
  },
});

let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
let cache: ReturnType<typeof createResponseCache>;
let proxy: ProxyServer;
let base: string;

beforeAll(async () => {
  upstream = await fakeUpstream();
  cache = createResponseCache({ embedder: hashEmbedder(256), verifier: cosineVerifier(), threshold: 0.97 });
  proxy = createProxy({
    upstream: upstream.url,
    anthropicUpstream: upstream.url,
    routes: createRouteTable({ defaults: { maxInputTokens: 2000, strategy: 'truncate', onBudgetUnreachable: 'pass-through', cache } }),
    cache,
    upstreamTimeoutMs: 400,
    streamIdleTimeoutMs: 400,
    maxBodyBytes: 512 * 1024,
    // The fake upstream stands in for api.openai.com and api.anthropic.com, which get the hints by default.
    cacheHints: true,
    logger: pino({ level: 'debug', redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, logStream),
  });
  base = `http://127.0.0.1:${await proxy.listen(0)}`;
});

afterAll(async () => {
  await proxy.close(1000);
  await upstream.close();
});

const openai = (key = SECRET) => new OpenAI({ apiKey: key, baseURL: `${base}/v1`, maxRetries: 0, timeout: 5000 });
const anthropic = (key = SECRET) => new Anthropic({ apiKey: key, baseURL: base, maxRetries: 0, timeout: 5000 });
const longConversation = (index: number, question?: string) => {
  const request = locomoRequest(index);
  if (question) request.messages[request.messages.length - 1] = { role: 'user', content: question };
  return request;
};

describe('proxy with the official openai client', () => {
  test('compacts, forwards and returns the answer intact, with x-compactor headers', async () => {
    upstream.behaviour = 'ok';
    const request = longConversation(0, 'What did Caroline research? (non-streamed)');
    const before = upstream.calls.length;
    const { data, response } = await openai()
      .chat.completions.create({ model: 'gpt-4o-mini', messages: request.messages as OpenAI.ChatCompletionMessageParam[] })
      .withResponse();
    const received = upstream.calls[before]!;
    expect(received.path).toBe('/v1/chat/completions');
    expect((received.body.messages as ChatMessage[]).length).toBeLessThan(request.messages.length);
    expect((received.body.messages as ChatMessage[])[0]).toEqual(request.messages[0]);
    expect((received.body.messages as ChatMessage[]).at(-1)).toEqual(request.messages.at(-1));
    expect(received.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(data.choices[0]!.message.content).toBe(`Received ${(received.body.messages as ChatMessage[]).length} messages.`);
    expect(Number(response.headers.get('x-compactor-tokens-before'))).toBeGreaterThan(2000);
    expect(Number(response.headers.get('x-compactor-tokens-after'))).toBeLessThanOrEqual(2000);
    expect(response.headers.get('x-compactor-cache')).toBe('miss');
    expect(response.headers.get('x-compactor-strategy')).toContain('truncate');
    expect(response.headers.get('x-upstream')).toBe('fake');
  });

  test('streams chunk by chunk, and a repeated request is a cache hit that never reaches the upstream', async () => {
    upstream.behaviour = 'ok';
    const request = longConversation(1, 'Where did Jon go? (streamed)');
    const before = upstream.calls.length;
    const collect = async () => {
      const stream = await openai().chat.completions.create({
        model: 'gpt-4o-mini',
        messages: request.messages as OpenAI.ChatCompletionMessageParam[],
        stream: true,
      });
      let text = '';
      let finish: string | null = null;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        finish = chunk.choices[0]?.finish_reason ?? finish;
      }
      return { text, finish };
    };
    const first = await collect();
    const sent = (upstream.calls[before]!.body.messages as ChatMessage[]).length;
    expect(first).toEqual({ text: `Received ${sent} messages.`, finish: 'stop' });
    await cache.idle();
    const second = await collect();
    expect(second).toEqual(first);
    // Non-streamed, the same question is answered from the stored stream.
    const { data, response } = await openai()
      .chat.completions.create({ model: 'gpt-4o-mini', messages: request.messages as OpenAI.ChatCompletionMessageParam[] })
      .withResponse();
    expect(response.headers.get('x-compactor-cache')).toBe('hit');
    expect(data.choices[0]!.message.content).toBe(first.text);
    expect(upstream.calls.length).toBe(before + 1);
  });

  test("another tenant (API key) never gets the first tenant's cached answer", async () => {
    upstream.behaviour = 'ok';
    const request = longConversation(2, 'A question two tenants ask');
    const before = upstream.calls.length;
    await openai('sk-tenant-one').chat.completions.create({ model: 'gpt-4o-mini', messages: request.messages as OpenAI.ChatCompletionMessageParam[] });
    await cache.idle();
    const { response } = await openai('sk-tenant-two')
      .chat.completions.create({ model: 'gpt-4o-mini', messages: request.messages as OpenAI.ChatCompletionMessageParam[] })
      .withResponse();
    expect(response.headers.get('x-compactor-cache')).toBe('miss');
    expect(upstream.calls.length).toBe(before + 2);
  });
});

describe('proxy with the official @anthropic-ai/sdk client', () => {
  const conversation = (question: string) => {
    const request = longConversation(0, question);
    return {
      system: String(request.messages[0]!.content),
      messages: request.messages.slice(1).map((message) => ({ role: message.role as 'user' | 'assistant', content: String(message.content) })),
    };
  };

  test('compacts /v1/messages, keeps the system prompt, and replays hits', async () => {
    upstream.behaviour = 'ok';
    const { system, messages } = conversation('What is Melanie painting? (anthropic)');
    const before = upstream.calls.length;
    const message = await anthropic().messages.create({ model: 'claude-haiku-3-5', max_tokens: 100, system, messages });
    const received = upstream.calls[before]!;
    expect(received.path).toBe('/v1/messages');
    expect(String(received.headers['x-api-key'] ?? received.headers.authorization)).toContain(SECRET);
    // The system prompt is kept as sent: a breakpoint after it alone would sit below claude-haiku-3-5's
    // 2,048-token minimum cacheable prefix, and cache nothing.
    expect(received.body.system).toEqual(system);
    const count = (received.body.messages as unknown[]).length;
    expect(count).toBeLessThan(messages.length);
    expect(message.content[0]).toMatchObject({ type: 'text', text: `Received ${count} messages.` });
    const again = await anthropic().messages.create({ model: 'claude-haiku-3-5', max_tokens: 100, system, messages });
    // The same answer as a message of its own: a fresh id, and usage of zero since nothing was billed.
    expect({ ...again, id: message.id, usage: message.usage }).toEqual(message);
    expect(again.id).not.toBe(message.id);
    expect(again.usage).toMatchObject({ input_tokens: 0, output_tokens: 0 });
    expect(upstream.calls.length).toBe(before + 1);
  });

  test('streams /v1/messages, and a streamed hit replays the events', async () => {
    upstream.behaviour = 'ok';
    const { system, messages } = conversation('What is Melanie painting? (anthropic, streamed)');
    const before = upstream.calls.length;
    const final = await anthropic().messages.stream({ model: 'claude-haiku-3-5', max_tokens: 100, system, messages }).finalMessage();
    const count = (upstream.calls[before]!.body.messages as unknown[]).length;
    expect(final.content[0]).toMatchObject({ type: 'text', text: `Received ${count} messages.` });
    expect(final.stop_reason).toBe('end_turn');
    await cache.idle();
    const replayed = await anthropic().messages.stream({ model: 'claude-haiku-3-5', max_tokens: 100, system, messages }).finalMessage();
    expect(replayed.content).toEqual(final.content);
    expect(upstream.calls.length).toBe(before + 1);
  });

  test('a /v1/messages answer cached in one form is replayed in the other, both ways', async () => {
    upstream.behaviour = 'ok';
    const plain = conversation('What is Melanie painting? (anthropic, plain first)');
    const before = upstream.calls.length;
    const message = await anthropic().messages.create({ model: 'claude-haiku-3-5', max_tokens: 100, ...plain });
    await cache.idle();
    const asStream = await anthropic()
      .messages.stream({ model: 'claude-haiku-3-5', max_tokens: 100, ...plain })
      .finalMessage();
    expect(asStream.content).toEqual(message.content);
    expect(asStream.stop_reason).toBe('end_turn');
    expect(upstream.calls.length).toBe(before + 1);

    const streamedFirst = conversation('What is Melanie painting? (anthropic, stream first)');
    const final = await anthropic()
      .messages.stream({ model: 'claude-haiku-3-5', max_tokens: 100, ...streamedFirst })
      .finalMessage();
    await cache.idle();
    const asMessage = await anthropic().messages.create({ model: 'claude-haiku-3-5', max_tokens: 100, ...streamedFirst });
    expect(asMessage.content).toEqual(final.content);
    expect(asMessage.stop_reason).toBe('end_turn');
    expect(upstream.calls.length).toBe(before + 2);
  });
});

describe('proxy faults', () => {
  const ask = (question: string) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: question }] });

  test('an upstream 500 is passed through with its status and body, and not cached', async () => {
    upstream.behaviour = 'error-500';
    const error = await openai()
      .chat.completions.create(ask('fault: 500'))
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(500);
    expect((error as InstanceType<typeof OpenAI.APIError>).message).toContain('upstream exploded');
    upstream.behaviour = 'ok';
    const { response } = await openai().chat.completions.create(ask('fault: 500')).withResponse();
    expect(response.headers.get('x-compactor-cache')).toBe('miss');
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/context_compactor_failures_total\{component="upstream"\} [1-9]/);
  });

  test('a client that aborts a stream cancels the upstream request', async () => {
    upstream.behaviour = 'held-stream';
    const before = upstream.aborted;
    const controller = new AbortController();
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
      body: JSON.stringify({ ...ask('abort me'), stream: true }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    await reader.read();
    const aborted = upstream.nextAbort();
    controller.abort();
    await aborted;
    expect(upstream.aborted).toBe(before + 1);
    upstream.behaviour = 'ok';
    upstream.release();
  });

  test('a hanging upstream becomes a 504 in OpenAI error format, and the proxy keeps serving', async () => {
    upstream.behaviour = 'hang';
    const response = await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${SECRET}` },
      body: JSON.stringify(ask('fault: hang')),
    });
    expect(response.status).toBe(504);
    expect(((await response.json()) as { error: { code: string; type: string } }).error).toMatchObject({ code: 'upstream.timeout', type: 'server_error' });
    upstream.behaviour = 'ok';
    expect((await openai().chat.completions.create(ask('after the hang'))).choices[0]!.message.content).toBe('Received 1 messages.');
  });

  test('a stream dropped half-way breaks the client stream, is counted, and is not cached', async () => {
    upstream.behaviour = 'drop';
    const read = async () => {
      const stream = await openai().chat.completions.create({ ...ask('fault: drop'), stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      return text;
    };
    await expect(read()).rejects.toThrow();
    const before = upstream.calls.length;
    upstream.behaviour = 'ok';
    expect(await read()).toBe('Received 1 messages.');
    expect(upstream.calls.length).toBe(before + 1);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/context_compactor_failures_total\{component="upstream"\} [1-9]/);
  });

  test('an unreachable upstream is a 502 with a code', async () => {
    const dead = createProxy({ upstream: 'http://127.0.0.1:9', logger: pino({ level: 'silent' }) });
    const port = await dead.listen(0);
    const response = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(ask('anyone?')) });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('upstream.failed');
    await dead.close(100);
  });
});

describe('proxy security and operations', () => {
  test("oversized and malformed bodies are rejected with codes, in each API's format", async () => {
    const post = (path: string, body: string) => fetch(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const big = await post('/v1/chat/completions', JSON.stringify({ model: 'x', messages: [{ role: 'user', content: 'x'.repeat(600 * 1024) }] }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('input.too-large');
    const malformed = await post('/v1/chat/completions', '{"messages": [');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('input.invalid');
    const notObject = await post('/v1/chat/completions', '[1,2]');
    expect(((await notObject.json()) as { error: { code: string } }).error.code).toBe('input.invalid');
    const orphan = await post('/v1/chat/completions', JSON.stringify({ messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }));
    expect(orphan.status).toBe(400);
    expect(((await orphan.json()) as { error: { param: string } }).error.param).toBe('messages[0].tool_call_id');
    const anthropicBad = await post('/v1/messages', '{"messages": 3}');
    expect(anthropicBad.status).toBe(400);
    expect((await anthropicBad.json()) as { type: string; error: { type: string } }).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });

  test('/healthz and /metrics', async () => {
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    for (const name of [
      'context_compactor_tokens_in_total',
      'context_compactor_tokens_out_total',
      'context_compactor_tokens_saved_total',
      'context_compactor_dollars_saved_total',
      'context_compactor_cache_total',
      'context_compactor_strategy_seconds_bucket',
      'context_compactor_overhead_seconds_bucket',
    ]) {
      expect(metrics).toContain(name);
    }
    expect(metrics).toMatch(/context_compactor_cache_total\{result="hit"\} [1-9]/);
    expect(metrics).toMatch(/context_compactor_tokens_saved_total\{route="chat.completions"\} [1-9]/);
  });

  test('no log line contains an API key, and message content is not logged by default', async () => {
    // Its own traffic, so the test does not depend on the ones before it: a bearer key, an
    // Anthropic x-api-key, a refused request and an upstream error, each with content to leak.
    const from = logLines.length;
    const request = longConversation(1, 'What did Caroline research? (log check)');
    await openai('sk-log-check-bearer').chat.completions.create({ model: 'gpt-4o-mini', messages: request.messages as OpenAI.ChatCompletionMessageParam[] });
    await anthropic('sk-log-check-anthropic').messages.create({
      model: 'claude-sonnet-4-5',
      max_tokens: 10,
      messages: [{ role: 'user', content: 'What did Caroline research? (anthropic)' }],
    });
    await fetch(`${base}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-log-check-refused', 'content-type': 'application/json' },
      body: '{"messages": "What did Caroline research"',
    });
    upstream.behaviour = 'error-500';
    await openai('sk-log-check-failed')
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'What did Caroline research? (failed)' }] })
      .catch(() => undefined);
    upstream.behaviour = 'ok';
    const lines = logLines.slice(from);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    const all = lines.join('');
    for (const key of ['sk-log-check-bearer', 'sk-log-check-anthropic', 'sk-log-check-refused', 'sk-log-check-failed']) expect(all).not.toContain(key);
    expect(all).not.toContain('What did Caroline research');
    // And nothing the earlier tests logged leaked either.
    expect(logLines.join('')).not.toContain(SECRET);
  });

  test('graceful shutdown drains an in-flight stream, then refuses new work', async () => {
    const slow = await fakeUpstream();
    slow.behaviour = 'held-stream';
    const draining = createProxy({ upstream: slow.url, logger: pino({ level: 'silent' }) });
    const port = await draining.listen(0);
    const client = new OpenAI({ apiKey: 'k', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count slowly' }], stream: true });
    const closing = draining.close(5000);
    // The stream is held upstream after its first event: draining must wait for the rest.
    slow.release();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('Received 1 messages.');
    await closing;
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    await slow.close();
  });
});
