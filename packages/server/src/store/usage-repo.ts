import { sql } from 'kysely';
import type { Isolation } from '../core/sandbox.js';
import type { MeterRow, RunningSandboxRow, TenantUsageTotals, UsageBucket, UsageStore } from '../core/usage-meter.js';
import type { Db } from './database.js';

const STORAGE_CLOCK = 'usage_storage_at';
/** Sandboxes whose disk is allocated (error: its resources are gone; deleted: removed). */
const HOLDING_DISK = ['creating', 'running', 'paused', 'stopped'];

/** Usage accounting and the figures /metrics reads at scrape time, in SQLite (migration 0009). */
export class SqliteUsageStore implements UsageStore {
  constructor(private readonly db: Db) {}

  async loadMeters(): Promise<MeterRow[]> {
    const rows = await this.db.selectFrom('usage_meters').selectAll().execute();
    return rows.map((r) => ({
      sandboxId: r.sandbox_id,
      tenant: r.tenant,
      cpu: r.cpu,
      memoryMiB: r.memory_mib,
      at: r.at,
      cpuNs: r.cpu_ns,
      netRx: r.net_rx,
      netTx: r.net_tx,
    }));
  }

  async running(): Promise<RunningSandboxRow[]> {
    const rows = await this.db
      .selectFrom('sandboxes')
      .select(['id', 'tenant', 'isolation', 'cpu', 'memory_mib'])
      .where('state', '=', 'running')
      .execute();
    return rows.map((r) => ({ id: r.id, tenant: r.tenant, isolation: r.isolation as Isolation, cpu: r.cpu, memoryMiB: r.memory_mib }));
  }

  async storageMiB(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    const add = (tenant: string, mib: number | string | null): void => {
      out.set(tenant, (out.get(tenant) ?? 0) + Number(mib ?? 0));
    };
    const disks = await this.db
      .selectFrom('sandboxes')
      .select(['tenant', (eb) => eb.fn.sum<number>('disk_mib').as('mib')])
      .where('state', 'in', HOLDING_DISK)
      .groupBy('tenant')
      .execute();
    for (const r of disks) add(r.tenant, r.mib);
    const volumes = await this.db
      .selectFrom('volumes')
      .select(['tenant', (eb) => eb.fn.sum<number>('size_mib').as('mib')])
      .groupBy('tenant')
      .execute();
    for (const r of volumes) add(r.tenant, r.mib);
    const snapshots = await this.db
      .selectFrom('snapshots')
      .select(['tenant', (eb) => eb.fn.sum<number>('size_bytes').as('bytes')])
      .groupBy('tenant')
      .execute();
    for (const r of snapshots) add(r.tenant, Number(r.bytes ?? 0) / (1024 * 1024));
    return out;
  }

  async storageAt(): Promise<number | null> {
    const row = await this.db.selectFrom('meta').select('value').where('key', '=', STORAGE_CLOCK).executeTakeFirst();
    const at = row ? Number(row.value) : NaN;
    return Number.isFinite(at) ? at : null;
  }

  async commit(change: { meters: MeterRow[]; closed: string[]; buckets: UsageBucket[]; storageAt: number | null }): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      for (const m of change.meters) {
        const values = {
          sandbox_id: m.sandboxId,
          tenant: m.tenant,
          cpu: m.cpu,
          memory_mib: m.memoryMiB,
          at: m.at,
          cpu_ns: m.cpuNs,
          net_rx: m.netRx,
          net_tx: m.netTx,
        };
        await trx
          .insertInto('usage_meters')
          .values(values)
          .onConflict((oc) => oc.column('sandbox_id').doUpdateSet(values))
          .execute();
      }
      if (change.closed.length > 0) await trx.deleteFrom('usage_meters').where('sandbox_id', 'in', change.closed).execute();
      for (const b of change.buckets) {
        const a = b.amounts;
        await trx
          .insertInto('usage_hourly')
          .values({
            tenant: b.tenant,
            hour: b.hour,
            cpu_seconds: a.cpuSeconds,
            cpu_reserved_seconds: a.cpuReservedSeconds,
            memory_gib_seconds: a.memoryGiBSeconds,
            memory_used_gib_seconds: a.memoryUsedGiBSeconds,
            storage_gib_seconds: a.storageGiBSeconds,
            sandbox_seconds: a.sandboxSeconds,
            net_rx_bytes: a.netRxBytes,
            net_tx_bytes: a.netTxBytes,
          })
          .onConflict((oc) =>
            oc.columns(['tenant', 'hour']).doUpdateSet({
              cpu_seconds: sql`usage_hourly.cpu_seconds + excluded.cpu_seconds`,
              cpu_reserved_seconds: sql`usage_hourly.cpu_reserved_seconds + excluded.cpu_reserved_seconds`,
              memory_gib_seconds: sql`usage_hourly.memory_gib_seconds + excluded.memory_gib_seconds`,
              memory_used_gib_seconds: sql`usage_hourly.memory_used_gib_seconds + excluded.memory_used_gib_seconds`,
              storage_gib_seconds: sql`usage_hourly.storage_gib_seconds + excluded.storage_gib_seconds`,
              sandbox_seconds: sql`usage_hourly.sandbox_seconds + excluded.sandbox_seconds`,
              net_rx_bytes: sql`usage_hourly.net_rx_bytes + excluded.net_rx_bytes`,
              net_tx_bytes: sql`usage_hourly.net_tx_bytes + excluded.net_tx_bytes`,
            }),
          )
          .execute();
      }
      if (change.storageAt !== null) {
        const value = String(change.storageAt);
        await trx
          .insertInto('meta')
          .values({ key: STORAGE_CLOCK, value })
          .onConflict((oc) => oc.column('key').doUpdateSet({ value }))
          .execute();
      }
    });
  }

  async totals(range: { start: number; end: number; tenant: string | null }): Promise<TenantUsageTotals[]> {
    let q = this.db
      .selectFrom('usage_hourly')
      .select((eb) => [
        'tenant',
        eb.fn.sum<number>('cpu_seconds').as('cpu_seconds'),
        eb.fn.sum<number>('cpu_reserved_seconds').as('cpu_reserved_seconds'),
        eb.fn.sum<number>('memory_gib_seconds').as('memory_gib_seconds'),
        eb.fn.sum<number>('memory_used_gib_seconds').as('memory_used_gib_seconds'),
        eb.fn.sum<number>('storage_gib_seconds').as('storage_gib_seconds'),
        eb.fn.sum<number>('sandbox_seconds').as('sandbox_seconds'),
        eb.fn.sum<number>('net_rx_bytes').as('net_rx_bytes'),
        eb.fn.sum<number>('net_tx_bytes').as('net_tx_bytes'),
      ])
      .where('hour', '>=', range.start)
      .where('hour', '<', range.end);
    if (range.tenant !== null) q = q.where('tenant', '=', range.tenant);
    const rows = await q.groupBy('tenant').orderBy('tenant').execute();
    return rows.map((r) => ({
      tenant: r.tenant,
      cpuSeconds: Number(r.cpu_seconds ?? 0),
      cpuReservedSeconds: Number(r.cpu_reserved_seconds ?? 0),
      memoryGiBSeconds: Number(r.memory_gib_seconds ?? 0),
      memoryUsedGiBSeconds: Number(r.memory_used_gib_seconds ?? 0),
      storageGiBSeconds: Number(r.storage_gib_seconds ?? 0),
      sandboxSeconds: Number(r.sandbox_seconds ?? 0),
      netRxBytes: Number(r.net_rx_bytes ?? 0),
      netTxBytes: Number(r.net_tx_bytes ?? 0),
    }));
  }

  /** Sandboxes that are not deleted, by tenant, tier and state (the /metrics gauge). */
  async sandboxCounts(): Promise<Array<{ tenant: string; isolation: string; state: string; count: number }>> {
    const rows = await this.db
      .selectFrom('sandboxes')
      .select(['tenant', 'isolation', 'state', (eb) => eb.fn.countAll<number>().as('n')])
      // By the states that are not `deleted` (deleted rows pile up; the state index skips them).
      .where('state', 'in', ['creating', 'running', 'paused', 'stopped', 'error'])
      .groupBy(['tenant', 'isolation', 'state'])
      .execute();
    return rows.map((r) => ({ tenant: r.tenant, isolation: r.isolation, state: r.state, count: Number(r.n) }));
  }

  /** A cheap read that touches the database file (store health at scrape time). */
  async ping(): Promise<void> {
    await this.db
      .selectFrom('tenants')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirst();
  }
}
