import { isIP } from 'node:net';
import { invalidArgument } from './errors.js';

/**
 * A sandbox's network settings as users state them. `egress` is `none` (no interface at all),
 * `open` (internet via NAT, minus the always-blocked and private ranges) or an allowlist of CIDRs,
 * IPs and domain names with optional deny entries. Validation lives here so every adapter (REST,
 * E2B, CLI) rejects the same inputs with the same messages.
 */
export interface EgressRules {
  allow: string[];
  deny: string[];
}
export type EgressPolicy = 'none' | 'open' | EgressRules;

export interface NetworkSettings {
  egress: EgressPolicy;
  /** Every port is reachable through the server's ingress without a token. */
  public: boolean;
  /** Ports reachable without a token even when `public` is false. */
  publicPorts: number[];
}

export const NETWORK_DEFAULTS: NetworkSettings = { egress: 'none', public: false, publicPorts: [] };
export const MAX_EGRESS_ENTRIES = 256;

export type EgressEntry =
  { kind: 'cidr'; family: 4 | 6; address: string; prefix: number; text: string } | { kind: 'domain'; pattern: string; wildcard: boolean };

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/** Parses one allow/deny entry; `field` names it in the error (e.g. `network.egress.allow[2]`). */
export function parseEgressEntry(raw: string, field: string): EgressEntry {
  const text = raw.trim().toLowerCase();
  if (text.length === 0 || text.length > 253) throw invalidArgument(`${field}: must be a CIDR, an IP or a domain name`);
  const slash = text.indexOf('/');
  const addressPart = slash === -1 ? text : text.slice(0, slash);
  const family = isIP(addressPart);
  if (family === 4 || family === 6) {
    const max = family === 4 ? 32 : 128;
    const prefixText = slash === -1 ? String(max) : text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max)
      throw invalidArgument(`${field}: "${raw}" has an invalid prefix length (0-${max})`);
    const prefix = Number(prefixText);
    return { kind: 'cidr', family, address: addressPart, prefix, text: `${addressPart}/${prefix}` };
  }
  if (slash !== -1) throw invalidArgument(`${field}: "${raw}" is not a valid CIDR`);
  if (text === '*') return { kind: 'domain', pattern: '', wildcard: true };
  const wildcard = text.startsWith('*.');
  const name = (wildcard ? text.slice(2) : text).replace(/\.$/, '');
  const labels = name.split('.');
  if (labels.length < 1 || !labels.every((l) => LABEL.test(l)) || /^\d+$/.test(labels[labels.length - 1] ?? ''))
    throw invalidArgument(`${field}: "${raw}" is neither an IP, a CIDR nor a domain name (like api.example.com or *.example.com)`);
  return { kind: 'domain', pattern: name, wildcard };
}

/** Validates a policy from any adapter; returns it normalised (lower-case, trimmed, deduplicated). */
export function normalizeEgressPolicy(input: unknown, field = 'network.egress'): EgressPolicy {
  if (input === undefined || input === null) return 'none';
  if (input === 'none' || input === 'open') return input;
  if (typeof input === 'string') throw invalidArgument(`${field}: must be "none", "open" or {allow: [...], deny: [...]}`);
  if (typeof input !== 'object' || Array.isArray(input))
    throw invalidArgument(`${field}: must be "none", "open" or {allow: [...], deny: [...]}`);
  const obj = input as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (key !== 'allow' && key !== 'deny') throw invalidArgument(`${field}.${key}: unknown field (expected allow, deny)`);
  }
  const list = (key: 'allow' | 'deny'): string[] => {
    const value = obj[key] ?? [];
    if (!Array.isArray(value)) throw invalidArgument(`${field}.${key}: must be an array of strings`);
    if (value.length > MAX_EGRESS_ENTRIES) throw invalidArgument(`${field}.${key}: at most ${MAX_EGRESS_ENTRIES} entries`);
    const out: string[] = [];
    value.forEach((v, i) => {
      if (typeof v !== 'string') throw invalidArgument(`${field}.${key}[${i}]: must be a string`);
      const entry = parseEgressEntry(v, `${field}.${key}[${i}]`);
      const canonical = entry.kind === 'cidr' ? entry.text : entry.wildcard ? (entry.pattern ? `*.${entry.pattern}` : '*') : entry.pattern;
      if (!out.includes(canonical)) out.push(canonical);
    });
    return out;
  };
  return { allow: list('allow'), deny: list('deny') };
}

const NETWORK_FIELDS = ['egress', 'public', 'publicPorts'];

/**
 * Validates network settings; fields absent from `input` keep their value in `base` (so the same
 * function serves create and the partial PUT /network).
 */
export function normalizeNetworkSettings(input: unknown, base: NetworkSettings = NETWORK_DEFAULTS): NetworkSettings {
  if (input === undefined || input === null) return { ...base, publicPorts: [...base.publicPorts] };
  if (typeof input !== 'object' || Array.isArray(input)) throw invalidArgument('network: must be an object');
  const obj = input as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!NETWORK_FIELDS.includes(key)) throw invalidArgument(`network.${key}: unknown field (expected ${NETWORK_FIELDS.join(', ')})`);
  }
  if (obj.public !== undefined && typeof obj.public !== 'boolean') throw invalidArgument('network.public: must be a boolean');
  let publicPorts = base.publicPorts;
  if (obj.publicPorts !== undefined) {
    if (!Array.isArray(obj.publicPorts) || obj.publicPorts.length > 64)
      throw invalidArgument('network.publicPorts: must be an array of at most 64 ports');
    publicPorts = obj.publicPorts.map((p, i) => {
      if (!Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535)
        throw invalidArgument(`network.publicPorts[${i}]: must be a port number 1-65535`);
      return p as number;
    });
  }
  return {
    egress: obj.egress === undefined ? base.egress : normalizeEgressPolicy(obj.egress),
    public: obj.public === undefined ? base.public : obj.public === true,
    publicPorts: [...new Set(publicPorts)].sort((a, b) => a - b),
  };
}

export function isPortPublic(settings: NetworkSettings, port: number): boolean {
  return settings.public || settings.publicPorts.includes(port);
}

/** The policy's kind, for logs, metrics and benchmarks. */
export function egressMode(policy: EgressPolicy): 'none' | 'open' | 'allowlist' {
  return typeof policy === 'string' ? policy : 'allowlist';
}
