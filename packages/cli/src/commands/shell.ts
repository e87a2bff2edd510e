import type { Hutch } from '@hutch/sdk';
import { exitStatus } from '../args.js';

/**
 * `hutch shell`: an interactive terminal. When stdin is a terminal it is put in raw mode (so
 * Ctrl-C, arrows and tab go to the remote shell) and restored on every way out; the remote
 * terminal follows the local window size. When stdin is not a terminal its bytes are forwarded
 * as typed input and end-of-input is sent as Ctrl-D.
 */
export async function shell(hutch: Hutch, opts: { id: string; user?: string; cwd?: string }): Promise<number> {
  const sandbox = await hutch.sandboxes.get(opts.id);
  const stdin = process.stdin;
  const stdout = process.stdout;
  const pty = await sandbox.pty.create({
    cols: stdout.columns || 80,
    rows: stdout.rows || 24,
    user: opts.user,
    cwd: opts.cwd,
    onData: (bytes) => stdout.write(bytes),
  });

  const raw = stdin.isTTY === true;
  const restore = (): void => {
    if (raw && stdin.isRaw) stdin.setRawMode(false);
  };
  const onResize = (): void => pty.resize(stdout.columns || 80, stdout.rows || 24);
  const onData = (chunk: Buffer): void => pty.write(chunk);
  const onEnd = (): void => pty.write('\x04');
  let signalled = false;
  const onSignal = (): void => {
    // Like a terminal closing: hang up the remote shell; a second signal stops waiting for it.
    if (signalled) {
      restore();
      process.exit(130);
    }
    signalled = true;
    void pty.kill('SIGHUP').catch(() => pty.close());
  };
  process.on('exit', restore);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('SIGHUP', onSignal);
  stdout.on('resize', onResize);
  if (raw) stdin.setRawMode(true);
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  stdin.resume();

  try {
    const exit = await pty.wait();
    return exitStatus({ exitCode: exit.exitCode, signal: exit.signal ?? null, timedOut: false });
  } finally {
    restore();
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.pause();
    stdout.off('resize', onResize);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('SIGHUP', onSignal);
    process.off('exit', restore);
    pty.close();
  }
}
