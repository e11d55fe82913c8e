/**
 * How much ER_fact can keeping the right turns buy? An oracle that knows each question's evidence
 * keeps exactly those turns (optionally with their session date and neighbours) and nothing else;
 * its ER_fact is what a perfect selector scores when it spends tokens only on what the question
 * needs. Figures above it come from words of the answer that other, unrelated turns happen to hold.
 * LoCoMo dev, categories 1–4. Prints figures; asserts nothing.
 *
 * Run: npm run build && node dist/bench/fact-ceiling.js [--md]
 */
import { createCompactor } from '../src/compose/compactor.js';
import { shippedData } from './harness/command.js';
import { presetContender } from './harness/contenders.js';
import { loadDataset } from './harness/loaders.js';
import { contentWords, factRetention, mean, outputText } from './harness/metrics.js';
import { markdownTable, table } from './harness/stats.js';
import { messageText } from '../src/text/message-text.js';
import { SESSION_HEADER } from '../src/text/stopwords.js';
import { runStudy, studyFlags } from './harness/study.js';

const flags = studyFlags('bench:fact-ceiling', {});

interface Variant {
  name: string;
  neighbours: number;
  dates: boolean;
}

const variants: Variant[] = [
  { name: 'evidence turns only', neighbours: 0, dates: false },
  { name: 'evidence + session date', neighbours: 0, dates: true },
  { name: 'evidence ±1 turn + session date', neighbours: 1, dates: true },
  { name: 'evidence ±2 turns + session date', neighbours: 2, dates: true },
];

async function main(): Promise<void> {
  const [locomo] = shippedData();
  const conversations = loadDataset(locomo!.slice('locomo:'.length), 'locomo');
  const counter = await createCompactor().tokenCounter('gpt-4o');
  const categories = ['1', '2', '3', '4'];
  const rows = [['kept', 'ER_fact', ...categories.map((category) => `cat ${category}`), 'tokens kept, mean', 'tokens kept, max']];
  for (const variant of variants) {
    const scores: number[] = [];
    const byCategory = new Map<string, number[]>(categories.map((category) => [category, []]));
    const tokens: number[] = [];
    for (const conversation of conversations) {
      const texts = conversation.messages.map(messageText);
      const full = new Set(contentWords(outputText(conversation.messages)));
      for (const item of conversation.qa ?? []) {
        if (String(item.category) === '5' || item.answer === undefined || item.evidenceTexts.length === 0) continue;
        const kept = new Set<number>();
        const headers = new Set<string>();
        for (const evidence of item.evidenceTexts) {
          const at = texts.findIndex((text) => text.includes(evidence));
          if (at < 0) throw new Error(`evidence not found in its conversation: ${evidence.slice(0, 60)}`);
          for (let offset = -variant.neighbours; offset <= variant.neighbours; offset++) {
            const index = at + offset;
            // The system prompt (index 0) is not a turn.
            if (index > 0 && index < texts.length) kept.add(index);
          }
          if (variant.dates) {
            for (let index = at; index > 0; index--) {
              const header = SESSION_HEADER.exec(texts[index]!);
              if (header) {
                headers.add(header[0]);
                break;
              }
            }
          }
        }
        const keptText = [...headers, ...[...kept].sort((a, b) => a - b).map((index) => texts[index]!)].join('\n');
        const score = factRetention(String(item.answer), item.question, new Set(contentWords(keptText)), full);
        if (score === undefined) continue;
        scores.push(score);
        byCategory.get(String(item.category))!.push(score);
        tokens.push(counter.text(keptText));
      }
    }
    rows.push([
      variant.name,
      mean(scores)!.toFixed(2),
      ...categories.map((category) => mean(byCategory.get(category)!)?.toFixed(2) ?? '–'),
      mean(tokens)!.toFixed(0),
      String(Math.max(...tokens)),
    ]);
  }
  console.log("ER_fact of an oracle that keeps only each question's evidence (LoCoMo dev, categories 1–4)");
  console.log(table(rows));
  if (flags.md) console.log(`\n${markdownTable(rows)}`);

  // Where do the presets' misses lie? Answer words a preset dropped, split by whether any
  // evidence turn holds them.
  const missRows = [['preset', 'budget', 'ER_fact', 'answer words missed', 'in an evidence turn', 'in no evidence turn']];
  for (const preset of ['relevance', 'balanced']) {
    const budget = 2000;
    // The same compactor settings as the main bench's QA mode.
    const contender = presetContender(preset);
    const scores: number[] = [];
    let inEvidence = 0;
    let elsewhere = 0;
    for (const conversation of conversations) {
      const full = new Set(contentWords(outputText(conversation.messages)));
      for (const item of conversation.qa ?? []) {
        if (String(item.category) === '5' || item.answer === undefined) continue;
        const { messages } = await contender.run(
          { model: 'gpt-4o', messages: [...conversation.messages, { role: 'user' as const, content: item.question }] },
          budget,
        );
        const kept = new Set(contentWords(outputText(messages)));
        const score = factRetention(String(item.answer), item.question, kept, full);
        if (score === undefined) continue;
        scores.push(score);
        const asked = new Set(contentWords(item.question));
        const evidenceWords = new Set(contentWords(item.evidenceTexts.join('\n')));
        for (const word of new Set(contentWords(String(item.answer)))) {
          if (asked.has(word) || !full.has(word) || kept.has(word)) continue;
          if (evidenceWords.has(word)) inEvidence++;
          else elsewhere++;
        }
      }
    }
    missRows.push([preset, String(budget), mean(scores)!.toFixed(2), String(inEvidence + elsewhere), String(inEvidence), String(elsewhere)]);
  }
  console.log('\nAnswer words the presets missed, by where the conversation holds them');
  console.log(table(missRows));
  if (flags.md) console.log(`\n${markdownTable(missRows)}`);
}

runStudy('bench:fact-ceiling', main);
