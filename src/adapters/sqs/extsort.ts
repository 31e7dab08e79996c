/**
 * Bounded-memory ordering of messages.jsonl lines by the owner's key
 * (send timestamp, sequence number, message id). The owner sorts stably in
 * snapshot (= key) order, so the raw data key is the final tie-break.
 *
 * Lines are collected into a chunk of at most `chunkBytes`; a full chunk is
 * sorted and written to a run file; at the end the runs are k-way merged
 * (in passes of at most `fanIn` runs). A queue that fits one chunk never
 * touches the disk.
 */
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SortRecord {
  sendTs: bigint;
  seq: bigint;
  messageId: Buffer;
  key: Buffer;
  line: Buffer;
}

export const sortTuning = {
  /** Memory for one in-memory chunk (line + key + id bytes, plus a per-record allowance). */
  chunkBytes: 16 << 20,
  /** Runs merged at once. */
  fanIn: 64,
  /** Read buffer per run while merging. */
  readBytes: 256 << 10,
  /** Where run files go (default os.tmpdir()). */
  dir: undefined as string | undefined,
};

const RECORD_OVERHEAD = 400;
const I64_BIAS = 1n << 63n;

export function compareRecords(a: SortRecord, b: SortRecord): number {
  if (a.sendTs !== b.sendTs) return a.sendTs < b.sendTs ? -1 : 1;
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1;
  const c = Buffer.compare(a.messageId, b.messageId);
  if (c !== 0) return c;
  return Buffer.compare(a.key, b.key);
}

const HDR = 8 + 8 + 4 + 4 + 4;

function encodeRecord(r: SortRecord): Buffer {
  const b = Buffer.allocUnsafe(HDR + r.messageId.length + r.key.length + r.line.length);
  b.writeBigUInt64BE(BigInt.asUintN(64, r.sendTs + I64_BIAS), 0);
  b.writeBigUInt64BE(r.seq, 8);
  b.writeUInt32BE(r.messageId.length, 16);
  b.writeUInt32BE(r.key.length, 20);
  b.writeUInt32BE(r.line.length, 24);
  let o = HDR;
  o += r.messageId.copy(b, o);
  o += r.key.copy(b, o);
  r.line.copy(b, o);
  return b;
}

class RunWriter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private pos = 0;
  constructor(private readonly fh: FileHandle) {}
  /** Queues one record; a promise only when the queue is written out. */
  add(r: SortRecord): Promise<void> | undefined {
    const b = encodeRecord(r);
    this.pending.push(b);
    this.pendingBytes += b.length;
    return this.pendingBytes >= 1 << 20 ? this.flush() : undefined;
  }
  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const b = Buffer.concat(this.pending);
    this.pending = [];
    this.pendingBytes = 0;
    let done = 0;
    while (done < b.length) done += (await this.fh.write(b, done, b.length - done, this.pos + done)).bytesWritten;
    this.pos += b.length;
  }
}

class RunReader {
  private buf = Buffer.alloc(0);
  private off = 0;
  private filePos = 0;
  private eof = false;
  constructor(
    private readonly fh: FileHandle,
    private readonly blockBytes: number,
  ) {}

  private async need(n: number): Promise<boolean> {
    while (this.buf.length - this.off < n && !this.eof) {
      const want = Math.max(this.blockBytes, n - (this.buf.length - this.off));
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await this.fh.read(chunk, 0, want, this.filePos);
      if (bytesRead === 0) {
        this.eof = true;
        break;
      }
      this.filePos += bytesRead;
      this.buf = Buffer.concat([this.buf.subarray(this.off), chunk.subarray(0, bytesRead)]);
      this.off = 0;
    }
    return this.buf.length - this.off >= n;
  }

  /** The next record (null at the end): at once when it is buffered, else once read. */
  next(): SortRecord | null | Promise<SortRecord | null> {
    const total = this.buffered();
    return total > 0 ? this.take(total) : this.nextRead();
  }

  /** The length of the next record if all of it is buffered, else 0. */
  private buffered(): number {
    const have = this.buf.length - this.off;
    if (have < HDR) return 0;
    const total = HDR + this.buf.readUInt32BE(this.off + 16) + this.buf.readUInt32BE(this.off + 20) + this.buf.readUInt32BE(this.off + 24);
    return have >= total ? total : 0;
  }

  private async nextRead(): Promise<SortRecord | null> {
    if (!(await this.need(HDR))) {
      if (this.buf.length - this.off !== 0) throw new Error('sqs sort: truncated run file');
      return null;
    }
    const h = this.buf.subarray(this.off, this.off + HDR);
    const total = HDR + h.readUInt32BE(16) + h.readUInt32BE(20) + h.readUInt32BE(24);
    if (!(await this.need(total))) throw new Error('sqs sort: truncated run file');
    return this.take(total);
  }

  /** Decodes the buffered record of `total` bytes at the read position. */
  private take(total: number): SortRecord {
    const b = this.buf.subarray(this.off, this.off + total);
    const idLen = b.readUInt32BE(16);
    const keyLen = b.readUInt32BE(20);
    const lineLen = b.readUInt32BE(24);
    this.off += total;
    const sendTs = b.readBigUInt64BE(0) - I64_BIAS;
    const seq = b.readBigUInt64BE(8);
    let o = HDR;
    const messageId = Buffer.from(b.subarray(o, (o += idLen)));
    const key = Buffer.from(b.subarray(o, (o += keyLen)));
    const line = Buffer.from(b.subarray(o, o + lineLen));
    return { sendTs, seq, messageId, key, line };
  }
}

/** A min-heap of run heads. */
class Heap {
  private readonly items: { rec: SortRecord; src: number }[] = [];
  get size(): number {
    return this.items.length;
  }
  push(x: { rec: SortRecord; src: number }): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (compareRecords(a[p]!.rec, a[i]!.rec) <= 0) break;
      [a[p], a[i]] = [a[i]!, a[p]!];
      i = p;
    }
  }
  pop(): { rec: SortRecord; src: number } | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && compareRecords(a[l]!.rec, a[m]!.rec) < 0) m = l;
        if (r < a.length && compareRecords(a[r]!.rec, a[m]!.rec) < 0) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }
}

export interface SortStats {
  runs: number;
  records: number;
}

/** Collects records, then emits them in order through `emit`. One use. */
export class ExternalSorter {
  private chunk: SortRecord[] = [];
  private chunkBytes = 0;
  private dir: string | null = null;
  private runs: string[] = [];
  private runSeq = 0;
  readonly stats: SortStats = { runs: 0, records: 0 };
  private readonly limit: number;

  constructor(limit = sortTuning.chunkBytes) {
    this.limit = limit;
  }

  /** Takes one record; a promise only when it fills the chunk, which is then written out (await it before the next add). */
  add(r: SortRecord): Promise<void> | undefined {
    this.chunk.push(r);
    this.stats.records++;
    this.chunkBytes += r.line.length + r.key.length + r.messageId.length + RECORD_OVERHEAD;
    return this.chunkBytes >= this.limit ? this.spill() : undefined;
  }

  private async runPath(): Promise<string> {
    this.dir ??= await mkdtemp(join(sortTuning.dir ?? tmpdir(), 'ekv-sqs-sort-'));
    return join(this.dir, `run${++this.runSeq}`);
  }

  private async spill(): Promise<void> {
    if (this.chunk.length === 0) return;
    const recs = this.chunk.sort(compareRecords);
    this.chunk = [];
    this.chunkBytes = 0;
    const path = await this.runPath();
    const fh = await open(path, 'w', 0o600);
    try {
      const w = new RunWriter(fh);
      for (const r of recs) {
        const p = w.add(r);
        if (p) await p;
      }
      await w.flush();
    } finally {
      await fh.close();
    }
    this.runs.push(path);
    this.stats.runs++;
  }

  private async mergeInto(paths: string[], sink: (r: SortRecord) => Promise<void> | void): Promise<void> {
    const fhs: FileHandle[] = [];
    try {
      for (const p of paths) fhs.push(await open(p, 'r'));
      const readers = fhs.map((fh) => new RunReader(fh, sortTuning.readBytes));
      const heap = new Heap();
      for (let i = 0; i < readers.length; i++) {
        const r = await readers[i]!.next();
        if (r) heap.push({ rec: r, src: i });
      }
      while (heap.size > 0) {
        const { rec, src } = heap.pop()!;
        const p = sink(rec);
        if (p) await p;
        let nx = readers[src]!.next();
        if (nx instanceof Promise) nx = await nx;
        if (nx) heap.push({ rec: nx, src });
      }
    } finally {
      for (const fh of fhs) await fh.close().catch(() => {});
    }
  }

  /** Emit every record in order, then remove run files. */
  async finish(emit: (line: Buffer) => void | Promise<void>): Promise<void> {
    try {
      if (this.runs.length === 0) {
        const recs = this.chunk.sort(compareRecords);
        this.chunk = [];
        for (const r of recs) {
          const p = emit(r.line);
          if (p) await p;
        }
        return;
      }
      await this.spill();
      const fanIn = Math.max(2, sortTuning.fanIn);
      while (this.runs.length > fanIn) {
        const group = this.runs.splice(0, fanIn);
        const path = await this.runPath();
        const fh = await open(path, 'w', 0o600);
        try {
          const w = new RunWriter(fh);
          await this.mergeInto(group, (r) => w.add(r));
          await w.flush();
        } finally {
          await fh.close();
        }
        for (const g of group) await rm(g, { force: true });
        this.runs.push(path);
      }
      await this.mergeInto(this.runs, (r) => emit(r.line));
    } finally {
      await this.dispose();
    }
  }

  async dispose(): Promise<void> {
    this.chunk = [];
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
    this.dir = null;
    this.runs = [];
  }
}
