import { invalidArgument } from '../core/errors.js';
import { parseDuration } from './normalize.js';

/** The longest TTL accepted (a year): beyond that, `keep` says what is meant. */
export const MAX_TTL_MS = 365 * 24 * 3_600_000;

/**
 * An environment TTL in milliseconds; 0 means off. Accepts Compose durations (`30m`, `1h30m`,
 * `90s`), whole days (`3d`), and `0` / `off`. Days are not a Compose unit but are what people
 * write for deletion TTLs, so they are accepted here only.
 */
export function parseTtl(text: unknown, field: string): number {
  if (typeof text !== 'string' && typeof text !== 'number')
    throw invalidArgument(`${field}: must be a duration like "30m", "72h" or "3d" ("off" or "0" disables)`);
  const s = String(text).trim().toLowerCase();
  if (s === 'off' || s === '0') return 0;
  const days = /^(\d{1,3})d$/.exec(s);
  const ms = days ? Number(days[1]) * 24 * 3_600_000 : parseDuration(s, field);
  if (ms < 1000) throw invalidArgument(`${field}: "${s}" is shorter than a second ("off" or "0" disables)`);
  if (ms > MAX_TTL_MS) throw invalidArgument(`${field}: "${s}" is longer than a year (pin it with keep instead)`);
  return ms;
}

/** A TTL for messages and listings: `30m`, `72h`, `off`. */
export function formatTtl(ms: number | null): string {
  if (ms === null || ms === 0) return 'off';
  for (const [unit, size] of [
    ['d', 24 * 3_600_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const)
    if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
