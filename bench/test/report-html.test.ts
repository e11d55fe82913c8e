import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, test } from 'vitest';
import { shippedData } from '../harness/command.js';
import { noCompaction, presetContender, trimMessagesContender } from '../harness/contenders.js';
import { loadPrices, priceFor } from '../harness/cost.js';
import { loadDataset } from '../harness/loaders.js';
import { runReplays } from '../harness/replay.js';
import { htmlReport, recommend, type BenchReport } from '../harness/report.js';
import type { Violation } from '../harness/run.js';
import { replayRows, turnRows } from '../harness/summary.js';
import { createCompactor } from '../../src/index.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
// CI installs Chromium (.ci/run); a developer machine without it skips this test.
const run = CHROMIUM || process.env.CI ? test : test.skip;
if (!CHROMIUM && !process.env.CI)
  console.warn('bench/test/report-html.test.ts: chromium not found, the report rendering test is SKIPPED (apt-get install chromium; .ci/run does)');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

async function smallReport(): Promise<BenchReport> {
  const counter = await createCompactor().tokenCounter('gpt-4o');
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo')
    .slice(0, 1)
    .map((conversation) => ({ ...conversation, qa: conversation.qa!.slice(0, 8) }));
  const contenders = [
    noCompaction(),
    presetContender('truncate', { live: true }),
    await trimMessagesContender(counter),
    presetContender('cache-aware', { live: true }),
  ];
  const violations: Violation[] = [];
  const runs = await runReplays(
    conversations,
    contenders,
    { budgets: [2000, 4000], model: 'gpt-4o', counter, qa: true, coldTurns: 1, progress: false },
    violations,
  );
  const rules = ['gpt-4o', 'gpt-5'].map((name) => ({ name, price: priceFor(loadPrices(), name), cacheRule: 'openai' as const }));
  const replay = rules.flatMap((rule) => replayRows(runs, rule));
  return {
    meta: {
      machine: 'test',
      budgets: [2000, 4000],
      qaBudgets: [],
      rules: rules.map((rule) => ({ name: rule.name, cacheRule: rule.cacheRule, ...rule.price })),
      path: 'live',
      data: ['conv-26'],
      contenders: contenders.map((contender) => contender.name),
      conversations: 1,
      command: 'test',
    },
    violations,
    disqualified: [],
    replay,
    lengths: [],
    qa: [],
    turns: turnRows(runs, 2000),
    latency: [],
    recommendation: recommend(replay, [2000, 4000], ['gpt-4o', 'gpt-5']),
  };
}

describe('HTML report', () => {
  run(
    'opens in headless Chromium with rendered charts: data marks, dash samples in the legend, axes at the data, break-even lines, a line to copy',
    async () => {
      expect(CHROMIUM, 'Chromium must be installed in CI (.ci/run installs it)').toBeDefined();
      const folder = mkdtempSync(join(tmpdir(), 'cc-report-'));
      const file = join(folder, 'report.html');
      const report = await smallReport();
      writeFileSync(file, await htmlReport(report));
      const profile = mkdtempSync(join(tmpdir(), 'cc-chromium-'));
      const dom = execFileSync(CHROMIUM!, [...FLAGS, `--user-data-dir=${profile}`, '--dump-dom', `file://${file}`], {
        encoding: 'utf8',
        timeout: 60_000,
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      writeFileSync(join(folder, 'dom.html'), dom);
      if (process.env.REPORT_DOM) writeFileSync(process.env.REPORT_DOM, dom);
      const svgs = dom.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
      expect(svgs.length).toBe(3);
      const [retention, saving] = [svgs[0]!, svgs[1]!];
      const panels = report.meta.rules.length;
      // Break-even in every panel: a dashed rule at 100% of the bill, and a rule at 0% saving.
      for (const svg of [retention, saving]) expect(svg.match(/class="mark-rule role-mark[^"]*"[^>]*><line /g) ?? []).toHaveLength(panels);
      expect(retention.match(/>break-even<\/text>/g) ?? []).toHaveLength(panels);
      // The saving chart's legend shows a dash sample per preset, all different: coinciding lines are told apart there.
      const legend = saving.slice(saving.indexOf('role-legend'));
      const presets = report.meta.contenders.filter((name) => name !== 'none');
      expect(new Set(legend.match(/stroke-dasharray="[^"]+"/g) ?? []).size).toBe(presets.length);
      // Axes start and end at the data: the budget axis shows the budgets run, nothing below or above them.
      const labels = (svg: string) => [...svg.matchAll(/>([−-]?[\d,.]+%?)<\/text>/g)].map((match) => match[1]!);
      const budgetLabels = labels(saving).filter((label) => !label.endsWith('%'));
      expect(new Set(budgetLabels)).toEqual(new Set(report.meta.budgets.map((budget) => budget.toLocaleString('en-US'))));
      // The bill axes reach from the data to break-even (100%), on each panel's own scale: no tick far past either.
      const bills = report.replay.filter((row) => row.erVerbatim !== undefined).map((row) => 1 - row.saving);
      const ticks = labels(retention)
        .filter((label) => label.endsWith('%'))
        .map((label) => Number(label.slice(0, -1).replace('−', '-')) / 100);
      expect(Math.max(...ticks)).toBeLessThanOrEqual(Math.max(1, ...bills) + 0.1);
      expect(Math.min(...ticks)).toBeGreaterThanOrEqual(Math.min(...bills) - 0.1);
      // The first screen: one line to copy in code and one on the command line, and its figures in the table below it.
      const pick = report.recommendation!;
      expect(dom).toContain(`createCompactor({ strategy: '${pick.preset}', maxInputTokens: ${pick.budget} })`);
      expect(dom).toContain(`npx context-compactor serve --preset ${pick.preset} --budget ${pick.budget}`);
      const pickTable = dom.slice(dom.indexOf(`The pick: ${pick.preset}`));
      expect(pickTable).toContain(`<td>mean over the rules</td><td>–</td><td>–</td><td>${pick.erVerbatim!.toFixed(2)}</td>`);
      expect(dom).toContain(`keeps ${pick.erVerbatim!.toFixed(2)} of the evidence`);
      // Lines with real path data, and points.
      expect(dom).toMatch(/class="mark-line[^"]*"[^>]*>(<[^>]+>)*<path[^>]* d="M[\d.,-]+L/);
      expect((dom.match(/class="mark-symbol/g) ?? []).length).toBeGreaterThan(0);
      // Every legend names every preset in full: none is cut short.
      for (const svg of svgs) for (const name of ['truncate', 'trimMessages', 'cache-aware']) expect(svg).toContain(`>${name}</text>`);
      expect(dom).not.toContain('…</text>');
      // The decision comes first, before any chart.
      expect(dom.indexOf('Recommended:')).toBeGreaterThan(-1);
      expect(dom.indexOf('Recommended:')).toBeLessThan(dom.indexOf('<svg'));

      const png = join(folder, 'report.png');
      const shot = spawnSync(
        CHROMIUM!,
        [...FLAGS, `--user-data-dir=${profile}`, '--window-size=1200,2400', '--hide-scrollbars', `--screenshot=${png}`, `file://${file}`],
        { timeout: 60_000 },
      );
      expect(shot.status).toBe(0);
      const image = PNG.sync.read(readFileSync(png));
      expect(image.width).toBe(1200);
      // Count coloured (non-grey) pixels: chart lines and bars, not text or gridlines.
      let coloured = 0;
      for (let offset = 0; offset < image.data.length; offset += 4) {
        const [r, g, b] = [image.data[offset]!, image.data[offset + 1]!, image.data[offset + 2]!];
        if (Math.max(r, g, b) - Math.min(r, g, b) > 60) coloured++;
      }
      // The decision box's border alone is under 1,000; the first two charts' marks bring it over 2,500.
      expect(coloured).toBeGreaterThan(2_500);
    },
  );
});
