import type { Expiry } from './environment-lifecycle.js';
import type { EnvironmentRecord } from './environment.js';
import type { CommitState, DeliveryStore, GitHost, PreviewRecord, PreviewStore } from './hooks.js';
import { KeyedMutex } from './keyed-mutex.js';
import type { Logger } from './logger.js';

/** One report: a commit status (none: the comment only), the comment's headline and the environment it lists. */
export interface PreviewReport {
  status: { sha: string; state: CommitState; description: string; url: string | null } | null;
  headline: string;
  env: EnvironmentRecord | null;
}

/**
 * What a preview tells its git host: a commit status and one pull request comment, found again by
 * a hidden marker and edited in place (its id kept on the preview). Nothing here may fail a
 * deployment: problems are logged and recorded on the delivery that caused the report.
 */
export class PreviewFeedback {
  /** One report at a time per preview: two would both create the comment. */
  private readonly locks = new KeyedMutex();

  constructor(
    private readonly host: GitHost,
    private readonly store: PreviewStore,
    private readonly deliveries: DeliveryStore,
    private readonly log: Logger,
    private readonly keepLabel: string,
    /** When the environment sleeps and is deleted by its TTLs (null: not known). */
    private readonly expiry: (env: EnvironmentRecord) => Expiry | null,
  ) {}

  private marker(key: string): string {
    return `<!-- hutch-preview:${key} -->`;
  }

  /** The pull request comment: state, commit, each service's state and URL, and when it goes away. */
  private comment(p: PreviewRecord, headline: string, env: EnvironmentRecord | null): string {
    const lines = [`### Hutch preview environment`, '', `**${headline}**`, ''];
    if (env) {
      lines.push(`Environment \`${env.id}\`${env.url ? ` — ${env.url}` : ''}`, '', '| service | state | URL |', '|---|---|---|');
      for (const s of env.services) lines.push(`| ${s.name} | ${s.state} | ${s.routes[0]?.url ?? ''} |`);
      lines.push('');
    }
    const expiry = env ? this.expiry(env) : null;
    lines.push(
      p.keep || env?.keep
        ? `Kept (label \`${this.keepLabel}\`): not destroyed when the pull request closes.`
        : `Expires: destroyed when the pull request is closed or merged${expiry?.deletesAt ? `, or at ${expiry.deletesAt.toISOString()} if idle until then` : ''}${expiry?.sleepsAt ? `; sleeps at ${expiry.sleepsAt.toISOString()} without requests (wakes on the next one)` : ''}.`,
    );
    return lines.join('\n');
  }

  /** Commit status (when given) and comment (pull requests); failures are logged and recorded on the delivery. */
  async report(p: PreviewRecord, r: PreviewReport, deliveryId: number | null): Promise<void> {
    if (!this.host.configured(p.provider)) return;
    await this.locks.run(p.key, () => this.send(p, r, deliveryId));
  }

  private async send(p: PreviewRecord, r: PreviewReport, deliveryId: number | null): Promise<void> {
    const repo = { provider: p.provider, repoId: p.repoId, repository: p.repository };
    const problems: string[] = [];
    if (r.status)
      await this.host
        .setStatus(repo, r.status.sha, r.status.state, r.status.description, r.status.url)
        .catch((err: unknown) => problems.push(`status: ${(err as Error).message}`));
    if (p.number !== null) {
      const current = (await this.store.get(p.key)) ?? p;
      await this.host
        .upsertComment(repo, p.number, this.marker(p.key), this.comment(p, r.headline, r.env), current.commentId)
        .then(async (id) => {
          if (id !== current.commentId) await this.store.update(p.key, { commentId: id });
        })
        .catch((err: unknown) => problems.push(`comment: ${(err as Error).message}`));
    }
    if (problems.length === 0) return;
    this.log.warn({ preview: p.key, problems }, 'preview feedback failed');
    if (deliveryId !== null)
      await this.deliveries.update(deliveryId, { feedback: problems.join('; ').slice(0, 1000) }).catch(() => undefined);
  }
}
