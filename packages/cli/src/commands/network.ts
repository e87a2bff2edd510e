import type { Hutch, SandboxEgress, SandboxNetworkState } from '@hutch/sdk';
import { json } from '../format.js';

/** `hutch url <id> <port>`: the ingress URL of a sandbox port (signed when private). */
export async function url(hutch: Hutch, opts: { id: string; port: number; expiresIn?: number; json: boolean }): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const result = await sandbox.portUrl(opts.port, opts.expiresIn !== undefined ? { expiresInSeconds: opts.expiresIn } : {});
  process.stdout.write(opts.json ? json(result) : `${result.url}\n`);
  return 0;
}

/** `hutch network <id>`: shows the network, or changes the policy / public flag live. */
export async function network(
  hutch: Hutch,
  opts: { id: string; egress?: SandboxEgress; public?: boolean; json: boolean },
): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const change = opts.egress !== undefined || opts.public !== undefined;
  const state = change
    ? await sandbox.setNetwork({
        ...(opts.egress !== undefined ? { egress: opts.egress } : {}),
        ...(opts.public !== undefined ? { public: opts.public } : {}),
      })
    : await sandbox.network();
  process.stdout.write(opts.json ? json(state) : describe(state));
  return 0;
}

function describeEgress(e: SandboxEgress): string {
  if (typeof e === 'string') return e;
  const parts = [`allow ${(e.allow ?? []).join(', ') || '(nothing)'}`];
  if (e.deny && e.deny.length > 0) parts.push(`deny ${e.deny.join(', ')}`);
  return parts.join('; ');
}

function describe(s: SandboxNetworkState): string {
  const lines = [
    `egress:   ${describeEgress(s.egress)}`,
    `ports:    ${s.public ? 'public' : 'private'}${s.publicPorts.length ? ` (public: ${s.publicPorts.join(', ')})` : ''}`,
    `ipv4:     ${s.ipv4 ?? '-'}`,
    `ipv6:     ${s.ipv6 ?? '-'}`,
    `dns:      ${s.dns ?? '-'}`,
  ];
  if (s.cut !== undefined) lines.push(`cut:      ${s.cut} connection(s) the new policy forbids`);
  if (s.dnsLog.length > 0) {
    lines.push('recent DNS queries:');
    for (const q of s.dnsLog.slice(-20)) lines.push(`  ${q.at}  ${q.verdict.padEnd(7)}  ${q.type.padEnd(5)} ${q.name}`);
  }
  return lines.join('\n') + '\n';
}
