import type { AuditEntry, Hutch, SandboxLogEntry } from '@hutch/sdk';
import { json, table } from '../format.js';
import type { AuditQuery } from '../invocation.js';

/**
 * `hutch audit`: a page of the audit log as a table (newest first), the page as JSON, or with
 * `--export` every matching entry as JSON lines, oldest first, streamed as the server reads them.
 */
export async function audit(
  hutch: Hutch,
  opts: { filter: AuditQuery; limit?: number; cursor?: string; export: boolean; json: boolean },
): Promise<number> {
  if (opts.export) {
    for await (const entry of hutch.audit.export({ ...opts.filter, ...(opts.limit !== undefined ? { limit: opts.limit } : {}) })) {
      if (!process.stdout.write(`${JSON.stringify(entry)}\n`)) await new Promise((resolve) => process.stdout.once('drain', resolve));
    }
    return 0;
  }
  const page = await hutch.audit.list({
    ...opts.filter,
    limit: opts.limit ?? 50,
    ...(opts.cursor !== undefined ? { cursor: opts.cursor } : {}),
  });
  if (opts.json) {
    process.stdout.write(json(page));
    return 0;
  }
  process.stdout.write(
    table([['TIME', 'TENANT', 'KEY', 'ACTION', 'TARGET', 'STATUS', 'MS', 'CLIENT', 'REQUEST'], ...page.entries.map(row)]),
  );
  if (page.nextCursor) process.stderr.write(`more: hutch audit --cursor ${page.nextCursor} (with the same filters)\n`);
  return 0;
}

function row(e: AuditEntry): string[] {
  return [
    e.time.replace(/\.\d+Z$/, 'Z'),
    e.tenant ?? '-',
    e.keyId ?? '-',
    e.action,
    e.target ?? '-',
    e.error ? `${e.status} ${e.error}` : String(e.status),
    String(e.durationMs),
    e.client ?? '-',
    e.requestId ?? '-',
  ];
}

/**
 * `hutch logs`: a sandbox's kept output. Stdout entries go to stdout, stderr entries and the
 * server's notes to stderr, as they came (with `-t`, every line after its entry's time, pid and
 * stream). `--json`: one JSON object per entry. `-f` keeps printing until the
 * sandbox is deleted or Ctrl-C.
 */
export async function logs(
  hutch: Hutch,
  opts: { id: string; follow: boolean; since?: string; after?: number; tail?: number; timestamps: boolean; json: boolean },
): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const query = {
    ...(opts.since !== undefined ? { since: opts.since } : {}),
    ...(opts.after !== undefined ? { after: opts.after } : {}),
    ...(opts.tail !== undefined ? { limit: opts.tail } : {}),
  };
  const print = (e: SandboxLogEntry): void => {
    if (opts.json) return void process.stdout.write(`${JSON.stringify(e)}\n`);
    const out = e.stream === 'stdout' ? process.stdout : process.stderr;
    if (!opts.timestamps) return void out.write(e.text);
    const prefix = `${e.time} [${e.pid}] ${e.stream}: `;
    out.write(
      e.text
        .replace(/\n$/, '')
        .split('\n')
        .map((line) => `${prefix}${line}\n`)
        .join(''),
    );
  };
  const dropped = (d: { bytes: number; entries: number }): void => {
    if (d.bytes === 0 && d.entries === 0) return;
    if (opts.json) process.stdout.write(`${JSON.stringify({ type: 'dropped', ...d })}\n`);
    else
      process.stderr.write(`hutch: ${d.bytes} bytes (${d.entries} entries) of older output were dropped (the server keeps the newest)\n`);
  };
  if (!opts.follow) {
    const page = await sandbox.logs(query);
    dropped(page.dropped);
    for (const e of page.entries) print(e);
    return 0;
  }
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    for await (const event of sandbox.followLogs({ ...query, signal: controller.signal })) {
      if (event.type === 'log') {
        const { type: _t, ...entry } = event;
        print(entry);
      } else if (event.type === 'dropped') dropped(event);
      else if (event.type === 'lagged') {
        if (opts.json) process.stdout.write(`${JSON.stringify(event)}\n`);
        else process.stderr.write(`hutch: fell behind; ${event.entries} entries were skipped\n`);
      } else if (event.type === 'end') {
        if (opts.json) process.stdout.write(`${JSON.stringify(event)}\n`);
        else process.stderr.write(`hutch: ${event.reason}\n`);
        return 0;
      }
    }
  } catch (err) {
    if (controller.signal.aborted) return 0;
    throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return 0;
}
