/**
 * Benchmark datasets, written as `.fsm` files in elastickv's format (so the same
 * data mounts from a snapshot and is served by ekv-devcluster). Generated once
 * per scale into the bench directory; reused while spec.json matches.
 */
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ddbBenchEntries } from '../fixture/dynamodb.js';
import { FsmStreamWriter } from '../fixture/fsm-stream.js';
import { benchRedisEntries, redisString } from '../fixture/redis.js';
import { s3BenchEntries, s3BucketEntries, s3ObjectEntries, hlc } from '../fixture/s3.js';
import { sqsBenchEntries } from '../fixture/sqs.js';

export type Scale = 'quick' | 'full';

interface Spec {
  /** One-line Redis strings; with the mixed set's strings (half of it) redis/db_0/strings holds 100k entries: the ls figure's directory. */
  strings: number;
  /** Mixed Redis keys of every collection type. */
  redisMixed: number;
  ddbItems: number;
  sqsMessages: number;
  s3Objects: number;
  s3ObjectBytes: number;
  bigObjectBytes: number;
}

const SPECS: Record<Scale, { tree: Spec; ddbTable: number }> = {
  quick: {
    tree: { strings: 96_000, redisMixed: 8_000, ddbItems: 12_000, sqsMessages: 12_000, s3Objects: 200, s3ObjectBytes: 256 << 10, bigObjectBytes: 128 << 20 },
    ddbTable: 100_000,
  },
  full: {
    tree: { strings: 60_000, redisMixed: 80_000, ddbItems: 100_000, sqsMessages: 100_000, s3Objects: 2_000, s3ObjectBytes: 512 << 10, bigObjectBytes: 1 << 30 },
    ddbTable: 1_000_000,
  },
};

export interface TreeDataset {
  fsm: string;
  bytes: number;
  /** Relative path of the 100k-entry directory. */
  bigDir: string;
  /** Relative path of the big S3 object. */
  bigObject: string;
  bigObjectBytes: number;
}

export interface Datasets {
  tree: TreeDataset;
  /** The same mix at half the size (is peak RSS flat as data grows?). */
  treeHalf: { fsm: string; bytes: number };
  /** What the live figure copies (the half-size mix without the big object: the figure is a ratio of rates), served by ekv-devcluster. */
  live: { fsm: string; bytes: number };
  ddb: { fsm: string; items: number; itemPath: (i: number) => string };
}

const LAST_COMMIT_TS = hlc(1767225600000 + 10_000);
const BIG_BUCKET = 'bench-big';
const BIG_KEY = 'datasets/big.bin';
const PER_HASH = 10;

function half(s: Spec): Spec {
  return {
    strings: s.strings,
    redisMixed: s.redisMixed >> 1,
    ddbItems: s.ddbItems >> 1,
    sqsMessages: s.sqsMessages >> 1,
    s3Objects: s.s3Objects >> 1,
    s3ObjectBytes: s.s3ObjectBytes,
    bigObjectBytes: s.bigObjectBytes >> 1,
  };
}

/** A deterministic body: a 64 KiB pseudo-random block, varied per 64 KiB by its index. */
function bigBody(size: number): Buffer {
  const block = Buffer.alloc(64 << 10);
  let x = 0x9e3779b9;
  for (let i = 0; i < block.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    block.writeUInt32LE(x >>> 0, i);
  }
  const out = Buffer.allocUnsafe(size);
  for (let off = 0, n = 0; off < size; off += block.length, n++) {
    block.copy(out, off, 0, Math.min(block.length, size - off));
    if (off + 4 <= size) out.writeUInt32LE(n, off);
  }
  return out;
}

function writeTree(path: string, s: Spec, withBig: boolean, log: (m: string) => void): number {
  const w = new FsmStreamWriter();
  for (let i = 0; i < s.strings; i++) w.addAll(redisString(`str:${String(i).padStart(7, '0')}`, `value-${i}\n`));
  w.addAll(benchRedisEntries(s.redisMixed));
  w.addAll(ddbBenchEntries(s.ddbItems, { table: 'tree-items', perHash: PER_HASH }));
  w.addAll(sqsBenchEntries(s.sqsMessages, 'tree-queue'));
  w.addAll(s3BenchEntries(s.s3Objects, s.s3ObjectBytes, 'tree-objects'));
  if (withBig) {
    w.addAll(s3BucketEntries({ name: BIG_BUCKET, generation: 1n, createdAtHLC: hlc(1767225600000) }));
    w.addAll(s3ObjectEntries({ bucket: BIG_BUCKET, generation: 1n, key: BIG_KEY, body: bigBody(s.bigObjectBytes), contentType: 'application/octet-stream', uploadId: 'big' }));
  }
  const bytes = w.finish(path, LAST_COMMIT_TS);
  log(`wrote ${path}: ${w.entries} entries, ${(bytes / 2 ** 20).toFixed(0)} MiB`);
  return bytes;
}

export async function generateDatasets(dir: string, scale: Scale, log: (m: string) => void): Promise<Datasets> {
  const spec = SPECS[scale];
  const specFile = join(dir, 'spec.json');
  const want = JSON.stringify({ version: 3, spec });
  const fresh = !existsSync(specFile) || readFileSync(specFile, 'utf8') !== want;
  const tree = join(dir, 'tree.fsm');
  const treeHalf = join(dir, 'tree-half.fsm');
  const live = join(dir, 'live.fsm');
  const ddb = join(dir, 'ddb.fsm');
  if (fresh) {
    log(`generating ${scale} datasets (once)…`);
    writeTree(tree, spec.tree, true, log);
    writeTree(treeHalf, half(spec.tree), true, log);
    writeTree(live, half(spec.tree), false, log);
    const w = new FsmStreamWriter();
    w.addAll(ddbBenchEntries(spec.ddbTable, { table: 'bench', perHash: PER_HASH }));
    w.finish(ddb, LAST_COMMIT_TS);
    log(`wrote ${ddb}: ${spec.ddbTable} items`);
    writeFileSync(specFile, want);
  }
  const size = (p: string): number => statSync(p).size;
  return {
    tree: { fsm: tree, bytes: size(tree), bigDir: 'redis/db_0/strings', bigObject: `s3/${BIG_BUCKET}/${BIG_KEY}`, bigObjectBytes: spec.tree.bigObjectBytes },
    treeHalf: { fsm: treeHalf, bytes: size(treeHalf) },
    live: { fsm: live, bytes: size(live) },
    ddb: {
      fsm: ddb,
      items: spec.ddbTable,
      itemPath: (i) => `dynamodb/bench/items/user-${String(Math.floor(i / PER_HASH)).padStart(8, '0')}/${i % PER_HASH}.json`,
    },
  };
}
