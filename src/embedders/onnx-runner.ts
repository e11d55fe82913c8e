import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { CompactorError } from '../core/errors.js';

/**
 * Runs one ONNX model with onnxruntime-node, either on a worker thread (the default) or in process.
 *
 * onnxruntime-node 1.14 computes synchronously on the calling thread. In process, a batch of long
 * texts embedding in the background (hundreds of ms) would block every request on the event loop.
 * On a worker it does not. The caller's batches are cut into chunks of at most `maxChunkTokens`
 * padded tokens, and pending calls take turns chunk by chunk. A query that arrives behind a
 * history's background embedding therefore waits for one chunk, not for the whole history.
 */
export interface OnnxInput {
  data: Float32Array;
  dims: number[];
}

export interface OnnxRunner {
  /** Run the model on one chunk; resolves to the named output's data. */
  run(feeds: Record<string, OnnxInput>): Promise<Float32Array>;
  /** Stop the worker (pending runs reject). */
  close(): Promise<void>;
}

export interface OnnxRunnerOptions {
  /** onnxruntime intra-op threads. @default 1 */
  threads?: number;
  /** Run on a worker thread. @default true */
  worker?: boolean;
  /** Name of the output to return. */
  output: string;
}

type Ort = typeof import('onnxruntime-node');

function loadOrt(): { ort: Ort; path: string } {
  const require = createRequire(import.meta.url);
  const path = require.resolve('onnxruntime-node');
  return { ort: require(path) as Ort, path };
}

/** The worker's whole program: CommonJS, given the resolved onnxruntime-node path. */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const ready = ort.InferenceSession.create(workerData.model, { intraOpNumThreads: workerData.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
ready.then(() => parentPort.postMessage({ id: 0, ok: true }), (error) => parentPort.postMessage({ id: 0, ok: false, error: String(error && error.message || error) }));
parentPort.on('message', async ({ id, feeds }) => {
  try {
    const session = await ready;
    const inputs = {};
    for (const [name, input] of Object.entries(feeds)) inputs[name] = new ort.Tensor('float32', input.data, input.dims);
    const result = await session.run(inputs);
    const data = Float32Array.from(result[workerData.output].data);
    parentPort.postMessage({ id, ok: true, data }, [data.buffer]);
  } catch (error) {
    parentPort.postMessage({ id, ok: false, error: String(error && error.message || error) });
  }
});
`;

export async function createOnnxRunner(model: Uint8Array, options: OnnxRunnerOptions): Promise<OnnxRunner> {
  const threads = options.threads ?? 1;
  const { ort, path } = loadOrt();
  if (options.worker === false) {
    const session = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
    return {
      async run(feeds) {
        const inputs: Record<string, import('onnxruntime-node').Tensor> = {};
        for (const [name, input] of Object.entries(feeds)) inputs[name] = new ort.Tensor('float32', input.data, input.dims);
        const result = await session.run(inputs);
        return result[options.output]!.data as Float32Array;
      },
      async close() {},
    };
  }

  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ortPath: path, model, threads, output: options.output } });
  const pending = new Map<number, { resolve: (data: Float32Array) => void; reject: (error: Error) => void }>();
  let nextId = 1;
  let failure: Error | undefined;
  // Keep the process alive only while a run is in flight, and never once closed.
  let closed = false;
  const updateRef = () => (pending.size > 0 && !closed ? worker.ref() : worker.unref());
  const fail = (error: Error) => {
    failure ??= error;
    for (const { reject } of pending.values()) reject(error);
    pending.clear();
    updateRef();
  };
  worker.on('error', (error) => fail(error instanceof Error ? error : new Error(String(error))));
  worker.on('exit', (code) =>
    fail(new CompactorError('upstream.failed', `the onnxruntime worker exited (code ${code})`, { details: { reason: 'worker-exited', exitCode: code } })),
  );
  worker.on('message', (message: { id: number; ok: boolean; data?: Float32Array; error?: string }) => {
    const waiter = pending.get(message.id);
    if (!waiter) return;
    pending.delete(message.id);
    updateRef();
    if (message.ok) waiter.resolve(message.data!);
    else waiter.reject(new Error(message.error));
  });
  const call = (id: number, feeds?: Record<string, OnnxInput>): Promise<Float32Array> =>
    new Promise((resolve, reject) => {
      if (failure) {
        reject(failure);
        return;
      }
      pending.set(id, { resolve, reject });
      updateRef();
      if (feeds) {
        worker.postMessage(
          { id, feeds },
          Object.values(feeds).map((input) => input.data.buffer as ArrayBuffer),
        );
      }
    });
  // id 0: the session is ready (or failed to load).
  await call(0);
  return {
    run: (feeds) => call(nextId++, feeds),
    // The worker is let go, not terminated: ending it from here can crash onnxruntime's native
    // teardown (seen with onnxruntime-node 1.14). Unreferenced and idle, it keeps no process alive
    // and ends with it.
    async close() {
      closed = true;
      worker.unref();
      fail(new CompactorError('upstream.failed', 'the encoder was closed', { details: { reason: 'closed' } }));
    },
  };
}
