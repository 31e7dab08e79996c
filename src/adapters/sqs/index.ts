/**
 * The sqs room: `sqs/<queue>/_queue.json`, `messages.jsonl` and, with
 * --include-sqs-side-records, `_internals/side_records.jsonl` (plus
 * `sqs/<enc>.orphan/_internals/side_records.jsonl` for side records of a queue
 * whose meta row is gone), rendered as elastickv's decoder writes them.
 *
 * Lazy: `ls sqs/` pages the `!sqs|queue|meta|` range (keys only); opening a
 * queue is one point read; messages.jsonl is one streaming pass over that
 * queue's data keys, ordered by (send ts, sequence, message id) through a
 * bounded-memory external sort (key order is (generation, message id), not the
 * owner's order).
 */
import { encodeSegment, decodeSegment, isShaFallback } from '../../format/filename.js';
import { nextKey, prefixEnd, type SnapshotView } from '../../source/range.js';
import type { KV } from '../../source/types.js';
import { RecordError, type DirNode, type FileNode, type Node } from '../../tree/node.js';
import { batched, type Adapter, type AdapterContext } from '../types.js';
import { ExternalSorter, sortTuning } from './extsort.js';
import {
  b64Run,
  decodeRawUrl,
  encodeRawUrl,
  guessQueue,
  isB64UrlByte,
  KeyParseError,
  keyOf,
  parseDataKey,
  parseGeneration,
  parseSideKey,
  PARTITIONED,
  P_MSG_DATA,
  P_QUEUE_GEN,
  P_QUEUE_META,
  SIDE_PREFIXES,
  u64be,
} from './keys.js';
import { decodeMessage, renderQueueJson, sideRecordLine, ValueError } from './records.js';

const QUEUE_JSON = '_queue.json';
const MESSAGES = 'messages.jsonl';
const INTERNALS = '_internals';
const SIDE_FILE = 'side_records.jsonl';
const ORPHAN_SUFFIX = '.orphan';

interface QueueRef {
  /** The queue segment exactly as it appears in the meta key. */
  enc: Buffer;
  /** The queue name decoded from the key. */
  name: Buffer;
  dirName: string;
}

/** Every key of `prefix` the owner attributes to queue `enc`, in key order (legacy and `p|` shapes). */
async function* ownedKeys(view: SnapshotView, prefix: string, enc: Buffer, opts: { keysOnly?: boolean; pageSize?: number } = {}): AsyncGenerator<KV> {
  for await (const page of ownedPages(view, prefix, enc, opts)) for (const kv of page) yield kv;
}

/** ownedKeys a page at a time (never an empty page), for the passes over every message. */
async function* ownedPages(view: SnapshotView, prefix: string, enc: Buffer, opts: { keysOnly?: boolean; pageSize?: number } = {}): AsyncGenerator<KV[]> {
  const legacy = keyOf(prefix, enc);
  const partitioned = keyOf(prefix, PARTITIONED, enc, '|');
  // A legacy queue segment is a pure base64url run; a meta segment with other bytes owns no legacy keys.
  const legacyOk = enc.length > 0 && b64Run(enc) === enc.length;
  const ranges = Buffer.compare(legacy, partitioned) < 0 ? (['legacy', 'partitioned'] as const) : (['partitioned', 'legacy'] as const);
  for (const r of ranges) {
    if (r === 'partitioned') yield* view.scanPages(partitioned, prefixEnd(partitioned), opts);
    else if (legacyOk) yield* legacyOwned(view, legacy, opts);
  }
}

/**
 * Keys under `base` (= prefix + enc) whose queue segment is exactly enc: the byte
 * after enc is outside the base64url alphabet (or absent). Keys of queues whose
 * segment merely extends enc are skipped a whole subtree at a time. A page at a time.
 */
async function* legacyOwned(view: SnapshotView, base: Buffer, opts: { keysOnly?: boolean; pageSize?: number }): AsyncGenerator<KV[]> {
  const end = prefixEnd(base);
  const limit = opts.pageSize ?? view.pageSize;
  let cursor = base;
  for (;;) {
    const page = await view.page(cursor, end, limit, opts.keysOnly ?? false);
    let owned = page.length;
    let skip: Buffer | null = null;
    for (let i = 0; i < page.length; i++) {
      const c = page[i]!.key[base.length];
      if (c !== undefined && isB64UrlByte(c)) {
        owned = i;
        skip = prefixEnd(page[i]!.key.subarray(0, base.length + 1));
        break;
      }
    }
    if (owned > 0) yield owned === page.length ? page : page.slice(0, owned);
    if (owned < page.length) {
      if (skip === null || (end !== null && Buffer.compare(skip, end) >= 0)) return;
      cursor = skip;
      continue;
    }
    if (page.length < limit) return;
    cursor = nextKey(page[page.length - 1]!.key);
  }
}

/** Distinct queue segments the owner would route side records of `prefix` to (skip-scan, keys only). */
async function sideQueues(view: SnapshotView, prefix: string, into: Map<string, Buffer>): Promise<void> {
  const p = Buffer.from(prefix, 'latin1');
  const end = prefixEnd(p);
  let cursor: Buffer = p;
  for (;;) {
    const page = await view.page(cursor, end, 1, true);
    const k = page[0]?.key;
    if (!k) return;
    const rest = k.subarray(p.length);
    let next: Buffer | null;
    if (rest[0] === 0x70 && rest[1] === 0x7c) {
      const body = rest.subarray(2);
      const t = body.indexOf(0x7c);
      if (t > 0) {
        const enc = body.subarray(0, t);
        into.set(enc.toString('latin1'), Buffer.from(enc));
        next = prefixEnd(keyOf(prefix, PARTITIONED, enc, '|'));
      } else {
        if (t < 0 && body.length > 0) into.set(body.toString('latin1'), Buffer.from(body));
        next = nextKey(k);
      }
    } else {
      const n = b64Run(rest);
      if (n === 0) next = rest.length > 0 ? prefixEnd(k.subarray(0, p.length + 1)) : nextKey(k);
      else {
        const enc = rest.subarray(0, n);
        into.set(enc.toString('latin1'), Buffer.from(enc));
        next = rest.length === n ? nextKey(k) : prefixEnd(k.subarray(0, p.length + n + 1));
      }
    }
    if (next === null || (end !== null && Buffer.compare(next, end) >= 0)) return;
    cursor = next;
  }
}

/** A promise-returning function run at most once (retried after a failure). */
function memo<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | null = null;
  return () => {
    p ??= f().catch((e: unknown) => {
      p = null;
      throw e;
    });
    return p;
  };
}

class SqsRoom {
  private readonly view: SnapshotView;
  private readonly preserve: boolean;
  private readonly side: boolean;
  private readonly scope: ReadonlySet<string> | undefined;
  private metaIndex: Promise<Map<string, QueueRef>> | null = null;
  private orphans: Promise<Map<string, Buffer>> | null = null;

  constructor(private readonly ctx: AdapterContext) {
    this.view = ctx.view;
    this.preserve = ctx.options.preserveSqsVisibility;
    this.side = ctx.options.includeSqsSideRecords;
    this.scope = ctx.options.scopes.get('sqs');
  }

  private inScope(name: Buffer | null): boolean {
    if (!this.scope) return true;
    return name !== null && this.scope.has(name.toString('utf8'));
  }

  /** A queue from its meta key, or null when the owner could not name it. */
  private refFromMetaKey(key: Buffer): QueueRef | null {
    const enc = key.subarray(P_QUEUE_META.length);
    const name = decodeRawUrl(enc);
    if (name === null || name.length === 0) {
      this.ctx.log.warn({ adapter: 'sqs', keyBytes: key.length }, 'sqs: queue meta key with an undecodable queue segment skipped');
      return null;
    }
    if (!this.inScope(name)) return null;
    return { enc: Buffer.from(enc), name, dirName: encodeSegment(name) };
  }

  private async *metaQueues(): AsyncGenerator<QueueRef> {
    for await (const kv of this.view.scanPrefix(P_QUEUE_META, { keysOnly: true })) {
      const ref = this.refFromMetaKey(kv.key);
      if (ref) yield ref;
    }
  }

  private index(): Promise<Map<string, QueueRef>> {
    this.metaIndex ??= (async () => {
      const m = new Map<string, QueueRef>();
      for await (const ref of this.metaQueues()) if (!m.has(ref.dirName)) m.set(ref.dirName, ref);
      return m;
    })();
    this.metaIndex.catch(() => (this.metaIndex = null));
    return this.metaIndex;
  }

  /** Orphan queue segments with side records (only with --include-sqs-side-records). */
  private orphanSet(): Promise<Map<string, Buffer>> {
    this.orphans ??= (async () => {
      const all = new Map<string, Buffer>();
      for (const p of SIDE_PREFIXES) await sideQueues(this.view, p, all);
      const out = new Map<string, Buffer>();
      for (const [s, enc] of all) {
        if ((await this.view.get(keyOf(P_QUEUE_META, enc))) !== null) continue;
        if (this.scope && !this.inScope(decodeRawUrl(enc))) continue;
        out.set(s + ORPHAN_SUFFIX, enc);
      }
      return out;
    })();
    this.orphans.catch(() => (this.orphans = null));
    return this.orphans;
  }

  async exists(): Promise<boolean> {
    for await (const _ of this.metaQueues()) return true;
    return this.side && (await this.orphanSet()).size > 0;
  }

  root(): DirNode {
    return {
      kind: 'dir',
      list: async () => {
        const names: string[] = [];
        const seen = new Set<string>();
        for await (const ref of this.metaQueues()) {
          if (seen.has(ref.dirName)) continue;
          seen.add(ref.dirName);
          names.push(ref.dirName);
        }
        if (this.side) for (const n of (await this.orphanSet()).keys()) if (!seen.has(n)) names.push(n);
        return names;
      },
      lookup: async (name) => {
        const ref = await this.findQueue(name);
        if (ref) return this.queueDir(ref);
        if (this.side && name.endsWith(ORPHAN_SUFFIX)) {
          const enc = (await this.orphanSet()).get(name);
          if (enc) return this.orphanDir(name, enc);
        }
        return null;
      },
    };
  }

  /** Queue dir name -> queue: one point read for canonical names, the meta index otherwise. */
  private async findQueue(name: string): Promise<QueueRef | null> {
    if (!isShaFallback(name)) {
      let raw: Buffer | null = null;
      try {
        raw = decodeSegment(name);
      } catch {
        raw = null;
      }
      if (raw !== null && raw.length > 0 && encodeSegment(raw) === name) {
        const key = keyOf(P_QUEUE_META, encodeRawUrl(raw));
        if ((await this.view.get(key)) !== null) {
          const ref = this.refFromMetaKey(key);
          if (ref && ref.dirName === name) return ref;
        }
      }
    }
    return (await this.index()).get(name) ?? null;
  }

  private queueDir(ref: QueueRef): DirNode {
    const base = `/sqs/${ref.dirName}`;
    const queueJson = this.ctx.files.rendered(`${base}/${QUEUE_JSON}`, () => this.renderQueue(ref));
    const messages = this.ctx.files.streamed(`${base}/${MESSAGES}`, (write, drain, signal) => this.produceMessages(ref, write, drain, signal));
    const internals = this.internalsDir(base, ref.enc);
    // Presence checks run once per directory node (the view is at one read timestamp).
    const hasMessages = memo(() => this.hasMessages(ref));
    const hasSide = memo(() => (this.side ? this.hasSideRecords(ref.enc) : Promise.resolve(false)));
    return {
      kind: 'dir',
      list: async () => {
        const names: string[] = [];
        if (await hasSide()) names.push(INTERNALS);
        names.push(QUEUE_JSON);
        if (await hasMessages()) names.push(MESSAGES);
        return names;
      },
      lookup: async (name): Promise<Node | null> => {
        if (name === QUEUE_JSON) return queueJson;
        if (name === MESSAGES) return (await hasMessages()) ? messages : null;
        if (name === INTERNALS) return (await hasSide()) ? internals : null;
        return null;
      },
    };
  }

  private orphanDir(dirName: string, enc: Buffer): DirNode {
    const internals = this.internalsDir(`/sqs/${dirName}`, enc);
    return {
      kind: 'dir',
      list: async () => [INTERNALS],
      lookup: async (name) => (name === INTERNALS ? internals : null),
    };
  }

  private internalsDir(base: string, enc: Buffer): DirNode {
    const file: FileNode = this.ctx.files.streamed(`${base}/${INTERNALS}/${SIDE_FILE}`, (write, drain, signal) => this.produceSide(enc, write, drain, signal));
    return {
      kind: 'dir',
      list: async () => [SIDE_FILE],
      lookup: async (name) => (name === SIDE_FILE ? file : null),
    };
  }

  private async renderQueue(ref: QueueRef): Promise<Buffer> {
    const key = keyOf(P_QUEUE_META, ref.enc);
    const v = await this.view.get(key);
    if (v === null) throw new RecordError(key, 'queue meta record vanished');
    try {
      return renderQueueJson(v, ref.name);
    } catch (e) {
      if (e instanceof ValueError) throw new RecordError(key, e.message);
      throw e;
    }
  }

  /** The live generation (0 = no gen record: no filtering), as the owner reads it. */
  private async activeGen(enc: Buffer): Promise<bigint> {
    const key = keyOf(P_QUEUE_GEN, enc);
    const v = await this.view.get(key);
    if (v === null) return 0n;
    const g = parseGeneration(v);
    if (g === null) throw new RecordError(key, 'invalid !sqs|queue|gen value');
    return g;
  }

  /** Does the owner write messages.jsonl: at least one message of the live generation (or an undecodable one)? */
  private async hasMessages(ref: QueueRef): Promise<boolean> {
    let gen: bigint;
    try {
      gen = await this.activeGen(ref.enc);
    } catch (e) {
      if (e instanceof RecordError) return true; // the file exists and fails to read
      throw e;
    }
    const visible = (kv: KV): boolean => {
      const rest = kv.key.subarray(P_MSG_DATA.length);
      if (!guessQueue(rest)?.equals(ref.enc)) return false; // another queue's key (fast-path range only)
      try {
        const dk = parseDataKey(rest);
        const m = decodeMessage(kv.value, false, dk.partition);
        return gen === 0n || m.queueGeneration === gen;
      } catch (e) {
        if (e instanceof KeyParseError || e instanceof ValueError) return true;
        throw e;
      }
    };
    // Fast path: the live generation's legacy rows sit together.
    if (gen !== 0n && b64Run(ref.enc) === ref.enc.length) {
      const live = keyOf(P_MSG_DATA, ref.enc, u64be(gen));
      for await (const kv of this.view.scan(live, prefixEnd(live), { pageSize: 16 })) if (visible(kv)) return true;
    }
    for await (const kv of ownedKeys(this.view, P_MSG_DATA, ref.enc, { pageSize: 64 })) if (visible(kv)) return true;
    return false;
  }

  private async hasSideRecords(enc: Buffer): Promise<boolean> {
    for (const p of SIDE_PREFIXES) for await (const _ of ownedKeys(this.view, p, enc, { keysOnly: true, pageSize: 16 })) return true;
    return false;
  }

  private async produceMessages(ref: QueueRef, write: (chunk: Buffer) => void, drain: () => Promise<void>, signal: AbortSignal): Promise<void> {
    const gen = await this.activeGen(ref.enc);
    // The chunk sorted in memory is held to the room's share of --cache-size, as the other
    // rooms' passes are: a fixed 16 MiB was the largest transient of a copy under a small cache.
    const sorter = new ExternalSorter(Math.min(sortTuning.chunkBytes, this.ctx.roomCacheBytes));
    let dropped = 0;
    try {
      // The sort writes nothing until every page is in: the stop signal is checked a page at a time.
      for await (const page of ownedPages(this.view, P_MSG_DATA, ref.enc)) for (const kv of (signal.throwIfAborted(), page)) {
        let partition: number | null;
        try {
          partition = parseDataKey(kv.key.subarray(P_MSG_DATA.length)).partition;
        } catch (e) {
          if (e instanceof KeyParseError) throw new RecordError(kv.key, `malformed SQS key: ${e.message}`);
          throw e;
        }
        let m;
        try {
          m = decodeMessage(kv.value, this.preserve, partition);
        } catch (e) {
          if (e instanceof ValueError) throw new RecordError(kv.key, e.message);
          throw e;
        }
        if (gen !== 0n && m.queueGeneration !== gen) {
          dropped++;
          continue;
        }
        // Copies: the key and id may be views into a whole source page, which must not stay pinned.
        const spilling = sorter.add({ sendTs: m.sendTs, seq: m.seq, messageId: Buffer.from(m.messageId), key: Buffer.from(kv.key), line: m.line });
        if (spilling) await spilling;
      }
      if (dropped > 0) this.ctx.log.info({ adapter: 'sqs', queue: ref.dirName, dropped }, 'sqs: stale-generation messages left out of messages.jsonl');
      if (sorter.stats.runs > 0 || sorter.stats.records > 0) this.ctx.log.debug({ adapter: 'sqs', queue: ref.dirName, records: sorter.stats.records, runs: sorter.stats.runs }, 'sqs: messages sorted');
      const out = batched(write, drain);
      await sorter.finish(out.push);
      out.flush();
    } finally {
      await sorter.dispose();
    }
  }

  private async produceSide(enc: Buffer, write: (chunk: Buffer) => void, drain: () => Promise<void>, signal: AbortSignal): Promise<void> {
    const out = batched(write, drain);
    for (const p of SIDE_PREFIXES) {
      for await (const page of ownedPages(this.view, p, enc)) for (const kv of (signal.throwIfAborted(), page)) {
        try {
          parseSideKey(kv.key.subarray(p.length));
        } catch (e) {
          if (e instanceof KeyParseError) throw new RecordError(kv.key, `malformed SQS side-record key: ${e.message}`);
          throw e;
        }
        const pending = out.push(sideRecordLine(p, kv.key, kv.value));
        if (pending) await pending;
      }
    }
    out.flush();
  }
}

export const sqsAdapter: Adapter = {
  name: 'sqs',
  root: async (ctx) => {
    const room = new SqsRoom(ctx);
    return (await room.exists()) ? room.root() : null;
  },
};
