import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the server answers one file; defaults to a well-behaved static server with Range support. */
export interface Served {
  body: Buffer;
  /** Send only this many bytes of the next full-body answer, then destroy the socket; once. */
  dropAfter?: number;
  /** Answer every request with the whole file, like a server without Range support. */
  ignoreRange?: boolean;
  /** Send headers and this many bytes, then go silent (keep the socket open). */
  stallAfter?: number;
  /** Extra headers on every answer, e.g. the Content-Encoding a misconfigured server puts on a .tgz. */
  headers?: Record<string, string>;
}

export interface TestServer {
  url(path: string): string;
  files: Map<string, Served>;
  requests: { path: string; range?: string }[];
  close(): Promise<void>;
}

/** A static HTTP server on 127.0.0.1 serving `files`; anything else is a 404. */
export async function startServer(files: Record<string, Served> = {}): Promise<TestServer> {
  const served = new Map(Object.entries(files));
  const requests: TestServer['requests'] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push({ path, range: req.headers.range });
    const file = served.get(path);
    if (!file) {
      res.writeHead(404).end('not found');
      return;
    }
    const total = file.body.length;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    let start = 0;
    if (range && !file.ignoreRange) {
      start = Number(range[1]);
      if (start >= total) {
        res.writeHead(416, { 'Content-Range': `bytes */${total}` }).end();
        return;
      }
      res.writeHead(206, { ...file.headers, 'Content-Range': `bytes ${start}-${total - 1}/${total}`, 'Content-Length': total - start });
    } else {
      res.writeHead(200, { ...file.headers, 'Content-Length': total });
    }
    const body = file.body.subarray(start);
    if (file.stallAfter !== undefined) {
      res.write(body.subarray(0, file.stallAfter));
      return;
    }
    if (file.dropAfter !== undefined) {
      const cut = file.dropAfter;
      file.dropAfter = undefined;
      // A half-close, not destroy(): a reset can overtake bytes the client has not read yet (seen on
      // a loaded machine), while a FIN arrives after every byte written before it.
      res.write(body.subarray(0, cut), () => res.socket?.end());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    files: served,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
