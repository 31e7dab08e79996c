/**
 * One call for the live mount: connect, begin (or join / fall back), and wrap
 * the cluster source in the pin gate. The runner adds the manifest and the tree.
 */
import type { Logger } from '../log.js';
import { ClusterClient, ClusterSource, readTlsFiles } from '../source/cluster.js';
import { PinnedSource } from './pinned.js';
import { SourceError } from '../source/types.js';
import { BackupSession, type BeginResult } from './session.js';

export interface OpenClusterOptions {
  endpoints: string[];
  token?: string;
  /** PEM file paths as given on the command line. */
  tls?: { ca?: string; cert?: string; key?: string };
  ttlMs: number;
  readTs?: bigint;
  pinToken?: string;
  log: Logger;
  concurrency?: number;
  deadlineMs?: number;
  /** prom-client counters (Metrics.pinRenewals / pinRenewalFailures) or anything with inc(). */
  counters?: { pinRenewals?: { inc(): void }; pinRenewalFailures?: { inc(): void } };
}

export interface OpenedCluster extends BeginResult {
  source: PinnedSource;
  session: BackupSession;
  client: ClusterClient;
  /** Pass to the tree: throws once the pin is lost. */
  guard: () => void;
  /** End the session (EndBackup when we own the pin), then close the connections. */
  close: () => Promise<void>;
}

export async function openClusterSession(o: OpenClusterOptions): Promise<OpenedCluster> {
  const client = new ClusterClient({
    endpoints: o.endpoints,
    token: o.token,
    tls: o.tls ? await readTlsFiles(o.tls) : undefined,
    deadlineMs: o.deadlineMs,
    log: o.log,
  });
  const session = new BackupSession({ client, log: o.log });
  if (o.counters?.pinRenewals) session.on('renewed', () => o.counters!.pinRenewals!.inc());
  if (o.counters?.pinRenewalFailures) session.on('renewal_failed', () => o.counters!.pinRenewalFailures!.inc());
  let begun: BeginResult;
  try {
    begun = await session.begin({ ttlMs: o.ttlMs, readTs: o.readTs, pinToken: o.pinToken });
  } catch (e) {
    client.close();
    throw explainAuth(e, o.token);
  }
  const cluster = new ClusterSource({ endpoints: [], client, concurrency: o.concurrency });
  const source = new PinnedSource(cluster, session);
  let closing: Promise<void> | null = null;
  return {
    ...begun,
    source,
    session,
    client,
    guard: source.guard,
    close: () =>
      (closing ??= (async () => {
        await session.end();
        await source.close();
        client.close();
      })()),
  };
}

/** UNAUTHENTICATED / PERMISSION_DENIED at mount: say which knob to turn, on the same line. */
function explainAuth(e: unknown, token: string | undefined): unknown {
  if (!(e instanceof SourceError) || (e.code !== 'unauthenticated' && e.code !== 'permission_denied')) return e;
  const hint = token
    ? 'the cluster refused the admin token from --admin-token / EKV_ADMIN_TOKEN (check it)'
    : 'no admin token was given: pass --admin-token <token> or set EKV_ADMIN_TOKEN';
  return new SourceError(e.code, `${e.message}; ${hint}`);
}
