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
  /** Memory for one in-memory chunk (line + key + id bytes, plus a per-record allowance); a room share of --cache-size below it lowers it (see produceMessages). */
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

/** Bytes a record takes in a run file. */
function recordBytes(r: SortRecord): number {
  return HDR + r.messageId.length + r.key.length + r.line.length;
}

function encodeRecord(r: SortRecord, b: Buffer, at: number): number {
  b.writeBigUInt64BE(BigInt.asUintN(64, r.sendTs + I64_BIAS), at);
  b.writeBigUInt64BE(r.seq, at + 8);
  b.writeUInt32BE(r.messageId.length, at + 16);
  b.writeUInt32BE(r.key.length, at + 20);
  b.writeUInt32BE(r.line.length, at + 24);
  let o = at + HDR;
  o += r.messageId.copy(b, o);
  o += r.key.copy(b, o);
  o += r.line.copy(b, o);
  return o - at;
}

/** Run files are written and read through one buffer each, reused: a merge makes no garbage a block. */
const WRITE_BYTES = 1 << 20;

class RunWriter {
  private buf = Buffer.allocUnsafe(WRITE_BYTES);
  private used = 0;
  private pos = 0;
  constructor(private readonly fh: FileHandle) {}
  /** Queues one record; a promise only when the buffer is written out first (await it before the next add). */
  add(r: SortRecord): Promise<void> | undefined {
    const n = recordBytes(r);
    if (this.used + n <= this.buf.length) {
      this.used += encodeRecord(r, this.buf, this.used);
      return undefined;
    }
    return this.flush().then(() => {
      if (n > this.buf.length) this.buf = Buffer.allocUnsafe(n);
      this.used = encodeRecord(r, this.buf, 0);
    });
  }
  async flush(): Promise<void> {
    let done = 0;
    while (done < this.used) done += (await this.fh.write(this.buf, done, this.used - done, this.pos + done)).bytesWritten;
    this.pos += this.used;
    this.used = 0;
  }
}

class RunReader {
  private buf: Buffer;
  /** Unread bytes are buf[start, end). */
  private start = 0;
  private end = 0;
  private filePos = 0;
  private eof = false;
  constructor(
    private readonly fh: FileHandle,
    blockBytes: number,
  ) {
    this.buf = Buffer.allocUnsafe(Math.max(HDR, blockBytes));
  }

  /** Whether `n` unread bytes are buffered, reading more (into the same buffer) until they are or the file ends. */
  private async need(n: number): Promise<boolean> {
    while (this.end - this.start < n && !this.eof) {
      if (this.start > 0) {
        this.buf.copy(this.buf, 0, this.start, this.end);
        this.end -= this.start;
        this.start = 0;
      }
      if (n > this.buf.length) {
        const bigger = Buffer.allocUnsafe(n);
        this.buf.copy(bigger, 0, 0, this.end);
        this.buf = bigger;
      }
      const { bytesRead } = await this.fh.read(this.buf, this.end, this.buf.length - this.end, this.filePos);
      if (bytesRead === 0) {
        this.eof = true;
        break;
      }
      this.filePos += bytesRead;
      this.end += bytesRead;
    }
    return this.end - this.start >= n;
  }

  /** The next record (null at the end): at once when it is buffered, else once read. */
  next(): SortRecord | null | Promise<SortRecord | null> {
    const total = this.buffered();
    return total > 0 ? this.take(total) : this.nextRead();
  }

  /** The length of the next record if all of it is buffered, else 0. */
  private buffered(): number {
    const have = this.end - this.start;
    if (have < HDR) return 0;
    const total = this.recordLength();
    return have >= total ? total : 0;
  }

  private recordLength(): number {
    const at = this.start;
    return HDR + this.buf.readUInt32BE(at + 16) + this.buf.readUInt32BE(at + 20) + this.buf.readUInt32BE(at + 24);
  }

  private async nextRead(): Promise<SortRecord | null> {
    if (!(await this.need(HDR))) {
      if (this.end !== this.start) throw new Error('sqs sort: truncated run file');
      return null;
    }
    const total = this.recordLength();
    if (!(await this.need(total))) throw new Error('sqs sort: truncated run file');
    return this.take(total);
  }

  /** Decodes the buffered record of `total` bytes at the read position (copies: the buffer is reused). */
  private take(total: number): SortRecord {
    const b = this.buf.subarray(this.start, this.start + total);
    const idLen = b.readUInt32BE(16);
    const keyLen = b.readUInt32BE(20);
    const lineLen = b.readUInt32BE(24);
    this.start += total;
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
