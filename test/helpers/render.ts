/**
 * In-process rendering of a snapshot through the real tree and adapters (no FUSE):
 * adapter tests assert exact bytes of rendered files with it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { ALL_ADAPTERS } from '../../src/adapters/index.js';
import type { Adapter } from '../../src/adapters/types.js';
import type { PageSource } from '../../src/source/types.js';
import { defaultDecodeOptions, type DecodeOptions } from '../../src/adapters/types.js';
import { encodeFsm, type FsmEntry } from '../../src/fixture/fsm.js';
import { renderManifest, PHASE_SNAPSHOT } from '../../src/format/manifest.js';
import { SnapshotView } from '../../src/source/range.js';
import { SnapshotSource } from '../../src/source/snapshot.js';
import { Tree, TreeError } from '../../src/tree/tree.js';
import { writeFileSync } from 'node:fs';

export interface Rendered {
  tree: Tree;
  /** Relative path -> bytes, for every file that rendered; failures in `errors`. */
  files: Map<string, Buffer>;
  /** Relative path -> errno of files that failed to read. */
  errors: Map<string, string>;
  /** Log lines (pino JSON objects) written while rendering. */
  logs: Record<string, unknown>[];
  close: () => Promise<void>;
}

export interface TreeOptions {
  options?: Partial<DecodeOptions>;
  lastCommitTS?: bigint;
  readTs?: bigint;
  pageSize?: number;
  adapters?: Adapter[];
  cacheBytes?: number;
}

export interface OpenTree<S extends PageSource> {
  tree: Tree;
  /** The source the tree reads through (the wrapped one when `wrap` was given). */
  src: S;
  logs: Record<string, unknown>[];
  close: () => Promise<void>;
}

/** A tree over `entries` (written to a temp .fsm), reading through `wrap(source)` when given. */
export async function openTree<S extends PageSource = SnapshotSource>(entries: FsmEntry[], opts: TreeOptions & { wrap?: (src: SnapshotSource) => S } = {}): Promise<OpenTree<S>> {
  const dir = mkdtempSync(join(tmpdir(), 'ekv-render-'));
  const path = join(dir, '0000000000000064.fsm');
  writeFileSync(path, encodeFsm(entries, opts.lastCommitTS ?? 1000n));
  const snap = await SnapshotSource.open(path);
  const src = (opts.wrap ? opts.wrap(snap) : snap) as S;
  const logs: Record<string, unknown>[] = [];
  const log: Logger = pino({ level: 'debug' }, { write: (s: string) => void logs.push(JSON.parse(s) as Record<string, unknown>) });
  const options = { ...defaultDecodeOptions(), ...(opts.options ?? {}) };
  const tree = new Tree({
    view: new SnapshotView(src, opts.readTs ?? snap.lastCommitTS, opts.pageSize),
    options,
    adapters: opts.adapters ?? ALL_ADAPTERS,
    log,
    cacheBytes: opts.cacheBytes ?? 64 << 20,
    manifest: () => renderManifest({ phase: PHASE_SNAPSHOT, wallTime: new Date(0), scopes: new Map(), options, lastCommitTS: snap.lastCommitTS }),
  });
  return {
    tree,
    src,
    logs,
    close: async () => {
      await tree.close();
      await snap.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Build a tree over `entries` (written to a temp .fsm) and read every file. */
export async function renderEntries(entries: FsmEntry[], opts: TreeOptions = {}): Promise<Rendered> {
  const { tree, logs, close } = await openTree(entries, opts);
  const files = new Map<string, Buffer>();
  const errors = new Map<string, string>();
  for await (const p of tree.walkFiles()) {
    try {
      const { size } = await tree.getattr(p);
      files.set(p.slice(1), size === 0 ? Buffer.alloc(0) : await tree.read(p, 0, size));
    } catch (e) {
      if (!(e instanceof TreeError)) throw e;
      errors.set(p.slice(1), e.errno);
    }
  }
  return {
    tree,
    files,
    errors,
    logs,
    close,
  };
}

/** Rendered file as UTF-8 text; throws when absent. */
export function text(r: Rendered, path: string): string {
  const b = r.files.get(path);
  if (!b) throw new Error(`${path} not rendered; have: ${[...r.files.keys()].join(', ')}`);
  return b.toString('utf8');
}
