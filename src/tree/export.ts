/**
 * In-process rendering of a whole tree, without FUSE: the benchmark's baseline
 * (and a way to write the tree to a directory for comparisons).
 */
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import type { Tree } from './tree.js';

export interface ExportStats {
  files: number;
  bytes: number;
}

/** Read every file of the tree start to end in `chunk`-sized reads; write them under outDir when given. */
export async function exportTree(tree: Tree, outDir: string | null, chunk = 1 << 20): Promise<ExportStats> {
  const stats: ExportStats = { files: 0, bytes: 0 };
  for await (const path of tree.walkFiles()) {
    const size = (await tree.getattr(path)).size;
    let fh = null;
    if (outDir) {
      const dest = join(outDir, path);
      await mkdir(join(dest, '..'), { recursive: true });
      fh = await open(dest, 'w');
    }
    try {
      for (let off = 0; off < size; ) {
        const b = await tree.read(path, off, Math.min(chunk, size - off));
        if (b.length === 0) break;
        if (fh) await fh.write(b, 0, b.length, off);
        off += b.length;
        stats.bytes += b.length;
      }
    } finally {
      await fh?.close();
    }
    stats.files++;
  }
  return stats;
}
