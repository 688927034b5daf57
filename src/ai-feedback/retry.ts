// Retrying a remote call that may fail for a while (a rate limit, an overloaded server, a dropped
// connection, an unparsable answer), and a cap on the calls in flight at once.

/** A failure worth another attempt; `retryAfterMs` is the server's Retry-After when it sent one. */
export class RetryableError extends Error {
  constructor(message: string, readonly retryAfterMs: number | null = null) {
    super(message);
  }
}

export interface RetryOptions {
  /** Attempts after the first. */
  retries: number;
  /** The wait before the first retry; each later one doubles it (capped at 30 s), or follows Retry-After. */
  baseDelayMs: number;
  onRetry?: (error: RetryableError, attempt: number) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `attempt` until it returns, throws a non-retryable error, or has failed retries + 1 times (the last error is thrown). */
export async function withRetries<T>(attempt: () => Promise<T>, options: RetryOptions): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof RetryableError) || i >= options.retries) throw err;
      options.onRetry?.(err, i + 1);
      await sleep(Math.min(err.retryAfterMs ?? options.baseDelayMs * 2 ** i, 30_000));
    }
  }
}

/** A function that runs at most `n` of the tasks given to it at once, the rest waiting in order. */
export function concurrencyLimit(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((resolve) => waiting.push(resolve));
    active++;
    try {
      return await task();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}
