import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Webhook authenticity. GitHub signs the raw request body with HMAC-SHA256
 * (`X-Hub-Signature-256: sha256=<hex>`); GitLab sends the shared secret itself (`X-Gitlab-Token`).
 * Both are checked against every configured secret (two during a rotation), in constant time.
 *
 * Written on node:crypto rather than @octokit/webhooks-methods: that library verifies a string
 * payload, and the signature is over the exact bytes received; re-encoding a Buffer as a string
 * is lossless only for valid UTF-8, which an attacker need not send.
 */

const GITHUB_PREFIX = 'sha256=';

/** Whether `header` is the GitHub signature of `body` under one of `secrets`. */
export function verifyGithubSignature(body: Buffer, header: string | undefined, secrets: readonly string[]): boolean {
  if (!header || !header.startsWith(GITHUB_PREFIX)) return false;
  const hex = header.slice(GITHUB_PREFIX.length);
  if (!/^[0-9a-f]{64}$/i.test(hex)) return false;
  const given = Buffer.from(hex, 'hex');
  let ok = false;
  // Every secret is tried (no early exit), so timing does not tell which one matched.
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    const expected = createHmac('sha256', secret).update(body).digest();
    if (timingSafeEqual(expected, given)) ok = true;
  }
  return ok;
}

/** The signature header GitHub would send for `body` under `secret` (tests and tools). */
export function githubSignature(body: Buffer | string, secret: string): string {
  return GITHUB_PREFIX + createHmac('sha256', secret).update(body).digest('hex');
}

/** Whether `header` equals one of `secrets`, compared in constant time whatever the lengths. */
export function verifyGitlabToken(header: string | undefined, secrets: readonly string[]): boolean {
  if (!header) return false;
  // Hashing first gives equal-length inputs, so neither the comparison nor an early length check
  // leaks how long the secret is.
  const given = createHash('sha256').update(header).digest();
  let ok = false;
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    if (timingSafeEqual(createHash('sha256').update(secret).digest(), given)) ok = true;
  }
  return ok;
}

/**
 * The configured secrets: the option's values (repeated, or comma lists) or else the environment
 * variable's comma list; blanks dropped. Two during a rotation.
 */
export function webhookSecrets(given: string[] | undefined, env: string | undefined): string[] {
  const all = given && given.length > 0 ? given : env ? [env] : [];
  return all
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
