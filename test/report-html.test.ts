import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PNG } from 'pngjs';
import { describe, expect, test } from 'vitest';
import { shippedData } from '../bench/harness/command.js';
import { noCompaction, presetContender, trimMessagesContender } from '../bench/harness/contenders.js';
import { loadPrices, priceFor } from '../bench/harness/cost.js';
import { loadDataset } from '../bench/harness/loaders.js';
import { htmlReport, type BenchReport } from '../bench/harness/report.js';
import { runQa, runReplay, type Violation } from '../bench/harness/run.js';
import { createCompactor } from '../src/index.js';

const CHROMIUM = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((path) => existsSync(path));
// CI installs Chromium (.ci/run); a developer machine without it skips this test.
const run = CHROMIUM || process.env.CI ? test : test.skip;

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
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo').slice(0, 1);
  const contenders = [noCompaction(), presetContender('truncate'), await trimMessagesContender(counter)];
  const violations: Violation[] = [];
  const qa = await runQa(conversations, contenders, { budgets: [1000, 2000, 4000], model: 'gpt-4o', counter, progress: false, limit: 10 }, violations);
  const price = priceFor(loadPrices(), 'gpt-4o');
  const replay = await runReplay(
    conversations,
    contenders,
    { budget: 2000, model: 'gpt-4o', counter, price, cacheRule: 'openai', progress: false },
    violations,
  );
  return {
    meta: {
      machine: 'test',
      model: 'gpt-4o',
      budgets: [1000, 2000, 4000],
      replayBudget: 2000,
      cacheRule: 'openai',
      price,
      data: ['conv-26'],
      contenders: contenders.map((c) => c.name),
      command: 'test',
    },
    violations,
    disqualified: [],
    qa,
    replay: replay.rows,
    turns: replay.turns,
  };
}

describe('HTML report', () => {
  run('opens in headless Chromium with rendered charts (non-empty SVG with data marks)', async () => {
    expect(CHROMIUM, 'Chromium must be installed in CI (.ci/run installs it)').toBeDefined();
    const folder = mkdtempSync(join(tmpdir(), 'cc-report-'));
    const file = join(folder, 'report.html');
    writeFileSync(file, await htmlReport(await smallReport()));
    const profile = mkdtempSync(join(tmpdir(), 'cc-chromium-'));
    const dom = execFileSync(CHROMIUM!, [...FLAGS, `--user-data-dir=${profile}`, '--dump-dom', `file://${file}`], {
      encoding: 'utf8',
      timeout: 60_000,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const svgs = dom.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
    expect(svgs.length).toBe(3);
    // Lines with real path data, points, and bars.
    expect(dom).toMatch(/class="mark-line[^"]*"[^>]*>(<[^>]+>)*<path[^>]* d="M[\d.,-]+L/);
    expect((dom.match(/class="mark-symbol/g) ?? []).length).toBeGreaterThan(0);
    expect(dom).toMatch(/class="mark-rect[^"]*"[^>]*>(<[^>]+>)*<path[^>]* d="M[\d.,-]+h/);

    const png = join(folder, 'report.png');
    const shot = spawnSync(
      CHROMIUM!,
      [...FLAGS, `--user-data-dir=${profile}`, '--window-size=1200,1600', '--hide-scrollbars', `--screenshot=${png}`, `file://${file}`],
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
    expect(coloured).toBeGreaterThan(5_000);
  });
});
