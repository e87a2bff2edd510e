import { readdirSync, readFileSync } from 'node:fs';

/**
 * The Debian mirror debootstrap should use: HUTCH_DEBIAN_MIRROR, else the host's own apt
 * configuration (deb822 .sources files or sources.list), so we use whatever archive this machine
 * is allowed to reach rather than naming one.
 */
export function debianMirror(): string | null {
  const fromEnv = process.env.HUTCH_DEBIAN_MIRROR;
  if (fromEnv) return fromEnv;
  const texts: string[] = [];
  try {
    for (const f of readdirSync('/etc/apt/sources.list.d')) {
      if (f.endsWith('.sources') || f.endsWith('.list')) texts.push(readFileSync(`/etc/apt/sources.list.d/${f}`, 'utf8'));
    }
  } catch {
    /* no sources.list.d */
  }
  try {
    texts.push(readFileSync('/etc/apt/sources.list', 'utf8'));
  } catch {
    /* no sources.list */
  }
  for (const text of texts) {
    for (const stanza of text.split(/\n\s*\n/)) {
      const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
      const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1] ?? '';
      if (uris && /\bbookworm\b(?!-)/.test(suites) && !uris.includes('security')) return uris;
    }
    for (const line of text.split('\n')) {
      const m = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line.trim());
      if (m && !m[1]!.includes('security')) return m[1]!;
    }
  }
  return null;
}
