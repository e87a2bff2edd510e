/**
 * Pure parsers the egress proxy uses to learn which name a sandbox's connection is meant for,
 * before any byte goes upstream: the SNI of a TLS ClientHello (port 443) and the Host of an HTTP/1.x
 * request head (port 80). Both take everything received so far and answer `need-more` until they
 * can decide; both give up (`invalid`) past {@link MAX_SNIFF_BYTES}.
 *
 * The ClientHello parser is hand-written on purpose: no well-kept npm library does only this (the
 * candidates are unmaintained or pull in a whole TLS stack), and the format is small and stable
 * (RFC 8446 §4.1.2, RFC 6066 §3). It reads, never trusts: every length is checked against what is
 * actually there.
 */

/** How much of a connection's start the sniffers look at, at most. */
export const MAX_SNIFF_BYTES = 16 * 1024;

export type TlsSniffResult = { status: 'need-more' } | { status: 'ok'; serverName: string | null } | { status: 'invalid' };
export type HttpSniffResult = { status: 'need-more' } | { status: 'ok'; host: string | null } | { status: 'invalid' };

const NEED_MORE = { status: 'need-more' } as const;
const INVALID = { status: 'invalid' } as const;

const TLS_RECORD_HANDSHAKE = 0x16;
const TLS_HANDSHAKE_CLIENT_HELLO = 1;
const TLS_EXT_SERVER_NAME = 0;
const SNI_HOST_NAME = 0;
/** A TLSPlaintext fragment is at most 2^14 bytes (RFC 8446 §5.1). */
const TLS_MAX_FRAGMENT = 16 * 1024;

/**
 * Finds the server_name (SNI host_name) in the ClientHello that starts `buf`. The handshake message
 * may span several handshake records, and the records may arrive split across reads.
 * `ok` with `serverName: null` means a well-formed ClientHello without SNI. The name is returned as
 * sent (not lower-cased or validated: that is the caller's job).
 */
export function parseTlsClientHelloSni(buf: Buffer): TlsSniffResult {
  const incomplete = (): TlsSniffResult => (buf.length >= MAX_SNIFF_BYTES ? INVALID : NEED_MORE);
  if (buf.length === 0) return NEED_MORE;
  if (buf[0] !== TLS_RECORD_HANDSHAKE) return INVALID;
  if (buf.length >= 2 && buf[1] !== 3) return INVALID; // legacy_record_version major is always 3
  if (buf.length >= 6 && buf[5] !== TLS_HANDSHAKE_CLIENT_HELLO) return INVALID; // first handshake message

  // Usually the first record holds the handshake header: refuse a wrong type or size early.
  if (buf.length >= 9 && buf.readUInt16BE(3) >= 4) {
    if (buf[5] !== TLS_HANDSHAKE_CLIENT_HELLO || 4 + buf.readUIntBE(6, 3) + 5 > MAX_SNIFF_BYTES) return INVALID;
  }

  // Reassemble the handshake message from as many records as it takes.
  const fragments: Buffer[] = [];
  let handshakeBytes = 0;
  let messageLength = -1; // handshake header (4) + body, once known
  let off = 0;
  for (;;) {
    if (buf.length - off < 5) return incomplete();
    if (buf[off] !== TLS_RECORD_HANDSHAKE || buf[off + 1] !== 3) return INVALID;
    const recordLength = buf.readUInt16BE(off + 3);
    if (recordLength === 0 || recordLength > TLS_MAX_FRAGMENT) return INVALID;
    if (buf.length - off - 5 < recordLength) return incomplete();
    fragments.push(buf.subarray(off + 5, off + 5 + recordLength));
    handshakeBytes += recordLength;
    off += 5 + recordLength;
    if (messageLength < 0 && handshakeBytes >= 4) {
      const head = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
      if (head[0] !== TLS_HANDSHAKE_CLIENT_HELLO) return INVALID;
      messageLength = 4 + head.readUIntBE(1, 3);
      // The whole message plus at least one record header must fit in the sniff budget.
      if (messageLength + 5 > MAX_SNIFF_BYTES) return INVALID;
    }
    if (messageLength >= 0 && handshakeBytes >= messageLength) break;
  }
  const message = fragments.length === 1 ? fragments[0]! : Buffer.concat(fragments);
  return parseClientHelloBody(message.subarray(4, messageLength));
}

/** ClientHello body: version, random, session id, cipher suites, compression, extensions. */
function parseClientHelloBody(body: Buffer): TlsSniffResult {
  let p = 2 + 32; // legacy_version, random
  if (body.length < p + 1) return INVALID;
  const sessionIdLength = body[p]!;
  if (sessionIdLength > 32) return INVALID;
  p += 1 + sessionIdLength;
  if (body.length < p + 2) return INVALID;
  const cipherSuitesLength = body.readUInt16BE(p);
  if (cipherSuitesLength < 2 || cipherSuitesLength % 2 !== 0) return INVALID;
  p += 2 + cipherSuitesLength;
  if (body.length < p + 1) return INVALID;
  const compressionLength = body[p]!;
  if (compressionLength < 1) return INVALID;
  p += 1 + compressionLength;
  if (body.length < p) return INVALID;
  if (body.length === p) return { status: 'ok', serverName: null }; // no extensions at all
  if (body.length < p + 2) return INVALID;
  const extensionsLength = body.readUInt16BE(p);
  p += 2;
  if (body.length - p !== extensionsLength) return INVALID;

  let serverName: string | null = null;
  let sawServerName = false;
  while (p < body.length) {
    if (body.length - p < 4) return INVALID;
    const type = body.readUInt16BE(p);
    const length = body.readUInt16BE(p + 2);
    p += 4;
    if (body.length - p < length) return INVALID;
    if (type === TLS_EXT_SERVER_NAME) {
      if (sawServerName) return INVALID; // an extension type appears at most once
      sawServerName = true;
      const parsed = parseServerNameExtension(body.subarray(p, p + length));
      if (parsed === undefined) return INVALID;
      serverName = parsed;
    }
    p += length;
  }
  return { status: 'ok', serverName };
}

/** ServerNameList → the host_name, null when the list has none, undefined when malformed. */
function parseServerNameExtension(ext: Buffer): string | null | undefined {
  if (ext.length === 0) return null; // allowed in a ServerHello; tolerate it here as "no name"
  if (ext.length < 2) return undefined;
  const listLength = ext.readUInt16BE(0);
  if (listLength !== ext.length - 2) return undefined;
  let p = 2;
  let hostName: string | null = null;
  while (p < ext.length) {
    if (ext.length - p < 3) return undefined;
    const nameType = ext[p]!;
    const nameLength = ext.readUInt16BE(p + 1);
    p += 3;
    if (ext.length - p < nameLength) return undefined;
    if (nameType === SNI_HOST_NAME) {
      if (hostName !== null || nameLength === 0) return undefined; // one host_name, not empty
      hostName = ext.toString('latin1', p, p + nameLength);
    }
    p += nameLength;
  }
  return hostName;
}

// --- HTTP/1.x ------------------------------------------------------------------------------------

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/\d\.\d$/;
const HEADER_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*(.*?)[ \t]*$/;
const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');

/**
 * Finds the Host an HTTP/1.x request head names: the authority of an absolute-form request target
 * if there is one (it must then agree with any Host header), else the Host header (matched
 * case-insensitively). The port is stripped and an IPv6 literal loses its brackets. `ok` with
 * `host: null` means a well-formed head without a Host (HTTP/1.0) or with an empty one. More than
 * one Host header, obs-folded lines and control characters make the head `invalid`.
 */
export function parseHttpHost(buf: Buffer): HttpSniffResult {
  const end = buf.indexOf(CRLFCRLF);
  if (end < 0 || end + 4 > MAX_SNIFF_BYTES) {
    if (buf.length >= MAX_SNIFF_BYTES) return INVALID;
    return looksLikeRequestStart(buf) ? NEED_MORE : INVALID;
  }
  const lines = buf.toString('latin1', 0, end).split('\r\n');
  const requestLine = REQUEST_LINE.exec(lines[0]!);
  if (!requestLine) return INVALID;
  const target = requestLine[2]!;

  let headerHost: string | null | undefined; // undefined: no Host header
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (hasControlChars(line)) return INVALID;
    const header = HEADER_LINE.exec(line);
    if (!header) return INVALID; // includes obs-fold continuation lines and "Name : value"
    if (header[1]!.toLowerCase() !== 'host') continue;
    if (headerHost !== undefined) return INVALID; // two Host headers: which one would upstream use?
    const host = parseAuthorityHost(header[2]!);
    if (host === undefined) return INVALID;
    headerHost = host;
  }

  if (/^https?:\/\//i.test(target)) {
    const rest = target.slice(target.indexOf('//') + 2);
    const authority = rest.split(/[/?#]/, 1)[0]!;
    const host = parseAuthorityHost(authority);
    if (host === undefined || host === null) return INVALID;
    if (headerHost !== undefined && (headerHost === null || headerHost.toLowerCase() !== host.toLowerCase())) return INVALID;
    return { status: 'ok', host };
  }
  return { status: 'ok', host: headerHost ?? null };
}

/** Whether an incomplete head can still become a request: a method token, then printable bytes. */
function looksLikeRequestStart(buf: Buffer): boolean {
  const firstLineEnd = buf.indexOf('\r\n');
  // A trailing CR may be the first half of the line's CRLF.
  const upTo = firstLineEnd >= 0 ? firstLineEnd : buf[buf.length - 1] === 0x0d ? buf.length - 1 : buf.length;
  const firstLine = buf.toString('latin1', 0, upTo);
  if (hasControlChars(firstLine)) return false;
  const space = firstLine.indexOf(' ');
  const method = space < 0 ? firstLine : firstLine.slice(0, space);
  if (method.length > 0 && !TOKEN.test(method)) return false;
  if (space === 0) return false;
  if (firstLineEnd >= 0 && !REQUEST_LINE.test(firstLine)) return false;
  return true;
}

function hasControlChars(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

/**
 * `host[:port]` or `[v6]:port` → the host (brackets stripped); null when empty; undefined when it
 * is not a plausible authority (userinfo, several colons outside brackets, a non-numeric port...).
 */
function parseAuthorityHost(value: string): string | null | undefined {
  if (value === '') return null;
  if (/[\s@/\\?#]/.test(value)) return undefined;
  let host: string;
  let port: string | undefined;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return undefined;
    host = value.slice(1, close);
    const after = value.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return undefined;
      port = after.slice(1);
    }
    if (host === '' || host.includes('[') || host.includes(']')) return undefined;
  } else {
    const parts = value.split(':');
    if (parts.length > 2) return undefined;
    host = parts[0]!;
    port = parts[1];
    if (host === '' || host.includes('[') || host.includes(']')) return undefined;
  }
  if (port !== undefined && !/^\d{0,5}$/.test(port)) return undefined;
  return host;
}
