/**
 * The libfuse3 backend (--fuse-backend native, native/ekvfuse.c) against real
 * mounts of the ekv-mount binary, checked against the fuse-native backend and
 * the golden trees: listings, sizes, bytes, CHECKSUMS, EROFS, unmount paths,
 * concurrent readers, big directories (several readdirplus buffers) and an EIO
 * entry inside a listing.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ddbBenchEntries } from '../src/fixture/dynamodb.js';
import { writeFsm } from './fixture/fsm-writer.js';
import { LISTING_IN_USE_MS } from '../src/fuse/native.js';
import { diffAgainstExpected, goldenCases, type GoldenCase } from './helpers/golden.js';
import { isMounted, mount, sh, tempDir, type Mounted } from './helpers/mount.js';

const ADDON = new URL('../native/build/ekvfuse.node', import.meta.url).pathname;

function pickGolden(): GoldenCase {
  const all = goldenCases();
  // The s3 multipart case has nested directories and a multi-part object; any case will do otherwise.
  const c = all.find((x) => x.name.endsWith('/s3-multipart')) ?? all[0];
  if (!c) throw new Error('no golden pairs found');
  return c;
}

const golden = pickGolden();
const dir = tempDir('ekv-native-');

// A synthetic snapshot: 3000 small strings (a directory spanning many readdir buffers), one 6 MiB
// string (concurrent readers), and one corrupt record (EIO inside a listing).
const BIG = Buffer.alloc(6 << 20);
for (let i = 0; i < BIG.length; i += 4) BIG.writeUInt32LE((i * 2654435761) >>> 0, i);
const wideFsm = join(dir, '0000000000000064.fsm');
writeFsm(wideFsm, [
  ...Array.from({ length: 3000 }, (_, i) => ({ key: `!redis|str|k${String(i).padStart(5, '0')}`, value: `value-${i}\n` })),
  { key: '!redis|str|big', value: BIG },
  // Current-format string header (magic 0xFF, version 1, has-TTL flag) with its TTL cut short.
  { key: '!redis|str|bad', value: Buffer.from([0xff, 0x01, 0x01, 0x00, 0x01]) },
]);

// Many small directories (a DynamoDB table of 300 partition keys with 5 items each): a copy
// walks them one after another, as it walks `items/<pk>/` of a real table.
const dirsFsm = join(dir, 'dirs', '0000000000000064.fsm');
mkdirSync(join(dir, 'dirs'));
writeFsm(dirsFsm, ddbBenchEntries(1500, { table: 'small-dirs', perHash: 5 }));

// Both at once: a big directory (3000 strings) and 40 small ones (a table of 40 partition keys).
const mixedFsm = join(dir, 'mixed', '0000000000000064.fsm');
mkdirSync(join(dir, 'mixed'));
writeFsm(mixedFsm, [
  ...Array.from({ length: 3000 }, (_, i) => ({ key: `!redis|str|k${String(i).padStart(5, '0')}`, value: `value-${i}\n` })),
  ...ddbBenchEntries(200, { table: 'small-dirs', perHash: 5 }),
]);

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** sha256 of `tar` of `sub` over a fuse-native mount of `fsm`: the bytes the native backend must give. */
async function fuseNativeTar(fsm: string, sub: string): Promise<string> {
  const ref = await mount(['--snapshot', fsm, '--fuse-backend', 'fuse-native']);
  try {
    return (await sh(`tar -C '${ref.mnt}' --mtime=@0 -cf - ${sub} | sha256sum`)).stdout;
  } finally {
    await ref.unmount();
  }
}

describe('native FUSE backend (libfuse3 addon)', () => {
  it('the addon is built', () => {
    expect(existsSync(ADDON), `${ADDON} missing: run native/build.sh`).toBe(true);
  });

  describe(`golden ${golden.name}: native mount vs fuse-native mount`, () => {
    let nat: Mounted;
    let ref: Mounted;
    beforeAll(async () => {
      nat = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'native']);
      ref = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'fuse-native']);
    });
    afterAll(async () => {
      await ref?.unmount();
      await nat?.unmount();
    });

    it('is a read-only fuse.ekv mount served by the native backend (no fallback)', () => {
      const mi = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === nat.mnt)!;
      expect(mi).toBeDefined();
      const f = mi.split(' ');
      expect(f[5]).toMatch(/^ro(,|$)/);
      const sep = f.indexOf('-');
      expect(f[sep + 1]).toBe('fuse.ekv');
      expect(f[sep + 2]).toBe('ekv-mount');
      expect(mi).toContain('default_permissions');
      expect(nat.stdout()).not.toMatch(/falling back to fuse-native/);
    });

    it('ls, ls -l sizes and modes match fuse-native; stat sizes are the bytes cat reads', async () => {
      expect((await sh('ls -f', nat.mnt)).stdout).toBe((await sh('ls -f', ref.mnt)).stdout);
      // MANIFEST.json carries each mount's wall time, whose printed length varies.
      const list = `find . -printf '%y %p %s %m %n\\n' | grep -v ' ./MANIFEST.json ' | sort`;
      const a = await sh(list, nat.mnt);
      expect(a.code).toBe(0);
      expect(a.stdout).toBe((await sh(list, ref.mnt)).stdout);
      expect(a.stdout.split('\n').filter((l) => l.startsWith('f ')).length).toBeGreaterThan(2);
      // ls -l: the size column of every file is what cat reads.
      const files = (await sh(`find . -type f | sort`, nat.mnt)).stdout.split('\n').filter(Boolean);
      for (const f of files) {
        const lsl = (await sh(`ls -l '${f}'`, nat.mnt)).stdout.trim().split(/\s+/);
        expect(lsl[0]).toBe('-r--r--r--');
        expect(Number(lsl[4]), f).toBe(readFileSync(join(nat.mnt, f)).length);
      }
      expect(statSync(nat.mnt).mode & 0o777).toBe(0o555);
    });

    it('cat reads the same bytes as fuse-native', async () => {
      const files = (await sh(`find . -type f | sort`, nat.mnt)).stdout.split('\n').filter(Boolean);
      for (const f of files) {
        if (f === './MANIFEST.json' || f === './CHECKSUMS') continue; // carry each mount's wall time
        const a = await sh(`cat '${f}' | sha256sum`, nat.mnt);
        expect(a.code).toBe(0);
        expect(a.stdout, f).toBe((await sh(`cat '${f}' | sha256sum`, ref.mnt)).stdout);
      }
    });

    it('cp -r diff -r clean against the fuse-native mount and the golden tree; sha256sum -c passes', async () => {
      const check = await sh('sha256sum --quiet -c CHECKSUMS', nat.mnt);
      expect(check.stdout + check.stderr).toBe('');
      expect(check.code).toBe(0);
      const scratch = tempDir('ekv-native-cp-');
      const copy = join(scratch, 'actual');
      const cp = await sh(`cp -r '${nat.mnt}' '${copy}'`);
      expect(cp.stderr).toBe('');
      expect(await diffAgainstExpected(copy, ref.mnt, scratch)).toBe('');
      expect(await diffAgainstExpected(copy, golden.expected, scratch)).toBe('');
      const tr = join(scratch, 'tar');
      expect((await sh(`mkdir '${tr}' && tar -C '${nat.mnt}' -cf - . | tar -C '${tr}' -xf -`)).code).toBe(0);
      // The tar copy holds the same bytes (MANIFEST.json/CHECKSUMS were normalised in `copy` above).
      expect((await sh(`diff -r -x MANIFEST.json -x CHECKSUMS '${copy}' '${tr}'`)).stdout).toBe('');
      expect(readFileSync(join(tr, 'CHECKSUMS'), 'utf8')).toBe(readFileSync(join(nat.mnt, 'CHECKSUMS'), 'utf8'));
    });

    it('writes are refused with EROFS', async () => {
      for (const cmd of ['touch x', 'echo hi > MANIFEST.json', 'echo hi >> MANIFEST.json', 'mkdir d', 'rm MANIFEST.json', 'rm -r s3', 'mv MANIFEST.json y', 'chmod 777 MANIFEST.json', 'ln -s a b', 'ln MANIFEST.json h', 'truncate -s 0 MANIFEST.json']) {
        const r = await sh(cmd, nat.mnt);
        expect(r.code, cmd).not.toBe(0);
        expect(r.stderr, cmd).toMatch(/Read-only file system/);
      }
      expect((await sh('cat nope', nat.mnt)).stderr).toMatch(/No such file or directory/);
      const df = await sh(`stat -f -c '%T %l' .`, nat.mnt);
      expect(df.code).toBe(0);
      expect(df.stdout.trim()).toMatch(/ 255$/);
    });

    it('extended attributes: none listed; getxattr is switched off in the kernel after its first ENOSYS (ls -l asks no more)', async () => {
      // ENODATA from every getxattr would cost `ls -l` two round trips to the daemon per file;
      // ENOSYS makes the kernel answer EOPNOTSUPP itself from then on. listxattr stays an empty list.
      const py = [
        'import os, sys',
        'out = []',
        'for p in sys.argv[1:]:',
        '    out.append(str(len(os.listxattr(p))))',
        '    for n in ("security.selinux", "system.posix_acl_access", "user.x"):',
        '        try:',
        '            os.getxattr(p, n); out.append("value")',
        '        except OSError as e:',
        '            out.append(str(e.errno))',
        'print(" ".join(out))',
      ].join('\n');
      const r = await sh(`python3 -c '${py}' MANIFEST.json CHECKSUMS .`, nat.mnt);
      expect(r.stderr).toBe('');
      // fuse-native answers alike.
      expect((await sh(`python3 -c '${py}' MANIFEST.json CHECKSUMS .`, ref.mnt)).stdout).toBe(r.stdout);
      // Per path: no names listed; EOPNOTSUPP (95) for security.selinux and user.x, not ENODATA (61)
      // from a trip to the daemon each; the ACL name the kernel may answer itself without asking us.
      const got = r.stdout.trim().split(' ');
      expect(got.length).toBe(12);
      for (let i = 0; i < 12; i += 4) {
        expect(got[i]).toBe('0');
        expect(got[i + 1]).toBe('95');
        expect(['61', '95']).toContain(got[i + 2]);
        expect(got[i + 3]).toBe('95');
      }
      const ls = await sh('ls -l MANIFEST.json', nat.mnt);
      expect(ls.code).toBe(0);
      expect(ls.stderr).toBe('');
    });
  });

  describe('a wide directory, a large file and a corrupt record', () => {
    let nat: Mounted;
    let ref: Mounted;
    beforeAll(async () => {
      nat = await mount(['--snapshot', wideFsm, '--fuse-backend', 'native']);
      ref = await mount(['--snapshot', wideFsm, '--fuse-backend', 'fuse-native']);
    });
    afterAll(async () => {
      await ref?.unmount();
      await nat?.unmount();
    });
    const strings = 'redis/db_0/strings';

    it('lists all 3002 entries across many readdir buffers, sizes as fuse-native', async () => {
      const names = (await sh(`ls -f '${strings}'`, nat.mnt)).stdout.split('\n').filter(Boolean);
      expect(names.length).toBe(3002);
      expect(new Set(names).size).toBe(3002);
      expect((await sh(`ls -f '${strings}'`, ref.mnt)).stdout.split('\n').filter(Boolean)).toEqual(names);
      // ls -l stats every entry (readdirplus attrs); the corrupt one reports EIO in both backends.
      const ll = await sh(`ls -l '${strings}' | grep -v bad.bin | awk '{print $5, $9}'`, nat.mnt);
      const llRef = await sh(`ls -l '${strings}' | grep -v bad.bin | awk '{print $5, $9}'`, ref.mnt);
      expect(ll.stdout).toBe(llRef.stdout);
      expect(ll.stdout).toContain(`${BIG.length} big.bin`);
      expect(ll.stdout).toContain('8 k00000.bin');
      const tarN = await sh(`tar -C '${nat.mnt}' --mtime=@0 -cf - --exclude=bad.bin redis | sha256sum`);
      const tarR = await sh(`tar -C '${ref.mnt}' --mtime=@0 -cf - --exclude=bad.bin redis | sha256sum`);
      expect(tarN.stdout).toBe(tarR.stdout);
    });

    it('a corrupt record is listed, and reading it is EIO; neighbours read', async () => {
      const bad = await sh(`cat '${strings}/bad.bin'`, nat.mnt);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/Input\/output error/);
      expect((await sh(`cat '${strings}/k00042.bin'`, nat.mnt)).stdout).toBe('value-42\n');
      expect(nat.stdout()).not.toContain('value-42'); // never record contents in logs
    });

    it('8 concurrent readers of a large file and 8 of different small files get correct bytes', async () => {
      const want = sha(BIG);
      const big = join(nat.mnt, strings, 'big.bin');
      const runs = await Promise.all(Array.from({ length: 8 }, () => sh(`cat '${big}' | sha256sum`)));
      for (const r of runs) expect(r.stdout.split(' ')[0]).toBe(want);
      // dd with 1 MiB blocks from different offsets at once.
      const parts = await Promise.all(Array.from({ length: 6 }, (_, i) => sh(`dd if='${big}' bs=1M skip=${i} count=1 status=none | sha256sum`)));
      parts.forEach((r, i) => expect(r.stdout.split(' ')[0]).toBe(sha(BIG.subarray(i << 20, (i + 1) << 20))));
      const small = await Promise.all(Array.from({ length: 8 }, (_, i) => sh(`cat '${strings}/k0${1000 + i * 7}.bin'`, nat.mnt)));
      small.forEach((r, i) => expect(r.stdout).toBe(`value-${1000 + i * 7}\n`));
    });
  });

  describe('cross-file read-ahead (small files pushed into the page cache)', () => {
    const strings = 'redis/db_0/strings';
    /** The session's last debug line: its op counts, and the inodes still counted (the root is one). */
    const sessionEnd = (log: string): { ops: Record<string, number>; inodes: number } => {
      const line = log.split('\n').find((l) => l.includes('"msg":"fuse session ended"'));
      expect(line, 'fuse session ended line').toBeDefined();
      return JSON.parse(line!) as { ops: Record<string, number>; inodes: number };
    };
    const sessionOps = (log: string): Record<string, number> => sessionEnd(log).ops;
    /** Reclaim every dentry and inode the kernel can (drop_caches 2): it FORGETs each lookup of them it holds. */
    const forgetAll = async (): Promise<void> => {
      expect((await sh('sync && echo 2 > /proc/sys/vm/drop_caches')).code).toBe(0);
      await new Promise((r) => setTimeout(r, 200));
    };

    it('tar of 3000 small files needs a READ for few of them, and the bytes are the same as fuse-native', async () => {
      const ref = await mount(['--snapshot', wideFsm, '--fuse-backend', 'fuse-native']);
      const nat = await mount(['--snapshot', wideFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      try {
        const tarN = await sh(`tar -C '${nat.mnt}' --mtime=@0 -cf - --exclude=bad.bin redis | sha256sum`);
        const tarR = await sh(`tar -C '${ref.mnt}' --mtime=@0 -cf - --exclude=bad.bin redis | sha256sum`);
        expect(tarN.code).toBe(0);
        expect(tarN.stdout).toBe(tarR.stdout);
      } finally {
        await ref.unmount();
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.prefilled).toBeGreaterThan(2500);
      expect(ops.read).toBeLessThan(600);
    });

    /** On a native mount of the mixed tree: run `before`, then tar redis/ (the bytes fuse-native gives); the session's op counts. */
    const tarRedisAfter = async (before: string): Promise<Record<string, number>> => {
      const nat = await mount(['--snapshot', mixedFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      let tarN: string;
      try {
        expect((await sh(before, nat.mnt)).code).toBe(0);
        const t = await sh(`tar -C '${nat.mnt}' --mtime=@0 -cf - redis | sha256sum`);
        expect(t.code).toBe(0);
        tarN = t.stdout;
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      expect(await fuseNativeTar(mixedFsm, 'redis')).toBe(tarN);
      return sessionOps(nat.stdout());
    };

    it('a walk through other directories meanwhile does not take the pushes from a reader of a big directory', async () => {
      // The big directory is listed (its first files pushed), then 40 small directories are walked
      // (more listings than are remembered), then the big directory is copied.
      const ops = await tarRedisAfter(`ls -l '${strings}' > /dev/null && tar -cf /dev/null dynamodb`);
      // Before: the walk let the big listing go: 2,985 READs, 216 files pushed.
      expect(ops.prefilled).toBeGreaterThan(2500 + 200);
      expect(ops.read).toBeLessThan(600);
    });

    // Listed (as rsync lists ahead), left alone past LISTING_IN_USE_MS while 40 other
    // directories are walked (which lets it go), then copied.
    const listAwayWalk = `ls -l '${strings}' > /dev/null && sleep ${(LISTING_IN_USE_MS + 300) / 1000} && tar -cf /dev/null dynamodb`;

    it('a big listing let go while its reader was away is remade when its files are read, and the pushes resume', async () => {
      const ops = await tarRedisAfter(listAwayWalk);
      // The kernel keeps the directory's listing, so tar's first READ recalls ours. Only if the
      // kernel forgot the directory meanwhile (memory pressure elsewhere on the machine: the
      // next test forces it) does tar list it anew, which remakes it instead.
      expect(ops.recalled + ops.relisted).toBe(1);
      expect(ops.prefilled).toBeGreaterThan(2500 + 200);
      expect(ops.read).toBeLessThan(600);
    });

    it('a big listing let go, then forgotten by the kernel (reclaimed), is remade by the next listing, and the pushes resume', async () => {
      // drop_caches 2 reclaims dentries and inodes: the kernel FORGETs every entry of the mount
      // and loses its cached listing, so tar's readdir comes to us again.
      const ops = await tarRedisAfter(`${listAwayWalk} && sync && echo 2 > /proc/sys/vm/drop_caches`);
      expect(ops.forget).toBeGreaterThan(3000);
      expect(ops.relisted).toBe(1);
      expect(ops.recalled).toBe(0);
      expect(ops.prefilled).toBeGreaterThan(2500 + 200);
      expect(ops.read).toBeLessThan(600);
    });

    it('a walk costs no OPENDIR and no end-of-listing READDIRPLUS round trips: the addon answers them', async () => {
      const nat = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'native', '--log-level', 'debug']);
      let tarN: string;
      try {
        const t = await sh(`tar -C '${nat.mnt}' --mtime=@0 --exclude=./MANIFEST.json --exclude=./CHECKSUMS -cf - . | sha256sum`);
        expect(t.code).toBe(0);
        tarN = t.stdout;
        // Listed again: the kernel keeps listings (cache_readdir), and a listing's end stays known.
        expect((await sh(`find . -type d | wc -l`, nat.mnt)).code).toBe(0);
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      const dirs = Number((await sh(`find . -type d | wc -l`, golden.expected)).stdout.trim());
      expect(dirs).toBeGreaterThanOrEqual(3);
      expect(ops.opendir).toBe(0);
      // Every directory of this tree fits one reply: one READDIRPLUS each reaches us (the empty one that ends it does not).
      expect(ops.readdirplus).toBe(dirs);
      // And the tar stream is the one fuse-native gives (MANIFEST.json carries the mount's wall time, CHECKSUMS its hash).
      const ref = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'fuse-native']);
      try {
        expect((await sh(`tar -C '${ref.mnt}' --mtime=@0 --exclude=./MANIFEST.json --exclude=./CHECKSUMS -cf - . | sha256sum`)).stdout).toBe(tarN);
      } finally {
        await ref.unmount();
      }
    });

    it('a listing pushes its first files into the page cache: reading them after `ls -l` costs no READ', async () => {
      // A directory of the expected tree with small files in it (the golden trees have several).
      const d = (await sh(`find . -type f -size -1024k -printf '%h\\n' | sort | uniq -c | sort -rn | head -1 | awk '{print $2}'`, golden.expected)).stdout.trim();
      expect(d).not.toBe('');
      const files = (await sh(`find '${d}' -maxdepth 1 -type f | sort`, golden.expected)).stdout.trim().split('\n');
      expect(files.length).toBeGreaterThan(0);
      const nat = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'native', '--log-level', 'debug']);
      try {
        expect((await sh(`ls -l '${d}'`, nat.mnt)).code).toBe(0);
        await new Promise((r) => setTimeout(r, 300)); // the pushes follow the listing's reply
        for (const f of files) expect((await sh(`cmp '${f}' '${join(golden.expected, f)}'`, nat.mnt)).code, f).toBe(0);
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.prefilled).toBeGreaterThanOrEqual(files.length);
      expect(ops.read).toBe(0);
    });

    it('files read by path with no listing (sha256sum -c) are answered by the addon: the lookup hands it their bytes', async () => {
      // The checksum list of every item, made on a fuse-native mount; then checked on a fresh
      // native mount, which lists no directory: each file costs a LOOKUP, and its READ is answered
      // from the bytes the lookup rendered (or from pages pushed, if the READ came late).
      const list = join(tempDir('ekv-native-sums-'), 'SUMS');
      const ref = await mount(['--snapshot', dirsFsm, '--fuse-backend', 'fuse-native']);
      try {
        const made = await sh(`find dynamodb -type f | sort | xargs sha256sum > '${list}'`, ref.mnt);
        expect(made.code, made.stderr).toBe(0);
      } finally {
        await ref.unmount();
      }
      const files = Number((await sh(`wc -l < '${list}'`)).stdout.trim());
      expect(files).toBe(1501); // 1,500 items and the table's _schema.json
      const nat = await mount(['--snapshot', dirsFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      try {
        const c = await sh(`sha256sum --quiet -c '${list}'`, nat.mnt);
        expect(c.code, c.stderr).toBe(0);
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.readdirplus).toBe(0);
      // Each file looked up once: by us, or by the addon from an entry we expected (see the lookup read-ahead tests).
      expect(ops.lookup + ops.expected_answered).toBeGreaterThanOrEqual(files);
      // Before: one READ reached us for every file.
      expect(ops.prefilled).toBeGreaterThanOrEqual(files);
      expect(ops.read).toBeLessThan(files / 10);
      expect(ops.reads_from_pushes + ops.read).toBeLessThanOrEqual(files);
    });

    it('a file read by path in several READs (larger than one READ) gets its bytes from the addon, each part right', async () => {
      // Strings of 300-900 KiB: the kernel reads them in parts (its read-ahead window), each
      // answered from the bytes the lookup handed over, or from JS once the push has taken them.
      const sizes = [300, 517, 700, 901].map((k) => k * 1024 + 13);
      const body = (n: number, i: number): Buffer => {
        const b = Buffer.alloc(n);
        for (let j = 0; j < n; j += 4) b.writeUInt32LE(((j + i) * 2654435761) >>> 0, Math.min(j, n - 4));
        return b;
      };
      const fsm = join(tempDir('ekv-native-parts-'), '0000000000000064.fsm');
      writeFsm(fsm, sizes.map((n, i) => ({ key: `!redis|str|part${i}`, value: body(n, i) })));
      const nat = await mount(['--snapshot', fsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      try {
        for (let i = 0; i < sizes.length; i++) {
          const r = await sh(`sha256sum < '${join(nat.mnt, 'redis/db_0/strings', `part${i}.bin`)}'`);
          expect(r.stdout.split(' ')[0], `part${i}`).toBe(sha(body(sizes[i]!, i)));
        }
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.readdirplus).toBe(0);
      expect(ops.prefilled).toBe(sizes.length);
      // More answers than files: the parts came from the hold (all but the last leave it there).
      expect(ops.reads_from_pushes).toBeGreaterThan(sizes.length);
    });

    it('tar of many small directories reads every file from pushed pages: no READ, the bytes fuse-native gives', async () => {
      // Each directory's files go with its listing's reply, parked until the kernel has taken the
      // reply in, and the listing's end is answered behind them: nothing races them with a READ.
      const nat = await mount(['--snapshot', dirsFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      let tarN: string;
      try {
        const t = await sh(`tar -C '${nat.mnt}' --mtime=@0 -cf - dynamodb | sha256sum`);
        expect(t.code).toBe(0);
        tarN = t.stdout;
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.prefilled).toBeGreaterThanOrEqual(1500);
      expect(ops.read).toBe(0);
      // Most directories were listed ahead and answered by the addon, without a round trip to us.
      expect(ops.prepared_answered).toBeGreaterThan(150);
      expect(ops.readdirplus).toBeLessThan(150);
      expect(await fuseNativeTar(dirsFsm, 'dynamodb')).toBe(tarN);
    });

    it('listings made ahead are answered by the addon, and those the kernel never takes are forgotten without losing an inode', async () => {
      const nat = await mount(['--snapshot', dirsFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      let tarN: string;
      try {
        // List every 5th partition-key directory only: each listing makes the next few ahead, most of
        // which the kernel never asks for now; past the addon's 64 slots they are dropped, their lookups forgotten.
        const items = `${nat.mnt}/dynamodb/small-dirs/items`;
        const skip = await sh(`ls -f . | grep -v '^\\.' | awk 'NR % 5 == 1' | while read d; do ls -f "$d" > /dev/null || exit 1; sleep 0.01; done`, items);
        expect(skip.code, skip.stderr).toBe(0);
        // Then a copy of everything: the listings still prepared are answered by the addon, the others by us.
        const t = await sh(`tar -C '${nat.mnt}' --mtime=@0 -cf - dynamodb | sha256sum`);
        expect(t.code, t.stderr).toBe(0);
        tarN = t.stdout;
        expect((await sh(`find dynamodb -type f | wc -l`, nat.mnt)).stdout.trim()).toBe('1501');
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.prepared_dropped).toBeGreaterThan(20);
      expect(ops.prepared_answered).toBeGreaterThan(20);
      // 300 partition-key directories, plus dynamodb/, the table and items/: each listed once, by us or by the addon.
      expect(ops.readdirplus + ops.prepared_answered).toBeGreaterThanOrEqual(303);
      expect(await fuseNativeTar(dirsFsm, 'dynamodb')).toBe(tarN);
    });

    it('a copy of the whole mount builds CHECKSUMS from the hashes of bytes it read: listing the root does not read the tree', async () => {
      const nat = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'native', '--log-level', 'debug']);
      const out = tempDir('ekv-native-cp-');
      try {
        // readdirplus of the root asks for every entry's attributes; CHECKSUMS's size would need every file's hash.
        expect((await sh(`ls -f '${nat.mnt}'`)).stdout).toContain('CHECKSUMS');
        expect(nat.stdout()).not.toContain('"msg":"CHECKSUMS built"');
        const cp = await sh(`cp -r '${nat.mnt}/.' '${out}/' && cd '${out}' && sha256sum -c --quiet CHECKSUMS`);
        expect(cp.code, cp.stderr).toBe(0);
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const built = nat
        .stdout()
        .split('\n')
        .filter((l) => l.includes('"msg":"CHECKSUMS built"'))
        .map((l) => JSON.parse(l) as { files: number; hashed_now: number });
      expect(built).toHaveLength(1);
      expect(built[0]!.files).toBeGreaterThan(2);
      expect(built[0]!.hashed_now).toBe(0);
    });

    it('parallel walkers and random readers of one directory never deadlock and read the right bytes', async () => {
      const nat = await mount(['--snapshot', wideFsm, '--fuse-backend', 'native']);
      try {
        const walkers = Array.from({ length: 4 }, (_, w) =>
          sh(`timeout 60 sh -c 'for f in $(ls ${strings} | grep -v -e bad.bin -e big.bin ${w % 2 ? '| sort -r' : ''}); do cat ${strings}/$f; done' | sha256sum`, nat.mnt),
        );
        const random = Array.from({ length: 4 }, (_, r) => sh(`timeout 60 sh -c 'for i in $(seq ${r} 37 2999); do cat ${strings}/k$(printf %05d $i).bin; done'`, nat.mnt));
        const all = Array.from({ length: 3000 }, (_, i) => `value-${i}\n`).join('');
        const fwd = sha(Buffer.from(all));
        const rev = sha(Buffer.from(Array.from({ length: 3000 }, (_, i) => `value-${2999 - i}\n`).join('')));
        const w = await Promise.all(walkers);
        w.forEach((r, i) => {
          expect(r.code).toBe(0);
          expect(r.stdout.split(' ')[0]).toBe(i % 2 ? rev : fwd);
        });
        const rs = await Promise.all(random);
        rs.forEach((r, k) => {
          expect(r.code).toBe(0);
          const want = [];
          for (let i = k; i <= 2999; i += 37) want.push(`value-${i}\n`);
          expect(r.stdout).toBe(want.join(''));
        });
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
    });

    it("a big listing's replies after the first come from the addon; a reader that stops early and one that reads on are both counted right", async () => {
      const nat = await mount(['--snapshot', wideFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
      try {
        // Stops after its first reply (head closes the pipe): the addon keeps the rest.
        expect((await sh(`ls -f '${strings}' | head -1`, nat.mnt)).stdout.trim()).not.toBe('');
        // Reads on from where the kernel's cached part of the listing ends.
        const names = (await sh(`ls -f '${strings}'`, nat.mnt)).stdout.split('\n').filter(Boolean);
        expect(names.length).toBe(3002);
        expect(new Set(names).size).toBe(3002);
        const ll = await sh(`ls -l '${strings}' | grep -v bad.bin | awk '{print $5, $9}'`, nat.mnt);
        expect(ll.stdout).toContain('8 k00000.bin');
        expect(ll.stdout).toContain('11 k02999.bin');
        expect(ll.stdout).toContain(`${BIG.length} big.bin`);
        // Every entry's lookup goes back once the kernel forgets them.
        await forgetAll();
      } finally {
        expect(await nat.unmount()).toBe(0);
      }
      const ops = sessionOps(nat.stdout());
      expect(ops.prepared_rests).toBeGreaterThanOrEqual(1);
      // Before: one READDIRPLUS reached us for each reply of the listing (~17 here).
      expect(ops.readdirplus).toBeLessThanOrEqual(4);
      expect(sessionEnd(nat.stdout()).inodes).toBeLessThan(8);
    });

    describe('lookup read-ahead (files opened by path in CHECKSUMS order: sha256sum -c)', () => {
      /** CHECKSUMS of a fresh native mount of `fsm`, copied out (the mount stays up), with its line count. */
      const sumsOf = async (mnt: string): Promise<{ list: string; files: number }> => {
        const list = join(tempDir('ekv-lookahead-'), 'CHECKSUMS');
        expect((await sh(`cat CHECKSUMS > '${list}'`, mnt)).code).toBe(0);
        return { list, files: Number((await sh(`wc -l < '${list}'`)).stdout.trim()) };
      };

      it('the addon answers nearly every lookup and READ from entries expected ahead; once the kernel forgets them, no inode stays counted', async () => {
        const nat = await mount(['--snapshot', mixedFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
        let files = 0;
        try {
          const s = await sumsOf(nat.mnt);
          files = s.files;
          expect(files).toBeGreaterThan(3000); // 3,000 strings, 200 items, the schema
          const c = await sh(`sha256sum --quiet -c '${s.list}'`, nat.mnt);
          expect(c.code, c.stderr).toBe(0);
          // Reclaim every dentry and inode of the mount: the kernel FORGETs each lookup it holds.
          await forgetAll();
        } finally {
          expect(await nat.unmount()).toBe(0);
        }
        const ops = sessionOps(nat.stdout());
        expect(ops.lookahead_runs).toBeGreaterThanOrEqual(1);
        // Before: every file's LOOKUP came to us (3,201), one after another.
        expect(ops.lookup).toBeLessThan(files / 20);
        expect(ops.expected_answered).toBeGreaterThan(files * 0.95);
        expect(ops.read).toBeLessThan(files / 20);
        // Every lookup counted for an expected entry was either taken by the kernel (and forgotten
        // by it now) or came back as a forget: only what the kernel still pins is left.
        expect(sessionEnd(nat.stdout()).inodes).toBeLessThan(8);
      });

      it('a reader that leaves the order half-way (the rest in reverse) still gets every file right, and no lookup is lost', async () => {
        const nat = await mount(['--snapshot', mixedFsm, '--fuse-backend', 'native', '--log-level', 'debug']);
        try {
          const { list, files } = await sumsOf(nat.mnt);
          const half = Math.floor(files / 2);
          const c = await sh(`(head -n ${half} '${list}'; tail -n +${half + 1} '${list}' | tac) | sha256sum --quiet -c -`, nat.mnt);
          expect(c.code, c.stderr).toBe(0);
          await forgetAll();
        } finally {
          expect(await nat.unmount()).toBe(0);
        }
        const ops = sessionOps(nat.stdout());
        // The walk was right for the first half, then wrong once the order turned.
        expect(ops.expected_answered).toBeGreaterThan(1000);
        expect(ops.lookup).toBeGreaterThan(1000);
        expect(sessionEnd(nat.stdout()).inodes).toBeLessThan(8);
      });

      it('a corrupt record on the way is one EIO for that file; the files after it check out', async () => {
        const fsm = join(tempDir('ekv-lookahead-bad-'), '0000000000000064.fsm');
        const name = (p: string, i: number): string => `${p}${String(i).padStart(2, '0')}`;
        writeFsm(fsm, [
          ...Array.from({ length: 20 }, (_, i) => ({ key: `!redis|str|${name('a', i)}`, value: `a-${i}\n` })),
          // A current-format string header whose TTL is cut short (as wideFsm's bad.bin).
          { key: '!redis|str|b-bad', value: Buffer.from([0xff, 0x01, 0x01, 0x00, 0x01]) },
          ...Array.from({ length: 20 }, (_, i) => ({ key: `!redis|str|${name('c', i)}`, value: `c-${i}\n` })),
        ]);
        const line = (f: string, body: string): string => `${sha(Buffer.from(body))}  redis/db_0/strings/${f}.bin`;
        const lines = [
          ...Array.from({ length: 20 }, (_, i) => line(name('a', i), `a-${i}\n`)),
          line('b-bad', ''),
          ...Array.from({ length: 20 }, (_, i) => line(name('c', i), `c-${i}\n`)),
        ];
        const list = join(tempDir('ekv-lookahead-bad-'), 'SUMS');
        writeFileSync(list, lines.join('\n') + '\n');
        const nat = await mount(['--snapshot', fsm, '--fuse-backend', 'native', '--log-level', 'debug']);
        let c: { stdout: string; stderr: string; code: number };
        try {
          c = await sh(`sha256sum -c '${list}'`, nat.mnt);
        } finally {
          expect(await nat.unmount()).toBe(0);
        }
        expect(c.code).toBe(1);
        expect(c.stderr).toMatch(/b-bad\.bin: Input\/output error/);
        expect(c.stdout).toMatch(/b-bad\.bin: FAILED open or read/);
        expect(c.stdout.match(/: OK$/gm)?.length).toBe(40);
        const ops = sessionOps(nat.stdout());
        expect(ops.expected_answered).toBeGreaterThan(30);
      });
    });
  });

  it('fusermount -u ends the process with exit 0', async () => {
    const m = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'native']);
    expect(readFileSync(join(m.mnt, 'MANIFEST.json'), 'utf8')).toMatch(/"phase"/);
    expect(await m.unmount()).toBe(0);
    expect(isMounted(m.mnt)).toBe(false);
    expect(m.stdout()).toMatch(/"reason":"unmounted"/);
    expect(m.stdout()).toMatch(/"msg":"stopped"/);
  });

  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    it(`${sig} unmounts cleanly and exits 0`, async () => {
      const m = await mount(['--snapshot', golden.fsm, ...golden.flags, '--fuse-backend', 'native']);
      expect((await sh('cat CHECKSUMS | wc -l', m.mnt)).code).toBe(0);
      m.proc.kill(sig);
      expect(await m.exited).toBe(0);
      expect(isMounted(m.mnt)).toBe(false);
      expect(m.stdout()).toMatch(new RegExp(`"reason":"${sig}"`));
      expect(m.stderr()).not.toMatch(/fuse:/); // no libfuse complaints on the way out
    });
  }
});
