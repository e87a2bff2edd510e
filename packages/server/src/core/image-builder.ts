import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { DockerfileImage } from '../environments/dockerfile.js';
import { HutchError, isHutchError } from './errors.js';
import type { Logger } from './logger.js';
import type { ProcessService } from './process-service.js';
import type { SandboxCopier } from './sandbox-copy.js';
import type { SandboxService } from './sandbox-service.js';
import type { SnapshotService } from './snapshot-service.js';
import type { Caller } from './tenancy.js';

/**
 * Builds images of Compose `build:` sections as snapshots: a sandbox of the base template runs
 * the Dockerfile's steps (RUN as commands, COPY from the project, WORKDIR as directories), then its
 * files are snapshotted and the sandbox deleted. The snapshot carries `hutch.build: <hash>` in its
 * metadata, the hash of everything that decides the result (environments/dockerfile.ts plus the
 * base template's current digest), so an unchanged build is reused — by any environment of the
 * tenant — and a changed one is built again. Concurrent builds of one hash share one build.
 */
export const BUILD_METADATA = 'hutch.build';
/** A RUN step may take this long. */
const RUN_TIMEOUT_MS = 15 * 60_000;
/** The build sandbox's lifetime bound (deleted when the build ends). */
const BUILD_SANDBOX_TTL_SECONDS = 3600;

export class BuildError extends HutchError {}

export class ImageBuilder {
  private readonly building = new Map<string, Promise<string>>();

  constructor(
    private readonly sandboxes: SandboxService,
    private readonly processes: ProcessService,
    private readonly snapshots: SnapshotService,
    private readonly copier: SandboxCopier,
    private readonly log: Logger,
  ) {}

  /** The build's cache key: the Dockerfile's hash and the base template's digest. */
  async keyOf(image: DockerfileImage, tenant: string): Promise<string> {
    const digest = await this.sandboxes.templateDigest(image.fromTemplate, tenant);
    return createHash('sha256').update(`${image.hash}:${digest}`).digest('hex');
  }

  /** A snapshot id with the image's files: a cached one, or a new build. */
  async ensure(
    image: DockerfileImage,
    projectRoot: string,
    caller: Caller,
    signal: AbortSignal,
  ): Promise<{ template: string; cached: boolean }> {
    const key = await this.keyOf(image, caller.tenant);
    const cached = (await this.snapshots.list(caller.tenant)).find((s) => s.metadata[BUILD_METADATA] === key);
    if (cached) return { template: cached.id, cached: true };
    const flight = `${caller.tenant}:${key}`;
    let pending = this.building.get(flight);
    if (!pending) {
      pending = this.build(image, key, projectRoot, caller, signal).finally(() => this.building.delete(flight));
      this.building.set(flight, pending);
    }
    return { template: await pending, cached: false };
  }

  private async build(image: DockerfileImage, key: string, projectRoot: string, caller: Caller, signal: AbortSignal): Promise<string> {
    const started = Date.now();
    const sandbox = await this.sandboxes.create(
      {
        template: image.fromTemplate,
        // Steps fetch packages and sources: builds have the internet (never the host, the
        // metadata service or other sandboxes, as every networked sandbox).
        network: { egress: 'open' },
        timeoutSeconds: BUILD_SANDBOX_TTL_SECONDS,
        metadata: { [BUILD_METADATA]: key },
      },
      caller,
    );
    try {
      for (const step of image.steps) {
        if (signal.aborted) throw new BuildError('internal', 'the build was cancelled');
        if (step.kind === 'mkdir') await this.copier.run(sandbox.id, ['mkdir', '-p', step.path]);
        else if (step.kind === 'copy') {
          for (const source of step.sources) await this.copier.copy(sandbox.id, join(projectRoot, source), step.dest);
        } else {
          const r = await this.processes.exec(sandbox.id, {
            cmd: step.argv,
            env: step.env,
            timeoutMs: RUN_TIMEOUT_MS,
            ...(step.user ? { user: step.user } : {}),
            ...(step.cwd ? { cwd: step.cwd } : {}),
          });
          if (r.exitCode !== 0 || r.timedOut) {
            const output = `${r.stdout}${r.stderr}`.trim().slice(-600);
            throw new BuildError(
              'invalid_argument',
              `build: line ${step.line}: ${r.timedOut ? 'timed out' : `exited with ${r.exitCode}`}${output ? `: ${output}` : ''}`,
            );
          }
        }
      }
      const snapshot = await this.snapshots.create(sandbox.id, { metadata: { [BUILD_METADATA]: key } });
      this.log.info(
        { snapshot: snapshot.id, from: image.fromTemplate, steps: image.steps.length, ms: Date.now() - started },
        'image built',
      );
      return snapshot.id;
    } catch (err) {
      if (isHutchError(err)) throw err;
      throw new BuildError('internal', `build: ${(err as Error).message}`);
    } finally {
      await this.sandboxes.delete(sandbox.id).catch(() => undefined);
    }
  }
}
