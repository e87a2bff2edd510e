import type { SandboxRecord, SandboxState } from './sandbox.js';
import type { SecretRecord, StoredSecret } from './secrets.js';
import type { ResourceLimits, Role } from './tenancy.js';

/** Persistence contracts core needs; store/ implements them (SQLite now, PostgreSQL later). */
export interface SandboxFilter {
  states?: SandboxState[];
  metadata?: Record<string, string>;
  expiredBefore?: Date;
  /** Only this tenant's sandboxes. */
  tenant?: string;
}

export type SandboxPatch = Partial<
  Pick<
    SandboxRecord,
    'state' | 'expiresAt' | 'deletedAt' | 'error' | 'timeoutSeconds' | 'network' | 'pauseMode' | 'stateChangedAt' | 'lifecycle'
  >
>;

export interface SandboxStore {
  insert(record: SandboxRecord): Promise<void>;
  get(id: string): Promise<SandboxRecord | null>;
  /** Idempotency keys are per tenant. */
  getByIdempotencyKey(tenant: string, key: string): Promise<SandboxRecord | null>;
  update(id: string, patch: SandboxPatch): Promise<void>;
  /** Ids of the tenant's sandboxes (any state but deleted) that mount its volume `name`. */
  usingVolume(tenant: string, name: string): Promise<string[]>;
  /** Ids of sandboxes (not deleted) created from the template or snapshot. */
  usingTemplate(template: string): Promise<string[]>;
  list(filter?: SandboxFilter): Promise<SandboxRecord[]>;
  count(): Promise<number>;
  /** Sandboxes of the tenant that are not deleted. */
  countOf(tenant: string): Promise<number>;
}

/** An API key's own limits inside its tenant's quotas (absent fields: unlimited). */
export type KeyLimits = ResourceLimits;

export interface ApiKeyRecord {
  id: string;
  name: string;
  tenant: string;
  role: Role;
  createdAt: Date;
  /** Recorded at most once a minute per key (see ApiKeyStore.verify). */
  lastUsedAt: Date | null;
  limits: KeyLimits | null;
}

export interface ApiKeyStore {
  /** Stores only a hash of the key. */
  insert(key: string, record: ApiKeyRecord): Promise<void>;
  /** Resolves a presented key that is not revoked (constant-time on the hash), touching last-used. */
  verify(key: string): Promise<ApiKeyRecord | null>;
  /** Whether a key with this secret was stored and revoked. */
  isRevoked(key: string): Promise<boolean>;
  get(id: string): Promise<ApiKeyRecord | null>;
  countAdmins(): Promise<number>;
  /** Keys that are not revoked (never the secrets), of one tenant or (null) all. */
  list(tenant: string | null): Promise<ApiKeyRecord[]>;
  /** Replaces a key's limits (null: unlimited); false when there is no such key. */
  setLimits(id: string, limits: KeyLimits | null): Promise<boolean>;
  /** Revokes a key at once (cached verifications included); false when there was none to revoke. */
  revoke(id: string): Promise<boolean>;
}

export interface MetaStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
}

export interface VolumeRecord {
  tenant: string;
  /** Unique within its tenant. */
  name: string;
  sizeMiB: number;
  labels: Record<string, string>;
  createdAt: Date;
}

export interface VolumeStore {
  insert(record: VolumeRecord): Promise<void>;
  get(tenant: string, name: string): Promise<VolumeRecord | null>;
  /** One tenant's volumes, or (null) every tenant's. */
  list(tenant: string | null): Promise<VolumeRecord[]>;
  remove(tenant: string, name: string): Promise<void>;
}

export interface SnapshotRecord {
  id: string;
  /** The tenant of the sandbox it was taken from. */
  tenant: string;
  sourceSandbox: string;
  /** The shipped template at the bottom of the snapshot's layers. */
  template: string;
  templateDigest: string;
  /** The snapshot's own layers, top first (the template's layer is below the last). */
  layers: string[];
  isolation: 'container' | 'gvisor';
  defaultUser: string;
  /** Whether a memory image was taken with it (gVisor). */
  memory: boolean;
  /** A memory snapshot's source resources and env: sandboxes restored from it get the same. */
  spec: { cpu: number; memoryMiB: number; pids: number; env: Record<string, string> } | null;
  sizeBytes: number;
  metadata: Record<string, string>;
  createdAt: Date;
}

export interface SnapshotStore {
  insert(record: SnapshotRecord): Promise<void>;
  get(id: string): Promise<SnapshotRecord | null>;
  /** One tenant's snapshots, or (null) every tenant's. */
  list(tenant: string | null): Promise<SnapshotRecord[]>;
  remove(id: string): Promise<void>;
}

export interface TenantRecord {
  name: string;
  quotas: ResourceLimits | null;
  createdAt: Date;
}

export interface TenantStore {
  insert(record: TenantRecord): Promise<void>;
  get(name: string): Promise<TenantRecord | null>;
  list(): Promise<TenantRecord[]>;
  setQuotas(name: string, quotas: ResourceLimits | null): Promise<boolean>;
  remove(name: string): Promise<void>;
}

export interface SecretStore {
  /** Creates or replaces (keeping createdAt) a tenant's secret; true when it was created. */
  upsert(record: StoredSecret): Promise<boolean>;
  get(tenant: string, name: string): Promise<StoredSecret | null>;
  /** Metadata of one tenant's secrets, or (null) every tenant's; never the sealed values. */
  list(tenant: string | null): Promise<SecretRecord[]>;
  /** False when there was none. */
  remove(tenant: string, name: string): Promise<boolean>;
  count(): Promise<number>;
}
