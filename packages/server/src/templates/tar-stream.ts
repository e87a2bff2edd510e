/**
 * A push parser for POSIX pax tar streams as GNU tar writes them: headers (with pax records,
 * xattrs and sparse maps) are assembled here, member data passes through as slices. Hand-written
 * because the layer store needs each member's raw header blocks (it re-emits them verbatim to
 * extract only the files its pool lacks) and GNU sparse members, which the npm tar parsers we
 * looked at (tar, tar-stream) do not expose or do not support.
 */

import { internal } from '../core/errors.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'char' | 'block' | 'fifo';

export interface TarMember {
  /** Normalised: no `./`, no trailing `/`; '' is the root. A byte string (latin1). */
  path: string;
  type: EntryType | 'hardlink';
  mode: number;
  uid: number;
  gid: number;
  mtime: string;
  size: number;
  /** Bytes that follow the header (for a sparse file: its map and data extents). */
  dataSize: number;
  sparse: boolean;
  /** Symlink target as stored, or the normalised path a hardlink names. */
  linkTarget: string;
  devMajor: number;
  devMinor: number;
  attrs: Array<[string, string]>;
  /** The member's header blocks as read (pax header included), for verbatim re-emission. */
  raw: Buffer;
}

export interface DataSink {
  data(chunk: Buffer): void;
  end(): void;
}

export const BLOCK = 512;
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
export const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

const TYPES: Record<string, EntryType | 'hardlink'> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'char',
  '4': 'block',
  '5': 'dir',
  '6': 'fifo',
};

/** A push parser: headers are assembled here, member data is passed through as slices. */
export class TarParser {
  private state: 'header' | 'pax' | 'data' | 'skip' | 'end' = 'header';
  private readonly block = Buffer.alloc(BLOCK);
  private fill = 0;
  private left = 0;
  private paxSize = 0;
  private paxBlocks: Buffer[] = [];
  private pendingPax: { raw: Buffer; records: Array<[string, Buffer]> } | null = null;
  private member: TarMember | null = null;
  private sink: DataSink | null = null;
  private zeroBlocks = 0;

  constructor(private readonly onMember: (m: TarMember) => DataSink | null) {}

  push(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && this.state !== 'end') {
      if (this.state === 'data') {
        const n = Math.min(this.left, chunk.length - off);
        this.sink?.data(chunk.subarray(off, off + n));
        off += n;
        this.left -= n;
        if (this.left === 0) this.endMember();
      } else if (this.state === 'skip') {
        const n = Math.min(this.left, chunk.length - off);
        off += n;
        this.left -= n;
        if (this.left === 0) this.state = 'header';
      } else {
        const n = Math.min(BLOCK - this.fill, chunk.length - off);
        chunk.copy(this.block, this.fill, off, off + n);
        this.fill += n;
        off += n;
        if (this.fill < BLOCK) continue;
        this.fill = 0;
        if (this.state === 'header') this.header(Buffer.from(this.block));
        else this.paxBlock(Buffer.from(this.block));
      }
    }
  }

  /** Throws unless the archive ended properly. */
  finish(): void {
    if (this.state !== 'end' && !(this.state === 'header' && this.fill === 0 && this.zeroBlocks > 0)) {
      throw internal('tar: archive ended early');
    }
  }

  private header(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      if (++this.zeroBlocks === 2) this.state = 'end';
      return;
    }
    this.zeroBlocks = 0;
    if (h.toString('latin1', 257, 262) !== 'ustar' || readOctal(h, 148, 8) !== checksum(h)) throw internal('tar: bad header');
    const flag = String.fromCharCode(h[156]!);
    const size = readOctal(h, 124, 12);
    if (flag === 'x') {
      this.paxSize = size;
      this.paxBlocks = [h];
      this.left = size + padding(size);
      if (this.left === 0) this.endPax();
      else this.state = 'pax';
      return;
    }
    const type = TYPES[flag];
    if (!type) throw internal(`tar: unsupported member type ${JSON.stringify(flag)}`);
    const pax = this.pendingPax;
    this.pendingPax = null;
    const member = buildMember(h, type, size, pax);
    this.member = member;
    this.sink = this.onMember(member);
    this.left = member.dataSize;
    if (this.left > 0) this.state = 'data';
    else this.endMember();
  }

  private paxBlock(b: Buffer): void {
    this.paxBlocks.push(b);
    this.left -= BLOCK;
    if (this.left === 0) this.endPax();
  }

  private endPax(): void {
    const raw = Buffer.concat(this.paxBlocks);
    this.pendingPax = { raw, records: parsePax(raw.subarray(BLOCK, BLOCK + this.paxSize)) };
    this.paxBlocks = [];
    this.state = 'header';
  }

  private endMember(): void {
    const sink = this.sink;
    const member = this.member!;
    this.sink = null;
    this.member = null;
    sink?.end();
    this.left = padding(member.dataSize);
    this.state = this.left > 0 ? 'skip' : 'header';
  }
}

function buildMember(h: Buffer, type: EntryType | 'hardlink', headerSize: number, pax: TarParser['pendingPax']): TarMember {
  const records = pax?.records ?? [];
  const rec = new Map(records.map(([k, v]) => [k, v.toString('latin1')]));
  const sparse = rec.get('GNU.sparse.major') === '1';
  if (!sparse && [...rec.keys()].some((k) => k.startsWith('GNU.sparse.'))) throw internal('tar: unsupported sparse format');
  const prefix = readString(h, 345, 155);
  const name = sparse
    ? rec.get('GNU.sparse.name')
    : (rec.get('path') ?? (prefix ? `${prefix}/${readString(h, 0, 100)}` : readString(h, 0, 100)));
  if (name === undefined) throw internal('tar: sparse member without a name');
  const dataSize = rec.has('size') ? Number(rec.get('size')) : headerSize;
  const mtime = rec.get('mtime') ?? String(readOctal(h, 136, 12));
  const link = rec.get('linkpath') ?? readString(h, 157, 100);
  const attrs: Array<[string, string]> = records
    .filter(([k]) => k.startsWith('SCHILY.xattr.') || k.startsWith('SCHILY.acl.'))
    .map(([k, v]): [string, string] => [k.slice('SCHILY.'.length), v.toString('base64')])
    .sort((a, b) => byteOrder(a[0], b[0]));
  return {
    path: normalise(name),
    type,
    mode: readOctal(h, 100, 8) & 0o7777,
    uid: rec.has('uid') ? Number(rec.get('uid')) : readOctal(h, 108, 8),
    gid: rec.has('gid') ? Number(rec.get('gid')) : readOctal(h, 116, 8),
    mtime: nanoseconds(mtime),
    size: sparse ? Number(rec.get('GNU.sparse.realsize')) : dataSize,
    dataSize,
    sparse,
    linkTarget: type === 'hardlink' ? normalise(link) : link,
    devMajor: readOctal(h, 329, 8),
    devMinor: readOctal(h, 337, 8),
    attrs,
    raw: pax ? Buffer.concat([pax.raw, h]) : h,
  };
}

/** `./a/b/` → `a/b`; `./` → ''. Refuses anything that could leave the tree (tar never writes it). */
function normalise(name: string): string {
  const path = name.replace(/^\.\//, '').replace(/\/+$/, '');
  if (path === '.' || path === '') return '';
  if (path.startsWith('/') || path.split('/').some((c) => c === '' || c === '.' || c === '..')) {
    throw internal(`tar: unexpected member name ${printable(name)}`);
  }
  return path;
}

/** pax `sec[.frac]` → integer nanoseconds (decimal). */
function nanoseconds(text: string): string {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text);
  if (!m) throw internal(`tar: bad time ${JSON.stringify(text)}`);
  const ns = BigInt(m[2]!) * 1_000_000_000n + BigInt((m[3] ?? '').slice(0, 9).padEnd(9, '0'));
  return (m[1] ? -ns : ns).toString();
}

function parsePax(data: Buffer): Array<[string, Buffer]> {
  const records: Array<[string, Buffer]> = [];
  let off = 0;
  while (off < data.length) {
    const space = data.indexOf(0x20, off);
    const length = Number(data.toString('latin1', off, space));
    const end = off + length;
    if (space < 0 || !Number.isInteger(length) || length <= 0 || end > data.length || data[end - 1] !== 0x0a)
      throw internal('tar: bad pax record');
    const eq = data.indexOf(0x3d, space);
    if (eq < 0 || eq >= end) throw internal('tar: bad pax record');
    records.push([data.toString('latin1', space + 1, eq), Buffer.from(data.subarray(eq + 1, end - 1))]);
    off = end;
  }
  return records;
}

function readString(h: Buffer, off: number, len: number): string {
  const end = h.indexOf(0, off);
  return h.toString('latin1', off, end >= 0 && end < off + len ? end : off + len);
}

/** Octal, or GNU base-256 for values that do not fit. */
function readOctal(h: Buffer, off: number, len: number): number {
  if ((h[off]! & 0x80) !== 0) {
    let value = BigInt(h[off]! & 0x7f);
    for (let i = 1; i < len; i++) value = (value << 8n) | BigInt(h[off + i]!);
    return Number(value);
  }
  const text = /^[ \0]*([0-7]*)/.exec(h.toString('latin1', off, off + len))![1]!;
  return text === '' ? 0 : parseInt(text, 8);
}

function checksum(h: Buffer): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  return sum;
}

/** Byte order of latin1 path strings (what tar and the layer digest sort by). */
export function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A latin1 byte-string path as readable text for messages. */
export function printable(path: string): string {
  return JSON.stringify(Buffer.from(path, 'latin1').toString('utf8'));
}
