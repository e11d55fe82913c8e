import type { KeyValueStore } from '../core/strategy.js';
import { defineOptions, rules } from '../core/define-options.js';
import { LRUCache } from 'lru-cache';

/** Where summaries live; memory by default, Redis with the semantic-cache issue's store. */
/** Summaries by the hashes of the messages they stand for. */
export type SummaryStore = KeyValueStore;

export function memorySummaryStore(maxBytes = 16 * 1024 * 1024): SummaryStore {
  const cache = new LRUCache<string, string>({ maxSize: maxBytes, sizeCalculation: (value, key) => (value.length + key.length) * 2 + 64 });
  return {
    get: async (key) => cache.get(key),
    set: async (key, value) => void cache.set(key, value),
  };
}

export interface SummaryQueueOptions {
  /** Most jobs waiting at once; more are refused (and counted) until the queue drains. @default 256 */
  maxPending?: number;
  /** Jobs running at once. @default 1 */
  concurrency?: number;
  /** A job running longer than this is abandoned and counted as failed. @default 60000 */
  jobTimeoutMs?: number;
}

export const SUMMARY_QUEUE_DEFAULTS = { maxPending: 256, concurrency: 1, jobTimeoutMs: 60_000 };

export interface QueueStats {
  scheduled: number;
  completed: number;
  failed: number;
  dropped: number;
  pending: number;
  running: number;
}

export const SUMMARY_QUEUE_OPTIONS = defineOptions<SummaryQueueOptions, typeof SUMMARY_QUEUE_DEFAULTS>({
  factory: 'SummaryQueue',
  defaults: SUMMARY_QUEUE_DEFAULTS,
  rules: { maxPending: rules.int(1), concurrency: rules.int(1), jobTimeoutMs: rules.int(1) },
  docs: [['src/summarizers/queue.ts', 'SummaryQueueOptions']],
});

/**
 * A bounded background queue, deduplicated by key: scheduling a key already waiting or running
 * returns its promise. A job that throws or hangs fails alone; the queue goes on.
 */
export class SummaryQueue {
  readonly #maxPending: number;
  readonly #concurrency: number;
  readonly #timeoutMs: number;
  readonly #jobs = new Map<string, { run: (signal: AbortSignal) => Promise<void>; promise: Promise<void>; settle: (error?: unknown) => void }>();
  readonly #waiting: string[] = [];
  #running = 0;
  readonly #running_ = new Map<string, () => void>();
  readonly #stats = { scheduled: 0, completed: 0, failed: 0, dropped: 0 };

  constructor(options: SummaryQueueOptions = {}) {
    const settings = SUMMARY_QUEUE_OPTIONS.parse(options);
    this.#maxPending = settings.maxPending;
    this.#concurrency = settings.concurrency;
    this.#timeoutMs = settings.jobTimeoutMs;
  }

  /** Schedule a job unless one with this key is waiting or running. Returns its completion, or undefined if the queue is full. */
  schedule(key: string, run: (signal: AbortSignal) => Promise<void>): Promise<void> | undefined {
    const existing = this.#jobs.get(key);
    if (existing) return existing.promise;
    if (this.#waiting.length >= this.#maxPending) {
      this.#stats.dropped++;
      return undefined;
    }
    let settle!: (error?: unknown) => void;
    const promise = new Promise<void>((resolve, reject) => (settle = (error?: unknown) => (error === undefined ? resolve() : reject(error))));
    promise.catch(() => undefined);
    this.#jobs.set(key, { run, promise, settle });
    this.#waiting.push(key);
    this.#stats.scheduled++;
    this.#pump();
    return promise;
  }

  stats(): QueueStats {
    return { ...this.#stats, pending: this.#waiting.length, running: this.#running };
  }

  /**
   * Drop the jobs still waiting and abort the running ones (their summaries are simply not made;
   * a later request schedules them again). The queue stays usable.
   */
  close(): void {
    for (const key of this.#waiting.splice(0)) {
      this.#jobs.get(key)?.settle(new Error('the summary queue was closed'));
      this.#jobs.delete(key);
    }
    for (const abort of this.#running_.values()) abort();
  }

  /** Resolves when nothing is waiting or running (for tests, benches and graceful shutdown). */
  async idle(): Promise<void> {
    while (this.#jobs.size > 0) await Promise.allSettled([...this.#jobs.values()].map((job) => job.promise));
  }

  #pump(): void {
    while (this.#running < this.#concurrency && this.#waiting.length > 0) {
      const key = this.#waiting.shift()!;
      const job = this.#jobs.get(key)!;
      this.#running++;
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        const stop = (reason: string) => {
          controller.abort();
          reject(new Error(reason));
        };
        timer = setTimeout(() => stop(`summary job exceeded ${this.#timeoutMs} ms`), this.#timeoutMs);
        this.#running_.set(key, () => stop('the summary queue was closed'));
      });
      Promise.race([Promise.resolve().then(() => job.run(controller.signal)), timeout])
        .then(
          () => {
            this.#stats.completed++;
            job.settle();
          },
          (error: unknown) => {
            this.#stats.failed++;
            job.settle(error ?? new Error('summary job failed'));
          },
        )
        .finally(() => {
          clearTimeout(timer);
          this.#running_.delete(key);
          this.#running--;
          this.#jobs.delete(key);
          this.#pump();
        });
    }
  }
}
