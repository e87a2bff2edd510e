/**
 * Headers the egress proxy adds to a sandbox's plain-HTTP requests, by host: the `injectHeader`
 * secrets of running sandboxes, so a credential reaches an API without ever entering the sandbox.
 * In memory only (filled when secrets are injected, emptied at delete).
 */
export interface InjectedHeader {
  header: string;
  value: string;
}

export class EgressHeaders {
  private readonly bySandbox = new Map<string, Map<string, InjectedHeader[]>>();

  /** Replaces what a sandbox's requests get, per host. */
  set(sandboxId: string, headers: Array<{ host: string; header: string; value: string }>): void {
    if (headers.length === 0) {
      this.bySandbox.delete(sandboxId);
      return;
    }
    const byHost = new Map<string, InjectedHeader[]>();
    for (const h of headers) {
      const list = byHost.get(h.host) ?? [];
      // One value per header name and host: a later reference wins.
      const kept = list.filter((x) => x.header.toLowerCase() !== h.header.toLowerCase());
      byHost.set(h.host, [...kept, { header: h.header, value: h.value }]);
    }
    this.bySandbox.set(sandboxId, byHost);
  }

  forget(sandboxId: string): void {
    this.bySandbox.delete(sandboxId);
  }

  /** The headers for requests of the sandbox to `host` (lower-case, no trailing dot); empty for none. */
  for(sandboxId: string, host: string): InjectedHeader[] {
    return this.bySandbox.get(sandboxId)?.get(host) ?? [];
  }
}
