import type { SandboxRecord, SandboxState } from './sandbox.js';

/** Persistence contracts core needs; store/ implements them (SQLite now, PostgreSQL later). */
export interface SandboxFilter {
  states?: SandboxState[];
  metadata?: Record<string, string>;
  expiredBefore?: Date;
}

export interface SandboxStore {
  insert(record: SandboxRecord): Promise<void>;
  get(id: string): Promise<SandboxRecord | null>;
  getByIdempotencyKey(key: string): Promise<SandboxRecord | null>;
  update(
    id: string,
    patch: Partial<Pick<SandboxRecord, 'state' | 'expiresAt' | 'deletedAt' | 'error' | 'timeoutSeconds' | 'network'>>,
  ): Promise<void>;
  list(filter?: SandboxFilter): Promise<SandboxRecord[]>;
  count(): Promise<number>;
}

export interface ApiKeyRecord {
  id: string;
  name: string;
  role: 'admin';
  createdAt: Date;
}

export interface ApiKeyStore {
  /** Stores only a hash of the key. */
  insert(key: string, record: ApiKeyRecord): Promise<void>;
  /** Resolves a presented key (constant-time on the hash), touching last-used. */
  verify(key: string): Promise<ApiKeyRecord | null>;
  countAdmins(): Promise<number>;
}

export interface MetaStore {
  get(key: string): Promise<string | null>;
  set(key: string, value: string): Promise<void>;
}
