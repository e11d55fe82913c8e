import { describe, expect, test } from 'vitest';
import { isAnthropicRequest } from '../src/formats/anthropic/index.js';
import { createCompactor, CompactorError } from '../src/index.js';
import { deepFreeze, wordTokenizer } from '../src/testing/index.js';

function anthropicBody(turns: number) {
  const messages: unknown[] = [];
  for (let turn = 1; turn <= turns; turn++) {
    messages.push(
      { role: 'user', content: [{ type: 'text', text: `question ${turn} about the weather`, cache_control: { type: 'ephemeral' } }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'let me look' },
          { type: 'tool_use', id: `toolu_${turn}`, name: 'weather', input: { city: `city ${turn}` } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: `toolu_${turn}`, content: [{ type: 'text', text: `sunny ${turn}` }] },
          { type: 'text', text: `thanks, and turn ${turn} follow up` },
        ],
      },
      { role: 'assistant', content: `answer ${turn}` },
    );
  }
  messages.push({ role: 'user', content: 'latest question' });
  return {
    model: 'claude-sonnet-4-5',
    max_tokens: 1024,
    system: [{ type: 'text', text: 'You are a weather bot.', cache_control: { type: 'ephemeral' } }],
    metadata: { user_id: 'u1' },
    tools: [{ name: 'weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    messages,
  };
}

describe('Anthropic Messages requests', () => {
  test('are detected by a top-level system or Anthropic-only blocks', () => {
    expect(isAnthropicRequest(anthropicBody(1))).toBe(true);
    expect(isAnthropicRequest({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'x' }] }] })).toBe(true);
    expect(isAnthropicRequest({ messages: [{ role: 'user', content: 'hi' }] })).toBe(false);
  });

  test('within budget they come back unchanged', async () => {
    const body = deepFreeze(anthropicBody(2));
    const { request, stats } = await createCompactor({ maxInputTokens: 10_000, tokenizer: wordTokenizer }).compact(body);
    expect(request).toEqual(body);
    expect(stats.format).toBe('anthropic');
  });

  test('compacted, they keep their shape, the system prompt, unknown fields and whole tool units', async () => {
    const body = deepFreeze(anthropicBody(6));
    const compactor = createCompactor({ maxInputTokens: 150, tokenizer: wordTokenizer });
    const { request, stats } = await compactor.compact(body);
    expect(stats.tokensAfter).toBeLessThanOrEqual(150);
    expect(stats.tokensAfter).toBeLessThan(stats.tokensBefore);
    expect(request.system).toBe(body.system);
    expect(request.metadata).toBe(body.metadata);
    expect(request.tools).toBe(body.tools);
    expect(request.max_tokens).toBe(1024);
    expect(request.messages.at(-1)).toBe(body.messages.at(-1));
    // Every kept message is either an original object or an original with some blocks removed.
    const uses = new Set<string>();
    const results = new Set<string>();
    for (const message of request.messages as { role: string; content: string | { type: string; id?: string; tool_use_id?: string }[] }[]) {
      if (typeof message.content === 'string') continue;
      for (const block of message.content) {
        if (block.type === 'tool_use') uses.add(block.id!);
        if (block.type === 'tool_result') results.add(block.tool_use_id!);
      }
    }
    expect([...results].sort()).toEqual([...uses].sort());
    // The compactor's own count of the restored body matches its stats.
    expect(await compactor.countTokens(request)).toBe(stats.tokensAfter);
  });

  test('when a tool_use is dropped, its tool_result block goes too but the text beside it can stay', async () => {
    const body = deepFreeze(anthropicBody(3));
    let split = 0;
    for (let budget = 40; budget < 200; budget++) {
      const compactor = createCompactor({ maxInputTokens: budget, tokenizer: wordTokenizer, onBudgetUnreachable: 'pass-through', strategy: 'truncate' });
      const { request } = await compactor.compact(body);
      const first = request.messages[0] as { role: string; content: string | { type: string; text?: string }[] };
      if (Array.isArray(first.content) && first.content.length === 1 && /follow up/.test(first.content[0]!.text ?? '')) {
        // A copy of the original user message with only its text block: the tool_result went with its tool_use.
        expect(body.messages).not.toContain(first);
        expect(first.role).toBe('user');
        split++;
      }
    }
    expect(split).toBeGreaterThan(0);
  });

  test('bad Anthropic input gets a pointer into the Anthropic body', async () => {
    const compactor = createCompactor({ maxInputTokens: 100, tokenizer: wordTokenizer });
    const orphan = { system: 'x', messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'nope', content: 'r' }] }] };
    await expect(compactor.compact(orphan)).rejects.toMatchObject({ code: 'input.invalid', pointer: 'messages[0].content[0]' });
    const badRole = { system: 'x', messages: [{ role: 'system', content: 'x' }] };
    await expect(compactor.compact(badRole)).rejects.toSatisfy((error) => CompactorError.isInstance(error) && error.pointer === 'messages[0].role');
  });
});
