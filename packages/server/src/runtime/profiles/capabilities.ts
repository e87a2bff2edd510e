/**
 * Capabilities of the sandbox's PID 1 (hutch-agent). User processes never keep any: the agent's
 * exec shim drops the bounding set and every capability set before exec. These few exist so the
 * agent can switch to the requested user (SETUID, SETGID, SETPCAP for dropping the bounding set),
 * write files as root on behalf of the API (CHOWN, DAC_OVERRIDE, FOWNER) and signal processes
 * of any user (KILL). All of them apply only inside the sandbox's user namespace.
 */
export const AGENT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FOWNER',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
];
