import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { InvalidArgumentError, NotFoundError, type Sandbox } from '../../src/index.js';
import { startServer, type TestServer } from '../server.js';

let server: TestServer;
let sb: Sandbox;
before(async () => {
  server = await startServer();
  sb = await server.client().sandboxes.create({ template: 'minimal' });
});
after(async () => {
  await sb?.kill();
  await server?.stop();
});

test('text round trip, UTF-8 intact, parents created, entry returned', async () => {
  const text = 'héllo wörld — €\nline 2\n';
  const entry = await sb.files.write('/tmp/deep/er/hello.txt', text);
  assert.equal(entry.type, 'file');
  assert.equal(entry.size, Buffer.byteLength(text));
  assert.equal(entry.name, 'hello.txt');
  assert.equal(await sb.files.read('/tmp/deep/er/hello.txt'), text);
  assert.equal((await sb.exec('cat /tmp/deep/er/hello.txt')).stdout, text);
});

test('a 3 MiB random binary file round-trips byte for byte', async () => {
  const data = randomBytes(3 * 1024 * 1024);
  await sb.files.write('/tmp/random.bin', data);
  const back = await sb.files.readBytes('/tmp/random.bin');
  assert.equal(back.byteLength, data.byteLength);
  assert.ok(Buffer.from(back).equals(data), 'bytes differ');
  const st = await sb.files.stat('/tmp/random.bin');
  assert.equal(st.size, data.byteLength);
  // The sandbox sees the same bytes: compare a checksum computed inside.
  const sum = (await sb.exec('md5sum /tmp/random.bin')).stdout.split(' ')[0];
  const { createHash } = await import('node:crypto');
  assert.equal(sum, createHash('md5').update(data).digest('hex'));
});

test('empty files and files written from inside the sandbox', async () => {
  await sb.files.write('/tmp/empty', new Uint8Array());
  assert.equal((await sb.files.readBytes('/tmp/empty')).byteLength, 0);
  await sb.exec("printf '\\000\\001\\377' > /tmp/three");
  assert.deepEqual([...(await sb.files.readBytes('/tmp/three'))], [0, 1, 255]);
});

test('relative paths resolve against the user home (where exec starts)', async () => {
  await sb.files.write('relative.txt', 'at home');
  assert.equal((await sb.exec('cat relative.txt')).stdout, 'at home');
  const st = await sb.files.stat('relative.txt');
  assert.ok(st.path.startsWith('/'), `stat returns an absolute path, got ${st.path}`);
});

test('list, stat, exists, mkdir, rename, remove', async () => {
  await sb.files.mkdir('/tmp/tree/sub');
  await sb.files.write('/tmp/tree/a.txt', 'a');
  await sb.files.write('/tmp/tree/sub/b.txt', 'bb');

  const top = await sb.files.list('/tmp/tree');
  assert.deepEqual(top.map((e) => e.name).sort(), ['a.txt', 'sub']);
  assert.equal(top.find((e) => e.name === 'sub')!.type, 'dir');
  const deep = await sb.files.list('/tmp/tree', { depth: 2 });
  assert.ok(deep.some((e) => e.path === '/tmp/tree/sub/b.txt' && e.size === 2));

  const st = await sb.files.stat('/tmp/tree/a.txt');
  assert.equal(st.type, 'file');
  assert.equal(st.path, '/tmp/tree/a.txt');
  assert.equal(st.owner, 'root');

  assert.equal(await sb.files.exists('/tmp/tree/a.txt'), true);
  assert.equal(await sb.files.exists('/tmp/tree/nope'), false);

  const moved = await sb.files.rename('/tmp/tree/a.txt', '/tmp/tree/sub/c.txt');
  assert.equal(moved.path, '/tmp/tree/sub/c.txt');
  assert.equal(await sb.files.exists('/tmp/tree/a.txt'), false);
  assert.equal(await sb.files.read('/tmp/tree/sub/c.txt'), 'a');

  await sb.files.remove('/tmp/tree');
  assert.equal(await sb.files.exists('/tmp/tree'), false);
});

test('errors: a missing file is NotFoundError, a directory is InvalidArgumentError', async () => {
  await assert.rejects(sb.files.read('/tmp/does/not/exist'), NotFoundError);
  await assert.rejects(sb.files.stat('/tmp/does/not/exist'), NotFoundError);
  await assert.rejects(sb.files.readBytes('/tmp'), InvalidArgumentError);
});
