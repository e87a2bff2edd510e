import { conflict, invalidArgument, notFound } from './errors.js';
import type { Logger } from './logger.js';
import type { SecretCipher } from './secret-cipher.js';
import {
  planInjection,
  requireSecretName,
  requireSecretValue,
  type SecretInjection,
  type SecretRecord,
  type SecretRef,
} from './secrets.js';
import type { SecretStore } from './stores.js';

/**
 * A tenant's secrets: written (create or replace), listed and read as metadata, deleted; values
 * are sealed before they reach the store and opened only to inject them into a sandbox. Names are
 * per tenant: every method takes the tenant whose namespace is meant (the API resolves `?tenant=`).
 * Nothing here logs a value.
 */
export class SecretService {
  constructor(
    private readonly store: SecretStore,
    private readonly cipher: SecretCipher,
    private readonly log: Logger,
  ) {}

  /** Creates or replaces a secret; sandboxes already using it keep the value they were given until they restart. */
  async put(tenant: string, name: string, value: unknown): Promise<{ record: SecretRecord; created: boolean }> {
    requireSecretName(name);
    requireSecretValue(value);
    const now = new Date();
    const sealed = this.cipher.seal(tenant, name, value);
    const sizeBytes = Buffer.byteLength(value, 'utf8');
    const created = await this.store.upsert({ tenant, name, sizeBytes, createdAt: now, updatedAt: now, ...sealed });
    const record = await this.store.get(tenant, name);
    if (!record) throw conflict(`secret "${name}" was deleted while it was written; write it again`);
    this.log.info({ tenant, secret: name, sizeBytes, created }, created ? 'secret created' : 'secret replaced');
    return { record: metadata(record), created };
  }

  async get(tenant: string, name: string): Promise<SecretRecord> {
    requireSecretName(name);
    const record = await this.store.get(tenant, name);
    if (!record) throw notFound(`secret "${name}" not found`);
    return metadata(record);
  }

  /** One tenant's secrets, or (null) every tenant's: metadata only. */
  list(tenant: string | null): Promise<SecretRecord[]> {
    return this.store.list(tenant);
  }

  async delete(tenant: string, name: string): Promise<void> {
    requireSecretName(name);
    if (!(await this.store.remove(tenant, name))) throw notFound(`secret "${name}" not found`);
    this.log.info({ tenant, secret: name }, 'secret deleted');
  }

  /** Deletes every secret of a tenant (the tenant is being deleted); returns how many. */
  async deleteAll(tenant: string): Promise<number> {
    const all = await this.store.list(tenant);
    for (const s of all) await this.store.remove(tenant, s.name);
    return all.length;
  }

  count(): Promise<number> {
    return this.store.count();
  }

  /**
   * The values of a sandbox's references, read now from the tenant's store, as what the sandbox
   * gets. A reference to a secret the tenant does not have is a 400 naming it (another tenant's
   * secret is exactly as unknown); `when` says what needs it ("create", "start"…).
   */
  async resolve(tenant: string, refs: SecretRef[], when: string): Promise<SecretInjection> {
    const values = new Map<string, string>();
    for (const [i, ref] of refs.entries()) {
      if (values.has(ref.name)) continue;
      const stored = await this.store.get(tenant, ref.name);
      if (!stored)
        throw when === 'create'
          ? invalidArgument(`secrets[${i}].name: secret "${ref.name}" does not exist (PUT /v1/secrets/${ref.name} first)`)
          : conflict(
              `secret "${ref.name}" (secrets[${i}]) no longer exists, so the sandbox cannot ${when}: PUT /v1/secrets/${ref.name} again`,
            );
      values.set(ref.name, this.cipher.open(tenant, ref.name, stored.nonce, stored.ciphertext));
    }
    return planInjection(refs, values);
  }
}

function metadata(r: SecretRecord): SecretRecord {
  return { tenant: r.tenant, name: r.name, sizeBytes: r.sizeBytes, createdAt: r.createdAt, updatedAt: r.updatedAt };
}
