import type { KV, PageSource, ScanPageOptions } from '../../src/source/types.js';

export interface SourceCall {
  op: 'get' | 'scan';
  key: string;
  end?: string;
  /** A scan's limit, and the value bytes of its page (once it is answered). */
  limit?: number;
  valueBytes?: number;
}

/** A page source that counts and records what it is asked (laziness tests). */
export class CountingSource implements PageSource {
  readonly label: string;
  gets = 0;
  pages = 0;
  /** Keys returned by scan pages. */
  rows = 0;
  /** Value bytes returned by scan pages. */
  valueBytes = 0;
  maxLimit = 0;
  readonly starts: string[] = [];
  readonly calls: SourceCall[] = [];

  constructor(private readonly inner: PageSource) {
    this.label = `counting:${inner.label}`;
  }

  /** Keys returned by scan pages (the s3 tests' name for rows). */
  get scanned(): number {
    return this.rows;
  }

  async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
    this.pages++;
    this.maxLimit = Math.max(this.maxLimit, opts.limit);
    this.starts.push(start.toString('latin1'));
    const call: SourceCall = { op: 'scan', key: start.toString('latin1'), end: end?.toString('latin1'), limit: opts.limit };
    this.calls.push(call);
    const r = await this.inner.scanPage(start, end, ts, opts);
    this.rows += r.length;
    call.valueBytes = 0;
    for (const kv of r) call.valueBytes += kv.value.length;
    this.valueBytes += call.valueBytes;
    return r;
  }

  get(key: Buffer, ts: bigint): Promise<Buffer | null> {
    this.gets++;
    this.calls.push({ op: 'get', key: key.toString('latin1') });
    return this.inner.get(key, ts);
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  reset(): void {
    this.gets = this.pages = this.rows = this.valueBytes = this.maxLimit = 0;
    this.starts.length = 0;
    this.calls.length = 0;
  }
}
