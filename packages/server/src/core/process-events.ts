/** Process events as the Hutch API exposes them, and their translation from the agent's envd events. */
export type ProcessEvent =
  | { type: 'start'; pid: number }
  | { type: 'stdout' | 'stderr' | 'pty'; data: string }
  | { type: 'exit'; exitCode: number; signal: string | null; timedOut: boolean };

/** The envd-shaped message the agent streams (proto-JSON omits default values). */
export interface AgentProcessMessage {
  event?: {
    start?: { pid?: number };
    data?: { stdout?: string; stderr?: string; pty?: string };
    end?: { exitCode?: number; exited?: boolean; status?: string; error?: string };
    keepalive?: object;
  };
}

const GO_SIGNAL_NAMES: Record<string, string> = {
  killed: 'SIGKILL',
  terminated: 'SIGTERM',
  interrupt: 'SIGINT',
  hangup: 'SIGHUP',
  'segmentation fault': 'SIGSEGV',
  aborted: 'SIGABRT',
  'broken pipe': 'SIGPIPE',
  'alarm clock': 'SIGALRM',
  quit: 'SIGQUIT',
  'bus error': 'SIGBUS',
  'floating point exception': 'SIGFPE',
  'user defined signal 1': 'SIGUSR1',
  'user defined signal 2': 'SIGUSR2',
  'cpu time limit exceeded': 'SIGXCPU',
};

/** "signal: killed" → "SIGKILL"; null when the process exited normally. */
export function signalFromStatus(status: string | undefined): string | null {
  const match = /^signal: (.+?)(?: \(core dumped\))?$/.exec(status ?? '');
  if (!match) return null;
  return GO_SIGNAL_NAMES[match[1]!] ?? match[1]!;
}

/** Translates one agent message; keepalives and unknown shapes become null. */
export function toProcessEvent(message: AgentProcessMessage, timedOut: () => boolean): ProcessEvent | null {
  const e = message.event;
  if (!e) return null;
  if (e.start) return { type: 'start', pid: Number(e.start.pid ?? 0) };
  if (e.data) {
    if (typeof e.data.stdout === 'string') return { type: 'stdout', data: e.data.stdout };
    if (typeof e.data.stderr === 'string') return { type: 'stderr', data: e.data.stderr };
    if (typeof e.data.pty === 'string') return { type: 'pty', data: e.data.pty };
    return null;
  }
  if (e.end) {
    const signal = signalFromStatus(e.end.status);
    const exitCode = signal ? -1 : Number(e.end.exitCode ?? 0);
    return { type: 'exit', exitCode, signal, timedOut: signal !== null && timedOut() };
  }
  return null;
}
