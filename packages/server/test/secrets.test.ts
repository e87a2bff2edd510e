import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import pino from 'pino';
import { redactingLogHook, SecretRedaction, StreamRedactor } from '../src/core/secret-redaction.js';
import { SecretCipher } from '../src/core/secret-cipher.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect, sql } from 'kysely';
import { openDatabase } from '../src/store/database.js';
import { migrations } from '../src/store/migrations.js';

// Redaction of injected values (core/secret-redaction.ts) and the sealing of values at rest
// (core/secret-cipher.ts); the end-to-end side is tests/secrets.test.ts.

test('a sandbox redactor hides its values and each line of a multi-line value; short values stay', () => {
  const r = new SecretRedaction();
  r.set('sb1', ['tok-123456', 'line-one\nline-two\nab', 'xyz']);
  r.set('sb2', ['other-value']);
  const redact = r.redactor('sb1');
  assert.equal(redact('a tok-123456 b'), 'a *** b');
  assert.equal(redact('line-one\nline-two\nab'), '***', 'the whole value first');
  assert.equal(redact('got line-two only'), 'got *** only', 'one line of it');
  assert.equal(redact('xyz stays: shorter than 4'), 'xyz stays: shorter than 4');
  assert.equal(redact('other-value'), 'other-value', "another sandbox's values are not this one's");
  assert.equal(r.redactAll('other-value and tok-123456'), '*** and ***');
  assert.equal(r.redactor('unknown')('tok-123456'), 'tok-123456');
  assert.equal(r.redactorFor('unknown'), null);
  assert.equal(r.redactorFor('sb1')?.('x tok-123456'), 'x ***');
  r.forget('sb1');
  assert.equal(r.redactAll('tok-123456 other-value'), 'tok-123456 ***');
  r.forget('sb2');
  assert.equal(r.empty, true);
});

test('a stream redactor finds values split across chunks and holds back only what could start one', () => {
  const value = 'SECRET-abcdef';
  const text = `before ${value} middle ${value}${value} after SECR`;
  for (let size = 1; size <= text.length; size++) {
    const s = new StreamRedactor([value]);
    const out: Buffer[] = [];
    for (let i = 0; i < text.length; i += size) out.push(s.push(Buffer.from(text.slice(i, i + size))));
    out.push(s.end());
    assert.equal(Buffer.concat(out).toString(), 'before *** middle ****** after SECR', `chunks of ${size}`);
  }
  const s = new StreamRedactor([value]);
  assert.equal(s.push(Buffer.from('plain output\n')).toString(), 'plain output\n', 'nothing held back when no value can start');
  assert.equal(s.push(Buffer.from('x SECR')).toString(), 'x ');
  assert.equal(s.end().toString(), 'SECR');
});

test('the log hook redacts messages, nested fields and errors of every line', () => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const r = new SecretRedaction();
  const log = pino({ hooks: { logMethod: redactingLogHook(r) } }, sink);
  log.info({ sandbox: 'sb1', name: 'tok-123456.example' }, 'before any injection tok-123456');
  r.set('sb1', ['tok-123456']);
  log.info({ sandbox: 'sb1', name: 'tok-123456.example', deep: { list: ['x tok-123456'] } }, 'query tok-123456');
  log.child({ reqId: 'r1' }).error({ err: new Error('failed with tok-123456') }, 'request failed');
  log.warn('plain message tok-123456');
  assert.equal(lines.length, 4);
  assert.ok(lines[0]!.includes('tok-123456'), 'nothing to hide before the value is injected');
  for (const line of lines.slice(1)) assert.equal(line.includes('tok-123456'), false, line);
  const second = JSON.parse(lines[1]!) as { name: string; deep: { list: string[] }; msg: string };
  assert.deepEqual([second.name, second.deep.list[0], second.msg], ['***.example', 'x ***', 'query ***']);
  assert.equal((JSON.parse(lines[2]!) as { err: { message: string } }).err.message, 'failed with ***');
});

test('sealed values open only with the same key, tenant and name, and each write has its own nonce', () => {
  const key = randomBytes(32);
  const cipher = new SecretCipher(key);
  const a = cipher.seal('ta', 'token', 'v4lue');
  const b = cipher.seal('ta', 'token', 'v4lue');
  assert.notDeepEqual(a.nonce, b.nonce);
  assert.notDeepEqual(a.ciphertext, b.ciphertext);
  assert.equal(a.ciphertext.includes(Buffer.from('v4lue')), false);
  assert.equal(cipher.open('ta', 'token', a.nonce, a.ciphertext), 'v4lue');
  assert.throws(() => cipher.open('tb', 'token', a.nonce, a.ciphertext), /cannot be decrypted/);
  assert.throws(() => cipher.open('ta', 'other', a.nonce, a.ciphertext), /cannot be decrypted/);
  assert.throws(() => new SecretCipher(randomBytes(32)).open('ta', 'token', a.nonce, a.ciphertext), /cannot be decrypted/);
  const flipped = Buffer.from(a.ciphertext);
  flipped[0]! ^= 1;
  assert.throws(() => cipher.open('ta', 'token', a.nonce, flipped), /cannot be decrypted/);
  assert.equal(new SecretCipher(key).keyId, cipher.keyId);
  assert.notEqual(new SecretCipher(randomBytes(32)).keyId, cipher.keyId);
});

test('a store that ran a later migration (0010) before 0006_secrets existed gets the secrets table when it opens', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hutch-migrations-'));
  try {
    const file = join(dir, 'hutch.db');
    const sqlite = new Database(file);
    const db = new Kysely<unknown>({ dialect: new SqliteDialect({ database: sqlite }) });
    const without = Object.fromEntries(Object.entries(migrations).filter(([name]) => name !== '0006_secrets'));
    const { error } = await new Migrator({ db, provider: { getMigrations: async () => without } }).migrateToLatest();
    assert.equal(error, undefined);
    await db.destroy();
    const opened = await openDatabase(file);
    try {
      const row = await sql<{ n: number }>`SELECT count(*) AS n FROM secrets`.execute(opened.db);
      assert.equal(row.rows[0]?.n, 0);
      const cols = await sql<{ name: string }>`SELECT name FROM pragma_table_info('sandboxes')`.execute(opened.db);
      assert.ok(cols.rows.some((c) => c.name === 'secrets'));
    } finally {
      await opened.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
