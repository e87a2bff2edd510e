#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { client } from './connect.js';
import { report } from './fail.js';
import type { Connection, Invocation } from './invocation.js';
import { parse } from './parse.js';

/**
 * The `hutch` command. Parses argv into a typed invocation, runs it, and exits with its status:
 * the command's own for exec/run, 1 for errors (printed as `hutch: <message>`), 2 for usage errors.
 * Machine output (ids, JSON) goes to stdout; progress and errors to stderr.
 */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parse(argv, { version: version() });
  } catch (err) {
    return report(err);
  }
  if (parsed.kind === 'help') return 0;
  try {
    return await dispatch(parsed.invocation, parsed.connection);
  } catch (err) {
    return report(err);
  }
}

async function dispatch(inv: Invocation, connection: Connection): Promise<number> {
  switch (inv.kind) {
    case 'server':
      return (await import('./commands/server.js')).server(inv);
    case 'info':
      return (await import('./commands/info.js')).info(client(connection), inv);
    case 'template-ls':
      return (await import('./commands/templates.js')).templateList(client(connection), inv);
    case 'template-build':
      return (await import('./commands/templates.js')).templateBuild(inv);
    case 'template-export':
      return (await import('./commands/templates.js')).templateExport(inv);
    case 'create':
      return (await import('./commands/sandboxes.js')).create(client(connection), inv);
    case 'ls':
      return (await import('./commands/sandboxes.js')).list(client(connection), inv);
    case 'get':
      return (await import('./commands/sandboxes.js')).get(client(connection), inv);
    case 'rm':
      return (await import('./commands/sandboxes.js')).remove(client(connection), inv);
    case 'timeout':
      return (await import('./commands/sandboxes.js')).setTimeout(client(connection), inv);
    case 'exec':
      return (await import('./commands/exec.js')).exec(client(connection), inv);
    case 'run':
      return (await import('./commands/exec.js')).run(client(connection), inv);
    case 'shell':
      return (await import('./commands/shell.js')).shell(client(connection), inv);
    case 'cp':
      return (await import('./commands/cp.js')).copy(client(connection), inv);
    case 'url':
      return (await import('./commands/network.js')).url(client(connection), inv);
    case 'network':
      return (await import('./commands/network.js')).network(client(connection), inv);
    case 'pause':
    case 'resume':
    case 'stop':
    case 'start':
      return (await import('./commands/lifecycle.js')).lifecycle(client(connection), inv);
    case 'usage':
      return (await import('./commands/lifecycle.js')).usage(client(connection), inv);
    case 'usage-report':
      return (await import('./commands/observability.js')).usageReport(client(connection), inv);
    case 'metrics':
      return (await import('./commands/observability.js')).sandboxMetrics(client(connection), inv);
    case 'keys-create':
      return (await import('./commands/keys.js')).keysCreate(client(connection), inv);
    case 'keys-ls':
      return (await import('./commands/keys.js')).keysList(client(connection), inv);
    case 'keys-limits':
      return (await import('./commands/keys.js')).keysLimits(client(connection), inv);
    case 'keys-revoke':
      return (await import('./commands/keys.js')).keysRevoke(client(connection), inv);
    case 'tenant-create':
      return (await import('./commands/tenants.js')).tenantCreate(client(connection), inv);
    case 'tenant-ls':
      return (await import('./commands/tenants.js')).tenantList(client(connection), inv);
    case 'tenant-quotas':
      return (await import('./commands/tenants.js')).tenantQuotas(client(connection), inv);
    case 'tenant-rm':
      return (await import('./commands/tenants.js')).tenantRemove(client(connection), inv);
    case 'pool-put':
      return (await import('./commands/pools.js')).poolPut(client(connection), inv);
    case 'pool-ls':
      return (await import('./commands/pools.js')).poolList(client(connection), inv);
    case 'pool-rm':
      return (await import('./commands/pools.js')).poolRemove(client(connection), inv);
    case 'volume-create':
      return (await import('./commands/volumes.js')).volumeCreate(client(connection), inv);
    case 'volume-ls':
      return (await import('./commands/volumes.js')).volumeList(client(connection), inv);
    case 'volume-rm':
      return (await import('./commands/volumes.js')).volumeRemove(client(connection), inv);
    case 'volume-snapshot':
      return (await import('./commands/volume-snapshots.js')).volumeSnapshot(client(connection), inv);
    case 'volume-snapshots':
      return (await import('./commands/volume-snapshots.js')).volumeSnapshotList(client(connection), inv);
    case 'volume-snapshot-rm':
      return (await import('./commands/volume-snapshots.js')).volumeSnapshotRemove(client(connection), inv);
    case 'snapshot':
      return (await import('./commands/snapshots.js')).snapshot(client(connection), inv);
    case 'snapshot-ls':
      return (await import('./commands/snapshots.js')).snapshotList(client(connection), inv);
    case 'snapshot-rm':
      return (await import('./commands/snapshots.js')).snapshotRemove(client(connection), inv);
    case 'fork':
      return (await import('./commands/snapshots.js')).fork(client(connection), inv);
    case 'gc':
      return (await import('./commands/snapshots.js')).gc(client(connection), inv);
    case 'audit':
      return (await import('./commands/audit.js')).audit(client(connection), inv);
    case 'hooks-deliveries':
      return (await import('./commands/hooks.js')).deliveries(client(connection), inv);
    case 'hooks-previews':
      return (await import('./commands/hooks.js')).previews(client(connection), inv);
    case 'hooks-approve':
      return (await import('./commands/hooks.js')).approve(client(connection), inv);
    case 'hooks-project-add':
      return (await import('./commands/hooks.js')).projectAdd(client(connection), inv);
    case 'hooks-project-ls':
      return (await import('./commands/hooks.js')).projectList(client(connection), inv);
    case 'hooks-project-rm':
      return (await import('./commands/hooks.js')).projectRemove(client(connection), inv);
    case 'logs':
      return (await import('./commands/audit.js')).logs(client(connection), inv);
    case 'env-up':
      return (await import('./commands/environments.js')).envUp(client(connection), inv);
    case 'env-ls':
      return (await import('./commands/environments.js')).envList(client(connection), inv);
    case 'env-down':
      return (await import('./commands/environments.js')).envDown(client(connection), inv);
    case 'env-logs':
      return (await import('./commands/environments.js')).envLogs(client(connection), inv);
    case 'env-seeds':
      return (await import('./commands/environments.js')).envSeeds(client(connection), inv);
    case 'env-reseed':
      return (await import('./commands/environments.js')).envReseed(client(connection), inv);
    case 'env-update':
      return (await import('./commands/environments.js')).envUpdate(client(connection), inv);
    case 'secret-put':
      return (await import('./commands/secrets.js')).secretPut(client(connection), inv);
    case 'secret-ls':
      return (await import('./commands/secrets.js')).secretList(client(connection), inv);
    case 'secret-rm':
      return (await import('./commands/secrets.js')).secretRemove(client(connection), inv);
  }
}

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** Exits once stdout and stderr have flushed what was written to them. */
async function exit(code: number): Promise<never> {
  const flushed = Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => s.write('', () => resolve()))));
  await Promise.race([flushed, new Promise((resolve) => setTimeout(resolve, 2000).unref())]);
  process.exit(code);
}

void main(process.argv.slice(2)).then(exit, (err: unknown) => exit(report(err)));
