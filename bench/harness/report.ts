import type { QaRow, Violation } from './run.js';
import { markdownTable, table } from './stats.js';
import type { LatencyRow } from './replay.js';
import type { LengthRow, ReplayRow } from './summary.js';

export interface RuleMeta {
  name: string;
  cacheRule: string;
  input: number;
  cachedInput: number;
  cacheWrite?: number;
  output: number;
  source?: string;
  asOf?: string;
}

export interface Recommendation {
  preset: string;
  budget: number;
  /** Dollars saved per 1,000 conversations, and the share of the prompt bill, per rule. */
  savings: { rule: string; perThousand: number; saving: number }[];
  erVerbatim: number | undefined;
  reason: string;
}

export interface BenchReport {
  meta: {
    machine: string;
    budgets: number[];
    qaBudgets: number[];
    rules: RuleMeta[];
    path: 'live' | 'awaited';
    data: string[];
    contenders: string[];
    conversations: number;
    command: string;
  };
  violations: Violation[];
  disqualified: string[];
  replay: ReplayRow[];
  lengths: LengthRow[];
  qa: QaRow[];
  turns: { conversation: string; turn: number; contender: string; tokensBefore: number; tokensAfter: number }[];
  latency: LatencyRow[];
  recommendation: Recommendation | undefined;
}

const fixed = (value: number | undefined, digits = 2) => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));
const percent = (value: number | undefined) => (value === undefined || Number.isNaN(value) ? '–' : `${(value * 100).toFixed(1)}%`);
/** Dollars as people write them: −$1.67, not $-1.67. */
export const dollars = (value: number) => {
  const digits = Math.abs(value) < 10 ? 2 : 0;
  return `${value < 0 ? '−' : ''}$${Math.abs(value).toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
};

/** Definitions, shown where the figures are. */
export const DEFINITIONS = {
  saving:
    'Prompt-bill saving: 1 − (prompt bill of the compacted requests ÷ prompt bill of the same requests sent whole), each billed with the rule’s prompt caching. Output tokens are left out: compaction does not change them. Negative: compaction raised the bill.',
  cached: 'Cached share: prompt tokens billed at the cached rate ÷ all prompt tokens (token-weighted, over every request of the replay).',
  perThousand: 'Saved per 1,000 conversations: the prompt dollars saved on the replay, divided by its conversations, times 1,000.',
  erVerbatim:
    'ER_verbatim (live): for each LoCoMo QA item of categories 1–4, asked at the end of its conversation’s replay with the state the replay built, the share of its evidence turns whose text reaches the model verbatim; the mean over items.',
  erFact:
    'ER_fact (live): the share of the answer’s content words (less the question’s) in what reaches the model, over the same share in the whole history (capped at 1).',
  latest:
    'Latest answer dropped: requests (over budget) where the last assistant message and the user message it answers fit in half the budget, yet did not reach the model.',
  cold: 'Cold: requests met by a fresh process (nothing embedded or summarized); fill = tokens sent ÷ the smaller of the budget and the whole request; cold ÷ warm = tokens sent ÷ what the same preset sent for that request in the replay (its own target: a window cut in steps leaves part of the budget free by design, warm or cold); drops with room = requests where a message left out would have fit in what the cold request left unused of the warm one’s size.',
  rules:
    'Rules: openai — a repeated prefix of at least 1,024 tokens is billed at the cached price, in 128-token steps; anthropic — the cache is written at 1.25× input up to the request’s cache_control breakpoints and read at the cached price; requests sent whole mark a breakpoint at their end, as clients do.',
} as const;

export const RECOMMENDATION_RULE =
  'The recommendation: among the presets that never raise the prompt bill (every rule, every budget), the one that keeps the most evidence (live ER_verbatim at the first budget, mean over the rules) while saving, under every rule, at least half of what the best-saving preset saves there; if none keeps that much, the best-saving one.';

function rowFor(rows: readonly ReplayRow[], contender: string, rule: string, budget: number): ReplayRow | undefined {
  return rows.find((row) => row.contender === contender && row.rule === rule && row.budget === budget);
}

/** The preset to use, by the rule above. */
export function recommend(rows: readonly ReplayRow[], budgets: readonly number[], rules: readonly string[]): Recommendation | undefined {
  const budget = budgets[0];
  if (budget === undefined || rules.length === 0) return undefined;
  const presets = [...new Set(rows.map((row) => row.contender))].filter((name) => name !== 'none' && name !== 'trimMessages');
  const safe = presets.filter((preset) => rows.filter((row) => row.contender === preset).every((row) => row.saving >= 0));
  if (safe.length === 0) return undefined;
  const worst = (preset: string) => Math.min(...rules.map((rule) => rowFor(rows, preset, rule, budget)?.saving ?? Number.NEGATIVE_INFINITY));
  const retention = (preset: string) => {
    const values = rules.map((rule) => rowFor(rows, preset, rule, budget)?.erVerbatim).filter((value): value is number => value !== undefined);
    return values.length === 0 ? undefined : values.reduce((sum, value) => sum + value, 0) / values.length;
  };
  const bestSaving = Math.max(...safe.map(worst));
  // No QA, questions or facts in the data: nothing measured retention, so the pick is on the bill alone.
  if (safe.every((preset) => retention(preset) === undefined)) {
    const preset = [...safe].sort((a, b) => worst(b) - worst(a))[0]!;
    return {
      preset,
      budget,
      savings: rules.map((rule) => ({
        rule,
        perThousand: rowFor(rows, preset, rule, budget)?.savedPerThousand ?? 0,
        saving: rowFor(rows, preset, rule, budget)?.saving ?? 0,
      })),
      erVerbatim: undefined,
      reason: 'saves the most. This replay has no quality signal (no QA, questions or facts in the data), so nothing here measured what each preset keeps',
    };
  }
  const enough = safe.filter((preset) =>
    rules.every(
      (rule) => (rowFor(rows, preset, rule, budget)?.saving ?? 0) >= 0.5 * Math.max(...safe.map((other) => rowFor(rows, other, rule, budget)?.saving ?? 0)),
    ),
  );
  const ranked =
    enough.length > 0
      ? [...enough].sort((a, b) => (retention(b) ?? 0) - (retention(a) ?? 0) || worst(b) - worst(a))
      : [...safe].sort((a, b) => worst(b) - worst(a));
  const preset = ranked[0]!;
  return {
    preset,
    budget,
    savings: rules.map((rule) => ({
      rule,
      perThousand: rowFor(rows, preset, rule, budget)?.savedPerThousand ?? 0,
      saving: rowFor(rows, preset, rule, budget)?.saving ?? 0,
    })),
    erVerbatim: retention(preset),
    reason:
      enough.length > 0
        ? `keeps the most evidence among the presets saving at least half of the best saving (${percent(bestSaving)} worst case)`
        : 'saves the most',
  };
}

/** The pick, ready to paste: in code, and on the command line. */
export function applyLines(recommendation: Recommendation): { code: string; cli: string } {
  return {
    code: `createCompactor({ strategy: '${recommendation.preset}', maxInputTokens: ${recommendation.budget} })`,
    cli: `npx context-compactor serve --preset ${recommendation.preset} --budget ${recommendation.budget}`,
  };
}

/** The pick's figures per rule, as the first screen quotes them (its mean retention included). */
function pickRows(report: BenchReport, recommendation: Recommendation): string[][] {
  const rows = recommendation.savings.map((entry) => [
    entry.rule,
    percent(entry.saving),
    dollars(entry.perThousand),
    fixed(rowFor(report.replay, recommendation.preset, entry.rule, recommendation.budget)?.erVerbatim),
  ]);
  return [
    ['price rule', 'prompt-bill saving', 'saved per 1,000 conversations', 'ER_verbatim (live)'],
    ...rows,
    ['mean over the rules', '–', '–', fixed(recommendation.erVerbatim)],
  ];
}

function recommendationText(report: BenchReport): string[] {
  const recommendation = report.recommendation;
  if (!recommendation) return ['No preset lowered the prompt bill under every rule.'];
  const savings = recommendation.savings.map((entry) => `${dollars(entry.perThousand)} under ${entry.rule} (${percent(entry.saving)})`).join(', ');
  return [
    `Recommended: ${recommendation.preset} at ${recommendation.budget} tokens. Per 1,000 conversations like these it saves ${savings} of the prompt bill${
      recommendation.erVerbatim === undefined
        ? '.'
        : `, and keeps ${fixed(recommendation.erVerbatim)} of the evidence (live ER_verbatim, mean over the rules: the share of each question's evidence turns, or of its keep strings and facts, that reach the model verbatim).`
    }`,
    recommendation.erVerbatim === undefined ? `Why: it ${recommendation.reason}.` : `Why: it ${recommendation.reason}. ${RECOMMENDATION_RULE}`,
    `Apply it: ${applyLines(recommendation).code} in code, or ${applyLines(recommendation).cli}`,
  ];
}

/** A matrix: one row per contender, one column per rule × budget. */
function matrix(report: BenchReport, cell: (row: ReplayRow) => string): string[][] {
  const columns = report.meta.rules.flatMap((rule) => report.meta.budgets.map((budget) => ({ rule: rule.name, budget })));
  return [
    ['preset', ...columns.map((column) => `${column.rule} @${column.budget}`)],
    ...report.meta.contenders.map((contender) => [
      contender,
      ...columns.map((column) => {
        const row = rowFor(report.replay, contender, column.rule, column.budget);
        return row ? cell(row) : '–';
      }),
    ]),
  ];
}

function netRows(report: BenchReport): string[][] {
  const rows: string[][] = [['preset', 'rule', 'budget', 'latest answer dropped', 'cold fill', 'cold ÷ warm', 'cold drops with room', 'ms p50', 'ms p99']];
  for (const row of report.replay) {
    if (row.contender === 'none') continue;
    rows.push([
      row.contender,
      row.rule,
      String(row.budget),
      `${row.latestDropped} of ${row.latestChecked}`,
      fixed(row.coldFill),
      fixed(row.coldWarm),
      `${row.coldDroppedWithRoom} of ${row.coldSamples}`,
      fixed(row.msP50),
      fixed(row.msP99),
    ]);
  }
  return rows;
}

function lengthMatrix(report: BenchReport, rule: string): string[][] {
  const rows = report.lengths.filter((row) => row.rule === rule);
  const contenders = report.meta.contenders.filter((name) => name !== 'none');
  return [
    ['requests sent whole', 'requests', 'share of the prompt bill', ...contenders.map((name) => `${name} saving`)],
    ...rows.map((row) => [row.bucket, String(row.requests), percent(row.billShare), ...contenders.map((name) => percent(row.savings[name]))]),
  ];
}

function qaMatrix(report: BenchReport, metric: 'erVerbatim' | 'erFact'): string[][] {
  const budgets = report.meta.qaBudgets;
  const contenders = [...new Set(report.qa.map((row) => row.contender))];
  return [
    ['strategy', ...budgets.map(String)],
    ...contenders.map((contender) => [
      contender,
      ...budgets.map((budget) => fixed(report.qa.find((row) => row.contender === contender && row.budget === budget && row.category === '1-4')?.[metric])),
    ]),
  ];
}

/**
 * The budget at which a preset's prompt bill equals sending everything, under one rule: between
 * the two budgets run where its saving changes sign (interpolated on a log scale), or a bound
 * when it does not change sign over the budgets run. Larger budgets keep more and, under a 10%
 * cache, rewrite more at full price: savings fall as the budget grows.
 */
export function breakEven(rows: readonly ReplayRow[], preset: string, rule: string): string {
  const points = rows.filter((row) => row.contender === preset && row.rule === rule).sort((a, b) => a.budget - b.budget);
  if (points.length === 0) return '–';
  if (points.every((row) => row.saving >= 0)) return `saves at every budget run (up to ${points.at(-1)!.budget})`;
  if (points.every((row) => row.saving < 0)) return `costs more at every budget run (from ${points[0]!.budget})`;
  for (let index = 0; index + 1 < points.length; index++) {
    const [low, high] = [points[index]!, points[index + 1]!];
    if (low.saving >= 0 && high.saving < 0) {
      const share = low.saving / (low.saving - high.saving);
      const budget = Math.exp(Math.log(low.budget) + share * (Math.log(high.budget) - Math.log(low.budget)));
      return `about ${Math.round(budget / 100) * 100} tokens`;
    }
  }
  return 'changes sign more than once';
}

function breakEvenRows(report: BenchReport): string[][] {
  const presets = report.meta.contenders.filter((name) => name !== 'none');
  return [
    ['preset', ...report.meta.rules.map((rule) => rule.name)],
    ...presets.map((preset) => [preset, ...report.meta.rules.map((rule) => breakEven(report.replay, preset, rule.name))]),
  ];
}

function sections(report: BenchReport): { title: string; rows?: string[][]; text?: string }[] {
  const out: { title: string; rows?: string[][]; text?: string }[] = [];
  if (report.recommendation)
    out.push({
      title: `The pick: ${report.recommendation.preset} at ${report.recommendation.budget} tokens`,
      rows: pickRows(report, report.recommendation),
      text: 'The figures the recommendation quotes, per price rule; the tables below hold them among every preset and budget.',
    });
  if (report.replay.length > 0) {
    out.push({ title: 'Prompt-bill saving', rows: matrix(report, (row) => percent(row.saving)), text: DEFINITIONS.saving });
    out.push({
      title: 'Break-even budget',
      rows: breakEvenRows(report),
      text: 'The budget above which a preset’s prompt bill is higher than sending everything, under each rule (interpolated between the budgets run).',
    });
    out.push({ title: 'Saved per 1,000 conversations', rows: matrix(report, (row) => dollars(row.savedPerThousand)), text: DEFINITIONS.perThousand });
    out.push({ title: 'Cached share of prompt tokens', rows: matrix(report, (row) => fixed(row.cachedAfter)), text: DEFINITIONS.cached });
    out.push({ title: 'Live retention: ER_verbatim', rows: matrix(report, (row) => fixed(row.erVerbatim)), text: DEFINITIONS.erVerbatim });
    out.push({ title: 'Live retention: ER_fact', rows: matrix(report, (row) => fixed(row.erFact)), text: DEFINITIONS.erFact });
    out.push({
      title: 'Safety nets and time added',
      rows: netRows(report),
      text: `${DEFINITIONS.latest} ${DEFINITIONS.cold} Milliseconds per request on the replay: most requests are short conversations sent whole, and texts embedded by an earlier replay in the same run are read back rather than encoded; the warm-latency table below is the figure to read.`,
    });
    if (report.latency.length > 0) {
      out.push({
        title: `Added latency, warm, on a ${report.latency[0]!.messages}-message history`,
        rows: [
          ['preset', 'rule', 'budget', 'requests', 'ms p50', 'ms p99'],
          ...report.latency.map((row) => [row.contender, row.rule, String(row.budget), String(row.requests), fixed(row.msP50), fixed(row.msP99)]),
        ],
        text: 'A fresh process meets the longest conversation, its background work finishes, then it answers new questions (texts it never embedded), one after another on the live path: what compaction adds to each request, from its start to the compacted request, query embedding included.',
      });
    }
    for (const rule of report.meta.rules) {
      out.push({
        title: `Where the bill comes from (${rule.name}, ${report.meta.budgets[0]} tokens)`,
        rows: lengthMatrix(report, rule.name),
        text: 'Requests grouped by their size sent whole: how much of the prompt bill for sending everything they make, and what each preset saves on them.',
      });
    }
  }
  if (report.qa.length > 0) {
    out.push({ title: 'Idealised QA (every turn embedded first): ER_verbatim', rows: qaMatrix(report, 'erVerbatim') });
    out.push({ title: 'Idealised QA (every turn embedded first): ER_fact', rows: qaMatrix(report, 'erFact') });
  }
  return out;
}

function correctness(report: BenchReport): string {
  return report.violations.length === 0
    ? 'Correctness: no violations (every output valid, within budget, protected messages kept in order, nothing the guard had to repair).'
    : `Correctness: ${report.violations.length} violations; disqualified: ${report.disqualified.join(', ')}`;
}

function rulesLine(report: BenchReport): string {
  return report.meta.rules
    .map(
      (rule) =>
        `${rule.name} (${rule.cacheRule}: $${rule.input} input, $${rule.cachedInput} cached${rule.cacheWrite ? `, $${rule.cacheWrite} cache write` : ''} per 1M; ${rule.asOf ?? 'undated'})`,
    )
    .join('; ');
}

export function consoleReport(report: BenchReport): string {
  const parts: string[] = [
    `context-compactor bench — ${report.meta.machine}`,
    ...recommendationText(report),
    '',
    `Path: ${report.meta.path}. Price rules: ${rulesLine(report)}.`,
    `Data: ${report.meta.data.join(', ')}`,
  ];
  for (const section of sections(report)) if (section.rows) parts.push('', section.title, table(section.rows));
  parts.push('', correctness(report));
  return parts.join('\n');
}

export function markdownReport(report: BenchReport): string {
  const parts: string[] = [...recommendationText(report).map((line) => `**${line.split(':')[0]}:**${line.slice(line.indexOf(':') + 1)}`), ''];
  parts.push(
    `Machine: ${report.meta.machine}. Path: ${report.meta.path}. Data: ${report.meta.data.join(', ')}.`,
    '',
    `Price rules: ${rulesLine(report)}.`,
    '',
    `Command: \`${report.meta.command}\``,
  );
  for (const section of sections(report)) {
    parts.push('', `**${section.title}**`, '');
    if (section.text) parts.push(section.text, '');
    if (section.rows) parts.push(markdownTable(section.rows));
  }
  parts.push('', DEFINITIONS.rules, '', correctness(report));
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

/** One colour per contender, the same in every chart. */
/** One dash pattern per line, so lines that lie on top of one another stay apart (the first is solid). */
const DASHES: number[][] = [
  [1, 0],
  [7, 3],
  [2, 2],
  [9, 3, 2, 3],
  [4, 4],
  [12, 3],
  [1, 3],
  [6, 2, 2, 2, 2, 2],
];
const PALETTE = ['#4c4c4c', '#e45756', '#9d755d', '#4c78a8', '#f58518', '#54a24b', '#b279a2', '#72b7b2', '#eeca3b'];

export async function charts(report: BenchReport): Promise<{ title: string; caption: string; svg: string }[]> {
  const out: { title: string; caption: string; svg: string }[] = [];
  const colour = { domain: report.meta.contenders, range: PALETTE.slice(0, report.meta.contenders.length) };
  const base = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    config: { font: 'sans-serif', legend: { labelLimit: 0, titleLimit: 0 } },
    autosize: { type: 'pad' },
  };
  if (report.replay.length > 0) {
    const values = report.replay
      .filter((row) => row.erVerbatim !== undefined)
      .map((row) => ({ preset: row.contender, budget: String(row.budget), rule: row.rule, bill: 1 - row.saving, retention: row.erVerbatim }));
    out.push({
      title: 'Retention against prompt bill, per price rule',
      caption: `One point per preset and budget (shape). x: the prompt bill as a share of sending every request whole (lower is cheaper), each panel on its own scale, from its data to the break-even line (100%: the same bill as sending everything); y: live ER_verbatim. ${DEFINITIONS.saving}`,
      svg: await svgOf({
        ...base,
        data: { values },
        facet: { column: { field: 'rule', type: 'nominal', title: 'price rule', sort: report.meta.rules.map((rule) => rule.name) } },
        resolve: { scale: { x: 'independent' } },
        spec: {
          width: 300,
          height: 260,
          layer: [
            {
              mark: { type: 'point', filled: true, size: 90, opacity: 0.85 },
              encoding: {
                x: {
                  field: 'bill',
                  type: 'quantitative',
                  title: 'prompt bill ÷ sending everything',
                  axis: { format: '%' },
                  scale: { zero: false, nice: false, padding: 12 },
                },
                y: { field: 'retention', type: 'quantitative', title: 'ER_verbatim (live)', scale: { domain: [0, 1] } },
                color: { field: 'preset', type: 'nominal', scale: colour, legend: { orient: 'bottom', columns: 4 } },
                shape: { field: 'budget', type: 'nominal', legend: { orient: 'bottom' } },
                tooltip: [{ field: 'preset' }, { field: 'budget' }, { field: 'bill', format: '.1%' }, { field: 'retention', format: '.2f' }],
              },
            },
            // Break-even: a bill equal to sending everything. Left of it compaction saves.
            { data: { values: [{}] }, mark: { type: 'rule', color: '#777', strokeDash: [4, 3] }, encoding: { x: { datum: 1 } } },
            {
              data: { values: [{}] },
              mark: { type: 'text', align: 'right', baseline: 'top', dx: -4, dy: 4, color: '#555', fontSize: 10 },
              encoding: { x: { datum: 1 }, y: { datum: 1 }, text: { value: 'break-even' } },
            },
          ],
        },
      }),
    });
    const savings = report.replay
      .filter((row) => row.contender !== 'none')
      .map((row) => ({ preset: row.contender, rule: row.rule, budget: row.budget, saving: row.saving }));
    const budgets = [...new Set(savings.map((row) => row.budget))].sort((a, b) => a - b);
    const presets = report.meta.contenders.filter((name) => name !== 'none');
    // One legend for colour and dash together, so lines that coincide are told apart there too.
    const legend = { orient: 'bottom', columns: 4, symbolType: 'stroke', symbolSize: 500, symbolStrokeWidth: 2.5, title: 'preset' };
    out.push({
      title: 'Prompt-bill saving by budget, per price rule',
      caption: `${DEFINITIONS.saving} Lines that coincide are told apart by their dashes, in the legend as on the chart. The grey line is break-even: below it compaction costs more than sending everything.`,
      svg: await svgOf({
        ...base,
        data: { values: savings },
        facet: { column: { field: 'rule', type: 'nominal', title: 'price rule', sort: report.meta.rules.map((rule) => rule.name) } },
        spec: {
          width: 300,
          height: 240,
          layer: [
            {
              mark: { type: 'line', point: true, strokeWidth: 2 },
              encoding: {
                x: {
                  field: 'budget',
                  type: 'quantitative',
                  scale: { type: 'log', domain: [budgets[0], budgets.at(-1)], nice: false },
                  axis: { values: budgets, format: ',' },
                  title: 'budget (tokens)',
                },
                y: { field: 'saving', type: 'quantitative', title: 'prompt-bill saving', axis: { format: '%' }, scale: { nice: false } },
                color: {
                  field: 'preset',
                  type: 'nominal',
                  scale: { domain: presets, range: presets.map((name) => PALETTE[report.meta.contenders.indexOf(name)]!) },
                  legend,
                },
                strokeDash: {
                  field: 'preset',
                  type: 'nominal',
                  scale: { domain: presets, range: presets.map((_, index) => DASHES[index % DASHES.length]!) },
                  legend,
                },
              },
            },
            { data: { values: [{}] }, mark: { type: 'rule', color: '#777' }, encoding: { y: { datum: 0 } } },
          ],
        },
      }),
    });
  }
  const conversation = [...new Set(report.turns.map((turn) => turn.conversation))]
    .map((id) => ({ id, count: report.turns.filter((turn) => turn.conversation === id).length }))
    .sort((a, b) => b.count - a.count)[0]?.id;
  if (conversation) {
    const turns = report.turns.filter((turn) => turn.conversation === conversation);
    const first = turns[0]!.contender;
    const values = [
      ...turns.filter((turn) => turn.contender === first).map((turn) => ({ turn: turn.turn, series: 'none', tokens: turn.tokensBefore })),
      ...turns.filter((turn) => turn.contender !== 'none').map((turn) => ({ turn: turn.turn, series: turn.contender, tokens: turn.tokensAfter })),
    ];
    const series = ['none', ...report.meta.contenders.filter((name) => name !== 'none')];
    const lastTurn = Math.max(...values.map((value) => value.turn));
    out.push({
      title: `Tokens per request, replaying ${conversation} at ${report.meta.budgets[0]} tokens`,
      caption:
        'Each request of the conversation, sent whole (none) and compacted, one panel per preset, each on its own scale from its data. A saw-tooth is a window that grows by appending and is cut in steps: between cuts, the prompt repeats its previous start and is billed at the cached rate.',
      svg: await svgOf({
        ...base,
        data: { values },
        facet: { field: 'series', type: 'nominal', title: null, sort: series, header: { labelFontSize: 12 } },
        columns: 4,
        resolve: { scale: { y: 'independent' } },
        spec: {
          width: 170,
          height: 130,
          mark: { type: 'line', strokeWidth: 1.5 },
          encoding: {
            x: { field: 'turn', type: 'quantitative', title: 'user turn', scale: { domain: [1, lastTurn], nice: false } },
            y: { field: 'tokens', type: 'quantitative', title: 'prompt tokens', scale: { zero: false, nice: false } },
            color: { field: 'series', type: 'nominal', scale: colour, legend: null },
          },
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

/** A self-contained HTML report: the recommendation first, then inline SVG charts and the tables, each with its definition. */
export async function htmlReport(report: BenchReport): Promise<string> {
  const figures = await charts(report);
  const body: string[] = [
    `<section class="decision">${recommendationText(report)
      .filter((line) => !line.startsWith('Apply it:'))
      .map((line) => `<p>${escapeHtml(line)}</p>`)
      .join('')}${
      report.recommendation
        ? `<p>Apply it, in code or on the command line:</p><pre class="apply"><code>${escapeHtml(applyLines(report.recommendation).code)}</code></pre><pre class="apply"><code>${escapeHtml(applyLines(report.recommendation).cli)}</code></pre>`
        : ''
    }</section>`,
  ];
  for (const figure of figures)
    body.push(`<figure><figcaption>${escapeHtml(figure.title)}</figcaption>${figure.svg}<p class="caption">${escapeHtml(figure.caption)}</p></figure>`);
  for (const section of sections(report)) {
    body.push(`<h2>${escapeHtml(section.title)}</h2>`);
    if (section.text) body.push(`<p class="definition">${escapeHtml(section.text)}</p>`);
    if (section.rows) body.push(htmlTable(section.rows));
  }
  body.push(`<p class="definition">${escapeHtml(DEFINITIONS.rules)}</p>`);
  body.push(
    '<h2>Correctness</h2>',
    report.violations.length === 0
      ? `<p>${escapeHtml(correctness(report))}</p>`
      : `<p>${escapeHtml(correctness(report))}</p>${htmlTable([
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
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1200px;color:#222}
.decision{background:#f3f7fb;border-left:4px solid #4c78a8;padding:.5rem 1rem;margin-bottom:1.5rem}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}th:first-child,td:first-child{text-align:left}
figure{margin:1rem 0 2rem;overflow-x:auto}figcaption{font-weight:600;margin-bottom:.5rem}.caption,.definition{color:#555;max-width:60rem}
.meta{color:#555}
pre.apply{background:#fff;border:1px solid #ccd;padding:.4rem .6rem;user-select:all;overflow-x:auto;margin:.3rem 0}
</style></head><body>
<h1>context-compactor bench</h1>
<p class="meta">${escapeHtml(report.meta.machine)} · path: ${escapeHtml(report.meta.path)} · price rules: ${escapeHtml(rulesLine(report))}<br>data: ${escapeHtml(report.meta.data.join(', '))}<br>command: <code>${escapeHtml(report.meta.command)}</code></p>
${body.join('\n')}
</body></html>
`;
}
