// A trivial filesystem over the ekvfuse addon, the twin of a fuse-native one:
// /d holds N files of 12 bytes. For measuring the binding itself:
//   node native/bench/rawfuse.cjs <mnt> [N]; then e.g. tar -C <mnt> -cf - d | wc -c; SIGTERM unmounts.
const path = require('node:path');
const A = require(path.join(__dirname, '..', 'build', 'ekvfuse.node'));
const mnt = process.argv[2];
const N = Number(process.argv[3] || 20000);
const data = Buffer.from('hello world\n');
const names = Array.from({ length: N }, (_, i) => `f${i}.bin`);
const index = new Map(names.map((n, i) => [n, i]));
const ROOT = 1, DIR = 2, FIRST = 3; // file i is inode FIRST + i
const kindSize = (ino) => (ino === ROOT || ino === DIR ? [1, 4096] : ino - FIRST < N ? [0, data.length] : null);
let h;
const counts = {};
process.on('SIGUSR2', () => console.error(JSON.stringify(counts)));
const dispatch = (op, id, ino, a, b, fh, name) => {
  counts[op] = (counts[op] || 0) + 1;
  if (op === 4 || op === 5) counts['size' + a] = (counts['size' + a] || 0) + 1;
  switch (op) {
    case 1: { // lookup
      let child = 0;
      if (ino === ROOT && name === 'd') child = DIR;
      else if (ino === DIR && index.has(name)) child = FIRST + index.get(name);
      if (!child) return A.replyErr(h, id, 2);
      const [k, s] = kindSize(child);
      return A.replyEntry(h, id, child, k, s);
    }
    case 2: { const ks = kindSize(ino); return ks ? A.replyAttr(h, id, ino, ks[0], ks[1]) : A.replyErr(h, id, 2); }
    case 3: return A.replyOpen(h, id, ino, 3);
    case 4: case 5: {
      const plus = op === 5;
      const list = ino === ROOT ? ['d'] : names;
      const picked = []; let used = 0;
      for (let i = b; i < list.length; i++) { const sz = ((plus ? 152 : 24) + Buffer.byteLength(list[i]) + 7) & ~7; if (used + sz > a) break; used += sz; picked.push(list[i]); }
      const meta = new Float64Array(picked.length * 3);
      picked.forEach((n, i) => { const c = ino === ROOT ? DIR : FIRST + index.get(n); const [k, s] = kindSize(c); meta[3 * i] = c; meta[3 * i + 1] = k; meta[3 * i + 2] = s; });
      A.replyDir(h, id, plus, a, picked, meta, b);
      return;
    }
    case 7: return A.replyOpen(h, id, 0, 1);
    case 8: return A.replyBuf(h, id, data.subarray(b, b + a));
    case 10: return;
    default: if (id) A.replyErr(h, id, 38);
  }
};
h = A.mount(mnt, 'ro,fsname=rawfuse,subtype=raw,default_permissions,max_read=1048576', false, 0, 0, 0, 3600, { no: 0, yes: 1, auto: 2 }[process.env.EKV_FUSE_READDIRPLUS || 'yes'], dispatch);
console.log('mounted');
process.on('SIGTERM', () => A.unmount(h, () => setTimeout(() => process.exit(0), 100)));
