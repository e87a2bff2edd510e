import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { WebSocket } from 'ws';
import { toHutchError } from '../errors.js';
import { auditOpened } from '../audit.js';
import { IdParams, PtyQuery } from '../schemas.js';
import type { Services } from '../services.js';

/**
 * Interactive terminals over WebSocket: binary frames carry terminal bytes both ways, text frames
 * carry JSON control messages ({type:"resize"} in; {type:"start"}, {type:"exit"} out).
 */
export function ptyRoutes(services: Services): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/v1/sandboxes/:id/pty',
      {
        websocket: true,
        // A shell is write access, though the upgrade is a GET.
        config: { minRole: 'member' },
        schema: { params: IdParams, querystring: PtyQuery, tags: ['processes'], summary: 'Interactive PTY (WebSocket)' },
      },
      (socket: WebSocket, req) => {
        // The session is open: recorded now (pty.open), not when it ends.
        auditOpened(req, 101);
        const { id } = req.params;
        const q = req.query;
        const controller = new AbortController();
        let pid: number | null = null;
        const pending: Buffer[] = [];
        const sendJson = (msg: unknown): void => {
          if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(msg));
        };
        const fail = (err: unknown): void => {
          const e = toHutchError(err);
          sendJson({ type: 'error', code: e.kind, message: e.message });
          socket.close(1011, e.message.slice(0, 120));
        };
        // Keystrokes are forwarded one after another: a Ctrl-D must never overtake the line before it.
        let inputChain: Promise<unknown> = Promise.resolve();
        const input = (data: Buffer): void => {
          if (pid === null) {
            pending.push(data);
            return;
          }
          const target = pid;
          inputChain = inputChain.then(() => services.processes.sendStdin(id, { pid: target }, data, true)).catch(() => undefined);
        };
        socket.on('message', (data: Buffer, isBinary: boolean) => {
          if (isBinary) return input(data);
          try {
            const msg = JSON.parse(data.toString('utf8')) as { type?: string; cols?: number; rows?: number; data?: string };
            if (msg.type === 'resize' && pid !== null && Number.isInteger(msg.cols) && Number.isInteger(msg.rows)) {
              void services.processes
                .resize(id, { pid }, Math.min(1000, Math.max(1, msg.cols!)), Math.min(1000, Math.max(1, msg.rows!)))
                .catch(() => undefined);
            } else if (msg.type === 'input' && typeof msg.data === 'string') input(Buffer.from(msg.data));
          } catch {
            input(data);
          }
        });
        socket.on('close', () => {
          controller.abort();
          // Closing the terminal ends its session, as closing an ssh window does.
          if (pid !== null) void services.processes.signal(id, { pid }, 'SIGHUP').catch(() => undefined);
        });
        const cmd = q.cmd ?? 'if [ -x /bin/bash ]; then exec /bin/bash -l; else exec /bin/sh -l; fi';
        void (async () => {
          try {
            for await (const event of services.processes.start(
              id,
              {
                cmd,
                pty: { cols: q.cols, rows: q.rows },
                ...(q.user ? { user: q.user } : {}),
                ...(q.cwd ? { cwd: q.cwd } : {}),
                env: { TERM: 'xterm-256color' },
              },
              controller.signal,
            )) {
              if (event.type === 'start') {
                pid = event.pid;
                sendJson({ type: 'start', pid });
                for (const chunk of pending.splice(0)) input(chunk);
              } else if (event.type === 'pty' || event.type === 'stdout' || event.type === 'stderr') {
                if (socket.readyState === socket.OPEN) socket.send(Buffer.from(event.data, 'base64'), { binary: true });
              } else if (event.type === 'exit') {
                sendJson({ type: 'exit', exitCode: event.exitCode, signal: event.signal });
                socket.close(1000, 'exited');
                return;
              }
            }
          } catch (err) {
            if (!controller.signal.aborted) fail(err);
          }
        })();
      },
    );
  };
}
