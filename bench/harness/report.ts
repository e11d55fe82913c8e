import type { QaRow, ReplayRow, ReplayTurn, Violation } from './run.js';
import { markdownTable, table } from './stats.js';

export interface BenchReport {
  meta: {
    machine: string;
    model: string;
    budgets: number[];
    replayBudget: number;
    cacheRule: string;
    price: { input: number; cachedInput: number; output: number; source?: string; asOf?: string };
    data: string[];
    contenders: string[];
    command: string;
  };
  violations: Violation[];
  disqualified: string[];
  qa: QaRow[];
  replay: ReplayRow[];
  turns: ReplayTurn[];
}

const fixed = (value: number | undefined, digits = 2) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));
const dollars = (value: number) => `$${value.toFixed(value < 1 ? 4 : 2)}`;

function qaMatrix(report: BenchReport, metric: 'erVerbatim' | 'erFact'): string[][] {
  const budgets = report.meta.budgets;
  const rows: string[][] = [['strategy', ...budgets.map((budget) => `${budget}`)]];
  for (const contender of report.meta.contenders) {
    rows.push([
      report.disqualified.some((entry) => entry.startsWith(`${contender}@`)) ? `${contender} (disqualified at some budgets)` : contender,
      ...budgets.map((budget) => fixed(report.qa.find((row) => row.contender === contender && row.budget === budget && row.category === '1-4')?.[metric])),
    ]);
  }
  return rows;
}

function categoryRows(report: BenchReport): string[][] {
  const rows: string[][] = [['strategy', 'budget', 'category', 'items', 'ER_verbatim', 'ER_fact', 'tokens after', 'ms p50', 'ms p99']];
  for (const row of report.qa) {
    rows.push([
      row.contender,
      String(row.budget),
      row.category === '5' ? '5 (adversarial)' : row.category,
      String(row.items),
      fixed(row.erVerbatim),
      fixed(row.erFact),
      row.tokensAfter.toFixed(0),
      fixed(row.msP50, 2),
      fixed(row.msP99, 2),
    ]);
  }
  return rows;
}

function replayRows(report: BenchReport): string[][] {
  const rows: string[][] = [
    [
      'strategy',
      'requests',
      'tokens before',
      'tokens after',
      'saved',
      'prefix share',
      'uncompacted $',
      'compacted $',
      'extra $',
      'net saving',
      'ms p50',
      'ms p99',
    ],
  ];
  for (const row of report.replay) {
    rows.push([
      row.contender,
      String(row.requests),
      String(row.tokensBefore),
      String(row.tokensAfter),
      `${((1 - row.tokensAfter / row.tokensBefore) * 100).toFixed(1)}%`,
      fixed(row.prefixShare),
      dollars(row.costUncompacted),
      dollars(row.costCompacted),
      dollars(row.costExtra),
      `${dollars(row.netSaving)} (${((row.netSaving / row.costUncompacted) * 100).toFixed(1)}%)`,
      fixed(row.msP50, 2),
      fixed(row.msP99, 2),
    ]);
  }
  return rows;
}

export function consoleReport(report: BenchReport): string {
  const parts: string[] = [`context-compactor bench — ${report.meta.machine}`, `model ${report.meta.model}; data: ${report.meta.data.join(', ')}`];
  if (report.qa.length > 0) {
    parts.push('', 'QA (LoCoMo, categories 1–4): ER_verbatim by budget', table(qaMatrix(report, 'erVerbatim')));
    parts.push('', 'QA (LoCoMo, categories 1–4): ER_fact by budget', table(qaMatrix(report, 'erFact')));
  }
  if (report.replay.length > 0) {
    parts.push('', `Replay at ${report.meta.replayBudget} tokens, billed with the ${report.meta.cacheRule} prompt-cache rule`, table(replayRows(report)));
  }
  parts.push(
    '',
    report.violations.length === 0
      ? 'Correctness: no violations.'
      : `Correctness: ${report.violations.length} violations; disqualified: ${report.disqualified.join(', ')}`,
  );
  return parts.join('\n');
}

export function markdownReport(report: BenchReport): string {
  const parts: string[] = [
    `Machine: ${report.meta.machine}. Model ${report.meta.model}. Data: ${report.meta.data.join(', ')}.`,
    '',
    `Command: \`${report.meta.command}\``,
  ];
  if (report.qa.length > 0) {
    parts.push('', '**ER_verbatim** (categories 1–4, by budget)', '', markdownTable(qaMatrix(report, 'erVerbatim')));
    parts.push('', '**ER_fact** (categories 1–4, by budget)', '', markdownTable(qaMatrix(report, 'erFact')));
    parts.push('', '<details><summary>By category</summary>', '', markdownTable(categoryRows(report)), '', '</details>');
  }
  if (report.replay.length > 0) {
    const price = report.meta.price;
    parts.push(
      '',
      `**Replay** at ${report.meta.replayBudget} tokens; ${report.meta.cacheRule} prompt-cache rule; $${price.input}/$${price.cachedInput}/$${price.output} per 1M input/cached/output (${price.asOf ?? 'undated'})`,
      '',
      markdownTable(replayRows(report)),
    );
  }
  parts.push(
    '',
    report.violations.length === 0
      ? 'Correctness: no violations.'
      : `Correctness: ${report.violations.length} violations; disqualified: ${report.disqualified.join(', ')}.`,
  );
  return parts.join('\n');
}

type VegaLiteSpec = Record<string, unknown>;

async function svgOf(spec: VegaLiteSpec): Promise<string> {
  const vega = await import('vega');
  const { compile } = await import('vega-lite');
  const view = new vega.View(vega.parse(compile(spec as never).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** The replayed conversation shown turn by turn: the one with the most requests. */
function longestConversation(turns: readonly ReplayTurn[]): string | undefined {
  const counts = new Map<string, number>();
  for (const turn of turns) counts.set(turn.conversation, (counts.get(turn.conversation) ?? 0) + 1);
  return [...counts].sort((a, b) => b[1] - a[1])[0]?.[0];
}

export async function charts(report: BenchReport): Promise<{ title: string; svg: string }[]> {
  const out: { title: string; svg: string }[] = [];
  const base = { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', width: 520, height: 300, config: { font: 'sans-serif' } };
  const qa = report.qa.filter((row) => row.category === '1-4');
  if (qa.length > 0) {
    const values = qa.flatMap((row) => [
      { strategy: row.contender, budget: row.budget, metric: 'ER_verbatim', value: row.erVerbatim ?? null },
      { strategy: row.contender, budget: row.budget, metric: 'ER_fact', value: row.erFact ?? null },
    ]);
    out.push({
      title: 'Retention against budget (LoCoMo QA, categories 1–4)',
      svg: await svgOf({
        ...base,
        width: 360,
        data: { values },
        facet: { column: { field: 'metric', type: 'nominal', title: null } },
        spec: {
          width: 360,
          height: 280,
          mark: { type: 'line', point: true },
          encoding: {
            x: { field: 'budget', type: 'quantitative', scale: { type: 'log' }, title: 'budget (tokens)' },
            y: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: 'retention' },
            color: { field: 'strategy', type: 'nominal', scale: { domain: report.meta.contenders } },
            // Strategies that keep the same turns draw the same line: dashes keep both visible.
            strokeDash: { field: 'strategy', type: 'nominal', scale: { domain: report.meta.contenders } },
          },
        },
      }),
    });
  }
  const conversation = longestConversation(report.turns);
  if (conversation) {
    const turns = report.turns.filter((turn) => turn.conversation === conversation);
    const values = [
      ...turns
        .filter((turn) => turn.contender === turns[0]!.contender)
        .map((turn) => ({ turn: turn.turn, series: 'before (uncompacted)', tokens: turn.tokensBefore })),
      ...turns.filter((turn) => turn.contender !== 'none').map((turn) => ({ turn: turn.turn, series: `after: ${turn.contender}`, tokens: turn.tokensAfter })),
    ];
    out.push({
      title: `Tokens per request before and after, replaying ${conversation} at ${report.meta.replayBudget} tokens`,
      svg: await svgOf({
        ...base,
        width: 760,
        data: { values },
        mark: { type: 'line' },
        encoding: {
          x: { field: 'turn', type: 'quantitative', title: 'user turn' },
          y: { field: 'tokens', type: 'quantitative', title: 'prompt tokens' },
          color: { field: 'series', type: 'nominal' },
        },
      }),
    });
  }
  if (report.replay.length > 0) {
    const values = report.replay.map((row) => ({ strategy: row.contender, dollars: row.costCompacted + row.costExtra }));
    out.push({
      title: `Billed cost of the replay per strategy (${report.meta.model}, ${report.meta.cacheRule} prompt caching)`,
      svg: await svgOf({
        ...base,
        data: { values },
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'strategy', type: 'nominal', sort: '-y', title: null },
          y: { field: 'dollars', type: 'quantitative', title: 'US dollars' },
          color: { field: 'strategy', type: 'nominal', legend: null, scale: { domain: report.meta.contenders } },
        },
      }),
    });
  }
  return out;
}

const escapeHtml = (text: string) => text.replace(/[&<>"]/g, (char) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[char]!);

function htmlTable(rows: string[][]): string {
  const [head, ...body] = rows;
  return `<table><thead><tr>${head!.map((cell) => `<th>${escapeHtml(cell)}</th>`).join('')}</tr></thead><tbody>${body
    .map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

/** A self-contained HTML report: inline SVG charts rendered with vega-lite, and the tables. */
export async function htmlReport(report: BenchReport): Promise<string> {
  const figures = await charts(report);
  const sections: string[] = [];
  for (const figure of figures) sections.push(`<figure><figcaption>${escapeHtml(figure.title)}</figcaption>${figure.svg}</figure>`);
  if (report.qa.length > 0) {
    sections.push(
      '<h2>QA retention</h2>',
      '<h3>ER_verbatim (categories 1–4)</h3>',
      htmlTable(qaMatrix(report, 'erVerbatim')),
      '<h3>ER_fact (categories 1–4)</h3>',
      htmlTable(qaMatrix(report, 'erFact')),
    );
    sections.push('<details><summary>By category</summary>', htmlTable(categoryRows(report)), '</details>');
  }
  if (report.replay.length > 0) sections.push(`<h2>Replay at ${report.meta.replayBudget} tokens</h2>`, htmlTable(replayRows(report)));
  sections.push(
    '<h2>Correctness</h2>',
    report.violations.length === 0
      ? '<p>No violations: every output was valid, within budget, and kept the protected messages in order.</p>'
      : `<p>${report.violations.length} violations. Disqualified: ${escapeHtml(report.disqualified.join(', '))}</p>${htmlTable([
          ['strategy', 'mode', 'budget', 'conversation', 'request', 'problem'],
          ...report.violations
            .slice(0, 50)
            .map((violation) => [
              violation.contender,
              violation.mode,
              String(violation.budget),
              violation.conversation,
              String(violation.request),
              violation.problem,
            ]),
        ])}`,
  );
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>context-compactor bench</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}
figure{margin:1rem 0 2rem}figcaption{font-weight:600;margin-bottom:.5rem}
.meta{color:#555}
</style></head><body>
<h1>context-compactor bench</h1>
<p class="meta">${escapeHtml(report.meta.machine)} · model ${escapeHtml(report.meta.model)} · data: ${escapeHtml(report.meta.data.join(', '))}<br>command: <code>${escapeHtml(report.meta.command)}</code></p>
${sections.join('\n')}
</body></html>
`;
}
