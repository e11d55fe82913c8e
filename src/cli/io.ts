import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { CompactorError } from '../core/errors.js';

export async function readInput(file: string | undefined, maxBytes: number): Promise<string> {
  if (file !== undefined && file !== '-') {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      throw new CompactorError('input.invalid', `cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
        pointer: 'file',
      });
    }
    if (Buffer.byteLength(text) > maxBytes) throw new CompactorError('input.too-large', `${file} is over ${maxBytes} bytes`, { pointer: 'body' });
    return text;
  }
  if (process.stdin.isTTY) throw new CompactorError('input.invalid', 'no input: give a FILE or pipe JSON to stdin', { pointer: 'file' });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new CompactorError('input.too-large', `stdin is over ${maxBytes} bytes`, { pointer: 'body' });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function inputLines(file: string | undefined): AsyncIterable<string> {
  const stream = file !== undefined && file !== '-' ? createReadStream(file, 'utf8') : process.stdin;
  return createInterface({ input: stream, crlfDelay: Infinity });
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CompactorError('input.invalid', `body: is not valid JSON (${(error as Error).message})`, { pointer: 'body' });
  }
}

/** Write to a stream and wait for it to drain, so large batches keep memory flat. */
export function write(stream: NodeJS.WritableStream, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const ok = stream.write(text, (error) => (error ? reject(error) : undefined));
    if (ok) resolve();
    else stream.once('drain', resolve);
  });
}
