import {
  ConflictError,
  NotFoundError,
  type Hutch,
  type ProcessHandle,
  type Sandbox,
  type SandboxCreateParams,
  type Signal,
} from '@hutch/sdk';
import { exitStatus } from '../args.js';
import type { CommandSpec } from '../invocation.js';
import { CREATE_TIMEOUT_MS } from './sandboxes.js';

/** `hutch exec`: runs the command in an existing sandbox; returns its exit status. */
export async function exec(hutch: Hutch, opts: { id: string; spec: CommandSpec }): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  return streamCommand(sandbox, opts.spec);
}

/**
 * `hutch run`: create, run, delete. The sandbox is deleted however the command ends — exit,
 * error, Ctrl-C (also during creation) or SIGTERM.
 */
export async function run(hutch: Hutch, opts: { params: SandboxCreateParams; spec: CommandSpec }): Promise<number> {
  let interrupted = false;
  const onSignal = (): void => {
    if (interrupted) {
      process.stderr.write('hutch: interrupted twice while creating; the sandbox may be left behind (see hutch ls)\n');
      process.exit(130);
    }
    interrupted = true;
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let sandbox: Sandbox;
  try {
    sandbox = await hutch.sandboxes.create({ ...opts.params, timeoutMs: CREATE_TIMEOUT_MS });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  try {
    if (interrupted) return 130;
    return await streamCommand(sandbox, opts.spec);
  } finally {
    await sandbox.kill().catch((err: unknown) => {
      process.stderr.write(`hutch: could not delete sandbox ${sandbox.id}: ${err instanceof Error ? err.message : err}\n`);
    });
  }
}

/**
 * Runs one command with its output streamed to our stdout/stderr as raw bytes, stdin forwarded
 * when it is not a terminal (or when forced), and signals relayed: the first Ctrl-C sends SIGINT
 * to the command, a second one kills it; SIGTERM is relayed and stops waiting. Returns the exit
 * status to report (the command's, 128+n for a signal, 124 on its time limit).
 */
export async function streamCommand(sandbox: Sandbox, spec: CommandSpec): Promise<number> {
  const forwardStdin = spec.stdin ?? !process.stdin.isTTY;
  // Signal handlers go in before the process starts, so no Ctrl-C is lost in between.
  let handle: ProcessHandle | undefined;
  let pending: Signal | undefined;
  const send = (signal: Signal): void => {
    if (handle) void handle.kill(signal).catch(() => {});
    else pending = signal;
  };
  let giveUp!: (status: number) => void;
  const gaveUp = new Promise<{ status: number }>((resolve) => (giveUp = (status) => resolve({ status })));
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    send(interrupts === 1 ? 'SIGINT' : 'SIGKILL');
    if (interrupts > 1) giveUp(130);
  };
  const onSigterm = (): void => {
    send('SIGTERM');
    giveUp(143);
  };
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    // Our reader went away (e.g. `| head`): stop the command rather than let it run on unread.
    send('SIGKILL');
    giveUp(err.code === 'EPIPE' ? 141 : 1);
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigterm);
  process.stdout.on('error', onStdoutError);

  let exited = false;
  try {
    handle = await sandbox.processes.start(spec.cmd, {
      cwd: spec.cwd,
      user: spec.user,
      env: spec.env,
      timeoutMs: spec.timeoutMs, // unset: the server's default for streamed processes, no limit
      stdin: forwardStdin,
      ...(spec.keepAlive ? { keepAlive: true } : {}),
      onStdoutBytes: (b) => process.stdout.write(b),
      onStderrBytes: (b) => process.stderr.write(b),
      maxOutputBytes: 0,
    });
    if (pending) send(pending);
    if (forwardStdin) void pumpStdin(handle, () => exited);
    const outcome = await Promise.race([handle.wait(), gaveUp]);
    exited = true;
    if ('status' in outcome) {
      handle.disconnect();
      return outcome.status;
    }
    if (outcome.timedOut) process.stderr.write(`hutch: the command hit its time limit (${spec.timeoutMs} ms) and was killed\n`);
    return exitStatus(outcome);
  } finally {
    exited = true;
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigterm);
    process.stdout.off('error', onStdoutError);
    if (forwardStdin) process.stdin.destroy();
  }
}

/** Copies our stdin to the process chunk by chunk (in order), then closes its stdin. */
async function pumpStdin(handle: ProcessHandle, done: () => boolean): Promise<void> {
  try {
    for await (const chunk of process.stdin) {
      if (done()) return;
      await handle.sendStdin(chunk as Buffer);
    }
    if (!done()) await handle.closeStdin();
  } catch (err) {
    // The process may have exited (and its stdin gone) between two chunks: not worth a word.
    if (done() || err instanceof NotFoundError || err instanceof ConflictError) return;
    process.stderr.write(`hutch: forwarding stdin failed: ${err instanceof Error ? err.message : err}\n`);
  }
}
