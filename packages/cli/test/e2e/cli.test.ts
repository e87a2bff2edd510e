import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLI_MAIN, startServer, type TestServer } from '../../../sdk/test/server.js';

let server: TestServer;
let work: string;
before(async () => {
  server = await startServer();
  work = await mkdtemp(join(tmpdir(), 'hutch-cli-test-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
  await server?.stop();
});

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs the built CLI against the test server; stdin gets `input` and is then closed. */
function hutch(args: string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { env: { ...server.env(), ...opts.env } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (c: Buffer) => out.push(c));
    child.stderr.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
    child.stdin.end(opts.input ?? '');
  });
}

function ok(r: Run, what: string): Run {
  assert.equal(r.code, 0, `${what} failed (${r.code}): ${r.stderr}`);
  return r;
}

describe('hutch against a real server', () => {
  let id: string;
  const label = randomUUID();
  before(async () => {
    const r = ok(await hutch(['create', '--template', 'minimal', '--metadata', `suite=${label}`, '--env', 'GREETING=hi']), 'create');
    id = r.stdout.toString().trim();
    assert.match(id, /^[a-z0-9]{20}$/, 'create prints only the id on stdout');
  });
  after(async () => {
    if (id) await hutch(['rm', id]);
  });

  test('info and template ls', async () => {
    const info = JSON.parse(ok(await hutch(['info', '--json']), 'info').stdout.toString());
    assert.ok(info.tiers.container);
    assert.match(ok(await hutch(['info']), 'info').stdout.toString(), /container/);
    const templates = JSON.parse(ok(await hutch(['template', 'ls', '--json']), 'template ls').stdout.toString());
    assert.ok(templates.some((t: { name: string }) => t.name === 'minimal'));
    assert.match(ok(await hutch(['template', 'ls']), 'template ls').stdout.toString(), /^NAME\s+STATE/);
  });

  test('ls, get', async () => {
    const listed = JSON.parse(ok(await hutch(['ls', '--metadata', `suite=${label}`, '--json']), 'ls').stdout.toString());
    assert.deepEqual(
      listed.map((s: { id: string }) => s.id),
      [id],
    );
    const table = ok(await hutch(['ls', '--state', 'running']), 'ls').stdout.toString();
    assert.match(table, /^ID\s+STATE/);
    assert.ok(table.includes(id));
    const got = JSON.parse(ok(await hutch(['get', id, '--json']), 'get').stdout.toString());
    assert.equal(got.id, id);
    assert.equal(got.template, 'minimal');
    assert.match(ok(await hutch(['get', id]), 'get').stdout.toString(), /state:\s+running/);
  });

  test('exec: output, exit codes, shell vs argv, signals', async () => {
    const a = await hutch(['exec', id, '--', 'echo $GREETING; echo oops >&2; exit 3']);
    assert.equal(a.code, 3);
    assert.equal(a.stdout.toString(), 'hi\n');
    assert.equal(a.stderr, 'oops\n');
    assert.equal((await hutch(['exec', id, '--', 'echo $((1+2))'])).stdout.toString(), '3\n');
    assert.equal((await hutch(['exec', id, '--', 'echo', '$((1+2))'])).stdout.toString(), '$((1+2))\n');
    assert.equal((await hutch(['exec', id, '--', 'sh', '-c', 'kill -9 $$'])).code, 137);
    const env = await hutch(['exec', id, '--cwd', '/tmp', '--env', 'X=1', '--', 'echo $X $(pwd)']);
    assert.equal(env.stdout.toString(), '1 /tmp\n');
    const limited = await hutch(['exec', id, '--timeout-ms', '300', '--', 'sleep', '20']);
    assert.equal(limited.code, 124);
    assert.match(limited.stderr, /time limit/);
  });

  test('exec forwards stdin when it is not a terminal; --no-stdin does not', async () => {
    const r = await hutch(['exec', id, '--', 'cat'], { input: 'line one\nline two\n' });
    assert.equal(r.code, 0);
    assert.equal(r.stdout.toString(), 'line one\nline two\n');
    const wc = await hutch(['exec', id, '--', 'wc', '-c'], { input: randomBytes(200_000) });
    assert.equal(wc.stdout.toString().trim(), '200000');
    const none = await hutch(['exec', id, '--no-stdin', '--', 'cat'], { input: 'ignored' });
    assert.equal(none.code, 0);
    assert.equal(none.stdout.toString(), '');
  });

  test('cp both ways is byte-exact (3 MiB random), with stdin/stdout and directories', async () => {
    const data = randomBytes(3 * 1024 * 1024);
    const local = join(work, 'random.bin');
    await writeFile(local, data);
    ok(await hutch(['cp', local, `${id}:/tmp/random.bin`]), 'upload');
    ok(await hutch(['cp', `${id}:/tmp/random.bin`, join(work, 'back.bin')]), 'download');
    assert.ok((await readFile(join(work, 'back.bin'))).equals(data));
    // Into a directory: keeps the source name.
    ok(await hutch(['cp', `${id}:/tmp/random.bin`, work + '/']), 'download to dir');
    assert.ok((await readFile(join(work, 'random.bin'))).equals(data));
    ok(await hutch(['exec', id, '--', 'mkdir -p /tmp/dir']), 'mkdir');
    ok(await hutch(['cp', local, `${id}:/tmp/dir`]), 'upload to dir');
    // exec streams binary stdout exactly.
    const cat = await hutch(['exec', id, '--', 'cat', '/tmp/dir/random.bin']);
    assert.equal(cat.code, 0);
    assert.ok(cat.stdout.equals(data), 'exec stdout is byte-exact');
    // stdin → sandbox → stdout.
    ok(await hutch(['cp', '-', `${id}:/tmp/from-stdin.txt`], { input: 'via stdin ✓' }), 'upload stdin');
    const back = ok(await hutch(['cp', `${id}:/tmp/from-stdin.txt`, '-']), 'download stdout');
    assert.equal(back.stdout.toString(), 'via stdin ✓');
    const missing = await hutch(['cp', `${id}:/tmp/nope`, join(work, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^hutch: /);
  });

  test('shell runs an interactive terminal (input piped)', async () => {
    const r = await hutch(['shell', id], { input: 'echo $((6*7))\nexit 0\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /(^|\n)42\r?\n/);
  });

  test('timeout sets a new expiry', async () => {
    const r = ok(await hutch(['timeout', id, '900', '--json']), 'timeout');
    const info = JSON.parse(r.stdout.toString());
    assert.ok(Math.abs(Date.parse(info.expiresAt) - (Date.now() + 900_000)) < 30_000);
  });
});

describe('run and rm', () => {
  test('run creates, streams, exits with the code, and deletes', async () => {
    const label = randomUUID();
    const r = await hutch(['run', '--template', 'minimal', '--metadata', `run=${label}`, '--', 'echo hi; echo err >&2; exit 5']);
    assert.equal(r.code, 5, r.stderr);
    assert.equal(r.stdout.toString(), 'hi\n');
    assert.equal(r.stderr, 'err\n');
    const left = JSON.parse(ok(await hutch(['ls', '--metadata', `run=${label}`, '--json']), 'ls').stdout.toString());
    assert.deepEqual(
      left.filter((s: { state: string }) => s.state !== 'deleted'),
      [],
    );
  });

  test('run deletes the sandbox on Ctrl-C too', async () => {
    const label = randomUUID();
    const child = spawn(
      process.execPath,
      [CLI_MAIN, 'run', '--template', 'minimal', '--metadata', `run=${label}`, '--', 'echo started; sleep 60'],
      {
        env: server.env(),
      },
    );
    child.stdin.end();
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    await new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('started') && resolve()));
    child.kill('SIGINT');
    setTimeout(() => child.kill('SIGINT'), 2000).unref(); // the second Ctrl-C stops waiting
    const code = await exited;
    assert.ok(code === 130 || code === 143 || code === 137, `exit ${code}`);
    const left = JSON.parse(ok(await hutch(['ls', '--metadata', `run=${label}`, '--json']), 'ls').stdout.toString());
    assert.deepEqual(
      left.filter((s: { state: string }) => s.state !== 'deleted'),
      [],
    );
  });

  test('rm prints deleted ids; unknown ids and errors exit 1 with "hutch:" and no stack', async () => {
    const id = ok(await hutch(['create', '--template', 'minimal']), 'create')
      .stdout.toString()
      .trim();
    const r = await hutch(['rm', id]);
    assert.equal(r.code, 0);
    assert.equal(r.stdout.toString(), `${id}\n`);
    const again = await hutch(['rm', id]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^hutch: no sandbox with id/);
    const get = await hutch(['get', id]);
    assert.equal(get.code, 1);
    assert.match(get.stderr, /^hutch: /);
    assert.doesNotMatch(get.stderr, /\n\s+at /);
    const exec = await hutch(['exec', id, '--', 'true']);
    assert.equal(exec.code, 1);
    const auth = await hutch(['ls'], { env: { HUTCH_API_KEY: 'wrong' } });
    assert.equal(auth.code, 1);
    assert.match(auth.stderr, /^hutch: .*API key|^hutch: .*HUTCH_API_KEY/);
  });

  test('usage errors exit 2', async () => {
    assert.equal((await hutch(['exec', 'abc'])).code, 2);
    assert.equal((await hutch(['create', '--memory', 'lots'])).code, 2);
  });
});

describe('tenants and keys', () => {
  test('tenant create/ls/rm with quota flags; keys create --tenant --role, ls, revoke', async () => {
    const tenant = `cli-${randomBytes(3).toString('hex')}`;
    const created = JSON.parse(
      ok(
        await hutch(['tenant', 'create', tenant, '--max-sandboxes', '3', '--memory', '1024', '--json']),
        'tenant create',
      ).stdout.toString(),
    );
    assert.deepEqual(created.quotas, { maxSandboxes: 3, memoryMiB: 1024 });
    const listed = JSON.parse(ok(await hutch(['tenant', 'ls', '--json']), 'tenant ls').stdout.toString());
    assert.ok(listed.some((t: { name: string }) => t.name === tenant));
    assert.match(ok(await hutch(['tenant', 'ls']), 'tenant ls').stdout.toString(), new RegExp(`^NAME[\\s\\S]*\\n${tenant}\\s`, 'm'));

    const made = ok(await hutch(['keys', 'create', '--tenant', tenant, '--role', 'read-only']), 'keys create');
    const key = made.stdout.toString().trim();
    assert.match(key, /^hutch_[0-9a-f]{48}$/, 'only the key on stdout');
    assert.match(made.stderr, /read-only/);
    const keys = JSON.parse(ok(await hutch(['keys', 'ls', '--tenant', tenant, '--json']), 'keys ls').stdout.toString());
    assert.equal(keys.length, 1);
    assert.equal(keys[0].role, 'read-only');
    assert.match(ok(await hutch(['keys', 'ls']), 'keys ls').stdout.toString(), /^ID\s+NAME\s+TENANT\s+ROLE/);

    // The read-only key reads (an empty list: its tenant has nothing) and cannot create.
    const asReader = { HUTCH_API_KEY: key };
    assert.equal(
      ok(await hutch(['ls', '--json'], { env: asReader }), 'ls as reader')
        .stdout.toString()
        .trim(),
      '[]',
    );
    const refused = await hutch(['create', '--template', 'minimal'], { env: asReader });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^hutch: .*role member/m);

    assert.equal(
      ok(await hutch(['keys', 'revoke', keys[0].id]), 'keys revoke')
        .stdout.toString()
        .trim(),
      keys[0].id,
    );
    assert.equal((await hutch(['ls'], { env: asReader })).code, 1, 'a revoked key is refused');
    assert.equal(
      ok(await hutch(['tenant', 'rm', tenant]), 'tenant rm')
        .stdout.toString()
        .trim(),
      tenant,
    );
    const gone = await hutch(['tenant', 'rm', tenant]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /not found/);
  });
});

describe('secrets', () => {
  test('secret put (stdin, --value, --from-file) / ls / rm, and create --secret; no command prints a value', async () => {
    const value = `cli-${randomBytes(12).toString('hex')}`;
    const name = `cli-${randomBytes(3).toString('hex')}`;
    const all: Run[] = [];
    const run = async (args: string[], opts: { input?: string } = {}): Promise<Run> => {
      const r = await hutch(args, opts);
      all.push(r);
      return r;
    };
    assert.equal(ok(await run(['secret', 'put', name], { input: `${value}\n` }), 'put from stdin').stdout.toString(), `${name}\n`);
    const listed = JSON.parse(ok(await run(['secret', 'ls', '--json']), 'secret ls').stdout.toString());
    assert.equal(listed.find((s: { name: string }) => s.name === name)?.sizeBytes, value.length, 'one trailing newline dropped');
    assert.match(
      ok(await run(['secret', 'ls']), 'secret ls').stdout.toString(),
      new RegExp(`^NAME\\s+TENANT\\s+SIZE[\\s\\S]*\\n${name}\\s`, 'm'),
    );
    const file = join(work, 'secret.txt');
    await writeFile(file, `${value}\n`);
    const replaced = JSON.parse(ok(await run(['secret', 'put', name, '--from-file', file, '--json']), 'put from file').stdout.toString());
    assert.equal(replaced.created, false);
    assert.equal(replaced.sizeBytes, value.length + 1, 'a file is taken as is');
    ok(await run(['secret', 'put', name, '--value', value]), 'put --value');

    const created = ok(
      await run([
        'run',
        '--template',
        'minimal',
        '--secret',
        `${name}=env:CLI_TOKEN`,
        '--secret',
        `${name}=file:/run/secrets/cli`,
        '--',
        'printf %s "$CLI_TOKEN"; cat /run/secrets/cli',
      ]),
      'run --secret',
    );
    assert.equal(created.stdout.toString(), `${value}${value}`, 'the command prints what it was given');
    all.pop(); // that output is the sandbox's own
    const missing = await run(['create', '--template', 'minimal', '--secret', 'nope=env:X']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^hutch: secrets\[0\]\.name: secret "nope" does not exist/m);

    assert.equal(ok(await run(['secret', 'rm', name]), 'secret rm').stdout.toString(), `${name}\n`);
    const gone = await run(['secret', 'rm', name]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no secret named/);
    for (const r of all) assert.equal(r.stdout.toString().includes(value) || r.stderr.includes(value), false, 'a value was printed');
  });
});
