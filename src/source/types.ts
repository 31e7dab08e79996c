/**
 * The one page-source interface. Everything above src/source/ reads the
 * keyspace through this and never learns which source it has.
 *
 * Keys and values are *user* bytes: MVCC encoding (timestamp suffix, value
 * header) is the source's business. A source answers "what was visible at ts":
 * the newest version with commitTS <= ts, hidden when it is a tombstone or its
 * store-level expireAt <= ts.
 */

/** The one zero-length value every source hands out (keys-only pages, empty values): nothing to allocate per key. */
export const EMPTY_VALUE: Buffer = Buffer.alloc(0);

export interface KV {
  key: Buffer;
  /** Empty when the scan was keys-only. */
  value: Buffer;
}

export interface ScanPageOptions {
  /** Maximum number of keys in the page (>= 1). */
  limit: number;
  /** When true the source may omit values (value is an empty Buffer). */
  keysOnly?: boolean;
}

export interface PageSource {
  /** A short human label for logs ("snapshot:/path/x.fsm", "cluster:host:port"). */
  readonly label: string;
  /**
   * Keys in [start, end) visible at ts, ascending by unsigned byte order,
   * at most opts.limit of them. end === null means "to the end of the keyspace".
   * A page shorter than limit means the range is exhausted.
   */
  scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]>;
  /** The value visible at ts, or null. */
  get(key: Buffer, ts: bigint): Promise<Buffer | null>;
  /**
   * Optional, a hint for read-ahead: the values in [start, end) are about `bytesPerKey` each
   * (an S3 object's chunks, from its manifest). Pages are asked for in keys; a read-ahead
   * page stops before such a range when that many keys of it would be too many bytes, and
   * inside it is sized by it. A hint over a whole key family (start its prefix, end that
   * prefix's end) is the family's default: it sizes pages wherever no other hint applies.
   */
  expectValues?(start: Buffer, end: Buffer | null, bytesPerKey: number): void;
  /**
   * Optional: resolves once the requests asked of this source so far are on the wire. A
   * remote source's request leaves in a later turn of the event loop (Node writes HTTP/2
   * frames from its check phase), so a reader that asks for its next page and then works
   * through the page in hand without yielding holds that request back for as long as it
   * works, and the server sits idle meanwhile. Sources with no wire leave it out.
   */
  sent?(): Promise<void>;
  close(): Promise<void>;
}

/** Thrown by sources for bad input; `code` is stable for tests and logs. */
export class SourceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SourceError';
  }
}
