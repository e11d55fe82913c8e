import { Hono } from 'hono';
import { describe, expect, test } from 'vitest';
import { compaction, compactionStats } from '../src/adapters/fetch.js';
import { createCompactor, type ChatRequest } from '../src/index.js';
import { locomoRequest } from './helpers.js';

const post = (body: unknown, headers: Record<string, string> = {}) =>
  new Request('http://localhost/v1/chat/completions', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('fetch adapter', () => {
  test('a plain (Request) => Response handler receives the compacted body', async () => {
    let received: ChatRequest | undefined;
    const handler = compaction(
      { maxInputTokens: 2000, strategy: 'truncate' },
      { headers: true },
    )(async (request: Request) => {
      received = (await request.json()) as ChatRequest;
      expect(compactionStats(request)?.tokensAfter).toBeLessThanOrEqual(2000);
      return Response.json({ ok: true });
    });
    const body = locomoRequest(2);
    const response = await handler(post(body));
    expect(response.status).toBe(200);
    expect(Number(response.headers.get('x-compactor-tokens-before'))).toBeGreaterThan(2000);
    expect(Number(response.headers.get('x-compactor-tokens-after'))).toBeLessThanOrEqual(2000);
    expect(response.headers.get('x-compactor-strategy')).toBe('tool-results,truncate');
    expect(received!.messages.length).toBeLessThan(body.messages.length);
    expect(await createCompactor().countTokens(received!)).toBeLessThanOrEqual(2000);
  });

  test('a Responses API body is compacted in its own shape', async () => {
    let received: { input: { type?: string; role?: string }[]; instructions: string } | undefined;
    const handler = compaction(
      { maxInputTokens: 2000, strategy: 'truncate' },
      { headers: true },
    )(async (request: Request) => {
      received = (await request.json()) as typeof received;
      return Response.json({ ok: true });
    });
    const [system, ...rest] = locomoRequest(2).messages;
    const input = rest.map((message) => ({ role: message.role, content: String(message.content) }));
    const response = await handler(
      new Request('http://localhost/v1/responses', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-5', instructions: String(system!.content), input }),
      }),
    );
    expect(response.status).toBe(200);
    expect(Number(response.headers.get('x-compactor-tokens-after'))).toBeLessThanOrEqual(2000);
    expect(received!.instructions).toBe(String(system!.content));
    expect(received!.input.length).toBeLessThan(input.length);
    expect(received!.input.at(-1)).toEqual(input.at(-1));
  });

  test('works with a Hono app', async () => {
    const app = new Hono();
    app.post('/v1/chat/completions', async (c) => {
      const body = await c.req.json<ChatRequest>();
      return c.json({ messages: body.messages.length, last: body.messages.at(-1) });
    });
    const fetch = compaction({ maxInputTokens: 1000, strategy: 'truncate' })(app.fetch);
    const body = locomoRequest(0);
    const response = await fetch(post(body));
    expect(response.status).toBe(200);
    const json = (await response.json()) as { messages: number; last: unknown };
    expect(json.messages).toBeLessThan(body.messages.length);
    expect(json.last).toEqual(body.messages.at(-1));
    expect(response.headers.get('content-type')).toContain('application/json');
  });

  test('bad input becomes an OpenAI-style error response, and the handler is not called', async () => {
    let called = false;
    const fetch = compaction(
      { maxInputTokens: 1000 },
      { maxBodyBytes: 2048 },
    )(async () => {
      called = true;
      return new Response('x');
    });
    const malformed = await fetch(post('{"messages": ['));
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('input.invalid');
    const orphan = await fetch(post({ messages: [{ role: 'tool', tool_call_id: 'x', content: 'r' }] }));
    expect(((await orphan.json()) as { error: { param: string } }).error.param).toBe('messages[0].tool_call_id');
    const big = await fetch(post({ messages: [{ role: 'user', content: 'x'.repeat(4000) }] }));
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error: { code: string } }).error.code).toBe('input.too-large');
    expect(called).toBe(false);
  });

  test('headers are off by default, as in every adapter', async () => {
    const fetch = compaction({ maxInputTokens: 1000, strategy: 'truncate' })(async () => Response.json({ ok: true }));
    const response = await fetch(post(locomoRequest(0)));
    expect(response.status).toBe(200);
    const names: string[] = [];
    response.headers.forEach((_value, name) => {
      names.push(name);
    });
    expect(names.filter((name) => name.startsWith('x-compactor-'))).toEqual([]);
  });

  test('GET requests pass straight through', async () => {
    const fetch = compaction({ maxInputTokens: 1000 })(async () => new Response('hello'));
    const response = await fetch(new Request('http://localhost/healthz'));
    expect(await response.text()).toBe('hello');
  });
});
