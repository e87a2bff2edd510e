import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, posix } from 'node:path';
import { packForCopy } from '../environments/workspace.js';
import { HutchError } from './errors.js';
import type { FileService } from './file-service.js';
import type { ProcessService } from './process-service.js';

/**
 * Copies a host path (a project's file or directory) into a running sandbox, as the sandbox's
 * root: a directory's contents go into `dest` through `tar -x` in the sandbox (modes kept,
 * symlinks kept as links), a file is written at `dest` — or into it when `dest` ends with `/`.
 * Used for repository-relative binds of environments and for COPY in builds.
 */
export class SandboxCopier {
  constructor(
    private readonly processes: ProcessService,
    private readonly files: FileService,
  ) {}

  async copy(sandboxId: string, hostPath: string, dest: string): Promise<void> {
    const into = dest.endsWith('/');
    const target = posix.normalize(dest).replace(/\/+$/, '') || '/';
    if (!(await stat(hostPath)).isDirectory()) {
      const file = into ? posix.join(target, basename(hostPath)) : target;
      await this.run(sandboxId, ['mkdir', '-p', posix.dirname(file)]);
      await this.files.write(sandboxId, file, createReadStream(hostPath), 'root');
      return;
    }
    const events = this.processes.start(sandboxId, {
      cmd: ['/bin/sh', '-c', 'mkdir -p "$1" && exec tar -x -f - -C "$1"', 'copy', target],
      user: 'root',
      stdin: true,
      // The server's own plumbing, not the workload's output: not in the sandbox's log.
      captureOutput: false,
    });
    let stderr = '';
    for await (const event of events) {
      if (event.type === 'start') {
        for await (const chunk of packForCopy(hostPath)) await this.processes.sendStdin(sandboxId, { pid: event.pid }, chunk as Buffer);
        await this.processes.closeStdin(sandboxId, { pid: event.pid });
      } else if (event.type === 'stderr') stderr += Buffer.from(event.data, 'base64').toString();
      else if (event.type === 'exit') {
        if (event.exitCode !== 0) throw new HutchError('internal', `copying into ${target} failed: ${stderr.trim().slice(-300)}`);
        return;
      }
    }
    throw new HutchError('internal', `copying into ${target}: the process ended without an exit status`);
  }

  /** Runs a command as the sandbox's root; a non-zero exit is an error with its stderr. */
  async run(sandboxId: string, cmd: string[]): Promise<void> {
    const r = await this.processes.exec(sandboxId, { cmd, user: 'root', timeoutMs: 30_000, captureOutput: false });
    if (r.exitCode !== 0) throw new HutchError('internal', `${cmd.join(' ')} failed: ${r.stderr.trim().slice(-300)}`);
  }
}
