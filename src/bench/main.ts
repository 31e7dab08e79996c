/**
 * scripts/bench: the benchmark harness. Real tools on real mounts (tar, ls, cat,
 * fio), medians of several runs, ratios measured side by side in one run.
 * Prints a table for people and, as the last line, one JSON object.
 *
 *   scripts/bench [--quick] [--runs N] [--dir DIR]
 */
import { Command } from 'commander';
import { appendFileSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import { ALL_ADAPTERS } from '../adapters/index.js';
import { defaultDecodeOptions } from '../adapters/types.js';
import { renderManifest, PHASE_SNAPSHOT } from '../format/manifest.js';
import { ClusterSource } from '../source/cluster.js';
import { prefixEnd, SnapshotView } from '../source/range.js';
import { SnapshotSource } from '../source/snapshot.js';
import { exportTree } from '../tree/export.js';
import { addonSha256 } from '../fuse/addon.js';
import { Tree } from '../tree/tree.js';
import { generateDatasets, type Datasets, type Scale } from './dataset.js';
import { cpuSeconds, DEVCLUSTER_BIN, dropCaches, median, percentile, sampleTimeline, sh, startMount, type Daemon, type Timeline } from './util.js';

interface Row {
  run: string;
  figure: string;
  value: string;
  detail: string;
}

const rows: Row[] = [];
const started = Date.now();
const row = (run: string, figure: string, value: string, detail = ''): void => {
  rows.push({ run, figure, value, detail });
  // Seconds since the bench started: where a run's time goes.
  process.stderr.write(`  [${Math.round((Date.now() - started) / 1000)} s] ${run}: ${figure} = ${value} ${detail}\n`);
};
const fmt = (x: number, d = 2): string => x.toFixed(d);
const mib = (kib: number): number => kib / 1024;

async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; out: T }> {
  const t0 = performance.now();
  const out = await fn();
  return { ms: performance.now() - t0, out };
}

/** Render the whole tree in-process (no FUSE) to nothing; returns bytes. */
async function renderInProcess(fsm: string, cacheBytes: number): Promise<number> {
  const src = await SnapshotSource.open(fsm);
  const options = defaultDecodeOptions();
  const tree = new Tree({
    view: new SnapshotView(src, src.lastCommitTS),
    options,
    adapters: ALL_ADAPTERS,
    log: pino({ level: 'silent' }),
    cacheBytes,
    manifest: () => renderManifest({ phase: PHASE_SNAPSHOT, wallTime: new Date(), scopes: new Map(), options, lastCommitTS: src.lastCommitTS }),
    // The mount's own hashing, so the ratio is of FUSE alone.
    offThreadSha256: addonSha256(),
  });
  try {
    return (await exportTree(tree, null)).bytes;
  } finally {
    await tree.close();
    await src.close();
  }
}

/**
 * The children's CPU seconds from bash's `times` (its last line: "0m1.234s 0m0.567s", user
 * then system), or 0 when the line is not there.
 */
function childTimes(stdout: string): number {
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s\s*$/.exec(stdout.trim());
  return m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : 0;
}

/** The subtrees of the two-copies figure: many small directories, and one big one. */
const COPIES = ['dynamodb', 'redis'];

/**
 * tar of the whole mount to wc: the bytes, and the CPU seconds tar and wc used (the kernel's
 * work on tar's reads included: bash's `times`, its children's user and system).
 */
async function tarBytes(mnt: string): Promise<{ bytes: number; cpu: number }> {
  const r = await sh(`tar -C '${mnt}' -cf - . | wc -c; times`);
  return { bytes: Number(r.stdout.split('\n')[0]!.trim()), cpu: childTimes(r.stdout) };
}

interface DevCluster {
  proc: ChildProcess;
  address: string;
  stop(): Promise<void>;
}

async function startDevCluster(fsm: string, extra: string[] = []): Promise<DevCluster> {
  const proc = spawn(process.execPath, [DEVCLUSTER_BIN, '--listen', '127.0.0.1:0', '--snapshot', fsm, '--log-level', 'info', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let address = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  // Readiness is the "listening" line, logged at info: a quieter level would never print it.
  proc.stdout!.on('data', (d: Buffer) => {
    if (!address) out += d.toString();
  });
  const t0 = Date.now();
  while (!address) {
    const m = /"address":"([^"]+)"/.exec(out);
    if (m) address = m[1]!;
    if (proc.exitCode !== null) throw new Error(`ekv-devcluster exited: ${err}`);
    if (Date.now() - t0 > 600_000) throw new Error('ekv-devcluster did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    address,
    stop: async () => {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * Each adapter's keys, by prefix (the rooms' key layouts): the raw side of the live figure's
 * breakdown by top-level directory.
 */
const ADAPTER_PREFIXES: Record<string, string[]> = {
  dynamodb: ['!ddb|'],
  s3: ['!s3|'],
  redis: ['!redis|', '!hs|', '!lst|', '!st|', '!zs|', '!stream|'],
  sqs: ['!sqs|'],
};

/** Raw RawScanAt paging with values of the whole keyspace, or of the keys under `prefixes` only. */
async function rawScan(address: string, pageSize: number, prefixes?: string[]): Promise<{ bytes: number; keys: number }> {
  const ranges: [Buffer, Buffer | null][] = prefixes
    ? prefixes.map((p) => {
        const start = Buffer.from(p, 'latin1');
        return [start, prefixEnd(start)];
      })
    : [[Buffer.alloc(0), null]];
  const src = new ClusterSource({ endpoints: [address] });
  try {
    const ts = await src.client.getTimestamp();
    const view = new SnapshotView(src, ts, pageSize);
    let bytes = 0;
    let keys = 0;
    for (const [start, end] of ranges) {
      for await (const kv of view.scan(start, end)) {
        bytes += kv.key.length + kv.value.length;
        keys++;
      }
    }
    return { bytes, keys };
  } finally {
    await src.close();
  }
}

/** The median of one figure of each sample, to a tenth. */
function medianOf<T>(xs: T[], f: (x: T) => number): number {
  return Number(fmt(median(xs.map(f)), 1));
}

async function withMount<T>(args: string[], fn: (d: Daemon) => Promise<T>): Promise<T> {
  const d = await startMount(args);
  try {
    return await fn(d);
  } finally {
    await d.stop();
  }
}

async function main(): Promise<void> {
  const cmd = new Command('bench')
    .option('--quick', 'small data; finishes in minutes', false)
    .option('--runs <n>', 'runs per figure (median reported)')
    .option('--dir <dir>', 'dataset cache directory', process.env.EKV_BENCH_DIR)
    .parse(process.argv);
  const o = cmd.opts<{ quick: boolean; runs?: string; dir?: string }>();
  const scale: Scale = o.quick ? 'quick' : 'full';
  const runs = Number(o.runs ?? (o.quick ? 3 : 5));
  const dir = o.dir ?? `/tmp/ekv-bench-${scale}`;
  mkdirSync(dir, { recursive: true });
  const t0 = Date.now();
  process.stderr.write(`ekv-mount bench (${scale}, ${runs} runs per figure, datasets in ${dir})\n`);
  const ds: Datasets = await generateDatasets(dir, scale, (msg) => process.stderr.write(`  ${msg}\n`));
  const cacheDefault = 256 << 20;

  // 1 + 6: tar over a snapshot mount vs in-process render; peak RSS of the daemon.
  const fuseMs: number[] = [];
  const inprocMs: number[] = [];
  const rss: number[] = [];
  const mountMs: number[] = [];
  const idleRss: number[] = [];
  let treeBytes = 0;
  for (let i = 0; i < runs; i++) {
    await dropCaches();
    const tm = performance.now();
    const f = await withMount(['--snapshot', ds.tree.fsm], async (d) => {
      mountMs.push(performance.now() - tm);
      idleRss.push(mib(d.peakRssKiB()));
      const r = await time(() => tarBytes(d.mnt));
      rss.push(mib(d.peakRssKiB()));
      return r;
    });
    fuseMs.push(f.ms);
    treeBytes = f.out.bytes;
    await dropCaches();
    const p = await time(() => renderInProcess(ds.tree.fsm, cacheDefault));
    inprocMs.push(p.ms);
  }
  const fuseOverhead = median(fuseMs) / median(inprocMs);
  row('1 tar snapshot mount', 'fuse_overhead_ratio', fmt(fuseOverhead), `(tar ${fmt(median(fuseMs) / 1000)} s vs in-process ${fmt(median(inprocMs) / 1000)} s; ${fmt(treeBytes / 2 ** 20, 0)} MiB tar stream of a ${fmt(ds.tree.bytes / 2 ** 20, 0)} MiB .fsm; ${fmt(treeBytes / 2 ** 20 / (median(fuseMs) / 1000), 0)} MiB/s)`);
  row('1 mount', 'mount_s', fmt(median(mountMs) / 1000), `(cold page cache, ${fmt(ds.tree.bytes / 2 ** 30)} GiB .fsm indexed; peak RSS right after mount ${fmt(median(idleRss), 0)} MiB)`);
  const peakDefault = median(rss);
  row('6 peak RSS', 'peak_rss_mib (cache 256MiB)', fmt(peakDefault, 0), `(median of ${runs}; dataset ${fmt(ds.tree.bytes / 2 ** 30)} GiB)`);
  // Peak RSS of a tar of `fsm` at `cache`, median of `n` runs (one sample swings by 20-30 MiB).
  const peakOf = async (fsm: string, cache: string, n: number): Promise<number> => {
    const peaks: number[] = [];
    for (let i = 0; i < n; i++) {
      peaks.push(
        await withMount(['--snapshot', fsm, '--cache-size', cache], async (d) => {
          await tarBytes(d.mnt);
          return mib(d.peakRssKiB());
        }),
      );
    }
    return median(peaks);
  };
  // --quick: one run of each 64MiB figure (it must finish in under 3 minutes).
  const runs64 = o.quick ? 1 : runs;
  const full64 = await peakOf(ds.tree.fsm, '64MiB', runs64);
  row('6 peak RSS', 'peak_rss_mib (cache 64MiB)', fmt(full64, 0), `(median of ${runs64})`);
  row('6 peak RSS', 'peak_rss_mib (cache 1GiB)', fmt(await peakOf(ds.tree.fsm, '1GiB', 1), 0));
  {
    // Flat as the bytes grow: the half-size dataset against the full one, at the default cache
    // (which the full tree fills further) and at 64MiB (which both fill: what is left grows
    // with the files, the per-path state above all).
    const half = await peakOf(ds.treeHalf.fsm, '256MiB', runs);
    row('6 peak RSS', 'peak_rss_mib (half-size dataset, cache 256MiB)', fmt(half, 0), `(median of ${runs}; dataset ${fmt(ds.treeHalf.bytes / 2 ** 30)} GiB; the full-size one ${fmt(peakDefault - half, 0)} MiB more)`);
    const half64 = await peakOf(ds.treeHalf.fsm, '64MiB', runs64);
    row('6 peak RSS', 'peak_rss_mib (half-size dataset, cache 64MiB)', fmt(half64, 0), `(median of ${runs64}; the full-size one ${fmt(full64 - half64, 0)} MiB more)`);
  }
  // Flat as the files grow, not only the bytes: a copy of the big table (a file an item, the
  // daemon's per-path state at its largest) under a small cache.
  const manyFilesRuns = o.quick ? 1 : Math.min(runs, 3);
  const manyFiles = await peakOf(ds.ddb.fsm, '64MiB', manyFilesRuns);
  row('6 peak RSS', `peak_rss_mib (${ds.ddb.items}-item table, cache 64MiB)`, fmt(manyFiles, 0), `(median of ${manyFilesRuns}; tar of a file an item; the bound is 256 + 64)`);

  // 2: tar over a live mount vs raw RawScanAt paging of the same data, same dev cluster.
  const dc = await startDevCluster(ds.live.fsm);
  const liveMs: number[] = [];
  const rawMs: number[] = [];
  const oneByOneMs: number[] = [];
  const atOnceMs: number[] = [];
  const liveRss: number[] = [];
  const buildRss: number[] = [];
  const liveCpu: { mount: number; cluster: number; tar: number }[] = [];
  const rawCpu: { client: number; cluster: number }[] = [];
  const liveTimelines: Timeline[] = [];
  const rawTimelines: Timeline[] = [];
  let liveBytes = 0;
  let rawBytes = 0;
  const byAdapter: { top: string; mountMs: number; rawMs: number }[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const l = await withMount(['--cluster', dc.address], async (d) => {
        const mount0 = d.cpuSeconds();
        const cluster0 = cpuSeconds(dc.proc.pid);
        const timeline = sampleTimeline(d.proc.pid!, dc.proc.pid!);
        const t = await time(() => tarBytes(d.mnt));
        liveTimelines.push(timeline.stop());
        liveCpu.push({ mount: d.cpuSeconds() - mount0, cluster: cpuSeconds(dc.proc.pid) - cluster0, tar: t.out.cpu });
        liveRss.push(mib(d.peakRssKiB()));
        return { ms: t.ms, out: t.out.bytes };
      });
      liveMs.push(l.ms);
      liveBytes = l.out;
      // A stat of CHECKSUMS first thing (ls -l of the root): the build reads every file itself.
      await withMount(['--cluster', dc.address], async (d) => {
        await sh(`stat -c %s '${join(d.mnt, 'CHECKSUMS')}'`);
        buildRss.push(mib(d.peakRssKiB()));
      });
      const client0 = process.cpuUsage();
      const cluster0 = cpuSeconds(dc.proc.pid);
      const rawTimeline = sampleTimeline(process.pid, dc.proc.pid!);
      const r = await time(() => rawScan(dc.address, 1024));
      rawTimelines.push(rawTimeline.stop());
      const client = process.cpuUsage(client0);
      rawCpu.push({ client: (client.user + client.system) / 1e6, cluster: cpuSeconds(dc.proc.pid) - cluster0 });
      rawMs.push(r.ms);
      rawBytes = r.out.bytes;
      // Two copies at once (a walk of many small directories beside one of a big directory)
      // against the same two one after the other: a copy must not lose its read-ahead to another.
      const copies = (mnt: string, sep: string): string => COPIES.map((sub) => `tar -C '${mnt}' -cf - ${sub} | wc -c`).join(sep);
      oneByOneMs.push((await withMount(['--cluster', dc.address], (d) => sh(copies(d.mnt, '; ')))).ms);
      atOnceMs.push((await withMount(['--cluster', dc.address], (d) => sh(`${copies(d.mnt, ' & ')}; wait`))).ms);
    }
    // Where the live figure's time goes, once: each top-level directory copied on a fresh mount,
    // in the root's listing order (tar's), against raw paging of that adapter's keys alone.
    await withMount(['--cluster', dc.address], async (d) => {
      const tops = (await sh(`ls -f '${d.mnt}'`)).stdout.split('\n').filter((n) => n in ADAPTER_PREFIXES);
      for (const top of tops) byAdapter.push({ top, mountMs: (await sh(`tar -C '${d.mnt}' -cf - '${top}' | wc -c`)).ms, rawMs: 0 });
    });
    for (const a of byAdapter) a.rawMs = (await time(() => rawScan(dc.address, 1024, ADAPTER_PREFIXES[a.top]!))).ms;
  } finally {
    await dc.stop();
  }
  // Throughput of each over the same data set: (data bytes / time). Ratio of rates = raw time / mount time.
  const liveVsRaw = median(rawMs) / median(liveMs);
  row('6 peak RSS', 'peak_rss_mib (live mount, tar, cache 256MiB)', fmt(median(liveRss), 0), `(median of ${runs})`);
  row('6 peak RSS', 'peak_rss_mib (live mount, CHECKSUMS built by a stat, cache 256MiB)', fmt(median(buildRss), 0), `(median of ${runs}; the build reads every file itself)`);
  row('2 tar live mount', 'live_vs_raw_scan_ratio', fmt(liveVsRaw), `(mount tar ${fmt(median(liveMs) / 1000)} s for ${fmt(liveBytes / 2 ** 20, 0)} MiB; raw RawScanAt paging ${fmt(median(rawMs) / 1000)} s for ${fmt(rawBytes / 2 ** 20, 0)} MiB of keys+values)`);
  // Where the cores went: on a machine where the cluster shares the cores with the mount, the
  // live figure is bounded by the CPU both spend, not by either alone.
  const cores = availableParallelism();
  const liveCpuMed = { mount: median(liveCpu.map((c) => c.mount)), cluster: median(liveCpu.map((c) => c.cluster)), tar: median(liveCpu.map((c) => c.tar)) };
  const rawCpuMed = { client: median(rawCpu.map((c) => c.client)), cluster: median(rawCpu.map((c) => c.cluster)) };
  const liveCpuTotal = liveCpuMed.mount + liveCpuMed.cluster + liveCpuMed.tar;
  row('2 tar live mount', '  CPU of the live tar', `${fmt(liveCpuTotal, 1)} s`, `(medians: mount ${fmt(liveCpuMed.mount, 1)} s, cluster ${fmt(liveCpuMed.cluster, 1)} s, tar and its reads ${fmt(liveCpuMed.tar, 1)} s; ${cores} cores busy ${fmt((100 * liveCpuTotal) / cores / (median(liveMs) / 1000), 0)} % of the tar's wall time; the samples: ${liveMs.map((m) => fmt(m / 1000, 1)).join(' / ')} s)`);
  {
    // Bound by what, when: the daemon's JS thread, the cluster, or neither (the cores idle while
    // each waits on the other, or on the disk: the dev cluster reads the .fsm file).
    const bound = (what: string, xs: Timeline[], js: string): void => {
      const med = (f: (t: Timeline) => number): string => fmt(medianOf(xs, f), 1);
      row(
        '2 tar live mount',
        `  cores idle during the ${what}`,
        `${med((t) => t.idleS)} core-s`,
        `(medians: of ${med((t) => t.wallS * cores)} core-s; ${med((t) => t.iowaitS)} of them waiting on the disk; ${js} >= 85 % busy for ${med((t) => t.mainBoundS)} s of ${med((t) => t.wallS)} s (its CPU ${med((t) => t.mainS)} s), the cluster's main thread for ${med((t) => t.clusterBoundS)} s)`,
      );
    };
    bound('live tar', liveTimelines, "the daemon's JS thread");
    bound('raw paging', rawTimelines, "the client's JS thread");
  }
  row('2 tar live mount', '  CPU of the raw paging', `${fmt(rawCpuMed.client + rawCpuMed.cluster, 1)} s`, `(medians: client ${fmt(rawCpuMed.client, 1)} s, cluster ${fmt(rawCpuMed.cluster, 1)} s; the samples: ${rawMs.map((m) => fmt(m / 1000, 1)).join(' / ')} s)`);
  for (const a of byAdapter) row('2 tar live mount', `  ${a.top}/ alone`, fmt(a.rawMs / a.mountMs), `(first copy on a fresh mount ${fmt(a.mountMs / 1000)} s; raw paging of its keys ${fmt(a.rawMs / 1000)} s; one run)`);
  const atOnce = median(oneByOneMs) / median(atOnceMs);
  row('2 two copies at once', 'concurrent_copies_ratio', fmt(atOnce), `(tar of ${COPIES.join('/ and ')}/ over a live mount: one after the other ${fmt(median(oneByOneMs) / 1000)} s, at once ${fmt(median(atOnceMs) / 1000)} s; below 1 means they got in each other's way)`);

  // 3: cold cat of one DynamoDB item in a big table, new mount each time.
  const catMs: number[] = [];
  const samples = o.quick ? 9 : 41;
  for (let i = 0; i < samples; i++) {
    const item = ds.ddb.itemPath((i * 7919) % ds.ddb.items);
    await withMount(['--snapshot', ds.ddb.fsm], async (d) => {
      // Timed inside the shell: the cat process (exec, open, read) and nothing of bash's or our own start-up.
      const r = await sh(`s=$(date +%s%N); cat '${join(d.mnt, item)}' > /dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))`);
      catMs.push(Number(r.stdout.trim()) / 1000);
    });
  }
  row('3 cold cat', 'cold_cat_ms_p50', fmt(median(catMs), 1), `(${samples} fresh mounts of a ${ds.ddb.items}-item table)`);
  row('3 cold cat', 'cold_cat_ms_p99', fmt(percentile(catMs, 99), 1));

  // 4: ls | wc -l of a 100k-entry directory (fresh mount each run).
  const lsS: number[] = [];
  let lsCount = 0;
  for (let i = 0; i < runs; i++) {
    await withMount(['--snapshot', ds.tree.fsm], async (d) => {
      const r = await sh(`ls '${join(d.mnt, ds.tree.bigDir)}' | wc -l`);
      lsS.push(r.ms / 1000);
      lsCount = Number(r.stdout.trim());
    });
  }
  row('4 ls', 'ls_100k_s', fmt(median(lsS)), `(${lsCount} entries)`);

  // 5: sequential read of the big S3 object with fio (cold mount each run).
  const mbs: number[] = [];
  for (let i = 0; i < runs; i++) {
    await dropCaches();
    await withMount(['--snapshot', ds.tree.fsm], async (d) => {
      const file = join(d.mnt, ds.tree.bigObject);
      const size = statSync(file).size;
      const r = await sh(`fio --name=seq --filename='${file}' --rw=read --bs=1M --ioengine=psync --readonly --size=${size} --output-format=json`);
      const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: { read: { bw_bytes: number } }[] };
      mbs.push(j.jobs[0]!.read.bw_bytes / 1e6);
    });
  }
  row('5 big object', 'big_object_mb_s', fmt(median(mbs), 0), `(fio seq read 1M blocks of a ${fmt(ds.tree.bigObjectBytes / 2 ** 20, 0)} MiB object)`);

  // 7: verify a fresh snapshot mount against its own CHECKSUMS (files read by path, no listing).
  const sumsMs: number[] = [];
  const verifyMs: number[] = [];
  let verified = 0;
  // One run under --quick (as for the big table's peak RSS): a run is ~16 s of its three minutes.
  for (let i = 0; i < (o.quick ? 1 : Math.min(runs, 3)); i++) {
    await withMount(['--snapshot', ds.live.fsm], async (d) => {
      sumsMs.push((await sh('cat CHECKSUMS > /dev/null', { cwd: d.mnt })).ms);
      // sh rejects when a line fails: wrong bytes fail the bench, not just slow it.
      verifyMs.push((await sh('sha256sum --quiet -c CHECKSUMS', { cwd: d.mnt })).ms);
      verified = Number((await sh('wc -l < CHECKSUMS', { cwd: d.mnt })).stdout.trim());
    });
  }
  row('7 verify', 'verify_s', fmt(median(verifyMs) / 1000), `(sha256sum -c of ${verified} files by path on a fresh snapshot mount of the live dataset, after cat CHECKSUMS: ${fmt(median(sumsMs) / 1000)} s; median of ${verifyMs.length})`);

  const result = {
    scale,
    runs,
    fuse_overhead_ratio: Number(fmt(fuseOverhead)),
    live_vs_raw_scan_ratio: Number(fmt(liveVsRaw)),
    cold_cat_ms_p50: Number(fmt(median(catMs), 1)),
    cold_cat_ms_p99: Number(fmt(percentile(catMs, 99), 1)),
    ls_100k_s: Number(fmt(median(lsS))),
    big_object_mb_s: Number(fmt(median(mbs), 0)),
    peak_rss_mib: Number(fmt(peakDefault, 0)),
    peak_rss_many_files_mib: Number(fmt(manyFiles, 0)),
    peak_rss_live_mib: Number(fmt(Math.max(median(liveRss), median(buildRss)), 0)),
    mount_s: Number(fmt(median(mountMs) / 1000)),
    concurrent_copies_ratio: Number(fmt(atOnce)),
    live_cpu_s: { mount: Number(fmt(liveCpuMed.mount, 1)), cluster: Number(fmt(liveCpuMed.cluster, 1)), tar: Number(fmt(liveCpuMed.tar, 1)) },
    raw_bound_s: { client_js_thread: medianOf(rawTimelines, (t) => t.mainBoundS), cluster: medianOf(rawTimelines, (t) => t.clusterBoundS), idle_core_s: medianOf(rawTimelines, (t) => t.idleS), iowait_core_s: medianOf(rawTimelines, (t) => t.iowaitS) },
    live_bound_s: { js_thread: medianOf(liveTimelines, (t) => t.mainBoundS), cluster: medianOf(liveTimelines, (t) => t.clusterBoundS), idle_core_s: medianOf(liveTimelines, (t) => t.idleS), iowait_core_s: medianOf(liveTimelines, (t) => t.iowaitS) },
    raw_cpu_s: { client: Number(fmt(rawCpuMed.client, 1)), cluster: Number(fmt(rawCpuMed.cluster, 1)) },
    live_vs_raw_by_adapter: Object.fromEntries(byAdapter.map((a) => [a.top, Number(fmt(a.rawMs / a.mountMs))])),
    verify_s: Number(fmt(median(verifyMs) / 1000)),
    elapsed_s: Math.round((Date.now() - t0) / 1000),
  };
  const w = [22, 46, 10];
  process.stdout.write(`\n${'run'.padEnd(w[0]!)}${'figure'.padEnd(w[1]!)}${'value'.padStart(w[2]!)}  detail\n`);
  for (const r of rows) process.stdout.write(`${r.run.padEnd(w[0]!)}${r.figure.padEnd(w[1]!)}${r.value.padStart(w[2]!)}  ${r.detail}\n`);
  process.stdout.write(JSON.stringify(result) + '\n');
  appendFileSync(join(dir, 'history.jsonl'), JSON.stringify({ at: new Date().toISOString(), ...result }) + '\n');
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
