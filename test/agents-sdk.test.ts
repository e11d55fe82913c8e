import { Agent, type AgentInputItem, run, setDefaultOpenAIClient, setOpenAIAPI, setTracingDisabled, tool } from '@openai/agents';
import OpenAI from 'openai';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ResponsesItem } from '../src/formats/responses/index.js';
import { createRouteTable } from '../src/index.js';
import { createProxy, type ProxyServer } from '../src/proxy/server.js';
import { fakeUpstream } from './fake-upstream.js';
import { locomoRequest } from './helpers.js';

// The OpenAI Agents SDK, unchanged, pointed at the proxy: no tracing export (no network), the Responses API.
setTracingDisabled(true);
setOpenAIAPI('responses');

describe('the OpenAI Agents SDK through the proxy', () => {
  let upstream: Awaited<ReturnType<typeof fakeUpstream>>;
  let proxy: ProxyServer;
  beforeAll(async () => {
    upstream = await fakeUpstream();
    proxy = createProxy({
      upstream: upstream.url,
      logger: pino({ level: 'silent' }),
      // Small enough that the agent's history must be compacted.
      routes: createRouteTable({ defaults: { maxInputTokens: 2000, onBudgetUnreachable: 'pass-through' } }),
    });
    const port = await proxy.listen(0);
    setDefaultOpenAIClient(new OpenAI({ apiKey: 'sk-agents', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 }));
  });
  afterAll(async () => {
    await proxy.close(500);
    await upstream.close();
  });

  /** A long conversation the agent carries, then a question its tool answers. */
  const history = (question: string): AgentInputItem[] => [
    ...locomoRequest(0)
      .messages.slice(1, 140)
      .map((message) =>
        message.role === 'assistant'
          ? ({ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: String(message.content) }] } as AgentInputItem)
          : ({ role: 'user', content: String(message.content) } as AgentInputItem),
      ),
    { role: 'user', content: question },
  ];

  for (const stream of [false, true]) {
    test(`runs a tool-using agent to completion, compacted on the way (${stream ? 'streamed' : 'not streamed'})`, async () => {
      const cities: string[] = [];
      const weather = tool({
        name: 'weather',
        description: 'The weather in a city.',
        parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
        strict: true,
        execute: async (input) => {
          const { city } = input as { city: string };
          cities.push(city);
          return `18C and sunny in ${city}`;
        },
      });
      const agent = new Agent({ name: 'helper', instructions: 'Answer briefly.', tools: [weather], model: 'gpt-5' });
      const before = upstream.calls.length;
      const input = history(`What is the weather in Paris? (${stream ? 'stream' : 'json'})`);
      let output: unknown;
      if (stream) {
        const result = await run(agent, input, { stream: true });
        for await (const _event of result) {
          // drain the stream
        }
        await result.completed;
        output = result.finalOutput;
      } else output = (await run(agent, input)).finalOutput;
      expect(cities).toEqual(['Paris']);
      expect(output).toMatch(/^Received \d+ items\.$/);
      // Two model calls, both compacted below what the agent sent, the second with the call and its output together.
      const sent = upstream.calls.slice(before).map((call) => call.body as { input: ResponsesItem[]; instructions: string });
      expect(sent).toHaveLength(2);
      for (const body of sent) {
        expect(body.input.length).toBeLessThan(input.length);
        expect(body.instructions).toBe('Answer briefly.');
      }
      const second = sent[1]!.input;
      const call = second.findIndex((item) => item.type === 'function_call');
      expect(call).toBeGreaterThanOrEqual(0);
      expect(second[call + 1]).toMatchObject({ type: 'function_call_output', call_id: second[call]!.call_id });
    });
  }
});
