import type { CommitState, GitHost, HookProvider, HostRepo } from '../core/hooks.js';

/**
 * GitHub and GitLab REST calls for preview feedback and the janitor, on `fetch`. Written by hand
 * rather than with @octokit/rest and @gitbeaker/rest: six endpoints in all, each a single JSON
 * request, and both libraries would add large dependency trees for them; the base URL of each is
 * configurable (GitHub Enterprise, self-managed GitLab, a recording server in tests).
 */
export interface GitHostSettings {
  github: { apiUrl: string; token: string | null };
  gitlab: { apiUrl: string; token: string | null };
  /** Per request (default 15 s). */
  timeoutMs?: number;
}

export const GITHUB_API_URL = 'https://api.github.com';
export const GITLAB_API_URL = 'https://gitlab.com/api/v4';
/** The commit status context (GitHub) / name (GitLab). */
export const STATUS_CONTEXT = 'hutch/preview';
const PER_PAGE = 100;
const MAX_PAGES = 10;

class HostError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export class GitHostClient implements GitHost {
  constructor(private readonly settings: GitHostSettings) {}

  configured(provider: HookProvider): boolean {
    return this.settings[provider].token !== null;
  }

  private async call<T>(provider: HookProvider, method: string, path: string, body?: unknown): Promise<T> {
    const { apiUrl, token } = this.settings[provider];
    if (token === null) throw new Error(`no ${provider} token configured (--${provider}-token-file)`);
    const headers: Record<string, string> =
      provider === 'github'
        ? {
            authorization: `Bearer ${token}`,
            accept: 'application/vnd.github+json',
            'x-github-api-version': '2022-11-28',
            'user-agent': 'hutch',
          }
        : { 'private-token': token, 'user-agent': 'hutch' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${apiUrl.replace(/\/+$/, '')}${path}`, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(this.settings.timeoutMs ?? 15_000),
    });
    const text = await res.text();
    if (!res.ok) throw new HostError(res.status, `${provider} ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
    return (text ? JSON.parse(text) : null) as T;
  }

  async setStatus(repo: HostRepo, sha: string, state: CommitState, description: string, url: string | null): Promise<void> {
    if (repo.provider === 'github') {
      await this.call('github', 'POST', `/repos/${repo.repository}/statuses/${sha}`, {
        state,
        description: description.slice(0, 140),
        context: STATUS_CONTEXT,
        ...(url ? { target_url: url } : {}),
      });
      return;
    }
    await this.call('gitlab', 'POST', `/projects/${encodeURIComponent(repo.repoId)}/statuses/${sha}`, {
      state: state === 'failure' ? 'failed' : state === 'pending' ? 'running' : 'success',
      name: STATUS_CONTEXT,
      description: description.slice(0, 255),
      ...(url ? { target_url: url } : {}),
    });
  }

  async upsertComment(repo: HostRepo, number: number, marker: string, body: string, knownId: string | null): Promise<string> {
    const text = `${marker}\n${body}`;
    const github = repo.provider === 'github';
    const base = github
      ? `/repos/${repo.repository}/issues`
      : `/projects/${encodeURIComponent(repo.repoId)}/merge_requests/${number}/notes`;
    const edit = async (id: string): Promise<string> => {
      if (github) await this.call('github', 'PATCH', `${base}/comments/${id}`, { body: text });
      else await this.call('gitlab', 'PUT', `${base}/${id}`, { body: text });
      return id;
    };
    if (knownId !== null) {
      try {
        return await edit(knownId);
      } catch (err) {
        // Deleted by someone: find or make another.
        if (!(err instanceof HostError && err.status === 404)) throw err;
      }
    }
    for (let page = 1; page <= MAX_PAGES; page++) {
      const list = await this.call<Array<{ id: number; body: string }>>(
        repo.provider,
        'GET',
        github ? `${base}/${number}/comments?per_page=${PER_PAGE}&page=${page}` : `${base}?per_page=${PER_PAGE}&page=${page}`,
      );
      const mine = list.find((c) => typeof c.body === 'string' && c.body.includes(marker));
      if (mine) return edit(String(mine.id));
      if (list.length < PER_PAGE) break;
    }
    const created = github
      ? await this.call<{ id: number }>('github', 'POST', `${base}/${number}/comments`, { body: text })
      : await this.call<{ id: number }>('gitlab', 'POST', base, { body: text });
    return String(created.id);
  }

  async pullState(repo: HostRepo, number: number): Promise<'open' | 'closed' | 'unknown'> {
    try {
      if (repo.provider === 'github') {
        const pr = await this.call<{ state: string }>('github', 'GET', `/repos/${repo.repository}/pulls/${number}`);
        return pr.state === 'open' ? 'open' : 'closed';
      }
      const mr = await this.call<{ state: string }>(
        'gitlab',
        'GET',
        `/projects/${encodeURIComponent(repo.repoId)}/merge_requests/${number}`,
      );
      return mr.state === 'opened' ? 'open' : 'closed';
    } catch (err) {
      if (err instanceof HostError && err.status === 404) return 'unknown';
      throw err;
    }
  }
}
