import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { AnthropicMessage } from '../src/formats/anthropic/index.js';
import { fromAnthropic } from '../src/formats/anthropic/index.js';
import { createCompactor, createRouteTable } from '../src/index.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { fakeUpstream } from './fake-upstream.js';
import { compacted, locomoRequest } from './helpers.js';

/** A long Anthropic conversation whose first part the provider already compacted into a block. */
function compactedConversation(): { before: AnthropicMessage[]; compaction: AnthropicMessage; after: AnthropicMessage[] } {
  const turns: AnthropicMessage[] = locomoRequest(0)
    .messages.slice(1, 161)
    .map((message) => ({ role: message.role === 'assistant' ? 'assistant' : 'user', content: String(message.content) }));
  const before = turns.slice(0, 60);
  const compaction: AnthropicMessage = {
    role: 'assistant',
    content: [
      { type: 'compaction', content: 'Caroline and Melanie talked about the support group, painting and a camping trip.' },
      { type: 'text', text: 'Go on.' },
    ],
  };
  return { before, compaction, after: [...turns.slice(60), { role: 'user', content: 'When did Caroline go to the LGBTQ support group?' }] };
}

const CONTEXT_MANAGEMENT = {
  edits: [
    { type: 'clear_tool_uses_20250919', trigger: { type: 'input_tokens', value: 30000 }, keep: { type: 'tool_uses', value: 3 } },
    { type: 'compact_20260112', trigger: { type: 'input_tokens', value: 150000 } },
  ],
};

describe("Anthropic's own compaction", () => {
  test('a request holding a compaction block is compacted only after it; the block and what precedes it are sent as they came', async () => {
    const { before, compaction, after } = compactedConversation();
    const messages = [...before, compaction, ...after];
    // Only the block's message (pinned) and what follows it are the history to compact.
    const conversion = fromAnthropic({ model: 'claude-sonnet-4-5', max_tokens: 100, messages });
    expect(conversion.canonical.messages[0]).toMatchObject({ role: 'developer' });
    expect(conversion.canonical.messages).toHaveLength(1 + after.length);
    const result = compacted(
      await createCompactor({ maxInputTokens: 2500 }).compact({
        model: 'claude-sonnet-4-5',
        max_tokens: 100,
        system: 'Answer briefly.',
        messages,
        context_management: CONTEXT_MANAGEMENT,
      }),
    );
    const sent = result.request as { messages: AnthropicMessage[]; context_management: unknown; system: unknown };
    expect(sent.messages.slice(0, before.length + 1)).toEqual([...before, compaction]);
    expect(sent.messages.length).toBeLessThan(messages.length);
    expect(sent.messages.at(-1)).toEqual(messages.at(-1));
    expect(sent.context_management).toEqual(CONTEXT_MANAGEMENT);
    expect(sent.system).toBe('Answer briefly.');
    // With nothing to compact the request is the same.
    const small = { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [compaction, { role: 'user' as const, content: 'And then?' }] };
    const same = fromAnthropic(small);
    expect(same.restore(same.canonical.messages)).toEqual(small);
  });
});

describe('through the proxy', () => {
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  let proxy: ProxyServer;
  let base: string;
  beforeAll(async () => {
    upstream = await fakeUpstream();
    proxy = createProxy({
      upstream: upstream.url,
      anthropicUpstream: upstream.url,
      logger: pino({ level: 'silent' }),
      routes: createRouteTable({ defaults: { maxInputTokens: 2500, strategy: 'cache-aware', onBudgetUnreachable: 'pass-through' } }),
    });
    base = `http://127.0.0.1:${await proxy.listen(0)}`;
  });
  afterAll(async () => {
    await proxy.close(500);
    await upstream.close();
  });

  test('the compaction block, context_management and the beta header reach the upstream byte for byte', async () => {
    const { before, compaction, after } = compactedConversation();
    const body = { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [...before, compaction, ...after], context_management: CONTEXT_MANAGEMENT };
    const calls = upstream.calls.length;
    const response = await fetch(`${base}/v1/messages`, {
      method: 'POST',
      headers: {
        'x-api-key': 'sk-ant-compaction',
        'anthropic-version': '2023-06-01',
        'anthropic-beta': 'compact-2026-01-12,context-management-2025-06-27',
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    const sent = upstream.calls[calls]!;
    expect(sent.headers['anthropic-beta']).toBe('compact-2026-01-12,context-management-2025-06-27');
    expect(JSON.stringify(sent.body.context_management)).toBe(JSON.stringify(CONTEXT_MANAGEMENT));
    const messages = sent.body.messages as AnthropicMessage[];
    expect(JSON.stringify(messages[before.length])).toBe(JSON.stringify(compaction));
    expect(messages.length).toBeLessThan(body.messages.length);
  });
});
