import type { Adapter, AdapterContext } from '../types.js';
import type { DirNode, Node } from '../../tree/node.js';
import { RedisDb } from './db.js';

/** The only database the format owner dumps (Phase 0a: db_0). */
const DB_DIR = 'db_0';

function dbAllowed(ctx: AdapterContext): boolean {
  const scopes = ctx.options.scopes.get('redis');
  return !scopes || scopes.has('0') || scopes.has(DB_DIR);
}

/** `redis/db_0/`: strings, hll, hashes, lists, sets, zsets, streams and their sidecars. */
export const redisAdapter: Adapter = {
  name: 'redis',
  root: async (ctx: AdapterContext): Promise<DirNode | null> => {
    if (!dbAllowed(ctx)) return null;
    const db = new RedisDb(ctx, `/redis/${DB_DIR}`);
    if (!(await db.exists())) return null;
    const dbDir: DirNode = { kind: 'dir', list: () => db.list(), lookup: (n: string): Promise<Node | null> => db.lookup(n) };
    return {
      kind: 'dir',
      list: async () => [DB_DIR],
      lookup: async (name) => (name === DB_DIR ? dbDir : null),
    };
  },
};
