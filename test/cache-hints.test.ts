import { withoutCacheMarkers } from '../src/formats/explicit-breakpoints.js';
import { describe, expect, test } from 'vitest';
import { createCompactor, type ChatMessage } from '../src/index.js';
import { deepFreeze } from '../src/testing/index.js';
import { locomoRequest } from './helpers.js';

type Block = { type: string; text?: string; cache_control?: unknown };
type AnthropicBody = { model: string; max_tokens: number; system?: string | Block[]; messages: { role: string; content: string | Block[] }[] };

/** A LoCoMo conversation as an Anthropic request, cut at message `end` and ending on a user turn. */
function anthropicAt(end: number, question = 'What did they talk about?'): AnthropicBody {
  const [system, ...rest] = locomoRequest(0).messages;
  const turns = rest.slice(0, end).map((message) => ({ role: message.role, content: String(message.content) }));
  // Anthropic alternates roles: merge runs, then close on the question.
  const merged: { role: string; content: string }[] = [];
  for (const turn of turns) {
    const last = merged.at(-1);
    if (last && last.role === turn.role) last.content += `\n${turn.content}`;
    else merged.push({ ...turn });
  }
  if (merged.at(-1)?.role === 'user') merged.pop();
  return { model: 'claude-sonnet-4', max_tokens: 200, system: String(system!.content), messages: [...merged, { role: 'user', content: question }] };
}

const marks = (body: AnthropicBody): string[] => {
  const found: string[] = [];
  if (Array.isArray(body.system) && body.system.some((block) => block.cache_control)) found.push('system');
  body.messages.forEach((message, index) => {
    if (Array.isArray(message.content) && message.content.some((block) => block.cache_control)) found.push(`messages[${index}]`);
  });
  return found;
};

/** The content a provider's cache compares: the marks themselves aside, and a text block as its string. */
const bytes = (value: unknown) =>
  JSON.stringify(value, (key, inner) => {
    if (key === 'cache_control') return undefined;
    if (
      Array.isArray(inner) &&
      inner.length === 1 &&
      inner[0]?.type === 'text' &&
      Object.keys(inner[0]).every((name) => name === 'type' || name === 'text' || name === 'cache_control')
    )
      return inner[0].text;
    return inner;
  });

const textOf = (content: string | Block[]) => (typeof content === 'string' ? content : content.map((block) => block.text ?? '').join(''));

describe('provider cache hints', () => {
  test('Anthropic: breakpoints at the end of the stable prefix and of the window (at most 4), and the bytes before them repeat on the next turn', async () => {
    const compactor = createCompactor({ maxInputTokens: 2000, strategy: 'cache-aware' });
    const first = await compactor.compact(deepFreeze(anthropicAt(120)));
    const body = first.request as unknown as AnthropicBody;
    const found = marks(body);
    expect(found.length).toBeGreaterThan(0);
    expect(found.length).toBeLessThanOrEqual(4);
    // The system prompt alone is below the model's minimum cacheable prefix: a mark there would cache nothing.
    expect(found).not.toContain('system');
    // The latest user message changes every turn: it is never a breakpoint here (the window's end is).
    expect(found).not.toContain(`messages[${body.messages.length - 1}]`);
    // Turn after turn, each request repeats the previous one's bytes up to its last mark (the system
    // prompt and the window), except when the window is cut.
    let previous = body;
    let repeats = 0;
    let cuts = 0;
    for (let end = 122; end <= 160; end += 2) {
      const next = (await compactor.compact(deepFreeze(anthropicAt(end)))).request as unknown as AnthropicBody;
      const last = marks(previous).at(-1)!;
      const upTo = last === 'system' ? 0 : Number(/\d+/.exec(last)![0]) + 1;
      const same = bytes(next.system) === bytes(previous.system) && bytes(next.messages.slice(0, upTo)) === bytes(previous.messages.slice(0, upTo));
      if (same) repeats++;
      else cuts++;
      previous = next;
    }
    expect(repeats).toBeGreaterThan(3 * cuts);
  });

  test("Anthropic: a system prompt long enough to be cached alone is marked; the marks respect each model's minimum", async () => {
    const body = anthropicAt(120);
    body.system = `${body.system}\n${'Rules of the house: answer from the record only, with dates. '.repeat(200)}`;
    const found = marks(
      (await createCompactor({ maxInputTokens: 6000, strategy: 'cache-aware' }).compact(deepFreeze(body))).request as unknown as AnthropicBody,
    );
    expect(found[0]).toBe('system');
    // Opus 4.5 caches nothing under 4,096 tokens: the same system prompt (about 2,500 tokens) is not marked there.
    const opus = marks(
      (await createCompactor({ maxInputTokens: 6000, strategy: 'cache-aware' }).compact(deepFreeze({ ...body, model: 'claude-opus-4-5' })))
        .request as unknown as AnthropicBody,
    );
    expect(opus).not.toContain('system');
  });

  test('Anthropic: a client that marks its own breakpoints keeps them, and no hint is added', async () => {
    const own = anthropicAt(120);
    own.messages[0] = {
      role: own.messages[0]!.role,
      content: [{ type: 'text', text: textOf(own.messages[0]!.content), cache_control: { type: 'ephemeral' } }],
    };
    const { request } = await createCompactor({ maxInputTokens: 2000, strategy: 'cache-aware' }).compact(deepFreeze(own));
    const body = request as unknown as AnthropicBody;
    expect(typeof body.system).toBe('string');
    // Only the client's own mark can remain (if its message was kept).
    expect(marks(body).every((mark) => mark === 'messages[0]')).toBe(true);
  });

  test('Anthropic: a request with a top-level cache_control (the automatic breakpoint) gets no block marks added, and keeps its own', async () => {
    const body = { ...anthropicAt(120), cache_control: { type: 'ephemeral' } };
    const { request } = await createCompactor({ maxInputTokens: 2000, strategy: 'cache-aware' }).compact(deepFreeze(body));
    expect(marks(request as unknown as AnthropicBody)).toEqual([]);
    expect((request as { cache_control?: unknown }).cache_control).toEqual({ type: 'ephemeral' });
  });

  test('Anthropic: never on a thinking block, and none with omitCacheHints', async () => {
    const tiny = await createCompactor({ maxInputTokens: 100_000 }).compact(deepFreeze(anthropicAt(4)));
    // The whole prompt is below the minimum cacheable prefix: no mark at all.
    expect(marks(tiny.request as unknown as AnthropicBody)).toEqual([]);
    const body = anthropicAt(60);
    body.messages[1] = { role: 'assistant', content: [{ type: 'text', text: 'an answer' }, { type: 'thinking', thinking: 'hmm', signature: 'sig' } as Block] };
    const { request } = await createCompactor({ maxInputTokens: 100_000 }).compact(deepFreeze(body));
    // Within budget, the whole prompt is stable: its end (the latest message) is marked, as clients do.
    const marked = request as unknown as AnthropicBody;
    for (const message of marked.messages)
      if (Array.isArray(message.content)) for (const block of message.content) if (block.type === 'thinking') expect(block.cache_control).toBeUndefined();
    expect(marks(marked)).toEqual([`messages[${marked.messages.length - 1}]`]);
    const plain = await createCompactor({ maxInputTokens: 2000, omitCacheHints: true, strategy: 'cache-aware' }).compact(deepFreeze(anthropicAt(120)));
    expect(marks(plain.request as unknown as AnthropicBody)).toEqual([]);
  });

  test('OpenAI: explicit prompt_cache_breakpoint markers only for models that take them (GPT-5.6 and later), never on assistant output, never over the client’s own', async () => {
    const conversation = locomoRequest(0);
    const body = (model: string) => ({
      model,
      messages: [...conversation.messages.slice(0, 160), { role: 'user' as const, content: 'What did Caroline research?' }],
    });
    const markers = (request: unknown) => JSON.stringify(request).split('"prompt_cache_breakpoint"').length - 1;
    const compactor = createCompactor({ maxInputTokens: 3000, strategy: 'cache-aware' });
    const sol = (await compactor.compact(deepFreeze(body('gpt-5.6-sol')))).request as { messages: ChatMessage[] };
    expect(markers(sol)).toBeGreaterThan(0);
    expect(markers(sol)).toBeLessThanOrEqual(3);
    for (const message of sol.messages) if (message.role === 'assistant') expect(JSON.stringify(message)).not.toContain('prompt_cache_breakpoint');
    expect(markers((await compactor.compact(deepFreeze(body('gpt-5.5')))).request)).toBe(0);
    expect(markers((await compactor.compact(deepFreeze(body('gpt-5')))).request)).toBe(0);
    // A marker is not a prompt token: without it, the message is the one sent to older models.
    expect(withoutCacheMarkers({ role: 'user', content: [{ type: 'text', text: 'hi', prompt_cache_breakpoint: { mode: 'explicit' } }] })).toEqual({
      role: 'user',
      content: 'hi',
    });
    // A client that manages its own cache options gets no marker added.
    expect(markers((await compactor.compact(deepFreeze({ ...body('gpt-5.6-sol'), prompt_cache_options: { mode: 'implicit', ttl: '30m' } }))).request)).toBe(0);
    // The Responses shape too.
    const input = body('gpt-5.6-terra')
      .messages.slice(1)
      .map((message) => ({ role: message.role, content: String(message.content) }));
    const responses = (await compactor.compact(deepFreeze({ model: 'gpt-5.6-terra', instructions: 'Be brief.', input }))).request;
    expect(markers(responses)).toBeGreaterThan(0);
    expect(markers((await compactor.compact(deepFreeze({ model: 'gpt-5.5', instructions: 'Be brief.', input }))).request)).toBe(0);
  });

  test('OpenAI: one prompt_cache_key per tenant and conversation, never over the client’s own, and only for OpenAI models', async () => {
    const compactor = createCompactor({ maxInputTokens: 2000 });
    const conversation = locomoRequest(0);
    const at = (end: number, model = 'gpt-5'): { model: string; messages: ChatMessage[]; prompt_cache_key?: string } => ({
      model,
      messages: [...conversation.messages.slice(0, end), { role: 'user', content: `question at ${end}` }],
    });
    const keyOf = async (body: ReturnType<typeof at>, tenant?: string) =>
      ((await compactor.compact(deepFreeze(body), tenant === undefined ? {} : { tenant })).request as { prompt_cache_key?: string }).prompt_cache_key;
    const a = await keyOf(at(100));
    expect(a).toMatch(/^cc-/);
    expect(await keyOf(at(140))).toBe(a);
    expect(await keyOf(at(100), 'tenant-b')).not.toBe(a);
    const other = locomoRequest(1);
    expect(await keyOf({ model: 'gpt-5', messages: other.messages })).not.toBe(a);
    expect(await keyOf({ ...at(100), prompt_cache_key: 'mine' })).toBe('mine');
    expect(await keyOf(at(100, 'claude-sonnet-4'))).toBeUndefined();
    const plain = await createCompactor({ maxInputTokens: 2000, omitCacheHints: true }).compact(deepFreeze(at(100)));
    expect((plain.request as { prompt_cache_key?: string }).prompt_cache_key).toBeUndefined();
  });
});
