/**
 * A Kubernetes quantity ("2", "500m", "8Gi", "16384Ki") as a number of units. By hand: the
 * client's quantityToScalar is not exported from its package index.
 */
export function quantity(text: string): number {
  const match = /^([0-9.]+)([a-zA-Z]*)$/.exec(text.trim());
  if (!match) return 0;
  const factor: Record<string, number> = {
    '': 1,
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return Number(match[1]) * (factor[match[2]!] ?? 1);
}
