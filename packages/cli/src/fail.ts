import { HutchError } from '@hutch/sdk';
import { UsageError } from './parse.js';

/** A failure the CLI reports as `hutch: <message>` and exits with `exitCode` (default 1). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/**
 * Prints an error as one line on stderr (`hutch: <message>`; the stack only with HUTCH_DEBUG=1)
 * and returns the exit status: 2 for usage errors, the error's own for `CliError`, else 1.
 */
export function report(err: unknown, write: (s: string) => void = (s) => process.stderr.write(s)): number {
  const debug = process.env.HUTCH_DEBUG === '1';
  const message = err instanceof Error ? err.message : String(err);
  write(`hutch: ${message}\n`);
  if (err instanceof UsageError) write("run 'hutch --help' (or 'hutch <command> --help') for usage\n");
  if (debug && err instanceof Error && err.stack) write(`${err.stack}\n`);
  if (debug && err instanceof HutchError) write(`code=${err.code} status=${err.status ?? '-'}\n`);
  if (err instanceof UsageError) return 2;
  if (err instanceof CliError) return err.exitCode;
  return 1;
}
