/**
 * PinnedSource: a PageSource gate in front of the cluster source. Every read
 * first asks the session whether the pin still holds (check() throws
 * SourceError 'pin_lost' once it is lost) and a read the cluster answers with
 * "read timestamp has been compacted" becomes SourceError 'compacted' and, on
 * a pinned/joined session, marks the pin lost (the versions it protected are gone).
 */
import { SourceError, type KV, type PageSource, type ScanPageOptions } from '../source/types.js';
import type { BackupSession } from './session.js';

export class PinnedSource implements PageSource {
  readonly label: string;

  constructor(
    private readonly inner: PageSource,
    private readonly session: BackupSession,
    private readonly closeInner = true,
  ) {
    this.label = inner.label;
  }

  private async guarded<T>(ts: bigint, fn: () => Promise<T>): Promise<T> {
    this.session.check();
    try {
      return await fn();
    } catch (e) {
      throw this.mapError(e, ts);
    }
  }

  private mapError(e: unknown, ts: bigint): unknown {
    if (!(e instanceof SourceError) || e.code !== 'compacted') return e;
    const s = this.session;
    if (s.mode === 'pinned' || s.mode === 'joined') {
      s.markLost(`the cluster reports read ts ${ts} compacted despite the pin`);
      return new SourceError('compacted', `read ts ${ts} has been compacted on the cluster although it was pinned (pin lost): ${e.message}`);
    }
    return new SourceError('compacted', `read ts ${ts} has been compacted on the cluster (the mount is not pinned; remount for a fresh timestamp): ${e.message}`);
  }

  scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    return this.guarded(ts, () => this.inner.scanPage(start, end, ts, opts));
  }

  get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    return this.guarded(ts, () => this.inner.get(key, ts));
  }

  sent(): Promise<void> {
    return this.inner.sent?.() ?? Promise.resolve();
  }

  /** Guard for the tree (runner's OpenedSource.guard): throws once the pin is lost. */
  guard = (): void => this.session.check();

  async close(): Promise<void> {
    if (this.closeInner) await this.inner.close();
  }
}
