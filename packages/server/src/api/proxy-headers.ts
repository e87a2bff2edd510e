import type http from 'node:http';

/**
 * Header handling shared by the two pass-through proxies (the port ingress and the E2B data
 * plane): hop-by-hop headers (RFC 9110 §7.6.1, plus those a request's Connection header names)
 * belong to one connection and are never forwarded.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** The headers of a request or response without hop-by-hop ones and without `drop`. */
export function endToEndHeaders(
  headers: http.IncomingHttpHeaders,
  options: { drop?: ReadonlySet<string>; keepUpgrade?: boolean } = {},
): http.OutgoingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .toLowerCase()
      .split(',')
      .map((t) => t.trim()),
  );
  const out: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || options.drop?.has(name)) continue;
    if ((HOP_BY_HOP.has(name) || named.has(name)) && !(options.keepUpgrade && name === 'upgrade')) continue;
    out[name] = value;
  }
  return out;
}
