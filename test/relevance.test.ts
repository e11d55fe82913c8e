import { describe, expect, test } from 'vitest';
import { createEmbeddingCache } from '../src/embedders/memo.js';
import type { Embedder } from '../src/embedders/types.js';
import { createCompactor, type ChatMessage } from '../src/index.js';
import { bm25Scores, terms, VOCABULARY_LIMIT, vocabularySize } from '../src/text/bm25.js';
import { hashEmbedder, wordTokenizer } from '../src/testing/index.js';
import { relevance } from '../strategies/relevance/index.js';
import { coded, locomoRequest } from './helpers.js';

const filler = (index: number): ChatMessage[] => [
  { role: 'user', content: `Filler question number ${index} about the weather today` },
  { role: 'assistant', content: `Filler answer number ${index}: it was cloudy and mild` },
];

function history(question: string): ChatMessage[] {
  return [
    { role: 'system', content: 'You remember everything.' },
    { role: 'user', content: '[Session 1, 8 May 2023]\nI adopted a dog named Biscuit from the shelter' },
    { role: 'assistant', content: 'Lovely, what breed is Biscuit?' },
    { role: 'user', content: 'A beagle mix, very energetic' },
    ...Array.from({ length: 12 }, (_, index) => filler(index)).flat(),
    { role: 'user', content: '[Session 2, 9 June 2023]\nWork was busy' },
    ...Array.from({ length: 12 }, (_, index) => filler(index + 20)).flat(),
    { role: 'user', content: question },
  ];
}

const options = { tokenizer: wordTokenizer, defaultModel: 'gpt-4o' };

describe('BM25', () => {
  test('ranks the document sharing rare query terms first', () => {
    const scores = bm25Scores('what is the name of my dog', ['the weather is nice', 'my dog is named Biscuit', 'dogs and cats', 'the the the']);
    expect([...scores].indexOf(Math.max(...scores))).toBe(1);
    expect(scores[3]).toBe(0);
  });
});

/** Textbook BM25 over string term lists, to check the interned, typed-array implementation. */
function referenceBm25(query: string, documents: string[], previous?: (string | undefined)[]): number[] {
  const score = (docs: string[][]): number[] => {
    const queryTerms = [...new Set(terms(query))];
    const average = docs.reduce((sum, doc) => sum + doc.length, 0) / docs.length || 1;
    return docs.map((doc) => {
      let total = 0;
      for (const term of queryTerms) {
        const df = docs.filter((other) => other.includes(term)).length;
        const tf = doc.filter((word) => word === term).length;
        if (tf > 0) total += (Math.log(1 + (docs.length - df + 0.5) / (df + 0.5)) * tf * 2.2) / (tf + 1.2 * (0.25 + (0.75 * doc.length) / average));
      }
      return total;
    });
  };
  const single = score(documents.map((doc) => [...terms(doc)]));
  if (!previous) return single;
  const paired = score(documents.map((doc, index) => [...terms(doc), ...(previous[index] === undefined ? [] : terms(previous[index]!))]));
  return single.map((value, index) => value + paired[index]!);
}

describe('BM25 against a textbook implementation', () => {
  const words = ['lisbon', 'tram', 'summer', 'bike', 'painting', 'paintings', 'dog', 'Biscuit', 'adoption', 'camping', 'the', 'and', 'we', 'went'];
  let seed = 7;
  const random = () => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const sentence = (length: number) => Array.from({ length }, () => words[Math.floor(random() * words.length)]!).join(' ');
  const documents = Array.from({ length: 60 }, () => sentence(1 + Math.floor(random() * 12)));
  const query = 'When did we go camping in Lisbon with the dog and the bike?';

  test('same scores, alone and with previous messages (some of them not in the list)', () => {
    const previous = documents.map((_, index) => (index === 0 ? undefined : index % 7 === 0 ? `${sentence(5)} Lisbon` : documents[index - 1]));
    const close = (actual: Float64Array, expected: number[]) =>
      expected.forEach((value, index) => {
        expect(actual[index]).toBeCloseTo(value, 10);
      });
    close(bm25Scores(query, documents), referenceBm25(query, documents));
    close(bm25Scores(query, documents, { previous }), referenceBm25(query, documents, previous));
    expect(referenceBm25(query, documents).filter((value) => value > 0).length).toBeGreaterThan(10);
  });
});

test('the interned vocabulary is bounded: past its limit it is cleared, and scores stay right', () => {
  const flood = Array.from({ length: 200 }, (_, chunk) =>
    Array.from({ length: Math.ceil((VOCABULARY_LIMIT + 1000) / 200) }, (_, index) => `zq${chunk}x${index}`).join(' '),
  );
  for (const text of flood) terms(text);
  expect(vocabularySize()).toBeGreaterThan(VOCABULARY_LIMIT);
  const documents = ['Have you ever been to Lisbon?', 'Yes, twice last summer', 'I bought a new bike'];
  const scores = bm25Scores('When did they visit Lisbon?', documents);
  expect(vocabularySize()).toBeLessThan(100);
  referenceBm25('When did they visit Lisbon?', documents).forEach((value, index) => {
    expect(scores[index]).toBeCloseTo(value, 10);
  });
});

describe('BM25 with the previous message', () => {
  const documents = ['Have you ever been to Lisbon?', 'Yes, twice last summer, the trams were great', 'I bought a new bike', 'The weather was mild'];
  const query = 'When did they visit Lisbon?';

  test('a document with no previous text scores as itself twice (alone and as its own pair)', () => {
    expect([...bm25Scores(query, documents, { previous: documents.map(() => undefined) })]).toEqual(
      [...bm25Scores(query, documents)].map((score) => score * 2),
    );
  });

  test('a reply scores through the message it answers, and a message without one does not change', () => {
    const plain = bm25Scores(query, documents);
    const withPrevious = bm25Scores(query, documents, { previous: [undefined, ...documents.slice(0, -1)] });
    expect(plain[1]).toBe(0);
    expect(withPrevious[1]).toBeGreaterThan(0);
    expect(withPrevious[0]).toBeGreaterThan(plain[0]!); // itself plus the pair (itself alone)
    expect(withPrevious[2]).toBe(0); // its previous message has no query term either
  });
});

describe('relevance strategy', () => {
  test('finds a reply through the message before it (previousContext), and not without it', async () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'You remember everything.' },
      ...Array.from({ length: 6 }, (_, index) => filler(index)).flat(),
      { role: 'assistant', content: 'Have you ever been to Lisbon?' },
      { role: 'user', content: 'Yes, twice, both in July' },
      ...Array.from({ length: 6 }, (_, index) => filler(index + 10)).flat(),
      { role: 'user', content: 'How often was I in Lisbon?' },
    ];
    const run = async (previousContext: number) => {
      const compactor = createCompactor({
        ...options,
        maxInputTokens: 45,
        strategy: relevance({ embedder: null, recencyShare: 0, neighbours: 0, previousContext }),
      });
      const { request } = await compactor.compact({ messages });
      return request.messages.some((message) => message.content === 'Yes, twice, both in July');
    };
    expect(await run(400)).toBe(true);
    expect(await run(0)).toBe(false);
    expect(() => relevance({ previousContext: -1 })).toThrow(coded('options.invalid', 'previousContext'));
  });

  test('keeps the turn the question is about, with its neighbour, under a tight budget', async () => {
    const compactor = createCompactor({ ...options, maxInputTokens: 90, strategy: relevance({ embedder: null, recencyShare: 0 }) });
    const { request, stats } = await compactor.compact({ messages: history('What breed is my dog Biscuit?') });
    const texts = request.messages.map((message) => String(message.content));
    expect(texts.some((text) => text.includes('dog named Biscuit'))).toBe(true);
    expect(texts.some((text) => text.includes('what breed is Biscuit'))).toBe(true);
    expect(texts.some((text) => text.includes('beagle'))).toBe(true); // neighbour of the hits
    expect(stats.tokensAfter).toBeLessThanOrEqual(90);
    expect(texts.at(-1)).toBe('What breed is my dog Biscuit?');
    // Chronological order is kept.
    expect(texts.indexOf(texts.find((text) => text.includes('dog named'))!)).toBeLessThan(texts.indexOf(texts.find((text) => text.includes('beagle'))!));
  });

  test('a dense embedder alone finds paraphrases BM25 misses', async () => {
    // An embedder that knows "puppy" and "dog" mean the same thing.
    const synonyms: Embedder = {
      id: 'synonyms',
      dimensions: 2,
      embed: async (texts) => texts.map((text) => (/\b(dog|puppy|beagle)\b/i.test(text) ? Float32Array.of(1, 0) : Float32Array.of(0, 1))),
    };
    const messages = history('Tell me about my puppy');
    const bm25 = await createCompactor({ ...options, maxInputTokens: 90, strategy: relevance({ embedder: null, recencyShare: 0, neighbours: 0 }) }).compact({
      messages,
    });
    const dense = await createCompactor({
      ...options,
      maxInputTokens: 90,
      strategy: relevance({ embedder: synonyms, sparseWeight: 0, recencyShare: 0, neighbours: 0, awaitDocuments: true, embeddings: createEmbeddingCache() }),
    }).compact({ messages });
    const has = (output: ChatMessage[]) => output.some((message) => String(message.content).includes('beagle'));
    // BM25 scores nothing for "puppy": what it keeps is recency filling the budget, not a match.
    expect(bm25.stats.strategies[0]!.info).toMatchObject({ kept: 0, nets: { recencyFill: expect.any(Number) } });
    expect(has(dense.request.messages)).toBe(true);
    expect((dense.stats.strategies[0]!.info as { kept: number }).kept).toBeGreaterThan(0);
  });

  test('a kept turn carries its session header when the session start was dropped', async () => {
    const messages = history('Filler question number 25?');
    const compactor = createCompactor({ ...options, maxInputTokens: 60, strategy: relevance({ embedder: null, recencyShare: 0, neighbours: 0 }) });
    const { request } = await compactor.compact({ messages });
    const notes = request.messages.filter((message) => !messages.includes(message));
    expect(notes.map((note) => note.content)).toContain('[Session 2, 9 June 2023]');
    const withMarkers = await createCompactor({
      ...options,
      maxInputTokens: 80,
      strategy: relevance({ embedder: null, recencyShare: 0, neighbours: 0, markers: true }),
    }).compact({ messages });
    expect(withMarkers.request.messages.some((message) => /^\[\d+ earlier messages omitted\]/.test(String(message.content)))).toBe(true);
  });

  test('reserves a share of the budget for the most recent turns', async () => {
    const messages = history('What breed is my dog Biscuit?');
    const { request } = await createCompactor({ ...options, maxInputTokens: 120, strategy: relevance({ embedder: null, recencyShare: 0.4 }) }).compact({
      messages,
    });
    expect(request.messages.at(-2)).toBe(messages.at(-2));
    expect(request.messages.some((message) => String(message.content).includes('dog named Biscuit'))).toBe(true);
  });

  test('falls back to BM25 when the embedder throws, and counts the failure', async () => {
    const broken: Embedder = { id: 'broken', dimensions: 2, embed: async () => Promise.reject(new Error('model crashed')) };
    const compactor = createCompactor({ ...options, maxInputTokens: 90, strategy: relevance({ embedder: broken, embeddings: createEmbeddingCache() }) });
    const { request, stats } = await compactor.compact({ messages: history('What breed is my dog Biscuit?') });
    expect(stats.failures).toHaveLength(1);
    expect(stats.failures[0]).toMatchObject({ strategy: 'relevance', code: 'upstream.failed' });
    expect(request.messages.some((message) => String(message.content).includes('dog named Biscuit'))).toBe(true);
  });

  test('falls back when the embedder hangs past the deadline, and the embedding goes on to warm the memo', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const slow = hashEmbedder();
    const hanging: Embedder = {
      id: 'slow',
      dimensions: slow.dimensions,
      embed: async (texts) => {
        await gate;
        return slow.embed(texts);
      },
    };
    const embeddings = createEmbeddingCache();
    const compactor = createCompactor({ ...options, maxInputTokens: 90, strategy: relevance({ embedder: hanging, embedTimeoutMs: 30, embeddings }) });
    // The gate opens only after this returns: a compact() that waited for the embedder would never return.
    const first = await compactor.compact({ messages: history('What breed is my dog Biscuit?') });
    expect(first.stats.failures[0]).toMatchObject({ strategy: 'relevance', code: 'upstream.failed' });
    release();
    await embeddings.idle();
    const second = await compactor.compact({ messages: history('What breed is my dog Biscuit?') });
    expect(second.stats.failures).toEqual([]);
    expect(second.stats.strategies[0]!.info).toMatchObject({ dense: true });
  });

  test('a new turn embeds only its new text', async () => {
    const embedder = hashEmbedder();
    const embeddings = createEmbeddingCache();
    const compactor = createCompactor({ maxInputTokens: 1500, strategy: relevance({ embedder, embeddings, awaitDocuments: true }) });
    const body = locomoRequest(1);
    await compactor.compact(body);
    const before = embedder.texts;
    const next: ChatMessage[] = [
      ...structuredClone(body.messages),
      { role: 'assistant', content: 'A new reply.' },
      { role: 'user', content: 'And a new question?' },
    ];
    await compactor.compact({ ...body, messages: next });
    // The query and at most the two new messages.
    expect(embedder.texts - before).toBeLessThanOrEqual(3);
  });

  test('by default only the query is embedded on the request path; the history is embedded in the background', async () => {
    const embedder = hashEmbedder();
    const embeddings = createEmbeddingCache();
    const compactor = createCompactor({ maxInputTokens: 1500, strategy: relevance({ embedder, embeddings }) });
    const body = locomoRequest(1);
    const cold = await compactor.compact(body);
    expect(cold.stats.strategies[0]!.info).toMatchObject({ dense: true, vectors: 0 });
    await embeddings.idle();
    const warm = await compactor.compact(body);
    const info = warm.stats.strategies[0]!.info as { vectors: number; candidates: number };
    expect(info.vectors).toBe(info.candidates);
  });

  test('the compactor embedder reaches the strategy through the context', async () => {
    const embedder = hashEmbedder();
    await createCompactor({ ...options, maxInputTokens: 90, embedder, strategy: 'relevance' }).compact({ messages: history('What breed is my dog Biscuit?') });
    expect(embedder.calls).toBeGreaterThan(0);
  });

  test('options are validated', () => {
    expect(() => relevance({ recencyShare: 2 })).toThrow(expect.objectContaining({ code: 'options.invalid', pointer: 'recencyShare' }));
    expect(() => relevance({ neighbours: 1.5 })).toThrow(expect.objectContaining({ code: 'options.invalid', pointer: 'neighbours' }));
    expect(() => relevance({ embedder: {} as Embedder })).toThrow(expect.objectContaining({ code: 'options.invalid', pointer: 'embedder' }));
  });
});
