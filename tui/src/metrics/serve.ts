/**
 * `fastivc status --serve [host:]port`: an HTTP endpoint for Prometheus. `GET /metrics` (and HEAD) answers a fresh
 * exposition each time; any other path is 404, any other method on /metrics 405. Runs until `signal` aborts, then
 * closes the listener and any kept-alive connection.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { CONTENT_TYPE } from './openmetrics.js';

export const METRICS_PATH = '/metrics';

export interface ServeOptions {
  host: string;
  /** 0: any free port (the URL given to onListening says which). */
  port: number;
  /** The exposition, sampled anew for each request. */
  render: () => Promise<string>;
  signal: AbortSignal;
  /** Called once listening, with the URL of the metrics. */
  onListening?: (url: string) => void;
}

function reply(res: http.ServerResponse, code: number, type: string, body: string, head: boolean, extra = {}): void {
  res.writeHead(code, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body), ...extra });
  res.end(head ? undefined : body);
}

function handler(render: () => Promise<string>): http.RequestListener {
  return (req, res) => {
    const path = (req.url ?? '').split('?')[0];
    const head = req.method === 'HEAD';
    const text = 'text/plain; charset=utf-8';
    if (path !== METRICS_PATH) {
      reply(res, 404, text, `not found: the metrics are at ${METRICS_PATH}\n`, head);
      return;
    }
    if (req.method !== 'GET' && !head) {
      reply(res, 405, text, 'method not allowed: GET or HEAD\n', false, { Allow: 'GET, HEAD' });
      return;
    }
    render().then(
      (body) => reply(res, 200, CONTENT_TYPE, body, head),
      (e: unknown) => reply(res, 500, text, `${e instanceof Error ? e.message : String(e)}\n`, head),
    );
  };
}

/** Serves until opts.signal aborts. Rejects when it cannot listen (address in use, no such address...). */
export async function serveMetrics(opts: ServeOptions): Promise<void> {
  const server = http.createServer(handler(opts.render));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`cannot listen on ${opts.host}:${opts.port}: ${e.code ?? e.message}`)),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  opts.onListening?.(`http://${host}:${a.port}${METRICS_PATH}`);
  await new Promise<void>((resolve) => {
    if (opts.signal.aborted) resolve();
    else opts.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
