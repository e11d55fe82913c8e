import fc from 'fast-check';
import { expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { locomoMessages, parseLocomo, type LocomoConversation } from '../bench/datasets/locomo.js';
import { shippedLocomoPath } from '../bench/paths.js';
import type { CompactResult, Compacted } from '../src/compose/compactor.js';
import type { ChatMessage } from '../src/core/types.js';
import { type RedisStoreOptions, redisStore } from '../src/stores/redis.js';

/** Matches a CompactorError by its stable code (and the option or field it names): tests never match message text. */
export const coded = (code: string, pointer?: string) => expect.objectContaining(pointer === undefined ? { code } : { code, pointer });

/** A result that must be a compaction (not a cache hit): fails the test otherwise. */
export function compacted<T>(result: CompactResult<T>): Compacted<T> {
  if (result.kind !== 'compacted') throw new Error(`expected a compaction, got ${result.kind}`);
  return result;
}

let conversations: LocomoConversation[] | undefined;

/** The real LoCoMo conversations shipped in bench/data (see its README for the licence). */
export function locomo(): LocomoConversation[] {
  conversations ??= parseLocomo(JSON.parse(readFileSync(shippedLocomoPath(), 'utf8')));
  return conversations;
}

/** A LoCoMo conversation as a request whose last message is one of its real questions. */
export function locomoRequest(index = 0, swapRoles = false): { model: string; messages: ChatMessage[] } {
  const conversation = locomo()[index]!;
  const { messages } = locomoMessages(conversation, { swapRoles });
  const question = conversation.qa.find((item) => item.category !== 5)!.question;
  return { model: 'gpt-4o', messages: [...messages, { role: 'user', content: question }] };
}

const word = fc.constantFrom('alpha', 'beta', 'gamma', 'delta', 'the', 'cat', 'sat', 'on', 'mat', '42', 'Zoë', '日本', '🙂');
const text = fc.array(word, { minLength: 1, maxLength: 12 }).map((words) => words.join(' '));

type Segment = ChatMessage[];

const systemSegment: fc.Arbitrary<Segment> = fc
  .tuple(fc.constantFrom('system', 'developer'), text)
  .map(([role, content]) => [{ role: role as 'system', content }]);

const userSegment: fc.Arbitrary<Segment> = fc
  .tuple(text, fc.boolean(), fc.option(fc.constantFrom('alice', 'bob'), { nil: undefined }))
  .map(([content, withImage, name]) => {
    const message: ChatMessage = withImage
      ? {
          role: 'user',
          content: [
            { type: 'text', text: content },
            { type: 'image_url', image_url: { url: 'https://example.test/cat.png', detail: 'low' } },
          ],
        }
      : { role: 'user', content };
    if (name) message.name = name;
    return [message];
  });

const assistantSegment: fc.Arbitrary<Segment> = text.map((content) => [{ role: 'assistant', content }]);

const toolSegment: fc.Arbitrary<Segment> = fc.tuple(fc.integer({ min: 1, max: 3 }), text, text).map(([calls, args, result]) => {
  const ids = Array.from({ length: calls }, (_, k) => `call_${k}`);
  return [
    {
      role: 'assistant',
      content: null,
      tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: args }) } })),
    },
    ...ids.map((id): ChatMessage => ({ role: 'tool', tool_call_id: id, content: result })),
  ];
});

const functionSegment: fc.Arbitrary<Segment> = fc.tuple(text, text).map(([args, result]) => [
  { role: 'assistant', content: null, function_call: { name: 'legacy', arguments: JSON.stringify({ q: args }) } },
  { role: 'function', name: 'legacy', content: result },
]);

/** Random but valid chat histories: system prompts, names, images, tool chains and legacy calls. */
export const history: fc.Arbitrary<ChatMessage[]> = fc
  .tuple(
    fc.array(systemSegment, { maxLength: 2 }),
    fc.array(
      fc.oneof(
        { weight: 4, arbitrary: userSegment },
        { weight: 3, arbitrary: assistantSegment },
        { weight: 2, arbitrary: toolSegment },
        { weight: 1, arbitrary: functionSegment },
        { weight: 1, arbitrary: systemSegment },
      ),
      {
        maxLength: 30,
      },
    ),
    fc.option(toolSegment, { nil: undefined }),
  )
  .map(([systems, body, tail]) => {
    const segments = [...systems, ...body, tail ?? [{ role: 'user', content: 'latest question' } as ChatMessage]];
    // Make tool call ids unique across segments.
    return segments.flatMap((segment, index) =>
      segment.map((message): ChatMessage => {
        if (message.tool_calls) {
          return { ...message, tool_calls: message.tool_calls.map((call) => ({ ...call, id: `s${index}_${call.id}` })) };
        }
        if (message.role === 'tool') return { ...message, tool_call_id: `s${index}_${message.tool_call_id}` };
        return message;
      }),
    );
  });

/** A TCP port nothing listens on right now (for servers a test starts and stops itself). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/**
 * A throwaway redis-server on `port` (no persistence), resolved once it logs that it accepts
 * connections: awaited as an event, with no polling sleep.
 */
export function startRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no', '--bind', '127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (chunk: Buffer) => {
      seen = (seen + chunk.toString('utf8')).slice(-4096);
      if (!seen.includes('Ready to accept connections')) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      child.off('exit', onExit);
      resolve(child);
    };
    const onExit = (code: number | null) => reject(new Error(`redis-server exited (${code}) before it was ready: ${seen.slice(-300)}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

/**
 * A Redis store whose connection can be awaited: `connected()` resolves when it is connected, on
 * its first connection (an operation waits for the handshake, within the store's own timeout) or
 * on its reconnection after an outage the store reported, with no polling sleep.
 */
export function watchedRedisStore(options: Omit<RedisStoreOptions, 'onConnectionChange'>): {
  store: ReturnType<typeof redisStore>;
  connected(): Promise<void>;
} {
  const waiters: (() => void)[] = [];
  let down = false;
  const store = redisStore({
    ...options,
    onConnectionChange: (up) => {
      down = !up;
      if (up) for (const resolve of waiters.splice(0)) resolve();
    },
  });
  const back = () => new Promise<void>((resolve) => waiters.push(resolve));
  return {
    store,
    async connected() {
      while (!store.connected) {
        if (down) await back();
        else await store.get('connected-probe').catch(() => new Promise((resolve) => setImmediate(resolve)));
      }
    },
  };
}
