import express from 'express';
import request from 'supertest';
import { describe, expect, test } from 'vitest';
import { compaction, compactionErrorHandler } from '../src/adapters/express.js';
import { createCompactor, createRouteTable, type ChatRequest, type CompactionStats } from '../src/index.js';
import { locomoRequest } from './helpers.js';

function app(middleware: express.RequestHandler, limit = '5mb') {
  const server = express();
  let seen: { body: ChatRequest; stats: CompactionStats } | undefined;
  server.post('/v1/chat/completions', express.json({ limit }), middleware, (req, res) => {
    seen = { body: req.body as ChatRequest, stats: res.locals.compaction as CompactionStats };
    res.json({ received: (req.body as ChatRequest).messages.length });
  });
  server.post('/support/chat', express.json({ limit }), middleware, (req, res) => {
    seen = { body: req.body as ChatRequest, stats: res.locals.compaction as CompactionStats };
    res.json({ received: (req.body as ChatRequest).messages.length });
  });
  server.use(compactionErrorHandler());
  return { server, seen: () => seen! };
}

describe('Express middleware', () => {
  test('compacts req.body in place of the original and puts stats on res.locals', async () => {
    const { server, seen } = app(compaction({ maxInputTokens: 2000, strategy: 'truncate' }) as express.RequestHandler);
    const body = locomoRequest(1);
    const response = await request(server).post('/v1/chat/completions').send(body).expect(200);
    expect(response.body.received).toBeLessThan(body.messages.length);
    expect(seen().stats.tokensBefore).toBeGreaterThan(2000);
    expect(seen().stats.tokensAfter).toBeLessThanOrEqual(2000);
    expect(seen().body.messages[0]).toEqual(body.messages[0]);
    expect(seen().body.messages.at(-1)).toEqual(body.messages.at(-1));
    expect(await createCompactor().countTokens(seen().body)).toBe(seen().stats.tokensAfter);
  });

  test('the default preset (cache-aware) works behind the middleware', async () => {
    const { server, seen } = app(compaction({ maxInputTokens: 1500 }) as express.RequestHandler);
    const body = locomoRequest(0);
    await request(server).post('/v1/chat/completions').send(body).expect(200);
    expect(seen().stats.strategies.map((step) => step.name)).toEqual(['tool-results', 'cache-aware']);
    expect(seen().stats.tokensAfter).toBeLessThanOrEqual(1500);
    expect(seen().body.messages.at(-1)).toEqual(body.messages.at(-1));
  });

  test('errors go through next(err) and render as OpenAI-style JSON with a stable code', async () => {
    const { server } = app(compaction({ maxInputTokens: 2000 }) as express.RequestHandler);
    const bad = await request(server)
      .post('/v1/chat/completions')
      .send({ messages: [{ role: 'robot', content: 'x' }] })
      .expect(400);
    expect(bad.body.error).toMatchObject({ code: 'input.invalid', param: 'messages[0].role', type: 'invalid_request_error' });
    const malformed = await request(server).post('/v1/chat/completions').set('content-type', 'application/json').send('{"messages": [').expect(400);
    expect(malformed.body.error.code).toBe('input.invalid');
    const tooSmall = await request(server)
      .post('/v1/chat/completions')
      .send({
        messages: [
          { role: 'system', content: 'word '.repeat(3000) },
          { role: 'user', content: 'hi' },
        ],
      })
      .expect(413);
    expect(tooSmall.body.error.code).toBe('budget.unreachable');
  });

  test('over-large bodies get a 413 with input.too-large', async () => {
    const { server } = app(compaction({ maxInputTokens: 2000 }) as express.RequestHandler, '1kb');
    const response = await request(server)
      .post('/v1/chat/completions')
      .send({ messages: [{ role: 'user', content: 'x'.repeat(5000) }] })
      .expect(413);
    expect(response.body.error.code).toBe('input.too-large');
  });

  test('per-route tuning through a routes table', async () => {
    const table = createRouteTable({
      defaults: { maxInputTokens: 4000, strategy: 'truncate' },
      routes: [{ path: '/support/*', options: { maxInputTokens: 1000 } }],
    });
    const { server, seen } = app(compaction(table) as express.RequestHandler);
    await request(server).post('/support/chat').send(locomoRequest(0)).expect(200);
    expect(seen().stats.budget).toBe(1000);
    await request(server).post('/v1/chat/completions').send(locomoRequest(0)).expect(200);
    expect(seen().stats.budget).toBe(4000);
  });

  test('a route rule names its strategy with `strategy` (or the deprecated `preset`), not both', () => {
    const table = createRouteTable({
      defaults: { maxInputTokens: 4000, strategy: 'truncate' },
      routes: [
        { path: '/a', strategy: 'relevance' },
        { path: '/b', preset: 'summarize' },
      ],
    });
    expect(table.select({ path: '/a' }).options.strategy.name).toBe('relevance');
    expect(table.select({ path: '/b' }).options.strategy.name).toBe('summarize');
    expect(table.select({ path: '/c' }).options.strategy.name).toBe('truncate');
    expect(() => createRouteTable({ routes: [{ path: '/a', strategy: 'relevance', preset: 'truncate' }] })).toThrow(/routes\[0\]\.preset/);
  });

  test('the tenant resolver reaches the compactor', async () => {
    let tenant: string | undefined;
    const compactor = createCompactor({
      maxInputTokens: 500,
      strategy: {
        name: 'spy',
        apply: async (messages, context) => {
          tenant = context.tenant;
          return { messages };
        },
      },
    });
    const { server } = app(compaction(compactor, { tenant: (req) => (req as unknown as express.Request).get('x-tenant') }) as express.RequestHandler);
    await request(server).post('/v1/chat/completions').set('x-tenant', 'acme').send(locomoRequest(0)).expect(200);
    expect(tenant).toBe('acme');
  });
});
