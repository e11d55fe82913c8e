import { spawn } from 'node:child_process';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { cosineVerifier } from '../src/cache/verifier.js';
import { fromResponses, type ResponsesItem, responsesFormat } from '../src/formats/responses/index.js';
import { DEFAULT_LIMITS } from '../src/core/validate.js';
import { createCompactor, createResponseCache, createRouteTable } from '../src/index.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { hashEmbedder } from '../src/testing/index.js';
import { credentialIn, fakeUpstream } from './fake-upstream.js';
import { compacted, freePort, locomoRequest } from './helpers.js';

const limits = DEFAULT_LIMITS;

/** A long agent-style history in the Responses shape: real LoCoMo turns, then tool loops with reasoning. */
function agentInput(): ResponsesItem[] {
  const chat = locomoRequest(0).messages.slice(1, 120);
  const items: ResponsesItem[] = chat.map((message) =>
    message.role === 'assistant'
      ? { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: String(message.content), annotations: [] }] }
      : { role: 'user', content: String(message.content) },
  );
  for (let step = 0; step < 6; step++) {
    items.push({ type: 'reasoning', id: `rs_${step}`, summary: [], encrypted_content: `ENC-REASONING-${step}` });
    items.push({ type: 'function_call', id: `fc_${step}a`, call_id: `call_${step}a`, name: 'read_file', arguments: `{"path":"src/file${step}.ts"}` });
    items.push({ type: 'function_call', id: `fc_${step}b`, call_id: `call_${step}b`, name: 'grep', arguments: `{"pattern":"id-${step}"}` });
    items.push({ type: 'function_call_output', call_id: `call_${step}a`, output: `line ${step}: ${'const value = 42; '.repeat(120)}` });
    items.push({ type: 'function_call_output', call_id: `call_${step}b`, output: `src/file${step}.ts:${step + 10}: id-${step}` });
  }
  items.push({ type: 'web_search_call', id: 'ws_1', status: 'completed', action: { type: 'search', query: 'vitest fake timers' } });
  items.push({ role: 'user', content: 'Which file defines id-5?' });
  return items;
}

describe('Responses API wire format', () => {
  test('detects Responses bodies, and converts back to the same input when nothing is dropped', () => {
    expect(responsesFormat.detect({ model: 'gpt-5', input: 'hi' })).toBe(true);
    expect(responsesFormat.detect({ model: 'gpt-5', messages: [] })).toBe(false);
    const input = agentInput();
    const request = {
      model: 'gpt-5',
      instructions: 'You are a coding agent.',
      input,
      tools: [{ type: 'function', name: 'read_file', parameters: { type: 'object' } }],
    };
    const conversion = fromResponses(request);
    const canonical = conversion.canonical;
    expect(canonical.messages[0]).toEqual({ role: 'system', content: 'You are a coding agent.' });
    // Reasoning and both parallel calls are one assistant message; each output follows it as a tool message.
    const grouped = canonical.messages.filter((message) => message.role === 'assistant' && (message.tool_calls?.length ?? 0) === 2);
    expect(grouped).toHaveLength(6);
    expect(canonical.messages.filter((message) => message.role === 'tool')).toHaveLength(12);
    // The built-in tool call is kept as a pinned message.
    expect(canonical.messages.filter((message) => message.role === 'developer')).toHaveLength(1);
    expect(canonical.tools).toEqual([{ type: 'function', function: { name: 'read_file', parameters: { type: 'object' } } }]);
    expect(conversion.restore(canonical.messages)).toEqual(request);
    // A string input stays a string.
    const simple = { model: 'gpt-5', input: 'Hello there' };
    const plain = fromResponses(simple);
    expect(plain.restore(plain.canonical.messages)).toEqual(simple);
  });

  test('validation errors point into the Responses body', () => {
    expect(() => responsesFormat.toCanonical({ model: 'gpt-5', input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, limits)).toThrow(
      expect.objectContaining({ code: 'input.invalid', pointer: 'input[0].call_id' }),
    );
    expect(() => responsesFormat.toCanonical({ model: 'gpt-5', input: [{ role: 'user', content: 42 }] }, limits)).toThrow(
      expect.objectContaining({ code: 'input.invalid', pointer: 'input[0].content' }),
    );
  });

  test('custom tool calls pair with their outputs; an output without its call, and image parts, are kept; odd item types are input.invalid or kept, never a crash', async () => {
    const input: ResponsesItem[] = [
      { type: 'function_call_output', call_id: 'call_gone', output: 'from before the window' },
      {
        role: 'user',
        content: [
          { type: 'input_text', text: 'look' },
          { type: 'input_image', image_url: 'data:image/png;base64,AAAA' },
        ],
      },
      { type: 'custom_tool_call', call_id: 'ct_1', name: 'apply_patch', input: '*** Begin Patch' },
      { type: 'custom_tool_call_output', call_id: 'ct_1', output: 'Done' },
      { role: 'user', content: 'next' },
    ];
    const conversion = fromResponses({ model: 'gpt-5', input });
    const roles = conversion.canonical.messages.map((message) => message.role);
    expect(roles).toEqual(['developer', 'user', 'assistant', 'tool', 'user']);
    expect(conversion.canonical.messages[1]!.content).toEqual([
      { type: 'text', text: 'look' },
      { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
    ]);
    expect(conversion.restore(conversion.canonical.messages)).toEqual({ model: 'gpt-5', input });
    // Found by the fuzz test: an item whose type is an object without a prototype.
    const odd = { model: 'gpt-5', input: [{ type: [Object.create(null)] }] };
    expect(() => responsesFormat.toCanonical(odd, limits)).not.toThrow(TypeError);
  });

  test('compaction keeps every call with its output, reasoning with its calls, and unknown items, and fits the budget', async () => {
    const input = agentInput();
    const compactor = createCompactor({ maxInputTokens: 3000 });
    const result = compacted(await compactor.compact({ model: 'gpt-5', instructions: 'You are a coding agent.', input }));
    expect(result.stats.format).toBe('responses');
    expect(result.stats.tokensBefore).toBeGreaterThan(3000);
    expect(result.stats.tokensAfter).toBeLessThanOrEqual(3000);
    const out = (result.request as { input: ResponsesItem[]; instructions: string }).input;
    expect(out.length).toBeLessThan(input.length);
    expect((result.request as { instructions: string }).instructions).toBe('You are a coding agent.');
    const calls = new Set(out.filter((item) => item.type === 'function_call').map((item) => item.call_id));
    const outputs = out.filter((item) => item.type === 'function_call_output');
    expect(outputs.length).toBeGreaterThan(0);
    // No orphaned output, and no call without its output.
    for (const output of outputs) expect(calls.has(output.call_id)).toBe(true);
    for (const call of calls) expect(outputs.some((output) => output.call_id === call)).toBe(true);
    // Each kept call is preceded by its reasoning item.
    for (const [index, item] of out.entries()) {
      if (item.type !== 'function_call' || String(item.id).endsWith('b')) continue;
      expect(out[index - 1]!.type).toBe('reasoning');
    }
    // The built-in call and the latest question are there, unchanged; the latest values too.
    expect(out).toContainEqual(input.find((item) => item.type === 'web_search_call'));
    expect(out.at(-1)).toEqual(input.at(-1));
    expect(JSON.stringify(out)).toContain('src/file5.ts:15: id-5');
  });

  test('a history with a compaction item is compacted only after it; the item and what precedes it pass as they came', async () => {
    const before = agentInput().slice(0, 60);
    const compaction = { type: 'compaction', id: 'cmp_1', encrypted_content: 'OPAQUE-COMPACTION-BLOB' };
    const after = agentInput().slice(60);
    const input = [...before, compaction, ...after];
    const conversion = fromResponses({ model: 'gpt-5', input });
    // Only the item itself and what follows it are the history to compact.
    expect(conversion.canonical.messages[0]!.role).toBe('developer');
    expect(conversion.canonical.messages[0]!.content).toContain('OPAQUE-COMPACTION-BLOB');
    const result = compacted(
      await createCompactor({ maxInputTokens: 2500 }).compact({
        model: 'gpt-5',
        input,
        context_management: [{ type: 'compaction', compact_threshold: 200000 }],
      }),
    );
    const out = (result.request as { input: ResponsesItem[] }).input;
    expect(out.slice(0, before.length + 1)).toEqual([...before, compaction]);
    expect((result.request as { context_management: unknown }).context_management).toEqual([{ type: 'compaction', compact_threshold: 200000 }]);
    expect(out.length).toBeLessThan(input.length);
    expect(out.at(-1)).toEqual(input.at(-1));
  });

  test('a stateful request (previous_response_id, conversation) passes through untouched, counted, and never uses the cache', async () => {
    const cache = createResponseCache({ embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.97 });
    const compactor = createCompactor({ maxInputTokens: 50, cache });
    for (const state of [{ previous_response_id: 'resp_123' }, { conversation: 'conv_9' }]) {
      const request = { model: 'gpt-5', input: [{ role: 'user', content: 'x '.repeat(400) }], ...state };
      const result = compacted(await compactor.compact(request));
      expect(result.request).toBe(request);
      expect(result.stats.passThrough).toBe('stateful');
      expect(result.stats.cache).toMatchObject({ status: 'bypass', reason: 'stateful' });
      expect(result.commit).toBeUndefined();
    }
  });

  test('answers are cached and replayed in the Responses shape, streamed or not', async () => {
    const cache = createResponseCache({ embedder: hashEmbedder(64), verifier: cosineVerifier(), threshold: 0.97 });
    const compactor = createCompactor({ cache });
    const request = { model: 'gpt-5', input: [{ role: 'user', content: 'What is the capital of France?' }] };
    const first = compacted(await compactor.compact(request));
    const body = {
      id: 'resp_1',
      object: 'response',
      created_at: 1,
      status: 'completed',
      output: [{ type: 'message', id: 'msg_1', role: 'assistant', content: [{ type: 'output_text', text: 'Paris.', annotations: [] }] }],
      usage: { input_tokens: 9, output_tokens: 2, total_tokens: 11 },
    };
    expect(await first.commit!({ format: 'responses', body })).toBe(true);
    const hit = await compactor.compact(request);
    expect(hit.kind === 'cached' && hit.replay).toEqual({ kind: 'json', body });
    const streamed = await compactor.compact({ ...request, stream: true });
    expect(streamed.kind).toBe('cached');
    const events = streamed.kind === 'cached' && streamed.replay.kind === 'sse' ? streamed.replay.events : [];
    expect(events.map((event) => event.event)).toContain('response.output_text.delta');
    expect(JSON.parse(events.at(-1)!.data)).toMatchObject({ type: 'response.completed', response: body });
    // A function call is not an answer to replay.
    const tool = compacted(await compactor.compact({ ...request, input: [{ role: 'user', content: 'Weather in Paris?' }] }));
    expect(await tool.commit!({ format: 'responses', body: { ...body, output: [{ type: 'function_call', call_id: 'c', name: 'w', arguments: '{}' }] } })).toBe(
      false,
    );
  });
});

describe('the proxy speaks the Responses API', () => {
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  let proxy: ProxyServer;
  let base: string;
  beforeAll(async () => {
    upstream = await fakeUpstream();
    const cache = createResponseCache({ embedder: hashEmbedder(128), verifier: cosineVerifier(), threshold: 0.97 });
    proxy = createProxy({
      upstream: upstream.url,
      anthropicUpstream: upstream.url,
      logger: pino({ level: 'silent' }),
      cache,
      routes: createRouteTable({ defaults: { maxInputTokens: 3000, strategy: 'cache-aware', onBudgetUnreachable: 'pass-through', cache } }),
    });
    base = `http://127.0.0.1:${await proxy.listen(0)}`;
  });
  afterAll(async () => {
    await proxy.close(500);
    await upstream.close();
  });
  const openai = () => new OpenAI({ apiKey: 'sk-responses', baseURL: `${base}/v1`, maxRetries: 0, timeout: 10_000 });
  const tools = [{ type: 'function' as const, name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];

  for (const stream of [false, true]) {
    test(`responses.create, stateless, through a function-call loop (${stream ? 'streamed' : 'not streamed'})`, async () => {
      const client = openai();
      const history: OpenAI.Responses.ResponseInputItem[] = [
        ...agentInput().slice(0, 100),
        { role: 'user', content: `What is the weather in Paris? (${stream ? 'stream' : 'json'})` },
      ] as OpenAI.Responses.ResponseInputItem[];
      const before = upstream.calls.length;
      const ask = async (input: OpenAI.Responses.ResponseInputItem[]): Promise<OpenAI.Responses.Response> => {
        if (!stream) return client.responses.create({ model: 'gpt-5', instructions: 'Be brief.', input, tools });
        const events = await client.responses.create({ model: 'gpt-5', instructions: 'Be brief.', input, tools, stream: true });
        let completed: OpenAI.Responses.Response | undefined;
        for await (const event of events) if (event.type === 'response.completed') completed = event.response;
        return completed!;
      };
      const first = await ask(history);
      const call = first.output.find((item) => item.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
      expect(call).toMatchObject({ name: 'weather', arguments: '{"city":"Paris"}' });
      const sent = upstream.calls[before]!;
      expect(sent.path).toBe('/v1/responses');
      expect((sent.body.input as unknown[]).length).toBeLessThan(history.length);
      expect(sent.body.instructions).toBe('Be brief.');
      // The loop: the call and its output go back, and the model answers.
      const second = await ask([
        ...history,
        ...first.output,
        { type: 'function_call_output', call_id: call.call_id, output: '{"temp":"18C"}' },
      ] as OpenAI.Responses.ResponseInputItem[]);
      expect(
        second.output_text ??
          second.output
            .map((item) => (item.type === 'message' ? item.content.map((part) => (part.type === 'output_text' ? part.text : '')).join('') : ''))
            .join(''),
      ).toMatch(/^Received \d+ items\.$/);
      const looped = upstream.calls[before + 1]!.body.input as ResponsesItem[];
      const sentCall = looped.findIndex((item) => item.type === 'function_call' && item.call_id === call.call_id);
      expect(sentCall).toBeGreaterThanOrEqual(0);
      expect(looped[sentCall + 1]).toEqual({ type: 'function_call_output', call_id: call.call_id, output: '{"temp":"18C"}' });
    });
  }

  test('with previous_response_id the request reaches the upstream untouched, and the answer is never served from the cache', async () => {
    const client = openai();
    const before = upstream.calls.length;
    const body = { model: 'gpt-5', previous_response_id: 'resp_prev', input: [{ role: 'user' as const, content: 'And tomorrow?' }], store: true };
    const { response } = await client.responses.create(body).withResponse();
    expect(response.headers.get('x-compactor-cache')).toBe('bypass');
    const again = await client.responses.create(body).withResponse();
    expect(again.response.headers.get('x-compactor-cache')).toBe('bypass');
    expect(upstream.calls.length).toBe(before + 2);
    expect(upstream.calls[before]!.body).toEqual(body);
    const streamed = await client.responses.create({ ...body, stream: true });
    let text = '';
    for await (const event of streamed) if (event.type === 'response.output_text.delta') text += event.delta;
    expect(text).toBe('Received 1 items.');
  });

  test('compaction items, compaction triggers and context_management reach the upstream byte for byte', async () => {
    const before = upstream.calls.length;
    const compaction = { type: 'compaction', id: 'cmp_9', encrypted_content: 'gAAAA-opaque+/=' };
    const trigger = { type: 'compaction_trigger' };
    const body = {
      model: 'gpt-5',
      input: [...agentInput().slice(0, 40), compaction, ...agentInput().slice(40, 90), trigger],
      context_management: [{ type: 'compaction', compact_threshold: 120000 }],
    };
    const response = await fetch(`${base}/v1/responses`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-responses', 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(200);
    const sent = upstream.calls[before]!.body as { input: ResponsesItem[]; context_management: unknown };
    expect(JSON.stringify(sent.context_management)).toBe(JSON.stringify(body.context_management));
    expect(JSON.stringify(sent.input.find((item) => item.type === 'compaction'))).toBe(JSON.stringify(compaction));
    expect(sent.input.at(-1)).toEqual(trigger);
    expect(sent.input.slice(0, 41)).toEqual(body.input.slice(0, 41));
  });

  test('day-one endpoints are relayed by default: models.list, /responses/compact, and Anthropic count_tokens', async () => {
    const models = await openai().models.list();
    expect(models.data.map((model) => model.id)).toEqual(['gpt-4o-mini']);
    const compacted = await fetch(`${base}/v1/responses/compact`, {
      method: 'POST',
      headers: { authorization: 'Bearer sk-responses', 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-5', input: [{ role: 'user', content: 'hi' }] }),
    });
    expect(compacted.status).toBe(200);
    expect(((await compacted.json()) as { object: string }).object).toBe('response.compaction');
    const anthropic = new Anthropic({ apiKey: 'sk-ant-responses', baseURL: base, maxRetries: 0 });
    const counted = await anthropic.messages.countTokens({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'hello' }] });
    expect(counted.input_tokens).toBe(10);
    // Relayed with the caller's own credential, whichever header its SDK uses.
    expect(upstream.calls.at(-1)!.path).toBe('/v1/messages/count_tokens');
    expect(credentialIn(upstream.calls.at(-1)!.headers)).toBe('sk-ant-responses');
  });

  test('GPT-5.6 gets explicit breakpoints and GPT-5.5 none, from an upstream that refuses them on older models', async () => {
    const hinted = createProxy({
      upstream: upstream.url,
      logger: pino({ level: 'silent' }),
      cacheHints: true,
      routes: createRouteTable({ defaults: { maxInputTokens: 3000, onBudgetUnreachable: 'pass-through' } }),
    });
    const port = await hinted.listen(0);
    const client = new OpenAI({ apiKey: 'sk-hints', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
    const input = agentInput().slice(0, 110) as OpenAI.Responses.ResponseInputItem[];
    const chat = locomoRequest(0).messages.slice(0, 160) as OpenAI.ChatCompletionMessageParam[];
    for (const model of ['gpt-5.6-sol', 'gpt-5.5']) {
      const before = upstream.calls.length;
      await client.responses.create({ model, instructions: 'Be brief.', input });
      await client.chat.completions.create({ model, messages: chat });
      const sent = upstream.calls.slice(before).map((call) => JSON.stringify(call.body).includes('"prompt_cache_breakpoint"'));
      expect(sent).toEqual(model === 'gpt-5.6-sol' ? [true, true] : [false, false]);
    }
    await hinted.close(100);
  });

  test('omitDefaultRelays turns the day-one relays off', async () => {
    const strict = createProxy({ upstream: upstream.url, logger: pino({ level: 'silent' }), omitDefaultRelays: true });
    const port = await strict.listen(0);
    const response = await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: 'Bearer k' } });
    expect(response.status).toBe(404);
    await strict.close(100);
  });
});

describe('a default `serve`', () => {
  test('answers openai.models.list() and anthropic.messages.countTokens() (relayed by default)', async () => {
    const upstream = await fakeUpstream();
    const port = await freePort();
    const bin = new URL('../bin/context-compactor.js', import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      [bin, 'serve', '--port', String(port), '--upstream', upstream.url, '--anthropic-upstream', upstream.url, '--cache', 'off'],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
        env: { ...process.env, OPENAI_API_KEY: '', ANTHROPIC_API_KEY: '', OPENAI_BASE_URL: '' },
      },
    );
    try {
      // Listening once it says so on stderr (an event, not a sleep).
      await new Promise<void>((resolve, reject) => {
        let said = '';
        child.stderr!.on('data', (chunk: Buffer) => {
          said += chunk.toString();
          if (said.includes('listening on')) resolve();
        });
        child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${said}`)));
      });
      const models = await new OpenAI({ apiKey: 'sk-serve', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 }).models.list();
      expect(models.data[0]!.id).toBe('gpt-4o-mini');
      const counted = await new Anthropic({ apiKey: 'sk-ant-serve', baseURL: `http://127.0.0.1:${port}`, maxRetries: 0 }).messages.countTokens({
        model: 'claude-sonnet-4-5',
        messages: [{ role: 'user', content: 'hello' }],
      });
      expect(counted.input_tokens).toBe(10);
    } finally {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      await upstream.close();
    }
  });
});
