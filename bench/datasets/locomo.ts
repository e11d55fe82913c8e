import type { ChatMessage } from '../../src/core/types.js';

/**
 * Loader for LoCoMo's native format (a JSON list of samples with `conversation.session_N`,
 * `session_N_date_time` and `qa`). See bench/data/locomo/README.md for provenance and licence.
 */
export interface LocomoTurn {
  diaId: string;
  speaker: string;
  text: string;
  /** Caption of a shared photo, when the turn shares one. */
  caption?: string;
}

export interface LocomoSession {
  index: number;
  date: string;
  turns: LocomoTurn[];
}

export interface LocomoQa {
  question: string;
  /** Absent for category 5 (adversarial). Numbers in the data are turned into strings. */
  answer?: string;
  adversarialAnswer?: string;
  /** Evidence dia_ids as written in the data (see `normalizeEvidence`). */
  evidence: string[];
  /** 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial. */
  category: number;
}

export interface LocomoConversation {
  id: string;
  speakers: [string, string];
  sessions: LocomoSession[];
  qa: LocomoQa[];
}

interface RawSample {
  sample_id?: string;
  conversation: Record<string, unknown>;
  qa?: { question: string; answer?: unknown; adversarial_answer?: unknown; evidence?: unknown; category: number }[];
}

export function parseLocomo(data: unknown): LocomoConversation[] {
  if (!Array.isArray(data)) throw new TypeError('LoCoMo data must be a JSON list of samples');
  return (data as RawSample[]).map((sample, sampleIndex) => {
    const conversation = sample.conversation;
    const sessions: LocomoSession[] = [];
    // Iterate over the session lists, not the date keys: some date keys have no session.
    for (const key of Object.keys(conversation)) {
      const match = /^session_(\d+)$/.exec(key);
      if (!match || !Array.isArray(conversation[key])) continue;
      const index = Number(match[1]);
      const turns = (conversation[key] as Record<string, unknown>[]).map((turn) => {
        const parsed: LocomoTurn = { diaId: String(turn.dia_id), speaker: String(turn.speaker), text: String(turn.text ?? '') };
        if (typeof turn.blip_caption === 'string' && turn.blip_caption.length > 0) parsed.caption = turn.blip_caption;
        return parsed;
      });
      sessions.push({ index, date: String(conversation[`${key}_date_time`] ?? ''), turns });
    }
    sessions.sort((a, b) => a.index - b.index);
    const qa = (sample.qa ?? []).map((item) => {
      const parsed: LocomoQa = {
        question: String(item.question),
        evidence: Array.isArray(item.evidence) ? item.evidence.map(String) : [],
        category: Number(item.category),
      };
      if (item.answer !== undefined && item.answer !== null) parsed.answer = String(item.answer);
      if (item.adversarial_answer !== undefined && item.adversarial_answer !== null) parsed.adversarialAnswer = String(item.adversarial_answer);
      return parsed;
    });
    return {
      id: sample.sample_id ?? `locomo-${sampleIndex}`,
      speakers: [String(conversation.speaker_a), String(conversation.speaker_b)],
      sessions,
      qa,
    };
  });
}

export interface LocomoMessagesOptions {
  /** Map speaker B to `user` and A to `assistant` instead of the reverse. @default false */
  swapRoles?: boolean;
  /** System prompt; `{a}` and `{b}` are replaced by the speakers' names. */
  systemPrompt?: string;
}

export const LOCOMO_SYSTEM_PROMPT =
  'You are a helpful assistant with the full record of a long conversation between {a} and {b}, held over several sessions. ' +
  'Each session starts with its date. Answer questions about it briefly and exactly, using only what was said.';

/** The text a turn becomes in a message: the speaker, the words, and a shared photo's caption. */
export function turnText(turn: LocomoTurn): string {
  return `${turn.speaker}: ${turn.text}${turn.caption ? ` [shares a photo: ${turn.caption}]` : ''}`;
}

/** The header carried by the first turn of each session, so kept turns keep their date. */
export function sessionHeader(session: LocomoSession): string {
  return `[Session ${session.index}, ${session.date}]`;
}

/**
 * The conversation as chat messages: a system prompt, then one message per turn, speaker A as
 * `user` and B as `assistant` (or swapped). Returns the message index of every dia_id.
 */
export function locomoMessages(
  conversation: LocomoConversation,
  options: LocomoMessagesOptions = {},
): { messages: ChatMessage[]; indexOf: Map<string, number> } {
  const [a, b] = conversation.speakers;
  const prompt = (options.systemPrompt ?? LOCOMO_SYSTEM_PROMPT).replaceAll('{a}', a).replaceAll('{b}', b);
  const messages: ChatMessage[] = [{ role: 'system', content: prompt }];
  const indexOf = new Map<string, number>();
  const userSpeaker = options.swapRoles ? b : a;
  for (const session of conversation.sessions) {
    session.turns.forEach((turn, turnIndex) => {
      const text = turnText(turn);
      indexOf.set(turn.diaId, messages.length);
      messages.push({
        role: turn.speaker === userSpeaker ? 'user' : 'assistant',
        content: turnIndex === 0 ? `${sessionHeader(session)}\n${text}` : text,
      });
    });
  }
  return { messages, indexOf };
}
