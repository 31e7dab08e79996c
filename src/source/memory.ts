import { compareKeys, isLive, type Version, lowerBound } from './mvcc.js';
import { EMPTY_VALUE, type KV, type PageSource, type ScanPageOptions } from './types.js';

interface Row {
  key: Buffer;
  /** Newest first. */
  versions: Version[];
}

/**
 * An in-memory multi-version store: the dev cluster's backing store and a
 * convenient source for unit tests. Rows sorted by user key; versions newest first.
 */
export class MemorySource implements PageSource {
  readonly label: string;
  private rows: Row[] = [];

  constructor(label = 'memory') {
    this.label = label;
  }

  /** Insert one version (keeps order). */
  put(key: Buffer, value: Buffer, commitTS: bigint, opts: { tombstone?: boolean; expireAt?: bigint } = {}): void {
    const v: Version = { commitTS, tombstone: opts.tombstone ?? false, expireAt: opts.expireAt ?? 0n, value };
    const i = this.lowerBound(key);
    const row = this.rows[i];
    if (row && compareKeys(row.key, key) === 0) {
      const j = row.versions.findIndex((x) => x.commitTS <= commitTS);
      if (j >= 0 && row.versions[j]!.commitTS === commitTS) row.versions[j] = v;
      else if (j < 0) row.versions.push(v);
      else row.versions.splice(j, 0, v);
      return;
    }
    this.rows.splice(i, 0, { key: Buffer.from(key), versions: [v] });
  }

  /** Drop versions that no reader at or above `watermark` can see (the compactor). */
  compact(watermark: bigint): void {
    for (const row of this.rows) {
      const keep = row.versions.findIndex((v) => v.commitTS <= watermark);
      if (keep >= 0) row.versions.length = keep + 1;
    }
  }

  get size(): number {
    return this.rows.length;
  }

  private lowerBound(key: Buffer): number {
    return lowerBound(this.rows.length, (i) => compareKeys(this.rows[i]!.key, key) < 0);
  }

  private visible(row: Row, ts: bigint): Version | null {
    for (const v of row.versions) {
      if (v.commitTS <= ts) return isLive(v, ts) ? v : null;
    }
    return null;
  }

  /** The versions (newest first) of each key in [start, end), ascending; read-only views. */
  versionsIn(start: Buffer, end: Buffer | null): readonly { key: Buffer; versions: readonly Version[] }[] {
    const out: Row[] = [];
    for (let i = this.lowerBound(start); i < this.rows.length; i++) {
      const row = this.rows[i]!;
      if (end && compareKeys(row.key, end) >= 0) break;
      out.push(row);
    }
    return out;
  }

  /** The versions of one key, newest first (empty when it has none). */
  versionsOf(key: Buffer): readonly Version[] {
    const row = this.rows[this.lowerBound(key)];
    return row && compareKeys(row.key, key) === 0 ? row.versions : [];
  }

  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    const out: KV[] = [];
    for (let i = this.lowerBound(start); i < this.rows.length && out.length < opts.limit; i++) {
      const row = this.rows[i]!;
      if (end && compareKeys(row.key, end) >= 0) break;
      const v = this.visible(row, ts);
      if (v) out.push({ key: row.key, value: opts.keysOnly ? EMPTY_VALUE : v.value });
    }
    return out;
  }

  async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    const i = this.lowerBound(key);
    const row = this.rows[i];
    if (!row || compareKeys(row.key, key) !== 0) return null;
    return this.visible(row, ts)?.value ?? null;
  }

  async close(): Promise<void> {}
}
