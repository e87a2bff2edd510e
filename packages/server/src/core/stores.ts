import type { SandboxRecord, SandboxState } from './sandbox.js';

/** Persistence contracts core needs; store/ implements them (SQLite now, PostgreSQL later). */
export interface SandboxFilter {
  states?: SandboxState[];
  metadata?: Record<string, string>;
  expiredBefore?: Date;
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
  getByIdempotencyKey(key: string): Promise<SandboxRecord | null>;
  update(id: string, patch: SandboxPatch): Promise<void>;
  /** Ids of sandboxes (any state but deleted) that mount the volume. */
  usingVolume(name: string): Promise<string[]>;
  /** Ids of sandboxes (not deleted) created from the template or snapshot. */
  usingTemplate(template: string): Promise<string[]>;
  list(filter?: SandboxFilter): Promise<SandboxRecord[]>;
  count(): Promise<number>;
}

/** Per-API-key limits (absent fields: unlimited). The tenancy work moves them to tenants. */
export interface KeyLimits {
  /** Sandboxes (running, paused or stopped) the key may have at once. */
  maxSandboxes?: number;
  /** Sum of cpu limits of its running sandboxes. */
  cpu?: number;
  /** Sum of memory limits of its running sandboxes. */
  memoryMiB?: number;
  /** Sum of disk quotas of all its sandboxes. */
  diskMiB?: number;
  createsPerMinute?: number;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: 'admin';
  createdAt: Date;
  limits: KeyLimits | null;
}

export interface ApiKeyStore {
  /** Stores only a hash of the key. */
  insert(key: string, record: ApiKeyRecord): Promise<void>;
  /** Resolves a presented key (constant-time on the hash), touching last-used. */
  verify(key: string): Promise<ApiKeyRecord | null>;
  countAdmins(): Promise<number>;
  /** Keys that are not revoked (never the secrets). */
  list(): Promise<Array<ApiKeyRecord & { lastUsedAt: Date | null }>>;
  /** Replaces a key's limits (null: unlimited); false when there is no such key. */
  setLimits(id: string, limits: KeyLimits | null): Promise<boolean>;
}

export interface MetaStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
}

export interface VolumeRecord {
  name: string;
  sizeMiB: number;
  labels: Record<string, string>;
  createdAt: Date;
}

export interface VolumeStore {
  insert(record: VolumeRecord): Promise<void>;
  get(name: string): Promise<VolumeRecord | null>;
  list(): Promise<VolumeRecord[]>;
  remove(name: string): Promise<void>;
}

export interface SnapshotRecord {
  id: string;
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
  list(): Promise<SnapshotRecord[]>;
  remove(id: string): Promise<void>;
}
