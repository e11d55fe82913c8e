import { readFileSync } from 'node:fs';
import { CompactorError } from '../../src/core/errors.js';
import { locomoMessages, parseLocomo, turnText } from '../datasets/locomo.js';
import type { ChatMessage } from '../../src/core/types.js';
import { validateRequest } from '../../src/core/validate.js';
import { normalizeEvidence } from './evidence.js';

export interface QaItem {
  question: string;
  /** Absent for LoCoMo category 5 (adversarial). */
  answer?: string;
  category: number;
  /** Normalised evidence dia_ids that point at a turn. */
  evidence: string[];
  /** Text of each evidence turn, as it appears in the transcript. */
  evidenceTexts: string[];
}

/** One conversation as a chat-completions transcript (system prompt first), plus QA if it has any. */
export interface BenchConversation {
  id: string;
  source: 'locomo' | 'mtbench101' | 'topical-chat' | 'jsonl';
  model?: string;
  messages: ChatMessage[];
  qa?: QaItem[];
}

export const DEFAULT_SYSTEM_PROMPT = 'You are a helpful assistant.';

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new CompactorError('input.invalid', `${file}: ${(error as Error).message}`, { pointer: 'file', cause: error });
  }
}

/** LoCoMo's native format. Speaker A is `user` and B `assistant`, or swapped. */
export function loadLocomo(file: string, options: { swapRoles?: boolean } = {}): BenchConversation[] {
  return parseLocomo(readJson(file)).map((conversation) => {
    const { messages, indexOf } = locomoMessages(conversation, options);
    const textOf = new Map<string, string>();
    for (const session of conversation.sessions) for (const turn of session.turns) textOf.set(turn.diaId, turnText(turn));
    const qa = conversation.qa.map((item): QaItem => {
      const evidence = item.evidence.flatMap(normalizeEvidence).filter((id) => indexOf.has(id));
      const parsed: QaItem = { question: item.question, category: item.category, evidence, evidenceTexts: evidence.map((id) => textOf.get(id)!) };
      if (item.answer !== undefined) parsed.answer = item.answer;
      return parsed;
    });
    return { id: conversation.id, source: 'locomo', messages, qa };
  });
}

/** MT-Bench-101 JSON Lines: `{task, id, history: [{user, bot}]}`. */
export function loadMtBench101(file: string): BenchConversation[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim().length > 0)
    .map((line, index) => {
      const row = JSON.parse(line) as { task: string; id: number; history: { user: string; bot: string }[] };
      const messages: ChatMessage[] = [{ role: 'system', content: DEFAULT_SYSTEM_PROMPT }];
      for (const turn of row.history) messages.push({ role: 'user', content: turn.user }, { role: 'assistant', content: turn.bot });
      return { id: `mtbench101-${row.task}-${row.id ?? index}`, source: 'mtbench101', messages };
    });
}

/** Topical-Chat JSON: an object keyed by conversation id, `content: [{message, agent}]`. agent_1 is the user. */
export function loadTopicalChat(file: string): BenchConversation[] {
  const data = readJson(file) as Record<string, { content: { message: string; agent: string }[] }>;
  return Object.entries(data).map(([id, conversation]) => {
    const messages: ChatMessage[] = [{ role: 'system', content: DEFAULT_SYSTEM_PROMPT }];
    for (const turn of conversation.content) messages.push({ role: turn.agent === 'agent_1' ? 'user' : 'assistant', content: turn.message });
    return { id: `topical-chat-${id}`, source: 'topical-chat', messages };
  });
}

/**
 * Generic JSON Lines for your own logs: one conversation per line, `{"id": "...", "messages": [...],
 * "model"?: "..."}`, where `messages` is a chat-completions message list (system prompt, user and
 * assistant turns, tool calls). Each line is validated; a bad line is reported with its number.
 */
export function loadJsonl(file: string): BenchConversation[] {
  const conversations: BenchConversation[] = [];
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, index) => {
      if (line.trim().length === 0) return;
      let row: { id?: unknown; messages?: unknown; model?: unknown; questions?: unknown; facts?: unknown };
      let qa: QaItem[] = [];
      try {
        row = JSON.parse(line) as typeof row;
        const { questions, facts, ...request } = row;
        validateRequest(request);
        qa = qualityOf(questions, facts);
      } catch (error) {
        const message = CompactorError.isInstance(error) ? error.message : (error as Error).message;
        const inner = CompactorError.isInstance(error) && error.pointer ? `.${error.pointer}` : '';
        throw new CompactorError('input.invalid', `${file}:${index + 1}: ${message}`, { pointer: `line ${index + 1}${inner}`, cause: error });
      }
      const conversation: BenchConversation = {
        id: typeof row.id === 'string' || typeof row.id === 'number' ? String(row.id) : `line-${index + 1}`,
        source: 'jsonl',
        messages: row.messages as ChatMessage[],
      };
      if (typeof row.model === 'string') conversation.model = row.model;
      if (qa.length > 0) conversation.qa = qa;
      conversations.push(conversation);
    });
  return conversations;
}

/** The question a transcript's `facts` are checked after: a generic next turn, so they must survive on their own. */
export const FACTS_QUESTION = 'Go on.';

/**
 * What a transcript says must survive: `questions` (`[{ question, keep: [strings] }]`, each asked
 * after the conversation, its strings checked verbatim in what reaches the model) and `facts`
 * (strings that must reach the model on a generic next turn). Scored as ER_verbatim.
 */
function qualityOf(questions: unknown, facts: unknown): QaItem[] {
  const strings = (value: unknown, pointer: string): string[] => {
    if (!Array.isArray(value) || value.length === 0 || value.some((entry) => typeof entry !== 'string' || entry === ''))
      throw new CompactorError('input.invalid', `${pointer}: must be a non-empty array of non-empty strings`, { pointer });
    return value as string[];
  };
  const items: QaItem[] = [];
  if (questions !== undefined) {
    if (!Array.isArray(questions)) throw new CompactorError('input.invalid', 'questions: must be an array of { question, keep }', { pointer: 'questions' });
    questions.forEach((entry, index) => {
      const at = `questions[${index}]`;
      const { question, keep } = (entry ?? {}) as { question?: unknown; keep?: unknown };
      if (typeof question !== 'string' || question === '')
        throw new CompactorError('input.invalid', `${at}.question: must be a non-empty string`, { pointer: `${at}.question` });
      const kept = strings(keep, `${at}.keep`);
      items.push({ question, category: 1, evidence: kept.map((_, position) => `${at}.keep[${position}]`), evidenceTexts: kept });
    });
  }
  if (facts !== undefined) {
    const kept = strings(facts, 'facts');
    items.push({ question: FACTS_QUESTION, category: 1, evidence: kept.map((_, position) => `facts[${position}]`), evidenceTexts: kept });
  }
  return items;
}

export type DatasetKind = 'locomo' | 'mtbench101' | 'topical-chat' | 'jsonl';

/** Load a data set, by kind, or guessed from its content when the kind is omitted. */
export function loadDataset(file: string, kind?: DatasetKind, options: { swapRoles?: boolean } = {}): BenchConversation[] {
  const chosen = kind ?? guessKind(file);
  switch (chosen) {
    case 'locomo':
      return loadLocomo(file, options);
    case 'mtbench101':
      return loadMtBench101(file);
    case 'topical-chat':
      return loadTopicalChat(file);
    case 'jsonl':
      return loadJsonl(file);
  }
}

function guessKind(file: string): DatasetKind {
  const text = readFileSync(file, 'utf8');
  const firstLine = text.slice(0, text.indexOf('\n') >>> 0).trim();
  try {
    const row = JSON.parse(firstLine) as Record<string, unknown>;
    if (Array.isArray(row.history) && 'task' in row) return 'mtbench101';
    if (Array.isArray(row.messages)) return 'jsonl';
  } catch {
    // Not JSON Lines: a whole JSON document.
  }
  let whole: unknown;
  try {
    whole = JSON.parse(text);
  } catch {
    return 'jsonl';
  }
  if (Array.isArray(whole) && typeof (whole[0] as { conversation?: unknown } | undefined)?.conversation === 'object') return 'locomo';
  if (typeof whole === 'object' && whole !== null && !Array.isArray(whole)) {
    const first = Object.values(whole)[0] as { content?: unknown } | undefined;
    if (Array.isArray(first?.content)) return 'topical-chat';
  }
  return 'jsonl';
}
