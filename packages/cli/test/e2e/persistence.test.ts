import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { CLI_MAIN, startServer, type TestServer } from '../../../sdk/test/server.js';

// The persistence verbs of the built CLI against a real server: pause/resume/stop/start, usage,
// volumes, snapshots, fork, gc, and the create flags that reach the API.
let server: TestServer;
before(async () => {
  server = await startServer();
});
after(() => server?.stop());

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function hutch(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_MAIN, ...args], { env: server.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

async function ok(args: string[]): Promise<string> {
  const r = await hutch(args);
  assert.equal(r.code, 0, `hutch ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

test('pause, resume, stop, start and usage print the resulting state; wrong states exit 1 with the reason', async () => {
  const id = (await ok(['create', '--template', 'minimal', '--persistent', '--disk', '128', '--auto-delete', '600'])).trim();
  try {
    const info = JSON.parse(await ok(['get', id, '--json'])) as { diskMiB: number; timeoutSeconds: unknown; lifecycle: unknown };
    assert.equal(info.diskMiB, 128);
    assert.equal(info.timeoutSeconds, null);
    assert.deepEqual(info.lifecycle, {
      persistent: true,
      onTimeout: 'delete',
      idleTimeoutSeconds: null,
      autoDeleteAfterSeconds: 600,
      autoResume: false,
    });
    assert.match(await ok(['get', id]), /timeout: +none\n[^]*lifecycle: persistent/);

    const paused = await ok(['pause', id]);
    assert.match(paused, new RegExp(`^${id} paused \\(filesystem\\)\nnote: .*memory`));
    assert.match(await ok(['ls']), new RegExp(`${id}  paused \\(filesystem\\)`));
    const again = JSON.parse(await ok(['pause', id, '--json'])) as { state: string; pauseMode: string; note: string };
    assert.equal(again.state, 'paused');
    assert.equal(again.pauseMode, 'filesystem');
    assert.equal(await ok(['resume', id]), `${id} running (from filesystem)\n`);

    assert.match(await ok(['usage', id]), /^disk: +.* used of .* free\)\nvolumes: +-\n$/);
    assert.equal(await ok(['stop', id]), `${id} stopped\n`);
    assert.match(await ok(['usage', id]), /not mounted while the sandbox is stopped/);
    const refused = await hutch(['pause', id]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^hutch: .*stopped.*only running sandboxes can be paused/);
    assert.equal((JSON.parse(await ok(['start', id, '--json'])) as { state: string }).state, 'running');
  } finally {
    await hutch(['rm', id]);
  }
});

test('exec and run --keep-alive start the command as a keepAlive process; info prints the pause notes', async () => {
  const id = (await ok(['create', '--template', 'minimal'])).trim();
  try {
    assert.equal(await ok(['exec', id, '--keep-alive', '--', 'echo ${HUTCH_KEEP_ALIVE:-unset}']), '1\n');
    assert.equal(await ok(['exec', id, '--', 'echo ${HUTCH_KEEP_ALIVE:-unset}']), 'unset\n');
  } finally {
    await hutch(['rm', id]);
  }
  assert.equal(await ok(['run', '--template', 'minimal', '--keep-alive', '--', 'echo ${HUTCH_KEEP_ALIVE:-unset}']), '1\n');
  assert.match(
    await ok(['info']),
    /\npause:\n {2}container: the container tier cannot keep memory on this host: .*processes stop, files stay\n/,
  );
});

test('volume create, ls, mount with --volume (also in run), rm refused while in use', async () => {
  const name = `cli-${randomUUID().slice(0, 8)}`;
  let id = '';
  try {
    assert.equal(await ok(['volume', 'create', name, '--size', '64', '--label', 'suite=cli']), `${name}\n`);
    assert.match(await ok(['volume', 'ls']), new RegExp(`\n${name}  64\\.0 MiB .* suite=cli\n`));
    const listed = JSON.parse(await ok(['volume', 'ls', '--json'])) as { name: string; labels: Record<string, string> }[];
    assert.deepEqual(listed.find((v) => v.name === name)?.labels, { suite: 'cli' });

    assert.equal(
      await ok(['run', '--template', 'minimal', '--volume', `${name}:/data`, '--', 'sh', '-c', 'echo hi > /data/f; cat /data/f']),
      'hi\n',
    );
    id = (await ok(['create', '--template', 'minimal', '--volume', `${name}:/data:ro`])).trim();
    assert.match(await ok(['usage', id]), new RegExp(`\n  ${name}  /data `));
    assert.equal(await ok(['exec', id, '--', 'cat /data/f']), 'hi\n');
    const inUse = await hutch(['volume', 'rm', name]);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, new RegExp(`in use by sandbox ${id}`));
    await ok(['rm', id]);
    id = '';
    assert.equal(await ok(['volume', 'rm', name]), `${name}\n`);
    const gone = await hutch(['volume', 'rm', name]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no volume named/);
  } finally {
    if (id) await hutch(['rm', id]);
    await hutch(['volume', 'rm', name]);
  }
});

test('snapshot prints the id (--json the snapshot); a snapshot is a template; fork prints the new ids; snapshot ls/rm; gc --dry-run, then gc', async () => {
  const sandboxes: string[] = [];
  const snapshots: string[] = [];
  try {
    const id = (await ok(['create', '--template', 'minimal'])).trim();
    sandboxes.push(id);
    const token = randomUUID();
    await ok(['exec', id, '--', `echo ${token} > /root/s.txt`]);

    const snap = (await ok(['snapshot', id, '--label', 'suite=cli'])).trim();
    snapshots.push(snap);
    assert.match(snap, /^snap-[a-z0-9]{16}$/, 'only the id on stdout');
    const again = JSON.parse(await ok(['snapshot', '--json', id])) as {
      id: string;
      sourceSandbox: string;
      memory: boolean;
      reused: boolean;
    };
    snapshots.push(again.id);
    assert.equal(again.sourceSandbox, id);
    assert.equal(again.memory, false);
    assert.equal(typeof again.reused, 'boolean');
    assert.equal(await ok(['run', '--template', snap, '--', 'cat', '/root/s.txt']), `${token}\n`);

    const forks = (await ok(['fork', id, '--count', '2'])).split('\n').filter(Boolean);
    sandboxes.push(...forks);
    assert.equal(forks.length, 2);
    for (const f of forks) {
      assert.match(f, /^[a-z0-9]{20}$/);
      assert.equal(await ok(['exec', f, '--', 'cat /root/s.txt']), `${token}\n`);
    }
    const listed = JSON.parse(await ok(['snapshot', 'ls', '--json'])) as {
      id: string;
      sourceSandbox: string;
      metadata: Record<string, string>;
    }[];
    const forkSnap = listed.find((s) => s.metadata.forkOf === id)?.id;
    assert.ok(forkSnap, JSON.stringify(listed));
    snapshots.push(forkSnap);
    assert.deepEqual(
      listed
        .filter((s) => s.sourceSandbox === id)
        .map((s) => s.id)
        .sort(),
      [...snapshots].sort(),
    );
    assert.match(await ok(['snapshot', 'ls']), new RegExp(`^ID +SOURCE .*\n(.*\n)*${snap}  ${id}  minimal +container .* suite=cli\n`));

    const inUse = await hutch(['snapshot', 'rm', forkSnap]);
    assert.equal(inUse.code, 1);
    assert.match(inUse.stderr, new RegExp(`^hutch: ${forkSnap}: .*template of sandboxes? .*${forks[0]}`));
    await ok(['rm', ...sandboxes.splice(0)]);
    assert.equal(await ok(['snapshot', 'rm', ...snapshots]), snapshots.map((s) => `${s}\n`).join(''));
    const gone = await hutch(['snapshot', 'rm', snap]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, new RegExp(`^hutch: no snapshot with id ${snap}\n`));
    snapshots.length = 0;

    assert.match(await ok(['gc', '--dry-run']), /^would remove [1-9]\d* layers?, [1-9]\d* objects?, [\d.]+ (B|KiB|MiB)\n$/);
    const dry = JSON.parse(await ok(['gc', '--dry-run', '--json'])) as { layers: string[]; dryRun: boolean; staging: string[] };
    assert.equal(dry.dryRun, true);
    assert.ok(dry.layers.length >= 1 && Array.isArray(dry.staging));
    assert.match(await ok(['gc']), new RegExp(`^removed ${dry.layers.length} layers?, [1-9]\\d* objects?, `));
    assert.match(await ok(['gc', '--dry-run']), /^would remove 0 layers, 0 objects, 0 B\n$/);
  } finally {
    if (sandboxes.length) await hutch(['rm', ...sandboxes]);
    if (snapshots.length) await hutch(['snapshot', 'rm', ...snapshots]);
  }
});
