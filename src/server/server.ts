// Starting and stopping the web demo: the inference processes, then the HTTP server on host:port.
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';

import { createApp, type AppOptions } from './app.ts';
import { InferencePool } from './inference-pool.ts';
import type { ModelSet } from '../pipeline/model-set.ts';
import type { ModelSetInfo } from './jobs.ts';

export interface ServerOptions extends Omit<AppOptions, 'log'> {
  sets: ModelSet[];
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Longest an inference job may run, in ms. */
  timeoutMs: number;
  /** Longest a client may take to send its whole request, in ms (slow clients are cut off). */
  requestTimeoutMs: number;
  /** libtorch threads per inference process (0: the cores shared among the processes). */
  threads: number;
  /** Reference images per model set for the neighbour search (0: none). */
  references: number;
  log?: (message: string) => void;
}

export interface RunningServer {
  url: string;
  models: ModelSetInfo[];
  /** Process ids of the inference processes. */
  workerPids: number[];
  close(): Promise<void>;
}

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? ((m: string) => process.stderr.write(`${m}\n`));
  const pool = await InferencePool.start({
    concurrency: o.concurrency,
    maxQueue: o.maxQueue,
    timeoutMs: o.timeoutMs,
    init: { sets: o.sets, threads: o.threads, references: o.references },
    log,
  });
  const { app } = createApp(pool, { ...o, log });
  const server = serve({
    fetch: app.fetch,
    hostname: o.host,
    port: o.port,
    serverOptions: {
      requestTimeout: o.requestTimeoutMs,
      headersTimeout: Math.min(o.requestTimeoutMs, 10_000),
      // how often Node checks those two limits (30 s by default, too coarse for a short limit)
      connectionsCheckingInterval: Math.min(1000, o.requestTimeoutMs),
    },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
  } catch (e) {
    await pool.close();
    const err = e as NodeJS.ErrnoException;
    throw new Error(
      err.code === 'EADDRINUSE'
        ? `port ${o.port} on ${o.host} is in use: pass another --port (0 picks a free one)`
        : `cannot listen on ${o.host}:${o.port} (${err.message})`,
    );
  }
  const { port } = server.address() as AddressInfo;
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return {
    url: `http://${host}:${port}/`,
    models: pool.info,
    workerPids: pool.pids,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as import('node:http').Server).closeAllConnections?.();
      });
      await pool.close();
    },
  };
}
