/**
 * Prometheus metrics (prom-client) and the instrumented page source. Metrics are
 * always counted (cheap); --metrics-listen serves them as Prometheus text.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { KV, PageSource, ScanPageOptions } from './source/types.js';
import type { Tree } from './tree/tree.js';

export class Metrics {
  readonly registry = new Registry();
  readonly pagesFetched = new Counter({ name: 'ekv_mount_pages_fetched_total', help: 'Scan pages fetched from the source', registers: [this.registry] });
  readonly keysFetched = new Counter({ name: 'ekv_mount_keys_fetched_total', help: 'Keys returned by scan pages', registers: [this.registry] });
  readonly pointGets = new Counter({ name: 'ekv_mount_point_gets_total', help: 'Point reads from the source', registers: [this.registry] });
  readonly sourceBytes = new Counter({ name: 'ekv_mount_source_bytes_total', help: 'Value bytes read from the source', registers: [this.registry] });
  readonly sourceInFlight = new Gauge({ name: 'ekv_mount_source_inflight', help: 'Source requests in flight', registers: [this.registry] });
  readonly fuseInFlight = new Gauge({ name: 'ekv_mount_fuse_inflight', help: 'Kernel operations in flight', registers: [this.registry] });
  readonly pinRenewals = new Counter({ name: 'ekv_mount_pin_renewals_total', help: 'Successful backup pin renewals', registers: [this.registry] });
  readonly pinRenewalFailures = new Counter({ name: 'ekv_mount_pin_renewal_failures_total', help: 'Failed backup pin renewal attempts', registers: [this.registry] });
  private server: Server | null = null;

  constructor(tree?: () => Tree | null) {
    collectDefaultMetrics({ register: this.registry, prefix: 'ekv_mount_' });
    const t = tree ?? (() => null);
    // Gauges read from the tree when scraped (0 before it exists).
    const fromTree = (name: string, help: string, value: (tree: Tree) => number): void => {
      new Gauge({
        name,
        help,
        registers: [this.registry],
        collect() {
          const tree = t();
          this.set(tree ? value(tree) : 0);
        },
      });
    };
    fromTree('ekv_mount_bytes_served_total', 'Bytes returned to readers', (tr) => tr.stats.bytesServed);
    fromTree('ekv_mount_files_opened_total', 'Files opened by readers', (tr) => tr.stats.filesOpened);
    fromTree('ekv_mount_cache_hit_ratio', 'Rendered-content cache hit ratio', (tr) => {
      const s = tr.content.stats;
      return s.hits + s.misses > 0 ? s.hits / (s.hits + s.misses) : 0;
    });
    fromTree('ekv_mount_cache_bytes', 'Bytes of rendered content held in memory', (tr) => tr.content.cachedBytes);
    fromTree('ekv_mount_paths', 'Paths the mount has given an id (inode) since it started: files and directories listed or looked up', (tr) => tr.paths.size);
    fromTree(
      'ekv_mount_path_state_bytes',
      'Memory held for those paths for the life of the mount (path table, content index): it grows with the files seen, not with --cache-size',
      (tr) => tr.pathStateBytes(),
    );
    const reported = new Map<string, number>();
    new Counter({
      name: 'ekv_mount_read_errors_total',
      help: 'Reads answered EIO, by cause (record, pin_lost, pin_unconfirmed, unavailable, compacted, ...)',
      labelNames: ['cause'],
      registers: [this.registry],
      collect() {
        for (const [cause, n] of t()?.stats.readErrors ?? []) {
          const before = reported.get(cause) ?? 0;
          if (n > before) this.inc({ cause }, n - before);
          reported.set(cause, n);
        }
      },
    });
  }

  /**
   * Wrap a source so every page and get is counted. The wrapper must forward every member
   * of PageSource, optional ones included (it once dropped expectValues, and no S3 chunk
   * hint reached a mount's read-ahead): `satisfies` makes a member added to PageSource and
   * missing here a compile error.
   */
  instrument(src: PageSource): PageSource {
    const m = this;
    const wrapped = {
      label: src.label,
      async scanPage(start: Buffer, end: Buffer | null, ts: bigint, opts: ScanPageOptions): Promise<KV[]> {
        m.sourceInFlight.inc();
        try {
          const page = await src.scanPage(start, end, ts, opts);
          m.pagesFetched.inc();
          m.keysFetched.inc(page.length);
          let bytes = 0;
          for (const kv of page) bytes += kv.value.length;
          m.sourceBytes.inc(bytes);
          return page;
        } finally {
          m.sourceInFlight.dec();
        }
      },
      async get(key: Buffer, ts: bigint): Promise<Buffer | null> {
        m.sourceInFlight.inc();
        try {
          const v = await src.get(key, ts);
          m.pointGets.inc();
          if (v) m.sourceBytes.inc(v.length);
          return v;
        } finally {
          m.sourceInFlight.dec();
        }
      },
      expectValues: (start: Buffer, end: Buffer | null, bytesPerKey: number): void => src.expectValues?.(start, end, bytesPerKey),
      sent: (): Promise<void> => src.sent?.() ?? Promise.resolve(),
      close: () => src.close(),
    } satisfies Required<PageSource>;
    return wrapped;
  }

  async listen(hostPort: string): Promise<string> {
    const cut = hostPort.lastIndexOf(':');
    const host = cut > 0 ? hostPort.slice(0, cut).replace(/^\[|\]$/g, '') : '127.0.0.1';
    const port = parseInt(hostPort.slice(cut + 1), 10);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--metrics-listen: bad address ${JSON.stringify(hostPort)}`);
    this.server = createServer((req, res) => {
      if (req.url !== '/metrics') {
        res.writeHead(404).end('see /metrics\n');
        return;
      }
      this.registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body),
        (e: Error) => res.writeHead(500).end(e.message),
      );
    });
    await new Promise<void>((resolve, reject) => {
      this.server!.once('error', reject);
      this.server!.listen(port, host, () => resolve());
    });
    const a = this.server.address();
    return typeof a === 'object' && a ? `${a.address}:${a.port}` : hostPort;
  }

  async close(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
