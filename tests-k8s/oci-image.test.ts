import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { REPO, LAYERS_DIR, startServer } from '../tests/harness.js';
import { waitFor } from '../tests/hostile-lib.js';
import { core, IMPORT_IMAGE, kubeconfigPath, pods, removeNamespace, uniqueNamespace } from './k8s-lib.js';

/**
 * `hutch template export --oci`: the tarball imports into the cluster's containerd and runs as a
 * pod whose PID 1 is hutch-agent, serving on the pod IP behind its token, with the template's
 * owners unshifted (the image carries no trace of the local sandbox uid range).
 */
const namespace = uniqueNamespace('hutch-oci');
const tmp = mkdtempSync('/var/tmp/hutch-oci-');
const TOKEN = 'oci-test-token';

before(async () => {
  await core().createNamespace({ body: { metadata: { name: namespace } } });
});
after(async () => {
  await removeNamespace(namespace);
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs a command through the agent's Connect API and returns its stdout and exit code. */
async function agentRun(
  ip: string,
  cmd: string,
  token: string | null,
): Promise<{ status: number; stdout: string; exitCode: number | null }> {
  const body = JSON.stringify({ process: { cmd: '/bin/sh', args: ['-c', cmd] } });
  const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, 0]), Buffer.from(body)]);
  envelope.writeUInt32BE(Buffer.byteLength(body), 1);
  const res = await fetch(`http://${ip}:49983/process.Process/Start`, {
    method: 'POST',
    headers: {
      'content-type': 'application/connect+json',
      'connect-protocol-version': '1',
      ...(token ? { 'x-access-token': token } : {}),
    },
    body: envelope,
    signal: AbortSignal.timeout(20_000),
  });
  const bytes = Buffer.from(await res.arrayBuffer());
  if (res.status !== 200) return { status: res.status, stdout: bytes.toString(), exitCode: null };
  let stdout = '';
  let exitCode: number | null = null;
  for (let at = 0; at + 5 <= bytes.length;) {
    const length = bytes.readUInt32BE(at + 1);
    const message = JSON.parse(bytes.subarray(at + 5, at + 5 + length).toString()) as {
      event?: { data?: { stdout?: string }; end?: { exitCode?: number } };
    };
    if (message.event?.data?.stdout) stdout += Buffer.from(message.event.data.stdout, 'base64').toString();
    if (message.event?.end) exitCode = message.event.end.exitCode ?? 0;
    at += 5 + length;
  }
  return { status: res.status, stdout, exitCode };
}

test('a template exported as an OCI image runs as a pod with hutch-agent as PID 1 on the pod IP', { timeout: 180_000 }, async () => {
  const tarball = join(tmp, 'minimal.tar');
  const exported = JSON.parse(
    execFileSync(
      process.execPath,
      [join(REPO, 'packages/cli/dist/main.js'), 'template', 'export', 'minimal', '--oci', tarball, '--layers-dir', LAYERS_DIR, '--json'],
      { encoding: 'utf8' },
    ),
  ) as { ref: string; layers: number; sizeBytes: number };
  assert.match(exported.ref, /^localhost\/hutch\/sandbox:[0-9a-f]{32}$/);
  assert.equal(exported.layers, 2, 'the template layer and the agent layer');

  // The archive is an OCI image layout; its config names the agent as the entrypoint.
  const index = JSON.parse(execFileSync('tar', ['-xOf', tarball, 'index.json'], { encoding: 'utf8' })) as {
    manifests: Array<{ digest: string }>;
  };
  const manifest = JSON.parse(
    execFileSync('tar', ['-xOf', tarball, `blobs/sha256/${index.manifests[0]!.digest.slice(7)}`], { encoding: 'utf8' }),
  ) as { config: { digest: string } };
  const config = JSON.parse(
    execFileSync('tar', ['-xOf', tarball, `blobs/sha256/${manifest.config.digest.slice(7)}`], { encoding: 'utf8' }),
  ) as {
    config: { Entrypoint: string[] };
  };
  assert.deepEqual(config.config.Entrypoint, ['/.hutch/hutch-agent', '--listen', 'tcp:0.0.0.0:49983', '--default-user', 'root']);

  // Exporting again gives the same image (same layer blobs): a tag always names one content.
  const again = JSON.parse(
    execFileSync(
      process.execPath,
      [
        join(REPO, 'packages/cli/dist/main.js'),
        'template',
        'export',
        'minimal',
        '--oci',
        join(tmp, 'again.tar'),
        '--layers-dir',
        LAYERS_DIR,
        '--json',
      ],
      { encoding: 'utf8' },
    ),
  ) as { ref: string };
  assert.equal(again.ref, exported.ref);
  assert.equal(
    execFileSync('tar', ['-xOf', join(tmp, 'again.tar'), 'index.json'], { encoding: 'utf8' }),
    JSON.stringify(index),
    'a second export has the same index (same manifest digest)',
  );

  // import-image can fail transiently (its check pipes `ctr images ls` into `grep -q` under
  // pipefail): up to three attempts.
  let imported = '';
  for (let attempt = 1; attempt <= 3 && !imported; attempt++) {
    try {
      imported = execFileSync(IMPORT_IMAGE, [tarball, exported.ref], { encoding: 'utf8' }).trim();
    } catch (err) {
      if (attempt === 3) throw err;
    }
  }
  assert.equal(imported, exported.ref);
  await core().createNamespacedPod({
    namespace,
    body: {
      metadata: { name: 'oci-image' },
      spec: {
        restartPolicy: 'Never',
        automountServiceAccountToken: false,
        containers: [
          {
            name: 'sandbox',
            image: exported.ref,
            imagePullPolicy: 'Never',
            env: [{ name: 'HUTCH_AGENT_ACCESS_TOKEN', value: TOKEN }],
          },
        ],
      },
    },
  });
  const ip = await waitFor(async () => {
    const [pod] = await pods(namespace);
    return pod?.status?.phase === 'Running' ? pod.status.podIP : undefined;
  }, 90_000);
  assert.ok(ip, 'the pod runs and has an IP');
  const healthy = await waitFor(
    () =>
      fetch(`http://${ip}:49983/health`, { signal: AbortSignal.timeout(2000) }).then(
        (r) => r.status === 204,
        () => false,
      ),
    20_000,
    200,
  );
  assert.ok(healthy, 'the agent answers /health on the pod IP');

  const refused = await agentRun(ip, 'id', null);
  assert.equal(refused.status, 401, 'no token: refused');
  const wrong = await agentRun(ip, 'id', 'not-the-token');
  assert.equal(wrong.status, 401, 'a wrong token: refused');

  const run = await agentRun(ip, 'echo pid1=$(cat /proc/1/comm); stat -c %u:%g /home/user /bin/busybox', TOKEN);
  assert.equal(run.status, 200);
  assert.equal(run.exitCode, 0);
  assert.equal(run.stdout, 'pid1=hutch-agent\n1000:1000\n0:0\n', "the agent is PID 1; owners are the template's own (not 100000+)");
});

test(
  'without --image-import, a create whose image is on no node fails at once, naming the image and the export',
  { timeout: 120_000 },
  async () => {
    const server = await startServer({
      provider: 'kubernetes',
      kubernetes: { kubeconfig: kubeconfigPath(), namespace, imageRepository: 'localhost/hutch/never-imported' },
    });
    try {
      const started = Date.now();
      const res = await server.api<{ error: { message: string } }>('POST', '/v1/sandboxes', {
        template: 'minimal',
        cpu: 0.25,
        memoryMiB: 128,
      });
      assert.equal(res.status, 500, JSON.stringify(res.body));
      assert.match(res.body.error.message, /localhost\/hutch\/never-imported:[0-9a-f]{32} is not on the node/);
      assert.match(res.body.error.message, /hutch template export/);
      assert.ok(Date.now() - started < 60_000, 'refused without waiting for the create timeout');
      assert.deepEqual(
        (await pods(namespace, 'app.kubernetes.io/managed-by=hutch')).map((p) => p.metadata?.name),
        [],
        'the failed pod is deleted',
      );
    } finally {
      await server.stop();
    }
  },
);
