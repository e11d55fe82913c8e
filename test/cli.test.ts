import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from 'vitest';
import { createCompactor, type ChatRequest } from '../src/index.js';
import { packageRoot } from '../src/cli/package-root.js';
import { locomoRequest } from './helpers.js';

const bin = join(packageRoot(), 'bin', 'context-compactor.js');
let folder: string;
let conversationFile: string;

function run(args: string[], input?: string) {
  const result = spawnSync(process.execPath, [bin, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  folder = mkdtempSync(join(tmpdir(), 'cc-cli-'));
  conversationFile = join(folder, 'conv.json');
  // A real LoCoMo dev conversation, as a request whose last message is one of its questions.
  writeFileSync(conversationFile, JSON.stringify(locomoRequest(2)));
});

describe('CLI: compact', () => {
  test('--budget 2000 on a LoCoMo conversation (default preset): o200k count <= 2000, system prompt and question kept', async () => {
    const { code, stdout, stderr } = run(['compact', conversationFile, '--budget', '2000', '--stats']);
    expect(stderr.trim().split('\n'), stderr).toHaveLength(1);
    expect(code).toBe(0);
    const output = JSON.parse(stdout) as ChatRequest;
    const input = locomoRequest(2);
    expect(await createCompactor().countTokens(output)).toBeLessThanOrEqual(2000);
    expect(output.messages[0]).toEqual(input.messages[0]);
    expect(output.messages.at(-1)).toEqual(input.messages.at(-1));
    const stats = JSON.parse(stderr) as { tokensBefore: number; tokensAfter: number; encoding: string };
    expect(stats.encoding).toBe('o200k_base');
    expect(stats.tokensBefore).toBeGreaterThan(20_000);
    expect(stats.tokensAfter).toBeLessThanOrEqual(2000);
  });

  test('--preset balanced --await folds old sessions into summaries and stays within budget', async () => {
    const { code, stdout, stderr } = run(['compact', conversationFile, '--budget', '2000', '--preset', 'balanced', '--await', '--stats']);
    expect(code).toBe(0);
    const output = JSON.parse(stdout) as ChatRequest;
    expect(output.messages.some((message) => String(message.content).startsWith('[Summary of earlier conversation]'))).toBe(true);
    expect(await createCompactor().countTokens(output)).toBeLessThanOrEqual(2000);
    expect(JSON.parse(stderr).strategies.map((step: { name: string }) => step.name)).toEqual(['tool-results', 'summarize', 'relevance']);
  });

  test('by default it runs as a server does: nothing awaited, so a one-shot run has no summaries yet and fills the budget from what it has', async () => {
    const { code, stdout, stderr } = run(['compact', conversationFile, '--budget', '2000', '--preset', 'balanced', '--stats']);
    expect(code).toBe(0);
    const output = JSON.parse(stdout) as ChatRequest;
    expect(output.messages.some((message) => String(message.content).startsWith('[Summary of earlier conversation]'))).toBe(false);
    const tokens = await createCompactor().countTokens(output);
    expect(tokens).toBeLessThanOrEqual(2000);
    expect(tokens).toBeGreaterThan(0.9 * 2000);
    const relevance = JSON.parse(stderr).strategies.find((step: { name: string }) => step.name === 'relevance');
    expect(relevance.info.nets.cold).toBe(true);
  });

  test('reads stdin when no file is given; a request without a model is counted as gpt-4o', () => {
    const { messages } = locomoRequest(0);
    const { code, stdout } = run(['compact', '--budget', '1000', '--preset', 'truncate'], JSON.stringify({ messages }));
    expect(code).toBe(0);
    const output = JSON.parse(stdout) as ChatRequest;
    expect(output.model).toBeUndefined();
    expect(output.messages.length).toBeLessThan(messages.length);
  });

  test('--batch: JSON Lines in order, a bad line yields an error object and the batch goes on (exit 2 at the end)', () => {
    const good = JSON.stringify(locomoRequest(1));
    const input = [good, '{"messages": [', JSON.stringify({ messages: [{ role: 'robot', content: 'x' }] }), good].join('\n');
    const { code, stdout, stderr } = run(['compact', '--batch', '--budget', '1500', '--stats', '--preset', 'truncate'], input);
    expect(code).toBe(2);
    const lines = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    expect(lines).toHaveLength(4);
    expect(lines[0].messages.length).toBeLessThan(locomoRequest(1).messages.length);
    expect(lines[1].error.code).toBe('input.invalid');
    expect(lines[2].error).toMatchObject({ code: 'input.invalid', pointer: 'messages[0].role' });
    expect(lines[3]).toEqual(lines[0]);
    // Four stats lines, then the one line that says how many failed.
    expect(stderr.trim().split('\n')).toHaveLength(5);
    expect(stderr).toMatch(/2 of 4 lines failed/);
  });

  test('Anthropic bodies come back in the Anthropic shape', () => {
    const body = {
      model: 'claude-sonnet-4-5',
      system: 'be brief',
      max_tokens: 100,
      messages: locomoRequest(0)
        .messages.slice(1)
        .map((message) => ({ role: message.role, content: message.content })),
    };
    const { code, stdout } = run(['compact', '--budget', '800', '--preset', 'truncate'], JSON.stringify(body));
    expect(code).toBe(0);
    const output = JSON.parse(stdout);
    // Kept as sent: at 800 tokens the whole prompt is below the model's minimum cacheable prefix, so no breakpoint is marked.
    expect(output.system).toBe('be brief');
    expect(JSON.stringify(output)).not.toContain('cache_control');
    expect(output.messages.length).toBeLessThan(body.messages.length);
  });

  test('--config routes with presets and options; flags win', () => {
    const config = join(folder, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({ defaults: { maxInputTokens: 3000, strategy: 'truncate' }, routes: [{ path: '/small', options: { maxInputTokens: 700 } }] }),
    );
    const small = run(['compact', conversationFile, '--config', config, '--route', '/small', '--stats']);
    expect(JSON.parse(small.stderr).budget).toBe(700);
    const other = run(['compact', conversationFile, '--config', config, '--stats']);
    expect(JSON.parse(other.stderr).budget).toBe(3000);
    const flagged = run(['compact', conversationFile, '--config', config, '--route', '/small', '--budget', '1200', '--stats']);
    expect(JSON.parse(flagged.stderr).budget).toBe(1200);
  });

  test.each([
    [['compact', '--budget', 'lots'], 'usage'],
    [['compact', '--frobnicate'], 'usage'],
    [['compact', '--preset', 'magic'], 'options'],
    [['frobnicate'], 'usage'],
    [['compact', '/no/such/file.json'], 'input'],
  ])('usage and input errors exit 2 with one line and no stack: %j', (args) => {
    const { code, stderr } = run(args, '{"messages":[{"role":"user","content":"x"}]}');
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  test('malformed JSON exits 2 with input.invalid', () => {
    const { code, stderr } = run(['compact'], '{"messages": [');
    expect(code).toBe(2);
    expect(stderr).toMatch(/^context-compactor: input.invalid: /);
  });

  test('budget unreachable exits 2 with budget.unreachable', () => {
    const { code, stderr } = run(
      ['compact', '--budget', '5'],
      JSON.stringify({
        messages: [
          { role: 'system', content: 'a long system prompt' },
          { role: 'user', content: 'q' },
        ],
      }),
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/budget.unreachable/);
  });
});

describe('CLI: demo', () => {
  test('prints tokens before and after for the shipped conversations', () => {
    const { code, stdout } = run(['demo', '--budgets', '1000,2000', '--preset', 'truncate']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/conv-26/);
    expect(stdout).toMatch(/tokens before/);
    expect(stdout).not.toMatch(/\bNO\b/);
  });
});

describe('CLI: bench', () => {
  const strip = (report: Record<string, unknown>) =>
    JSON.parse(
      JSON.stringify(report, (key, value) =>
        key === 'ms' || key === 'msP50' || key === 'msP99' || key === 'machine' || key === 'command' ? undefined : value,
      ),
    );

  test('runs on given data, writes JSON, Markdown and HTML, and is deterministic but for timings', () => {
    const logs = join(folder, 'logs.jsonl');
    const turns = locomoRequest(1).messages.slice(0, 40);
    writeFileSync(logs, `${JSON.stringify({ id: 'mine', messages: turns })}\n`);
    // A real LoCoMo conversation cut to its first four sessions, with the QA items whose evidence is there.
    const [sample] = JSON.parse(readFileSync(join(packageRoot(), 'bench', 'data', 'locomo', 'locomo-dev.json'), 'utf8')) as {
      conversation: Record<string, unknown>;
      qa: { evidence: string[] }[];
    }[];
    const conversation = Object.fromEntries(
      Object.entries(sample!.conversation).filter(([key]) => !/^session_(\d+)/.test(key) || Number(/^session_(\d+)/.exec(key)![1]) <= 4),
    );
    const qa = sample!.qa.filter((item) => item.evidence.length > 0 && item.evidence.every((id) => /^D[1-4]:/.test(id)));
    const locomo = join(folder, 'locomo-small.json');
    writeFileSync(locomo, JSON.stringify([{ ...sample, conversation, qa }]));
    const args = (name: string) => [
      'bench',
      '--data',
      `locomo:${locomo}`,
      `jsonl:${logs}`,
      '--presets',
      'truncate,cache-aware',
      '--mode',
      'replay,qa',
      '--limit',
      '3',
      '--budgets',
      '1000,1500',
      '--qa-budgets',
      '1000,4000',
      '--rules',
      'gpt-4o,gpt-5',
      '--cold-turns',
      '1',
      // The live path gives the query's embedding 250 ms before it falls back to BM25; on a loaded
      // CI machine that race, not the bench, would decide. A long deadline takes timing out of it.
      '--preset-options',
      '{"cache-aware":{"embedTimeoutMs":60000}}',
      '--json',
      join(folder, `${name}.json`),
      '--md',
      join(folder, `${name}.md`),
      '--html',
      join(folder, `${name}.html`),
    ];
    const first = run(args('a'));
    expect(first.code).toBe(0);
    // The decision comes first (on four sessions, possibly that nothing saves under every rule).
    expect(first.stdout.split('\n').slice(0, 6).join('\n')).toMatch(/Recommended: |No preset lowered/);
    expect(first.stdout).toMatch(/Idealised QA/);
    expect(first.stderr).toMatch(/bench replay/);
    const second = run(args('b'));
    expect(second.code).toBe(0);
    const a = JSON.parse(readFileSync(join(folder, 'a.json'), 'utf8'));
    const b = JSON.parse(readFileSync(join(folder, 'b.json'), 'utf8'));
    expect(strip(a)).toEqual(strip(b));
    expect(a.meta.contenders).toEqual(['none', 'truncate', 'trimMessages', 'cache-aware']);
    expect(a.violations).toEqual([]);
    // Every contender at every budget under each rule; the price-aware one replayed per rule.
    expect(a.replay).toHaveLength(2 * 2 * 4);
    const truncate = a.replay.find((row: { contender: string; rule: string }) => row.contender === 'truncate' && row.rule === 'gpt-4o');
    expect(truncate.tokensAfter).toBeLessThan(a.replay[0].tokensBefore);
    expect(a.qa.length).toBeGreaterThan(0);
    expect(a.turns.some((turn: { conversation: string }) => turn.conversation === 'mine')).toBe(true);
    expect(readFileSync(join(folder, 'a.md'), 'utf8')).toMatch(/\| truncate \|/);
    expect(readFileSync(join(folder, 'a.html'), 'utf8')).toMatch(/<svg/);
  });

  test.each([
    [['--budgets', 'many'], 'budgets'],
    [['--preset-options', '{not json'], 'preset-options'],
    [['--preset-options', '[1]'], 'preset-options'],
    [['--mode', 'fast'], 'mode'],
  ])('bad options exit 2 with one line naming the option: %j', (flags, option) => {
    const result = run(['bench', ...flags]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(option);
  });
});
