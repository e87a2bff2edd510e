import {
  ColumnDefinitionNode,
  DataTypeNode,
  OperationNodeTransformer,
  sql,
  type KyselyPlugin,
  type Kysely,
  type PluginTransformQueryArgs,
  type PluginTransformResultArgs,
  type PrimitiveValueListNode,
  type QueryResult,
  type RawBuilder,
  type RootOperationNode,
  type UnknownRow,
  type ValueNode,
} from 'kysely';

/** The two SQL dialects the store speaks. */
export type StoreDialect = 'sqlite' | 'postgres';

/**
 * Which dialect a Kysely instance (or transaction) compiles to, through public API only:
 * PostgreSQL numbers its parameters (`$1`), SQLite does not (`?`).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: only the compiler is used
export function dialectOf(db: Kysely<any>): StoreDialect {
  return sql`${0}`.compile(db).sql === '$1' ? 'postgres' : 'sqlite';
}

/** The statement for this database's dialect (triggers, casts: what has no common spelling). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- any schema: only the compiler is used
export function perDialect(db: Kysely<any>, choices: Record<StoreDialect, RawBuilder<unknown>>): RawBuilder<unknown> {
  return choices[dialectOf(db)];
}

/**
 * Migrations are written once, in SQLite's column types; on PostgreSQL this maps them (for
 * every migration, including ones added later):
 * - `integer` → `bigint`: ms timestamps and byte counts exceed 2^31 (SQLite's integer is 64-bit);
 *   the pool parses int8 back to a number (store/postgres.ts);
 * - `real` → `double precision` (SQLite's real is 8 bytes; PostgreSQL's is 4);
 * - `blob` → `bytea`;
 * - an auto-incremented integer primary key → `bigserial` (SQLite's AUTOINCREMENT).
 * Raw `sql` fragments are not touched: use perDialect() where the spellings differ.
 */
class PostgresDdlTransformer extends OperationNodeTransformer {
  protected override transformDataType(node: DataTypeNode): DataTypeNode {
    switch (node.dataType) {
      case 'integer':
        return DataTypeNode.create('bigint');
      case 'real':
        return DataTypeNode.create('double precision');
      case 'blob':
        return DataTypeNode.create('bytea');
      default:
        return node;
    }
  }

  protected override transformColumnDefinition(node: ColumnDefinitionNode): ColumnDefinitionNode {
    if (node.autoIncrement && DataTypeNode.is(node.dataType) && node.dataType.dataType === 'integer')
      return super.transformColumnDefinition(
        ColumnDefinitionNode.cloneWith({ ...node, dataType: DataTypeNode.create('bigserial') }, { autoIncrement: false }),
      );
    return super.transformColumnDefinition(node);
  }
}

/** A plugin that rewrites every query with a transformer (results pass unchanged). */
class TransformerPlugin implements KyselyPlugin {
  constructor(private readonly transformer: OperationNodeTransformer) {}
  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    return this.transformer.transformNode(args.node);
  }
  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    return args.result;
  }
}

/** The DDL mapping above, for the migrating Kysely instance (PostgreSQL only). */
export const postgresDdlPlugin = (): KyselyPlugin => new TransformerPlugin(new PostgresDdlTransformer());

/**
 * PostgreSQL's text cannot hold NUL (SQLite's can): a NUL in a parameter would fail the whole
 * statement, so a process printing one, or a client putting %00 in a path, could make a batch of
 * sandbox logs or audit entries unwritable. On PostgreSQL every NUL in a string parameter is
 * stored as U+FFFD instead (binary values are Buffers and untouched).
 */
class NulTransformer extends OperationNodeTransformer {
  protected override transformValue(node: ValueNode): ValueNode {
    return typeof node.value === 'string' && node.value.includes('\0') ? { ...node, value: withoutNul(node.value) } : node;
  }

  protected override transformPrimitiveValueList(node: PrimitiveValueListNode): PrimitiveValueListNode {
    if (!node.values.some((v) => typeof v === 'string' && v.includes('\0'))) return node;
    return { ...node, values: node.values.map((v) => (typeof v === 'string' ? withoutNul(v) : v)) };
  }
}

const withoutNul = (text: string): string => text.replaceAll('\0', '\uFFFD');

/** The NUL replacement above, for every query of a PostgreSQL store. */
export const postgresTextPlugin = (): KyselyPlugin => new TransformerPlugin(new NulTransformer());
