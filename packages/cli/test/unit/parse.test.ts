import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Invocation, Parsed } from '../../src/invocation.js';
import { UsageError, parse } from '../../src/parse.js';

const quiet = { writeOut: () => {}, writeErr: () => {} };

function inv(argv: string[], env: Record<string, string | undefined> = {}): Invocation {
  const p = parse(argv, { env, io: quiet });
  assert.equal(p.kind, 'invocation');
  return (p as Extract<Parsed, { kind: 'invocation' }>).invocation;
}

function usage(argv: string[], re: RegExp): void {
  assert.throws(
    () => parse(argv, { env: {}, io: quiet }),
    (err: unknown) => {
      assert.ok(err instanceof UsageError, `expected UsageError, got ${String(err)}`);
      assert.match(err.message, re);
      return true;
    },
  );
}

test("exec: one word after -- is a shell string, several are argv, options after -- are the command's", () => {
  assert.deepEqual(inv(['exec', 'abc', '--', 'echo $HOME']), { kind: 'exec', id: 'abc', spec: { cmd: 'echo $HOME' } });
  assert.deepEqual(inv(['exec', 'abc', '--', 'ls', '-la', '--env', 'x']), {
    kind: 'exec',
    id: 'abc',
    spec: { cmd: ['ls', '-la', '--env', 'x'] },
  });
});

test('exec options: cwd, user, repeated env, timeout, stdin forcing', () => {
  const i = inv([
    'exec',
    '--cwd',
    '/tmp',
    'abc',
    '--user',
    'root',
    '--env',
    'A=1',
    '--env',
    'B=x=y',
    '--timeout-ms',
    '500',
    '--stdin',
    '--',
    'env',
  ]);
  assert.deepEqual(i, {
    kind: 'exec',
    id: 'abc',
    spec: { cmd: 'env', cwd: '/tmp', user: 'root', env: { A: '1', B: 'x=y' }, timeoutMs: 500, stdin: true },
  });
  assert.equal((inv(['exec', 'abc', '--no-stdin', '--', 'true']) as { spec: { stdin?: boolean } }).spec.stdin, false);
  assert.equal((inv(['exec', 'abc', '--keep-alive', '--', 'sleep 60']) as { spec: { keepAlive?: boolean } }).spec.keepAlive, true);
  assert.equal((inv(['exec', 'abc', '--', 'true']) as { spec: { keepAlive?: boolean } }).spec.keepAlive, undefined);
  assert.equal((inv(['run', '--keep-alive', '--', 'true']) as { spec: { keepAlive?: boolean } }).spec.keepAlive, true);
});

test('exec usage errors', () => {
  usage(['exec'], /missing required argument 'id'/);
  usage(['exec', 'abc'], /missing required argument 'cmd'/);
  usage(['exec', 'abc', 'ls', '-la'], /unknown option '-la'.*after --/);
  usage(['exec', 'abc', '--env', 'NOEQUALS', '--', 'x'], /KEY=VALUE/);
  usage(['exec', 'abc', '--env', '9X=1', '--', 'x'], /not a valid variable name/);
  usage(['exec', 'abc', '--timeout-ms', '1.5', '--', 'x'], /--timeout-ms expects an integer/);
});

test('create maps flags to API fields', () => {
  assert.deepEqual(
    inv([
      'create',
      '--template',
      'minimal',
      '--isolation',
      'gvisor',
      '--cpu',
      '0.5',
      '--memory',
      '256',
      '--pids',
      '64',
      '--timeout',
      '600',
      '--env',
      'A=1',
      '--metadata',
      'owner=me',
      '--metadata',
      'pr=12',
      '--json',
    ]),
    {
      kind: 'create',
      json: true,
      params: {
        template: 'minimal',
        isolation: 'gvisor',
        cpu: 0.5,
        memoryMiB: 256,
        pids: 64,
        timeoutSeconds: 600,
        env: { A: '1' },
        metadata: { owner: 'me', pr: '12' },
      },
    },
  );
  assert.deepEqual(inv(['create']), { kind: 'create', json: false, params: {} });
  usage(['create', '--cpu', 'lots'], /--cpu expects a number/);
  usage(['create', '--memory', '8'], /--memory expects an integer from 16/);
});

test('run = create flags + exec flags + command', () => {
  assert.deepEqual(inv(['run', '--template', 'minimal', '--cwd', '/tmp', '--', 'sh', '-c', 'exit 3']), {
    kind: 'run',
    params: { template: 'minimal' },
    spec: { cmd: ['sh', '-c', 'exit 3'], cwd: '/tmp' },
  });
  usage(['run', '--template', 'minimal'], /missing required argument 'cmd'/);
});

test('ls filters, get, rm, timeout, template ls, info', () => {
  assert.deepEqual(inv(['ls', '--state', 'running,stopped', '--metadata', 'a=b', '--json']), {
    kind: 'ls',
    state: ['running', 'stopped'],
    metadata: { a: 'b' },
    json: true,
  });
  assert.deepEqual(inv(['list']), { kind: 'ls', state: undefined, metadata: {}, json: false });
  usage(['ls', '--state', 'sleeping'], /unknown state 'sleeping'/);
  assert.deepEqual(inv(['get', 'abc', '--json']), { kind: 'get', id: 'abc', json: true });
  assert.deepEqual(inv(['rm', 'a', 'b']), { kind: 'rm', ids: ['a', 'b'] });
  usage(['rm'], /missing required argument/);
  assert.deepEqual(inv(['timeout', 'abc', '3600']), { kind: 'timeout', id: 'abc', seconds: 3600, json: false });
  usage(['timeout', 'abc', 'soon'], /seconds expects an integer/);
  assert.deepEqual(inv(['template', 'ls', '--json']), { kind: 'template-ls', json: true });
  assert.deepEqual(inv(['info']), { kind: 'info', json: false });
  usage(['template'], /command is required/);
  usage(['frobnicate'], /unknown command 'frobnicate'/);
  usage([], /command is required/);
});

test('shell and cp', () => {
  assert.deepEqual(inv(['shell', 'abc', '--user', 'root']), { kind: 'shell', id: 'abc', user: 'root', cwd: undefined });
  assert.deepEqual(inv(['cp', './a.txt', 'abc:/tmp/a.txt']), {
    kind: 'cp',
    src: { kind: 'local', path: './a.txt' },
    dst: { kind: 'sandbox', id: 'abc', path: '/tmp/a.txt' },
  });
  assert.deepEqual(inv(['cp', 'abc:/etc/hosts', '-']), {
    kind: 'cp',
    src: { kind: 'sandbox', id: 'abc', path: '/etc/hosts' },
    dst: { kind: 'stdio' },
  });
  usage(['cp', 'a', 'b'], /one side of cp must be <id>:<path>/);
  usage(['cp', 'abc:', 'b'], /missing path/);
});

test('server: defaults, HUTCH_DATA_DIR, flags', () => {
  const pools = { networkPool4: '10.213.0.0/16', networkPool6: 'fd68:7574:6368::/48' };
  assert.deepEqual(inv(['server']), {
    kind: 'server',
    host: '127.0.0.1',
    port: 7171,
    dataDir: '/var/lib/hutch',
    logLevel: 'info',
    ...pools,
  });
  assert.equal((inv(['server'], { HUTCH_DATA_DIR: '/srv/h' }) as { dataDir: string }).dataDir, '/srv/h');
  assert.deepEqual(inv(['server', '--host', '0.0.0.0', '--port', '9000', '--data-dir', '/d', '--log-level', 'debug']), {
    kind: 'server',
    host: '0.0.0.0',
    port: 9000,
    dataDir: '/d',
    logLevel: 'debug',
    ...pools,
  });
  assert.deepEqual(
    inv([
      'server',
      '--network-pool',
      '10.9.0.0/16',
      '--dns-upstream',
      '1.1.1.1',
      '--dns-upstream',
      '[::1]:53',
      '--domain',
      'sbx.example.com',
    ]),
    {
      kind: 'server',
      host: '127.0.0.1',
      port: 7171,
      dataDir: '/var/lib/hutch',
      logLevel: 'info',
      networkPool4: '10.9.0.0/16',
      networkPool6: 'fd68:7574:6368::/48',
      dnsUpstreams: ['1.1.1.1', '[::1]:53'],
      domain: 'sbx.example.com',
    },
  );
  usage(['server', '--port', '70000'], /--port expects an integer from 0 to 65535/);
});

test('server --provider kubernetes: cluster settings; local is the default and adds nothing', () => {
  const k8s = inv([
    'server',
    '--provider',
    'kubernetes',
    '--kubeconfig',
    '/k/config',
    '--namespace',
    'sbx',
    '--runtime-class-gvisor',
    'runsc',
    '--image-repository',
    'registry.example.com/hutch',
    '--image-import',
    '/usr/local/bin/import --node a',
    '--volume-storage-class',
    'fast',
    '--cpu-request-ratio',
    '0.5',
    '--kubernetes-agent-access',
    'api-server',
  ]) as Extract<Invocation, { kind: 'server' }>;
  assert.equal(k8s.provider, 'kubernetes');
  assert.deepEqual(k8s.kubernetes, {
    kubeconfig: '/k/config',
    namespace: 'sbx',
    gvisorRuntimeClass: 'runsc',
    imageRepository: 'registry.example.com/hutch',
    imageImport: ['/usr/local/bin/import', '--node', 'a'],
    volumeStorageClass: 'fast',
    cpuRequestRatio: 0.5,
    agentAccess: 'api-server',
  });
  const local = inv(['server', '--provider', 'local']) as Extract<Invocation, { kind: 'server' }>;
  assert.equal(local.provider, undefined);
  assert.equal(local.kubernetes, undefined);
  usage(['server', '--provider', 'nomad'], /--provider: "nomad" is not one of local, kubernetes/);
  const sigs = inv(['server', '--provider', 'kubernetes', '--kubernetes-warm-pools', 'agent-sandbox']) as Extract<
    Invocation,
    { kind: 'server' }
  >;
  assert.deepEqual(sigs.kubernetes, { warmPools: 'agent-sandbox' });
  usage(['server', '--kubernetes-warm-pools', 'sigs'], /--kubernetes-warm-pools: "sigs" is not one of pods, agent-sandbox/);
  usage(
    ['server', '--provider', 'kubernetes', '--kubernetes-agent-access', 'ssh'],
    /--kubernetes-agent-access: expected pod-ip, api-server or auto, got "ssh"/,
  );
  usage(['template', 'export', 'base'], /--oci/);
});

test('template export: name, tarball, layers dir, repository, agent', () => {
  assert.deepEqual(
    inv(['template', 'export', 'base', '--oci', 'b.tar', '--layers-dir', '/l', '--repository', 'r/x', '--agent', '/a', '--json']),
    { kind: 'template-export', name: 'base', out: 'b.tar', layersDir: '/l', repository: 'r/x', agentBinary: '/a', json: true },
  );
});

test('network flags: create allowlist, url, network changes', () => {
  assert.deepEqual((inv(['create', '--egress', 'open', '--public']) as { params: unknown }).params, {
    network: { egress: 'open', public: true },
  });
  assert.deepEqual(
    (inv(['create', '--allow', 'pypi.org', '--allow', '10.0.0.0/8', '--deny', 'x.pypi.org']) as { params: unknown }).params,
    {
      network: { egress: { allow: ['pypi.org', '10.0.0.0/8'], deny: ['x.pypi.org'] } },
    },
  );
  assert.deepEqual(inv(['url', 'abc', '8000', '--expires', '60']), { kind: 'url', id: 'abc', port: 8000, expiresIn: 60, json: false });
  assert.deepEqual(inv(['network', 'abc', '--egress', 'none', '--json']), { kind: 'network', id: 'abc', egress: 'none', json: true });
  assert.deepEqual(inv(['network', 'abc', '--public']), { kind: 'network', id: 'abc', public: true, json: false });
  usage(['create', '--egress', 'sometimes'], /--egress: "sometimes" is not none or open/);
  usage(['create', '--egress', 'open', '--allow', 'a.b'], /cannot be combined/);
  usage(['url', 'abc', '0'], /port/);
  usage(['network', 'abc', '--public', '--private'], /exclude each other/);
});

test('create: persistence flags map to API fields', () => {
  assert.deepEqual(
    inv([
      'create',
      '--persistent',
      '--disk',
      '4096',
      '--on-timeout',
      'pause',
      '--idle-timeout',
      '120',
      '--auto-delete',
      '3600',
      '--auto-resume',
      '--volume',
      'data:/data',
      '--volume',
      'refs.v1:/mnt/refs:ro',
      '--volume',
      'scratch:/scratch:rw',
    ]),
    {
      kind: 'create',
      json: false,
      params: {
        diskMiB: 4096,
        volumes: [
          { name: 'data', path: '/data' },
          { name: 'refs.v1', path: '/mnt/refs', readOnly: true },
          { name: 'scratch', path: '/scratch' },
        ],
        persistent: true,
        onTimeout: 'pause',
        idleTimeoutSeconds: 120,
        autoDeleteAfterSeconds: 3600,
        autoResume: true,
      },
    },
  );
  // A path may contain colons; only a trailing :ro/:rw is the mode.
  assert.deepEqual((inv(['create', '--volume', 'v:/a:b']) as { params: unknown }).params, { volumes: [{ name: 'v', path: '/a:b' }] });
  assert.deepEqual((inv(['create', '--persistent', '--timeout', '60']) as { params: unknown }).params, {
    timeoutSeconds: 60,
    persistent: true,
  });
});

test('create: persistence flag errors name the flag', () => {
  usage(['create', '--disk', '32'], /--disk expects an integer from 64 to 1048576, got '32'/);
  usage(['create', '--disk', '1.5'], /--disk expects an integer/);
  usage(['create', '--on-timeout', 'stop'], /--on-timeout: 'stop' is not delete or pause/);
  usage(['create', '--idle-timeout', '0'], /--idle-timeout expects an integer from 1/);
  usage(['create', '--auto-delete', 'never'], /--auto-delete expects an integer/);
  usage(['create', '--volume', 'data'], /--volume expects NAME:\/PATH\[:ro\], got 'data'/);
  usage(['create', '--volume', ':/data'], /--volume expects NAME:\/PATH/);
  usage(['create', '--volume', 'Data:/data'], /--volume: 'Data' is not a volume name/);
  usage(['create', '--volume', 'data:rel/path'], /--volume: the mount path must be absolute/);
  usage(['create', '--volume', 'data:/'], /--volume: the mount path must be absolute and not '\/'/);
  usage(['create', '--volume', 'data:/:ro'], /must be absolute and not/);
  usage(['create', '--volume', 'a:/x', '--volume', 'b:/x:ro'], /--volume: two volumes mount at \/x/);
});

test('run takes --disk and --volume, not the lifecycle flags of a sandbox that outlives it', () => {
  assert.deepEqual(inv(['run', '--disk', '128', '--volume', 'data:/data:ro', '--', 'ls', '/data']), {
    kind: 'run',
    params: { diskMiB: 128, volumes: [{ name: 'data', path: '/data', readOnly: true }] },
    spec: { cmd: ['ls', '/data'] },
  });
  usage(['run', '--persistent', '--', 'true'], /unknown option '--persistent'/);
  usage(['run', '--auto-resume', '--', 'true'], /unknown option '--auto-resume'/);
});

test('pause, resume, stop, start, usage', () => {
  for (const verb of ['pause', 'resume', 'stop', 'start', 'usage'] as const) {
    assert.deepEqual(inv([verb, 'abc']), { kind: verb, id: 'abc', json: false });
    assert.deepEqual(inv([verb, 'abc', '--json']), { kind: verb, id: 'abc', json: true });
    // Without an id, `usage` is the tenant usage report (see below).
    if (verb !== 'usage') usage([verb], /missing required argument 'id'/);
    usage([verb, 'a', 'b'], /too many arguments/);
  }
  assert.deepEqual(inv(['ls', '--state', 'paused']), { kind: 'ls', state: ['paused'], metadata: {}, json: false });
});

test('volume create, ls, rm', () => {
  assert.deepEqual(inv(['volume', 'create', 'data']), { kind: 'volume-create', name: 'data', json: false });
  assert.deepEqual(inv(['volume', 'create', 'data', '--size', '512', '--label', 'owner=me', '--label', 'x=a=b', '--json']), {
    kind: 'volume-create',
    name: 'data',
    sizeMiB: 512,
    labels: { owner: 'me', x: 'a=b' },
    json: true,
  });
  assert.deepEqual(inv(['volume', 'ls']), { kind: 'volume-ls', json: false });
  assert.deepEqual(inv(['volume', 'list', '--json']), { kind: 'volume-ls', json: true });
  assert.deepEqual(inv(['volume', 'rm', 'a', 'b']), { kind: 'volume-rm', names: ['a', 'b'] });
  usage(['volume'], /command is required/);
  usage(['volume', 'create'], /missing required argument 'name'/);
  usage(['volume', 'create', 'My Volume'], /name: 'My Volume' is not a volume name/);
  usage(['volume', 'create', 'data', '--size', '10'], /--size expects an integer from 64 to 1048576/);
  usage(['volume', 'create', 'data', '--label', 'novalue'], /--label expects KEY=VALUE, got 'novalue'/);
  usage(['volume', 'rm'], /missing required argument 'name'/);
});

test('snapshot <id>, snapshot ls, snapshot rm: a word that is not a sandbox id is a subcommand or an error', () => {
  const id = 'k3j5h2l9q8w7e6r5t4y3';
  assert.deepEqual(inv(['snapshot', id]), { kind: 'snapshot', id, json: false });
  assert.deepEqual(inv(['snapshot', id, '--label', 'step=1', '--label', 'x=a=b', '--json']), {
    kind: 'snapshot',
    id,
    metadata: { step: '1', x: 'a=b' },
    json: true,
  });
  assert.deepEqual(inv(['snapshot', '--json', id]), { kind: 'snapshot', id, json: true }, 'options before the id');
  assert.deepEqual(inv(['snapshot', 'create', id]), { kind: 'snapshot', id, json: false }, 'the default subcommand by name');
  assert.deepEqual(inv(['snapshot', 'ls']), { kind: 'snapshot-ls', json: false });
  assert.deepEqual(inv(['snapshot', 'ls', '--json']), { kind: 'snapshot-ls', json: true }, '--json reaches ls, not the default');
  assert.deepEqual(inv(['snapshot', 'list', '--json']), { kind: 'snapshot-ls', json: true });
  assert.deepEqual(inv(['snapshot', 'rm', 'snap-0123456789abcdef', 'snap-abcdefghijklmnop']), {
    kind: 'snapshot-rm',
    ids: ['snap-0123456789abcdef', 'snap-abcdefghijklmnop'],
  });
  assert.deepEqual(inv(['--url', 'http://h:1', 'snapshot', id, '--api-key', 'k']), { kind: 'snapshot', id, json: false });
  usage(['snapshot'], /missing required argument 'id'/);
  usage(
    ['snapshot', 'lss'],
    /snapshot: 'lss' is neither a sandbox id \(20 characters of a-z, 0-9\) nor a subcommand \(create, ls, list, rm\)/,
  );
  usage(['snapshot', 'snap-0123456789abcdef'], /'snap-0123456789abcdef' is neither a sandbox id/);
  usage(['snapshot', id, '--label', 'novalue'], /--label expects KEY=VALUE, got 'novalue'/);
  usage(['snapshot', id, 'extra'], /too many arguments/);
  usage(['snapshot', 'ls', '--label', 'a=b'], /unknown option '--label'/);
  usage(['snapshot', 'rm'], /missing required argument 'snap-id'/);
});

test('fork and gc', () => {
  assert.deepEqual(inv(['fork', 'abc']), { kind: 'fork', id: 'abc', json: false });
  assert.deepEqual(inv(['fork', 'abc', '--count', '4', '--metadata', 'branch=2', '--json']), {
    kind: 'fork',
    id: 'abc',
    count: 4,
    metadata: { branch: '2' },
    json: true,
  });
  assert.deepEqual(inv(['fork', 'abc', '--memory']), { kind: 'fork', id: 'abc', memory: true, json: false });
  usage(['fork'], /missing required argument 'id'/);
  usage(['fork', 'abc', '--count', '0'], /--count expects an integer from 1 to 64, got '0'/);
  usage(['fork', 'abc', '--count', '65'], /--count expects an integer from 1 to 64, got '65'/);
  usage(['fork', 'abc', '--count', '1.5'], /--count expects an integer/);
  usage(['fork', 'abc', '--metadata', 'x'], /--metadata expects KEY=VALUE/);
  assert.deepEqual(inv(['gc']), { kind: 'gc', dryRun: false, json: false });
  assert.deepEqual(inv(['gc', '--dry-run', '--json']), { kind: 'gc', dryRun: true, json: true });
  usage(['gc', 'now'], /too many arguments/);
  usage(['gc', '--dryrun'], /unknown option '--dryrun'/);
});

test('global --url and --api-key, before or after the command', () => {
  const a = parse(['--url', 'http://h:1', 'ls', '--api-key', 'k'], { env: {}, io: quiet });
  assert.deepEqual(a.kind === 'invocation' && a.connection, { url: 'http://h:1', apiKey: 'k' });
  const b = parse(['ls'], { env: {}, io: quiet });
  assert.deepEqual(b.kind === 'invocation' && b.connection, { url: undefined, apiKey: undefined });
});

test('--help prints to stdout with an example and returns help', () => {
  for (const argv of [
    ['--help'],
    ['exec', '--help'],
    ['template', 'ls', '--help'],
    ['cp', '-h'],
    ['pause', '--help'],
    ['usage', '--help'],
    ['volume', '--help'],
    ['volume', 'create', '--help'],
    ['snapshot', '--help'],
    ['snapshot', 'create', '--help'],
    ['snapshot', 'ls', '--help'],
    ['snapshot', 'rm', '--help'],
    ['fork', '--help'],
    ['gc', '--help'],
  ]) {
    let out = '';
    const p = parse(argv, { env: {}, io: { writeOut: (s) => (out += s), writeErr: () => {} } });
    assert.deepEqual(p, { kind: 'help' }, argv.join(' '));
    assert.match(out, /Usage: hutch/);
    assert.match(out, /Example/);
  }
});

test('help texts name the new verbs and flags', () => {
  const help = (argv: string[]): string => {
    let out = '';
    parse(argv, { env: {}, io: { writeOut: (s) => (out += s), writeErr: () => {} } });
    return out;
  };
  const top = help(['--help']);
  for (const verb of ['pause', 'resume', 'stop', 'start', 'usage', 'volume', 'snapshot', 'fork', 'gc'])
    assert.match(top, new RegExp(`\\n  ${verb} `), verb);
  const snapshot = help(['snapshot', '--help']);
  assert.match(snapshot, /Usage: hutch snapshot <id> \[--label K=V\]\.\.\. \[--json\] \| ls \[--json\] \| rm <snap-id\.\.\.>/);
  for (const sub of ['create', 'ls', 'rm']) assert.match(snapshot, new RegExp(`\\n  ${sub}\\b`), sub);
  assert.match(help(['fork', '--help']), /--count <n>/);
  assert.match(help(['gc', '--help']), /--dry-run/);
  const create = help(['create', '--help']);
  for (const flag of ['--persistent', '--disk', '--on-timeout', '--idle-timeout', '--auto-delete', '--auto-resume', '--volume'])
    assert.ok(create.includes(flag), flag);
  const run = help(['run', '--help']);
  assert.match(run, /^\s+--volume /m);
  assert.match(run, /^\s+--disk /m);
  assert.doesNotMatch(run, /^\s+--persistent/m);
});

test('pool put, ls, rm; keys create with limits and keys limits; server capacity flags', () => {
  assert.deepEqual(inv(['pool', 'put', 'py', '--template', 'base', '--memory', '256', '--target', '4', '--max', '8', '--min', '1']), {
    kind: 'pool-put',
    name: 'py',
    spec: { template: 'base', memoryMiB: 256, min: 1, target: 4, max: 8 },
    json: false,
  });
  usage(['pool', 'put', 'py', '--template', 'base', '--max', '8'], /--target/);
  assert.deepEqual(inv(['pool', 'ls', '--json']), { kind: 'pool-ls', json: true });
  assert.deepEqual(inv(['pool', 'rm', 'a', 'b']), { kind: 'pool-rm', names: ['a', 'b'] });
  assert.deepEqual(inv(['keys', 'create', 'ci', '--max-sandboxes', '5', '--memory', '2048']), {
    kind: 'keys-create',
    name: 'ci',
    limits: { maxSandboxes: 5, memoryMiB: 2048 },
    json: false,
  });
  assert.deepEqual(inv(['keys', 'limits', 'k1', '--creates-per-minute', '60']), {
    kind: 'keys-limits',
    id: 'k1',
    limits: { createsPerMinute: 60 },
  });
  assert.deepEqual(inv(['keys', 'limits', 'k1', '--none']), { kind: 'keys-limits', id: 'k1', limits: null });
  const srv = inv(['server', '--overcommit', 'cpu=50,memory=2', '--create-concurrency', '3', '--create-queue', '100']);
  assert.equal(srv.kind, 'server');
  assert.deepEqual((srv as Extract<Invocation, { kind: 'server' }>).overcommit, { cpu: 50, memoryMiB: 2 });
  assert.equal((srv as Extract<Invocation, { kind: 'server' }>).createConcurrency, 3);
  assert.equal((srv as Extract<Invocation, { kind: 'server' }>).createQueue, 100);
  assert.deepEqual((inv(['server', '--overcommit', '3']) as Extract<Invocation, { kind: 'server' }>).overcommit, {
    cpu: 3,
    memoryMiB: 3,
    pids: 3,
    diskMiB: 3,
  });
  usage(['server', '--overcommit', 'ram=2'], /--overcommit: "ram=2"/);
  usage(['server', '--overcommit', 'cpu=0'], /not a ratio/);
  assert.equal((inv(['server', '--container-runtime', 'runc']) as Extract<Invocation, { kind: 'server' }>).containerRuntime, 'runc');
  usage(['server', '--container-runtime', 'docker'], /--container-runtime: expected auto, crun or runc, got "docker"/);
});

test('tenant create, ls, quotas, rm; keys create with tenant and role, ls, revoke; help text', () => {
  assert.deepEqual(inv(['tenant', 'create', 'team-a', '--max-sandboxes', '20', '--cpu', '8', '--memory', '16384', '--disk', '10240']), {
    kind: 'tenant-create',
    name: 'team-a',
    quotas: { maxSandboxes: 20, cpu: 8, memoryMiB: 16384, diskMiB: 10240 },
    json: false,
  });
  assert.deepEqual(inv(['tenant', 'create', 'team-b', '--json']), { kind: 'tenant-create', name: 'team-b', json: true });
  assert.deepEqual(inv(['tenant', 'ls', '--json']), { kind: 'tenant-ls', json: true });
  assert.deepEqual(inv(['tenants', 'list']), { kind: 'tenant-ls', json: false });
  assert.deepEqual(inv(['tenant', 'quotas', 'team-a', '--creates-per-minute', '60']), {
    kind: 'tenant-quotas',
    name: 'team-a',
    quotas: { createsPerMinute: 60 },
    json: false,
  });
  assert.deepEqual(inv(['tenant', 'quotas', 'team-a', '--none']), { kind: 'tenant-quotas', name: 'team-a', quotas: null, json: false });
  assert.deepEqual(inv(['tenant', 'rm', 'a', 'b', '--force']), { kind: 'tenant-rm', names: ['a', 'b'], force: true });
  assert.deepEqual(inv(['tenant', 'rm', 'a']), { kind: 'tenant-rm', names: ['a'], force: false });

  assert.deepEqual(inv(['keys', 'create', '--tenant', 'team-a', '--role', 'read-only']), {
    kind: 'keys-create',
    tenant: 'team-a',
    role: 'read-only',
    json: false,
  });
  assert.deepEqual(inv(['keys', 'create', 'ci', '--role', 'member', '--json']), {
    kind: 'keys-create',
    name: 'ci',
    role: 'member',
    json: true,
  });
  usage(['keys', 'create', '--role', 'owner'], /--role: "owner" is not one of admin, member, read-only/);
  assert.deepEqual(inv(['keys', 'ls', '--tenant', 'team-a', '--json']), { kind: 'keys-ls', tenant: 'team-a', json: true });
  assert.deepEqual(inv(['keys', 'revoke', 'k1', 'k2']), { kind: 'keys-revoke', ids: ['k1', 'k2'] });
  usage(['keys', 'revoke'], /missing required argument/);

  let out = '';
  const help = (argv: string[]): string => {
    out = '';
    parse(argv, { env: {}, io: { writeOut: (s) => void (out += s), writeErr: () => {} } });
    return out;
  };
  assert.match(help(['tenant', '--help']), /create .*\n[\s\S]*rm /);
  assert.match(help(['tenant', 'create', '--help']), /--max-sandboxes <n>\s+sandboxes the tenant may have at once/);
  assert.match(help(['tenant', 'create', '--help']), /--disk <MiB>\s+disks of its sandboxes plus its volumes/);
  assert.match(help(['keys', 'create', '--help']), /--role <role>/);
  assert.match(help(['keys', 'revoke', '--help']), /open streams/);
});

test('audit: filters, page, --json, --export; logs: -f, --since, --tail, --after, -t, --json; server: audit retention and log cap', () => {
  assert.deepEqual(inv(['audit']), { kind: 'audit', filter: {}, export: false, json: false });
  assert.deepEqual(
    inv(['audit', '--action', 'sandbox.exec', '--since', '1h', '--until', '2030-01-01T00:00:00Z', '--key', 'k1', '--target', 'sb1']),
    {
      kind: 'audit',
      filter: { action: 'sandbox.exec', since: '1h', until: '2030-01-01T00:00:00Z', key: 'k1', target: 'sb1' },
      export: false,
      json: false,
    },
  );
  assert.deepEqual(inv(['audit', '--outcome', 'error', '--tenant', 'team-a', '--limit', '10', '--cursor', '42', '--json']), {
    kind: 'audit',
    filter: { outcome: 'error', tenant: 'team-a' },
    limit: 10,
    cursor: '42',
    export: false,
    json: true,
  });
  assert.deepEqual(inv(['audit', '--export', '--since', '30d']), { kind: 'audit', filter: { since: '30d' }, export: true, json: false });
  usage(['audit', '--export', '--json'], /--export prints JSON lines/);
  usage(['audit', '--limit', '0'], /--limit/);

  assert.deepEqual(inv(['logs', 'sb1']), { kind: 'logs', id: 'sb1', follow: false, timestamps: false, json: false });
  assert.deepEqual(inv(['logs', '-f', 'sb1', '--since', '10m', '--tail', '20', '-t']), {
    kind: 'logs',
    id: 'sb1',
    follow: true,
    since: '10m',
    tail: 20,
    timestamps: true,
    json: false,
  });
  assert.deepEqual(inv(['logs', '--follow', '--after', '7', '--json', 'sb1']), {
    kind: 'logs',
    id: 'sb1',
    follow: true,
    after: 7,
    timestamps: false,
    json: true,
  });
  usage(['logs'], /missing required argument/);
  usage(['logs', 'sb1', '--tail', 'x'], /--tail/);

  const server = inv(['server', '--audit-retention-days', '365', '--sandbox-log-cap', '4096']);
  assert.equal(server.kind, 'server');
  assert.equal((server as { auditRetentionDays?: number }).auditRetentionDays, 365);
  assert.equal((server as { sandboxLogBytes?: number }).sandboxLogBytes, 4096 * 1024);
  assert.equal((inv(['server', '--sandbox-log-cap', '0']) as { sandboxLogBytes?: number }).sandboxLogBytes, 0);
  usage(['server', '--sandbox-log-cap', '8'], /at least 16/);

  let out = '';
  const help = (argv: string[]): string => {
    out = '';
    parse(argv, { env: {}, io: { writeOut: (s) => void (out += s), writeErr: () => {} } });
    return out;
  };
  assert.match(help(['audit', '--help']), /--export[\s\S]*JSON lines[\s\S]*Examples:/);
  assert.match(help(['logs', '--help']), /not\s+terminals[\s\S]*-f, --follow/);
  assert.match(help(['server', '--help']), /--audit-retention-days <days>[\s\S]*--sandbox-log-cap <KiB>/);
});

test('usage: without an id the tenant report (--since/--until/--tenant), with one the disk use; metrics <id>', () => {
  assert.deepEqual(inv(['usage']), { kind: 'usage-report', json: false });
  const report = inv(['usage', '--since', '2025-01-01', '--until', '2025-02-01T12:00:00Z', '--tenant', 'team-a', '--json']);
  assert.deepEqual(report, {
    kind: 'usage-report',
    since: '2025-01-01T00:00:00.000Z',
    until: '2025-02-01T12:00:00.000Z',
    tenant: 'team-a',
    json: true,
  });
  const since = (inv(['usage', '--since', '24h']) as { since: string }).since;
  assert.ok(Math.abs(Date.parse(since) - (Date.now() - 86_400_000)) < 5000, since);
  assert.deepEqual(inv(['usage', 'abc', '--json']), { kind: 'usage', id: 'abc', json: true });
  usage(['usage', 'abc', '--since', '1h'], /--since, --until and --tenant are for the tenant report/);
  usage(['usage', '--since', 'yesterday'], /--since expects a duration/);
  assert.deepEqual(inv(['metrics', 'abc']), { kind: 'metrics', id: 'abc', tail: 20, json: false });
  const m = inv(['metrics', 'abc', '--since', '10m', '--tail', '5', '--json']) as { since: string; tail: number; json: boolean };
  assert.ok(Math.abs(Date.parse(m.since) - (Date.now() - 600_000)) < 5000);
  assert.equal(m.tail, 5);
  assert.equal(m.json, true);
  usage(['metrics'], /missing required argument 'id'/);
  usage(['metrics', 'abc', '--tail', '0'], /--tail expects an integer from 1/);
});

test('server: sampling, metrics access and tracing flags', () => {
  const srv = inv([
    'server',
    '--sample-interval',
    '2.5',
    '--metrics-window',
    '7200',
    '--metrics-token-file',
    '/etc/hutch/metrics.token',
    '--metrics-listen',
    '10.0.0.5:9464',
    '--otlp-endpoint',
    'http://127.0.0.1:4318',
  ]) as Extract<Invocation, { kind: 'server' }>;
  assert.equal(srv.sampleIntervalSeconds, 2.5);
  assert.equal(srv.metricsWindowSeconds, 7200);
  assert.equal(srv.metricsTokenFile, '/etc/hutch/metrics.token');
  assert.equal(srv.metricsListen, '10.0.0.5:9464');
  assert.equal(srv.otlpEndpoint, 'http://127.0.0.1:4318');
  usage(['server', '--sample-interval', '0'], /--sample-interval expects a number from 0.2/);
  usage(['server', '--metrics-window', '5'], /--metrics-window expects an integer from 10/);
});

test('secret put/ls/rm: the value from --value, --from-file or stdin; --tenant; --json', () => {
  assert.deepEqual(inv(['secret', 'put', 'API_TOKEN']), { kind: 'secret-put', name: 'API_TOKEN', source: { kind: 'stdin' }, json: false });
  assert.deepEqual(inv(['secret', 'put', 'tok', '--value', 'v=1', '--tenant', 'team-a', '--json']), {
    kind: 'secret-put',
    name: 'tok',
    source: { kind: 'value', value: 'v=1' },
    tenant: 'team-a',
    json: true,
  });
  assert.deepEqual(inv(['secrets', 'put', 'key', '--from-file', './k.pem']).kind, 'secret-put');
  assert.deepEqual((inv(['secret', 'put', 'key', '--from-file', './k.pem']) as { source: unknown }).source, {
    kind: 'file',
    path: './k.pem',
  });
  usage(['secret', 'put', 'key', '--value', 'a', '--from-file', 'f'], /--value and --from-file exclude each other/);
  usage(['secret', 'put', '9bad'], /name: '9bad' is not a secret name/);
  assert.deepEqual(inv(['secret', 'ls', '--json']), { kind: 'secret-ls', json: true });
  assert.deepEqual(inv(['secret', 'list', '--tenant', 't']), { kind: 'secret-ls', tenant: 't', json: false });
  assert.deepEqual(inv(['secret', 'rm', 'a', 'b']), { kind: 'secret-rm', names: ['a', 'b'] });
});

test('create/run --secret: env (NAME alone too), file and header targets', () => {
  const i = inv([
    'create',
    '--secret',
    'GITHUB_TOKEN',
    '--secret',
    'db=env:DB_PASSWORD',
    '--secret',
    'db=file:/run/secrets/db',
    '--secret',
    'api=header:api.example.test',
    '--secret',
    'api=header:api.example.test:X-Api-Key:{}',
    '--secret',
    'api=header:h.test:Authorization:Token a:{}',
  ]) as { params: { secrets: unknown } };
  assert.deepEqual(i.params.secrets, [
    { name: 'GITHUB_TOKEN', env: 'GITHUB_TOKEN' },
    { name: 'db', env: 'DB_PASSWORD' },
    { name: 'db', file: '/run/secrets/db' },
    { name: 'api', injectHeader: { host: 'api.example.test', header: 'Authorization', format: 'Bearer {}' } },
    { name: 'api', injectHeader: { host: 'api.example.test', header: 'X-Api-Key', format: '{}' } },
    { name: 'api', injectHeader: { host: 'h.test', header: 'Authorization', format: 'Token a:{}' } },
  ]);
  assert.deepEqual((inv(['run', '--secret', 'x=env:X', '--', 'true']) as { params: { secrets: unknown } }).params.secrets, [
    { name: 'x', env: 'X' },
  ]);
  usage(['create', '--secret', 'my-token'], /'my-token' is not a variable name; say where it goes: my-token=env:VAR/);
  usage(['create', '--secret', 'x=vault:abc'], /--secret expects NAME=env:VAR/);
  usage(['create', '--secret', 'x=file:relative'], /--secret expects/);
  usage(['create', '--secret', '=env:X'], /is not a secret name/);
});

test('server --secrets-key-file', () => {
  assert.equal(
    (inv(['server', '--secrets-key-file', '/etc/hutch/secrets.key']) as { secretsKeyFile?: string }).secretsKeyFile,
    '/etc/hutch/secrets.key',
  );
  assert.equal((inv(['server']) as { secretsKeyFile?: string }).secretsKeyFile, undefined);
});

test('server: webhook secrets repeat (a rotation), token files, API URLs, preview labels and the janitor interval', () => {
  const i = inv([
    'server',
    '--github-webhook-secret',
    'old',
    '--github-webhook-secret',
    'new',
    '--gitlab-webhook-token',
    't1,t2',
    '--github-token-file',
    '/etc/gh',
    '--gitlab-api-url',
    'https://gl.example.com/api/v4',
    '--preview-keep-label',
    'pin',
    '--preview-janitor-interval',
    '30',
  ]) as Record<string, unknown>;
  assert.deepEqual(
    [i.githubWebhookSecrets, i.gitlabWebhookTokens, i.githubTokenFile, i.gitlabApiUrl, i.previewKeepLabel, i.previewJanitorIntervalSeconds],
    [['old', 'new'], ['t1,t2'], '/etc/gh', 'https://gl.example.com/api/v4', 'pin', 30],
  );
  usage(['server', '--preview-janitor-interval', '0'], /--preview-janitor-interval/);
});

test('hooks: deliveries filters, approve, projects add with branches and variables', () => {
  assert.deepEqual(inv(['hooks', 'deliveries', '--repository', 'a/b', '--number', '4', '--outcome', 'failed', '--json']), {
    kind: 'hooks-deliveries',
    filter: { repository: 'a/b', number: 4, outcome: 'failed' },
    json: true,
  });
  assert.deepEqual(inv(['hooks', 'approve', 'gitlab', 'g/p', '7', '--sha', 'a'.repeat(40)]), {
    kind: 'hooks-approve',
    provider: 'gitlab',
    repository: 'g/p',
    number: 7,
    sha: 'a'.repeat(40),
    json: false,
  });
  assert.deepEqual(inv(['hooks', 'projects', 'add', 'github', 'o/r', '--branch', 'main', '--branch', 'dev', '--var', 'A=1']), {
    kind: 'hooks-project-add',
    provider: 'github',
    repository: 'o/r',
    branches: ['main', 'dev'],
    variables: { A: '1' },
    json: false,
  });
  usage(['hooks', 'approve', 'bitbucket', 'o/r', '1'], /provider: "bitbucket" is not github or gitlab/);
  usage(['hooks', 'deliveries', '--provider', 'svn'], /--provider: "svn"/);
});

test('env lifecycle: keep [--off], ttl (default → null; a flag needed), seeds, reseed; server TTL and preview-domain flags', () => {
  assert.deepEqual(inv(['env', 'keep', 'env-0123456789abcdef']), {
    kind: 'env-update',
    id: 'env-0123456789abcdef',
    keep: true,
    json: false,
  });
  assert.deepEqual(inv(['env', 'keep', 'e', '--off', '--json']), { kind: 'env-update', id: 'e', keep: false, json: true });
  assert.deepEqual(inv(['env', 'ttl', 'e', '--idle', '30m', '--delete', 'default']), {
    kind: 'env-update',
    id: 'e',
    ttl: { idle: '30m', delete: null },
    json: false,
  });
  usage(['env', 'ttl', 'e'], /give --idle, --delete or both/);
  assert.deepEqual(inv(['env', 'seeds', '--json']), { kind: 'env-seeds', json: true });
  assert.deepEqual(inv(['env', 'reseed', 'shop', '--base', 'main']), { kind: 'env-reseed', project: 'shop', baseRef: 'main', json: false });
  const server = inv(['server', '--env-idle-ttl', '30m', '--env-delete-ttl', '7d', '--env-sweep-interval', '2'], {
    HUTCH_PREVIEW_DOMAIN: 'preview.example.com',
  }) as Extract<Invocation, { kind: 'server' }>;
  assert.deepEqual(
    [server.envIdleTtl, server.envDeleteTtl, server.envSweepIntervalMs, server.previewDomain],
    ['30m', '7d', 2000, 'preview.example.com'],
  );
});
