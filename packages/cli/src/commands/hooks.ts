import type { HookDelivery, Hutch, Preview } from '@hutch/sdk';
import { json, table } from '../format.js';
import type { HookDeliveryQuery } from '../invocation.js';

/** `hutch hooks …`: the webhook delivery log, projects, previews and fork approvals. */
export async function deliveries(
  hutch: Hutch,
  opts: { filter: HookDeliveryQuery; limit?: number; cursor?: string; json: boolean },
): Promise<number> {
  const page = await hutch.hooks.deliveries({
    ...opts.filter,
    limit: opts.limit ?? 50,
    ...(opts.cursor !== undefined ? { cursor: opts.cursor } : {}),
  });
  if (opts.json) {
    process.stdout.write(json(page));
    return 0;
  }
  process.stdout.write(
    table([
      ['ID', 'TIME', 'PROVIDER', 'EVENT', 'ACTION', 'TARGET', 'OUTCOME', 'ENVIRONMENT', 'REASON'],
      ...page.deliveries.map(deliveryRow),
    ]),
  );
  if (page.nextCursor) process.stderr.write(`more: hutch hooks deliveries --cursor ${page.nextCursor} (with the same filters)\n`);
  return 0;
}

function deliveryRow(d: HookDelivery): string[] {
  const target = d.repository ? `${d.repository}${d.number !== null ? `#${d.number}` : ''}` : '-';
  const reason = [d.reason, d.feedback ? `feedback: ${d.feedback}` : null].filter(Boolean).join('; ');
  return [
    String(d.id),
    d.time.replace(/\.\d+Z$/, 'Z'),
    d.provider,
    d.event,
    d.action ?? '-',
    target,
    d.outcome,
    d.environmentId ?? '-',
    reason.length > 100 ? `${reason.slice(0, 99)}…` : reason || '-',
  ];
}

function previewRow(p: Preview): string[] {
  return [
    p.provider,
    `${p.repository}${p.number !== null ? `#${p.number}` : `@${p.branch}`}`,
    p.state,
    p.sha.slice(0, 7),
    p.deployedSha?.slice(0, 7) ?? '-',
    p.environmentId ?? '-',
    [p.fork ? 'fork' : '', p.keep ? 'kept' : ''].filter(Boolean).join(',') || '-',
  ];
}

export async function previews(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const list = await hutch.hooks.previews();
  if (opts.json) process.stdout.write(json({ previews: list }));
  else process.stdout.write(table([['PROVIDER', 'PULL', 'STATE', 'COMMIT', 'DEPLOYED', 'ENVIRONMENT', 'FLAGS'], ...list.map(previewRow)]));
  return 0;
}

export async function approve(
  hutch: Hutch,
  opts: { provider: 'github' | 'gitlab'; repository: string; number: number; sha?: string; json: boolean },
): Promise<number> {
  const p = await hutch.hooks.approve({
    provider: opts.provider,
    repository: opts.repository,
    number: opts.number,
    ...(opts.sha !== undefined ? { sha: opts.sha } : {}),
  });
  process.stdout.write(
    opts.json ? json(p) : `${p.repository}#${p.number}: approved at ${(p.approvedSha ?? '').slice(0, 7)} (${p.state})\n`,
  );
  return 0;
}

export async function projectAdd(
  hutch: Hutch,
  opts: {
    provider: 'github' | 'gitlab';
    repository: string;
    tenant?: string;
    cloneUrl?: string;
    branches?: string[];
    variables?: Record<string, string>;
    json: boolean;
  },
): Promise<number> {
  const p = await hutch.hooks.createProject({
    provider: opts.provider,
    repository: opts.repository,
    ...(opts.tenant !== undefined ? { tenant: opts.tenant } : {}),
    ...(opts.cloneUrl !== undefined ? { cloneUrl: opts.cloneUrl } : {}),
    ...(opts.branches !== undefined ? { branches: opts.branches } : {}),
    ...(opts.variables !== undefined ? { variables: opts.variables } : {}),
  });
  process.stdout.write(opts.json ? json(p) : `${p.id}\n`);
  return 0;
}

export async function projectList(hutch: Hutch, opts: { json: boolean }): Promise<number> {
  const list = await hutch.hooks.projects();
  if (opts.json) process.stdout.write(json({ projects: list }));
  else
    process.stdout.write(
      table([
        ['ID', 'PROVIDER', 'REPOSITORY', 'TENANT', 'CLONE URL', 'BRANCHES', 'VARIABLES'],
        ...list.map((p) => [
          p.id,
          p.provider,
          p.repository,
          p.tenant,
          p.cloneUrl ?? '-',
          p.branches.join(',') || '-',
          p.variables.join(',') || '-',
        ]),
      ]),
    );
  return 0;
}

export async function projectRemove(hutch: Hutch, opts: { ids: string[] }): Promise<number> {
  for (const id of opts.ids) {
    await hutch.hooks.deleteProject(id);
    process.stdout.write(`${id}\n`);
  }
  return 0;
}
