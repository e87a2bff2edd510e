import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, relative } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from './harness.js';
import {
  createSandbox,
  deleteSandbox,
  exec,
  getFile,
  putFile,
  run,
  serverRssKiB,
  sleep,
  startProcess,
  TIERS,
  type ApiError,
} from './hostile-lib.js';

/**
 * Hostile workloads H11 (the file API against symlinks, `..`, FIFOs, /proc, devices, sparse files
 * and races) and H20 (malformed API input) for every tier. The host side is a canary file the test
 * creates: whatever the sandbox plants, the server must never read or write it.
 */
let server: TestServer;
let canaryDir: string;
let canaryFile: string;
let canaryText: string;
before(async () => {
  server = await startServer();
  canaryDir = mkdtempSync('/var/tmp/hutch-hostile-canary-');
  canaryFile = join(canaryDir, 'secret.txt');
  canaryText = `HOST-CANARY-${randomBytes(12).toString('hex')}\n`;
  writeFileSync(canaryFile, canaryText, { mode: 0o600 });
});
after(async () => {
  await server?.stop();
  if (canaryDir) rmSync(canaryDir, { recursive: true, force: true });
});

const canaryIntact = (): void => {
  assert.equal(readFileSync(canaryFile, 'utf8'), canaryText, 'the host canary file is unchanged');
};

/**
 * Raw JSON request (the harness's api() would serialise objects itself), over node:http: a server
 * that answers 413 before reading a large body and closes may make our write fail (EPIPE), which
 * fetch reports as a failure; the answer it already sent is what counts.
 */
const rawJson = (method: string, path: string, text: string) =>
  new Promise<{ status: number; body: ApiError; headers: Headers }>((resolve, reject) => {
    const payload = Buffer.from(text);
    let answered = false;
    const req = httpRequest(
      `${server.url}${path}`,
      {
        method,
        headers: { authorization: `Bearer ${server.key}`, 'content-type': 'application/json', 'content-length': String(payload.length) },
      },
      (res) => {
        answered = true;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const headers = new Headers();
          for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, body: (body ? JSON.parse(body) : {}) as ApiError, headers });
        });
      },
    );
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    req.end(payload);
  });

/** Every route that names a sandbox, with a plausible body. */
const ROUTES: Array<[string, (id: string) => string, unknown]> = [
  ['GET', (id) => `/v1/sandboxes/${id}`, undefined],
  ['DELETE', (id) => `/v1/sandboxes/${id}`, undefined],
  ['POST', (id) => `/v1/sandboxes/${id}/timeout`, { timeoutSeconds: 60 }],
  ['POST', (id) => `/v1/sandboxes/${id}/exec`, { cmd: 'true' }],
  ['GET', (id) => `/v1/sandboxes/${id}/processes`, undefined],
  ['POST', (id) => `/v1/sandboxes/${id}/processes`, { cmd: 'true' }],
  ['POST', (id) => `/v1/sandboxes/${id}/processes/1/stdin`, 'x'],
  ['POST', (id) => `/v1/sandboxes/${id}/processes/1/close-stdin`, undefined],
  ['POST', (id) => `/v1/sandboxes/${id}/processes/1/resize`, { cols: 10, rows: 10 }],
  ['POST', (id) => `/v1/sandboxes/${id}/processes/1/signal`, { signal: 'SIGKILL' }],
  ['GET', (id) => `/v1/sandboxes/${id}/processes/1/wait`, undefined],
  ['GET', (id) => `/v1/sandboxes/${id}/processes/1/stream`, undefined],
  ['GET', (id) => `/v1/sandboxes/${id}/files?path=/etc/hostname`, undefined],
  ['PUT', (id) => `/v1/sandboxes/${id}/files?path=/tmp/x`, 'x'],
  ['DELETE', (id) => `/v1/sandboxes/${id}/files?path=/tmp/x`, undefined],
  ['GET', (id) => `/v1/sandboxes/${id}/files/stat?path=/etc`, undefined],
  ['GET', (id) => `/v1/sandboxes/${id}/files/list?path=/etc`, undefined],
  ['POST', (id) => `/v1/sandboxes/${id}/files/mkdir`, { path: '/tmp/d' }],
  ['POST', (id) => `/v1/sandboxes/${id}/files/rename`, { from: '/tmp/a', to: '/tmp/b' }],
];
const headersFor = (body: unknown): Record<string, string> =>
  typeof body === 'string' ? { 'content-type': 'application/octet-stream' } : {};

for (const tier of TIERS) {
  describe(`${tier} tier: H11 file API`, () => {
    test(
      `H11 ${tier}: every path is resolved inside the sandbox; only regular files are served; size caps hold`,
      { timeout: 90_000 },
      async () => {
        const sb = await createSandbox(server, { template: 'base', isolation: tier });
        try {
          const setup = await run(
            server,
            sb.id,
            [
              'ln -s /etc/shadow /tmp/out',
              `ln -s ${canaryFile} /tmp/canary-link`,
              `ln -s ${canaryDir} /tmp/canary-dir`,
              'mkfifo /tmp/fifo',
              'truncate -s 1T /tmp/sparse && ln -s /tmp/sparse /tmp/sparse-link',
              'mkdir -p /tmp/dir',
              'echo REGULAR > /tmp/regular',
              'chmod 644 /tmp/regular',
              'cat /etc/shadow',
            ].join(' && '),
            { user: 'root' },
          );
          assert.equal(setup.exitCode, 0, setup.stderr);
          const sandboxShadow = setup.stdout;
          assert.match(sandboxShadow, /^root:/);

          // A symlink to /etc/shadow is followed inside the sandbox: the sandbox's own file.
          const shadow = await getFile(server, sb.id, '/tmp/out');
          assert.equal(shadow.status, 200, `download through /tmp/out → /etc/shadow: ${shadow.text.slice(0, 200)}`);
          assert.equal(shadow.text, sandboxShadow, "the download is the sandbox's /etc/shadow");

          // Symlinks and paths naming a host file never reach it.
          for (const path of ['/tmp/canary-link', '/tmp/canary-dir/secret.txt', canaryFile, `/tmp/../../..${canaryFile}`]) {
            const res = await getFile(server, sb.id, path);
            assert.equal(res.status, 404, `${path}: ${res.text.slice(0, 200)}`);
            assert.ok(!res.text.includes(canaryText.trim()), `${path} did not return the host canary`);
          }
          const listed = await server.api<ApiError>(
            'GET',
            `/v1/sandboxes/${sb.id}/files/list?path=${encodeURIComponent('/tmp/canary-dir')}`,
          );
          assert.equal(listed.status, 404, 'listing through a symlink to a host directory finds nothing');

          // Writes through the same tricks land inside the sandbox. First through a dangling symlink
          // (the host directory does not exist in the sandbox), then once the sandbox has its own copy.
          const dangling = await putFile(server, sb.id, '/tmp/canary-link', 'written-by-the-api');
          assert.equal(dangling.status, 404, `write through a symlink to a host path: ${JSON.stringify(dangling.body)}`);
          canaryIntact();
          await run(server, sb.id, `mkdir -p ${canaryDir} && echo sandbox-copy > ${canaryFile} && chmod 666 ${canaryFile}`, {
            user: 'root',
          });
          const through = await putFile(server, sb.id, '/tmp/canary-link', 'written-by-the-api');
          assert.equal(through.status, 200, `write through the symlink once the sandbox has the path: ${JSON.stringify(through.body)}`);
          canaryIntact();
          assert.equal(
            (await getFile(server, sb.id, canaryFile)).text,
            'written-by-the-api',
            "the write went to the sandbox's own copy of the path",
          );
          assert.equal((await putFile(server, sb.id, `/tmp/../../../..${canaryDir}/planted.txt`, 'x')).status, 200, 'upload with ..');
          assert.equal(
            (await server.api('POST', `/v1/sandboxes/${sb.id}/files/mkdir`, { path: `${canaryDir}/made` })).status,
            201,
            'mkdir',
          );
          assert.equal(
            (await server.api('POST', `/v1/sandboxes/${sb.id}/files/rename`, { from: '/tmp/regular', to: `${canaryDir}/moved.txt` }))
              .status,
            200,
            'rename',
          );
          assert.equal(
            (await server.api('DELETE', `/v1/sandboxes/${sb.id}/files?path=${encodeURIComponent('/tmp/canary-dir/secret.txt')}`)).status,
            204,
            'delete',
          );
          canaryIntact();
          for (const name of ['planted.txt', 'made', 'moved.txt'])
            assert.ok(!existsSync(join(canaryDir, name)), `nothing named ${name} appeared on the host`);
          const inside = await getFile(server, sb.id, canaryFile);
          assert.equal(
            inside.status,
            404,
            "the sandbox's copy of the canary path was removed (through the symlinked dir), inside the sandbox",
          );
          assert.equal(
            (await getFile(server, sb.id, `${canaryDir}/moved.txt`)).text,
            'REGULAR\n',
            'the renamed file is inside the sandbox',
          );

          // `..` and relative paths stay in the sandbox's namespace.
          for (const path of ['/tmp/../../../../etc/hostname', '../../../../../etc/hostname']) {
            const res = await getFile(server, sb.id, path);
            assert.equal(res.status, 200, path);
            assert.equal(res.text, 'hutch\n', `${path} is the sandbox's /etc/hostname`);
          }

          // NUL bytes, FIFOs, directories, devices and /proc are refused, quickly.
          const refused: Array<[string, number[]]> = [
            ['/etc/hostname\0/../../shadow', [400]],
            ['/tmp/fifo', [400]],
            ['/tmp/dir', [400]],
            ['/dev/zero', [400]],
            ['/dev/urandom', [400]],
            ['/proc/self/mem', [400, 403, 500]],
            ['/proc/self/environ', [400, 403, 500]],
            ['/proc/1/environ', [400, 403, 500]],
            ['/proc/1/mem', [400, 403, 500]],
            ['/proc/kcore', [400, 403, 404, 500]],
            ['/sys/kernel/notes', [400, 403, 404, 500]],
            ['/tmp/sparse', [413]],
            ['/tmp/sparse-link', [413]],
          ];
          for (const [path, statuses] of refused) {
            const started = Date.now();
            const res = await getFile(server, sb.id, path);
            assert.ok(statuses.includes(res.status), `${JSON.stringify(path)} → ${res.status} ${res.text.slice(0, 200)}`);
            assert.ok(Date.now() - started < 3000, `${JSON.stringify(path)} answered in ${Date.now() - started} ms`);
            assert.ok(!res.text.includes('PATH='), 'no environment leaked');
          }

          // The file API never unpacks archives: a multipart body naming ../../ paths is stored verbatim.
          const boundary = 'hutchboundary';
          const multipart = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="../../../../escape-${tier}"\r\n\r\nPAYLOAD\r\n--${boundary}--\r\n`;
          const up = await fetch(`${server.url}/v1/sandboxes/${sb.id}/files?path=/tmp/upload.bin`, {
            method: 'PUT',
            headers: { authorization: `Bearer ${server.key}`, 'content-type': `multipart/form-data; boundary=${boundary}` },
            body: multipart,
          });
          assert.equal(up.status, 200, await up.text());
          assert.equal((await getFile(server, sb.id, '/tmp/upload.bin')).text, multipart, 'stored byte for byte');
          const escaped = await run(server, sb.id, `ls /escape-${tier} 2>&1; echo rc=$?`);
          assert.match(escaped.stdout, /rc=[1-9]/, 'no file was extracted to a ../ path');
          canaryIntact();
        } finally {
          await deleteSandbox(server, sb.id);
        }
        canaryIntact();
      },
    );

    test(
      `H11 ${tier}: a symlink swapped during downloads never makes the server serve a host file, a device or /proc`,
      { timeout: 90_000 },
      async () => {
        const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
        try {
          await startProcess(server, sb.id, {
            cmd: [
              'cd /tmp',
              'i=0',
              'while [ $i -lt 20000 ]; do',
              '  printf "REGULAR\\n" > race.a && mv -f race.a race',
              `  ln -sf ${canaryFile} race.b && mv -f race.b race`,
              '  ln -sf /dev/zero race.c && mv -f race.c race',
              '  ln -sf /proc/self/environ race.d && mv -f race.d race',
              '  i=$((i+1))',
              'done',
            ].join('\n'),
            tag: 'race',
            timeoutMs: 30_000,
          });
          await sleep(300);
          const outcomes: Record<string, number> = {};
          for (let i = 0; i < 60; i++) {
            const res = await getFile(server, sb.id, '/tmp/race', 64 * 1024);
            const key = res.status === 200 ? `200 ${JSON.stringify(res.text)}` : String(res.status);
            outcomes[key] = (outcomes[key] ?? 0) + 1;
            assert.ok(!res.text.includes(canaryText.trim()), 'never the host canary');
            assert.ok(!res.text.includes('PATH='), "never the agent's environment");
            assert.ok(
              res.status !== 200 || res.text === 'REGULAR\n',
              `a 200 is only ever the regular file: ${JSON.stringify(res.text.slice(0, 100))}`,
            );
            // Refusals may be 400 (not a regular file / pseudo filesystem), 404 (dangling) or, on
            // gVisor, 500 (statfs of a /proc file is not implemented there): all are refusals.
            assert.ok(res.status === 200 || res.status >= 400, `status ${res.status}: ${res.text.slice(0, 200)}`);
          }
          const listed = await server.api<{ processes: Array<{ tag: string | null }> }>('GET', `/v1/sandboxes/${sb.id}/processes`);
          assert.ok(
            listed.body.processes.some((p) => p.tag === 'race'),
            `the swapper ran during all downloads (outcomes ${JSON.stringify(outcomes)})`,
          );
          await server.api('POST', `/v1/sandboxes/${sb.id}/processes/tag:race/signal`, { signal: 'SIGKILL' });
          canaryIntact();
        } finally {
          await deleteSandbox(server, sb.id);
        }
      },
    );
  });

  describe(`${tier} tier: H20 malformed API input`, () => {
    test(
      `H20 ${tier}: malformed create bodies get a fast 400/413; nothing is created; memory stays flat`,
      { timeout: 60_000 },
      async () => {
        const count = async (): Promise<number> =>
          (await server.api<{ sandboxes: unknown[] }>('GET', '/v1/sandboxes?state=creating,running,stopped,error')).body.sandboxes.length;
        const before = await count();
        const rss0 = serverRssKiB(server);
        const base = `"template":"minimal","isolation":"${tier}"`;
        const bodies: Array<[string, number]> = [
          [`{${base},"memoryMiB":-1}`, 400],
          [`{${base},"memoryMiB":1e999}`, 400],
          [`{${base},"memoryMiB":NaN}`, 400],
          [`{${base},"memoryMiB":"64"}`, 400],
          [`{${base},"memoryMiB":null}`, 400],
          [`{${base},"pids":-5}`, 400],
          [`{${base},"pids":16.5}`, 400],
          [`{${base},"pids":1e308}`, 400],
          [`{${base},"cpu":-0.5}`, 400],
          [`{${base},"cpu":Infinity}`, 400],
          [`{${base},"__proto__":{"isolation":"container"}}`, 400],
          [`{${base},"constructor":{"prototype":{"polluted":true}}}`, 400],
          [`{${base},"metadata":{"__proto__":"x"}}`, 400],
          [`{${base},"env":{"A=B":"x"}}`, 400],
          [`{${base},"env":{"A":"x\\u0000y"}}`, 400],
          [`{${base},"metadata":{${Array.from({ length: 65 }, (_, i) => `"k${i}":"v"`).join(',')}}}`, 400],
          [`{${base},"idempotencyKey":"${'k'.repeat(300)}"}`, 400],
          [`{"template":"../../etc","isolation":"${tier}"}`, 400],
          [`{"template":"minimal\\r\\nX-Injected: 1","isolation":"${tier}"}`, 400],
          [`{"template":"${'a'.repeat(300)}","isolation":"${tier}"}`, 400],
          [`{${base},"unknownField":1}`, 400],
          ['['.repeat(100_000) + ']'.repeat(100_000), 400],
          [`{${base},"metadata":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}}`, 400],
          [`{${base},"metadata":{"a":"${'x'.repeat(2 * 1024 * 1024)}"}}`, 413],
          ['{"template": ', 400],
          ['', 400],
        ];
        for (const [body, status] of bodies) {
          const started = Date.now();
          const res = await rawJson('POST', '/v1/sandboxes', body);
          assert.equal(res.status, status, `${body.slice(0, 80)}: ${JSON.stringify(res.body).slice(0, 200)}`);
          assert.equal(res.body.error.code, status === 413 ? 'payload_too_large' : 'invalid_argument');
          assert.ok(Date.now() - started < 1000, `${body.slice(0, 60)} answered in ${Date.now() - started} ms`);
          assert.equal(res.headers.get('x-injected'), null);
        }
        // Repeat the expensive ones: memory must not grow with them.
        for (let i = 0; i < 20; i++) {
          assert.equal((await rawJson('POST', '/v1/sandboxes', `{${base},"metadata":{"a":"${'x'.repeat(2 * 1024 * 1024)}"}}`)).status, 413);
          assert.equal((await rawJson('POST', '/v1/sandboxes', '['.repeat(100_000) + ']'.repeat(100_000))).status, 400);
        }
        assert.equal(await count(), before, 'no sandbox was created');
        assert.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution in the test process either');
        assert.ok(serverRssKiB(server) - rss0 < 48 * 1024, `server RSS ${rss0} → ${serverRssKiB(server)} KiB`);
        assert.equal((await fetch(`${server.url}/healthz`)).status, 200);
      },
    );

    test(`H20 ${tier}: malformed ids are a 400 on every route, before they name any file or socket`, { timeout: 60_000 }, async () => {
      // A decoy "agent socket" on the host, where a ../ id would lead the server.
      const dir = mkdtempSync('/tmp/hutch-hostile-');
      mkdirSync(join(dir, 'run'));
      let connections = 0;
      const decoy: Server = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((r) => decoy.listen(join(dir, 'run', 'agent.sock'), r));
      try {
        const traversal = relative(join(server.dataDir, 'sandboxes'), dir);
        assert.ok(traversal.startsWith('../') && traversal.length <= 64, traversal);
        const badIds = [
          encodeURIComponent(traversal),
          encodeURIComponent('../../../etc/passwd'),
          '%2e%2e',
          'a'.repeat(300),
          'A'.repeat(20),
          `${'a'.repeat(19)}%00`,
          `${'a'.repeat(20)}%0d%0aX-Injected:%201`,
          `%E2%80%AE${'a'.repeat(19)}`,
          `${'a'.repeat(19)}%2F`,
          '-'.repeat(20),
        ];
        for (const id of badIds) {
          for (const [method, path, body] of ROUTES) {
            const started = Date.now();
            const res = await server.api<ApiError>(method, path(id), body, headersFor(body));
            // 400, or — when URL normalisation turned the id into another path (`%2e%2e`) — a 404
            // for a route that does not exist: either way no handler ever saw the id.
            const noRoute = res.status === 404 && /^no route for /.test(res.body.error?.message ?? '');
            assert.ok(
              res.status === 400 || noRoute,
              `${method} ${path(id).slice(0, 120)} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
            );
            assert.ok(Date.now() - started < 1000);
            assert.equal(res.headers.get('x-injected'), null);
          }
        }
        assert.equal(connections, 0, 'the server never connected to a socket named by a ../ id');
      } finally {
        await new Promise((r) => decoy.close(r));
        rmSync(dir, { recursive: true, force: true });
      }
    });

    test(`H20 ${tier}: a well-formed id that names no sandbox is a 404 on every route`, { timeout: 60_000 }, async () => {
      const unknown = 'zz' + randomBytes(9).toString('hex');
      const wrong: string[] = [];
      for (const [method, path, body] of ROUTES) {
        const res = await server.api<ApiError>(method, path(unknown), body, headersFor(body));
        if (res.status !== 404) wrong.push(`${method} ${path(unknown)} → ${res.status} ${JSON.stringify(res.body).slice(0, 160)}`);
      }
      assert.deepEqual(wrong, [], 'routes that do not answer 404 for an unknown sandbox');
    });

    test(`H20 ${tier}: malformed bodies and parameters against a live sandbox get a fast 400/413`, { timeout: 60_000 }, async () => {
      const sb = await createSandbox(server, { template: 'minimal', isolation: tier });
      try {
        const id = sb.id;
        const cases: Array<[string, string, unknown, number]> = [
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'echo a\0b' }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: [] }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: ['echo', 'a\0b'] }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'x'.repeat(128 * 1024 + 1) }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', env: { 'A=B': 'x' } }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', env: { A: 'x\0y' } }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', user: '../root' }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', user: 'root\nX' }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', cwd: '/tmp\0/../proc' }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', maxOutputBytes: -1 }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', maxOutputBytes: 16 * 1024 * 1024 + 1 }, 400],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', stdin: 'x'.repeat(2 * 1024 * 1024) }, 413],
          ['POST', `/v1/sandboxes/${id}/exec`, { cmd: 'true', extra: 1 }, 400],
          ['POST', `/v1/sandboxes/${id}/processes`, { cmd: 'true', pty: { cols: 0, rows: 10 } }, 400],
          ['POST', `/v1/sandboxes/${id}/processes`, { cmd: 'true', tag: 't'.repeat(129) }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/1/signal`, { signal: 'SIGSTOP' }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/1/resize`, { cols: 100000, rows: 10 }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/0/signal`, { signal: 'SIGKILL' }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/-1/signal`, { signal: 'SIGKILL' }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/1e3/signal`, { signal: 'SIGKILL' }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/${'9'.repeat(12)}/signal`, { signal: 'SIGKILL' }, 400],
          ['POST', `/v1/sandboxes/${id}/processes/tag:${'x'.repeat(200)}/signal`, { signal: 'SIGKILL' }, 400],
          ['GET', `/v1/sandboxes/${id}/files?path=${encodeURIComponent('/etc/\0hostname')}`, undefined, 400],
          ['GET', `/v1/sandboxes/${id}/files?path=${'a'.repeat(5000)}`, undefined, 400],
          ['GET', `/v1/sandboxes/${id}/files`, undefined, 400],
          ['GET', `/v1/sandboxes/${id}/files/list?path=/etc&depth=1000`, undefined, 400],
          ['GET', `/v1/sandboxes/${id}/files/list?path=/etc&depth=-1`, undefined, 400],
          ['POST', `/v1/sandboxes/${id}/files/mkdir`, { path: '' }, 400],
          ['POST', `/v1/sandboxes/${id}/files/rename`, { from: '/tmp/a' }, 400],
          ['POST', `/v1/sandboxes/${id}/files/rename`, { from: '/tmp/a', to: '/tmp/\0b' }, 400],
        ];
        for (const [method, path, body, status] of cases) {
          const started = Date.now();
          const res = await server.api<ApiError>(method, path, body);
          assert.equal(
            res.status,
            status,
            `${method} ${path.slice(0, 100)} ${JSON.stringify(body)?.slice(0, 100)} → ${res.status} ${JSON.stringify(res.body).slice(0, 200)}`,
          );
          assert.ok(Date.now() - started < 1000);
        }
        const ok = await exec(server, sb.id, { cmd: 'echo still-fine' });
        assert.equal(ok.body.stdout, 'still-fine\n', 'the sandbox is unaffected by the malformed calls');
      } finally {
        await deleteSandbox(server, sb.id);
      }
    });
  });
}
