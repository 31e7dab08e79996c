/**
 * BackupSession: the read timestamp of a live mount and, when the cluster
 * supports it, the backup pin that keeps the compactor from retiring versions
 * at that timestamp (elastickv's proposed Admin.BeginBackup / RenewBackup /
 * EndBackup, docs/design/2026_04_29_proposed_logical_backup.md).
 *
 * Modes:
 *  - 'pinned'   BeginBackup succeeded: we own the pin, renew it every ttl/3, end it on close.
 *  - 'joined'   --pin-token (+ --read-ts): another host owns the pin; we renew it, never end it.
 *  - 'unpinned' BeginBackup is UNIMPLEMENTED (fallback to Distribution.GetTimestamp), or
 *               --read-ts was given without a pin: nothing protects the read ts; loud warning.
 *
 * Renewal: every renewal attempt that fails is retried `retries` (3) times
 * `retryDelayMs` (500 ms) apart, whatever the failure (issue 4: "each failure
 * retried 3 times 500 ms apart").
 *  - Transport failures (UNAVAILABLE, deadline, a dropped connection): reads go
 *    on during the retries (the pin's deadline has not passed, so the cluster
 *    still holds it). When the last retry fails the session is SUSPENDED:
 *    check() throws SourceError('pin_unconfirmed') (every read gets EIO) and one
 *    critical log line says why. Renewals go on every retryDelayMs; one that
 *    succeeds before the pin's deadline proves the pin held throughout (pins are
 *    replicated and survive restarts) and reads resume.
 *  - Refusals (the DEFINITIVE codes: NOT_FOUND "pin gone", INVALID_ARGUMENT,
 *    UNAUTHENTICATED, ...): the cluster may be telling the truth, so reads are
 *    refused (SUSPENDED, EIO) from the FIRST refusal on - no byte is served from
 *    a pin the server says is gone. The refusal is still retried 3 times 500 ms
 *    apart: with several --cluster endpoints a renewal can land on a node that
 *    has not applied the pin yet, and 1.5 s is cheap next to losing a multi-hour
 *    copy. A retry that succeeds before the deadline proves the pin exists (a
 *    pin token can never be renewed again once ended or expired), so reads
 *    resume. When every retry is refused the session is LOST.
 *  - LOST (refused 1 + retries times in a row, the deadline passed unconfirmed,
 *    or a read reported read_ts compacted): check() throws
 *    SourceError('pin_lost') for good and one critical log line is written.
 *
 * Tokens (admin bearer token, pin token) are never logged; a pin is identified
 * in logs by a short hash (`pin_ref`).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import type { ClusterClient } from '../source/cluster.js';
import { SourceError } from '../source/types.js';

export type PinMode = 'pinned' | 'unpinned' | 'joined';
export type SessionState = 'idle' | 'active' | 'suspended' | 'lost' | 'ended';

/**
 * Renewal answers that say the pin is gone (or can never be renewed by us). Reads
 * are refused from the first such answer on; see the header for why they are
 * still retried.
 */
const DEFINITIVE = new Set(['not_found', 'failed_precondition', 'compacted', 'invalid_argument', 'unauthenticated', 'permission_denied', 'unimplemented']);

/** An unpinned mount because the cluster predates the backup RPCs. */
export const NO_BACKUP_RPC_WARNING =
  'the cluster has no Admin.BeginBackup RPC (BeginBackup answered UNIMPLEMENTED): this mount reads at a fresh read_ts WITHOUT a backup pin; the compactor may retire versions at that read_ts mid-copy (reads then fail with EIO, never wrong bytes)';

/**
 * An unpinned mount because the user chose the read_ts. BeginBackupRequest has
 * only ttl_ms (docs/design/2026_04_29_proposed_logical_backup.md): the cluster
 * picks the pinned read_ts itself, so no RPC can pin a timestamp the user names.
 */
export function readTsWithoutPinWarning(readTs: bigint): string {
  return (
    `--read-ts ${readTs} without --pin-token is unpinned time travel: BeginBackup cannot pin a read_ts you choose (the cluster picks it), ` +
    `so this mount reads at ${readTs} WITHOUT a backup pin and the compactor may retire versions at that read_ts mid-copy (reads then fail with EIO, never wrong bytes); ` +
    'for a pinned copy omit --read-ts, or join a running pin with --pin-token'
  );
}

export interface BeginResult {
  readTs: bigint;
  /** The pin token (null when unpinned). Opaque bytes; see pinTokenToText(). */
  pinToken: Buffer | null;
  mode: PinMode;
  /** TTL the server granted (ms); 0 when unpinned. */
  ttlMs: number;
  /**
   * Unpinned only: why nothing protects read_ts. begin() logs it (once); the
   * caller shows it to the operator (stderr, MANIFEST) without logging it again.
   */
  warning?: string;
}

export interface BeginOptions {
  /** Requested pin TTL (ms). The server bounds it (60 s - 24 h in elastickv). */
  ttlMs: number;
  /** --read-ts: read at this ts. Without pinToken the session is unpinned. */
  readTs?: bigint;
  /** --pin-token: join a pin another host began (requires readTs). Text (hex) or bytes. */
  pinToken?: Buffer | string;
}

export interface BackupSessionOptions {
  client: ClusterClient;
  log: Logger;
  /** Retries after a failed renewal attempt. Default 3. */
  retries?: number;
  /** Delay between renewal retries (ms). Default 500. */
  retryDelayMs?: number;
  /** Deadline of each admin RPC (ms). Default min(10 s, ttl/6) for renewals, 30 s otherwise. */
  rpcDeadlineMs?: number;
}

export interface SessionCounters {
  renewals: number;
  renewalFailures: number;
}

/** Events: 'renewed' ({ttlMs}), 'renewal_failed' ({attempt, error}), 'suspended' ({reason}), 'resumed' (), 'lost' ({reason}), 'ended' (). */
export class BackupSession extends EventEmitter {
  private readonly client: ClusterClient;
  private readonly log: Logger;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly rpcDeadlineMs?: number;

  state: SessionState = 'idle';
  mode: PinMode | null = null;
  readTs: bigint | null = null;
  private token: Buffer | null = null;
  private ttlMs = 0;
  /** Local estimate of the server-side deadline (epoch ms): last renewal send time + ttl. */
  private deadline = 0;
  private timer: NodeJS.Timeout | null = null;
  private renewing: Promise<void> | null = null;
  private ending: Promise<void> | null = null;
  lostReason: string | null = null;
  /** Set when unpinned: see BeginResult.warning. */
  warning: string | null = null;
  readonly counters: SessionCounters = { renewals: 0, renewalFailures: 0 };

  constructor(opts: BackupSessionOptions) {
    super();
    this.client = opts.client;
    this.log = opts.log;
    this.retries = Math.max(0, opts.retries ?? 3);
    this.retryDelayMs = Math.max(0, opts.retryDelayMs ?? 500);
    this.rpcDeadlineMs = opts.rpcDeadlineMs;
  }

  /** Short, non-reversible pin reference for logs. */
  get pinRef(): string | null {
    return this.token ? pinRef(this.token) : null;
  }

  /** The pin token as text (hex), for handing to another host's --pin-token. Null when unpinned. */
  get pinTokenText(): string | null {
    return this.token ? pinTokenToText(this.token) : null;
  }

  async begin(opts: BeginOptions): Promise<BeginResult> {
    if (this.state !== 'idle') throw new Error('backup session already begun');
    const ttlMs = Math.floor(opts.ttlMs);
    if (opts.pinToken !== undefined) {
      if (opts.readTs === undefined) {
        throw new SourceError(
          'config',
          '--pin-token needs --read-ts: the read_ts of the pin being joined (the ekv-mount host that began the pin printed both on its stderr and wrote both to its --pin-token-file; --pin-token @<that file> reads both from it)',
        );
      }
      const token = typeof opts.pinToken === 'string' ? pinTokenFromText(opts.pinToken) : Buffer.from(opts.pinToken);
      this.token = token;
      this.readTs = opts.readTs;
      this.mode = 'joined';
      // Validate and take a share in the pin's lifetime right away.
      const sent = Date.now();
      let granted: number;
      try {
        granted = (await this.client.renewBackup(token, ttlMs, this.rpcDeadline(ttlMs))).ttlMsEffective || ttlMs;
      } catch (e) {
        this.token = null;
        throw new SourceError((e as SourceError).code ?? 'pin_join', `cannot join backup pin ${pinRef(token)}: ${(e as Error).message}`);
      }
      this.activate(granted, sent);
      this.log.info({ mode: 'joined', read_ts: this.readTs.toString(), pin_ref: this.pinRef, ttl_ms: granted }, 'backup pin joined');
      return this.result();
    }
    if (opts.readTs !== undefined) {
      this.readTs = opts.readTs;
      this.mode = 'unpinned';
      this.state = 'active';
      this.warning = readTsWithoutPinWarning(this.readTs);
      this.log.warn({ mode: 'unpinned', read_ts: this.readTs.toString() }, this.warning);
      return this.result();
    }
    const sent = Date.now();
    try {
      const r = await this.client.beginBackup(ttlMs, this.rpcDeadlineMs);
      this.token = r.pinToken;
      this.readTs = r.readTs;
      this.mode = 'pinned';
      this.activate(r.ttlMsEffective || ttlMs, sent);
      this.log.info({ mode: 'pinned', read_ts: this.readTs.toString(), pin_ref: this.pinRef, ttl_ms: this.ttlMs }, 'backup pin begun');
      return this.result();
    } catch (e) {
      if (!(e instanceof SourceError) || e.code !== 'unimplemented') throw e;
    }
    // The cluster predates the backup RPCs: fall back to a fresh timestamp, unprotected.
    this.readTs = await this.client.getTimestamp();
    this.mode = 'unpinned';
    this.state = 'active';
    this.warning = NO_BACKUP_RPC_WARNING;
    this.log.warn({ mode: 'unpinned', read_ts: this.readTs.toString() }, this.warning);
    return this.result();
  }

  private result(): BeginResult {
    const r: BeginResult = { readTs: this.readTs!, pinToken: this.token, mode: this.mode!, ttlMs: this.mode === 'unpinned' ? 0 : this.ttlMs };
    if (this.warning) r.warning = this.warning;
    return r;
  }

  private rpcDeadline(ttlMs: number): number {
    return this.rpcDeadlineMs ?? Math.max(1000, Math.min(10_000, Math.floor(ttlMs / 6)));
  }

  private activate(ttlMs: number, sentAt: number): void {
    this.ttlMs = ttlMs;
    this.deadline = sentAt + ttlMs;
    this.state = 'active';
    this.schedule();
  }

  private schedule(): void {
    if (this.state !== 'active' || !this.token) return;
    const every = Math.max(10, Math.floor(this.ttlMs / 3));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.renewing = this.renewWithRetry().finally(() => {
        this.renewing = null;
        this.schedule();
      });
    }, every);
    this.timer.unref();
  }

  /** One renewal attempt; the error's code and message on failure. */
  private async renewOnce(token: Buffer): Promise<{ ok: true } | { ok: false; code: string; msg: string }> {
    const sent = Date.now();
    try {
      const r = await this.client.renewBackup(token, this.ttlMs, this.rpcDeadline(this.ttlMs));
      const granted = r.ttlMsEffective || this.ttlMs;
      this.deadline = sent + granted;
      this.counters.renewals++;
      this.emit('renewed', { ttlMs: granted });
      this.log.debug({ pin_ref: this.pinRef, ttl_ms: granted, renewals: this.counters.renewals }, 'backup pin renewed');
      return { ok: true };
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      this.counters.renewalFailures++;
      return { ok: false, code: e instanceof SourceError ? e.code : 'rpc_error', msg };
    }
  }

  /**
   * One renewal round: first attempt plus `retries` retries, `retryDelayMs` apart,
   * for every kind of failure. A refusal (DEFINITIVE code) refuses reads at once;
   * see the header. Ends active (a renewal succeeded), suspended or lost.
   */
  private async renewWithRetry(): Promise<void> {
    const token = this.token;
    if (!token) return;
    let lastErr = '';
    let lastCode = '';
    let refusedInARow = 0;
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      if (!this.renewable()) return;
      if (Date.now() >= this.deadline) {
        this.markLost(`pin deadline passed before a renewal succeeded${lastErr ? ` (last error: ${lastErr})` : ''}`);
        return;
      }
      const r = await this.renewOnce(token);
      if (!this.renewable()) return;
      if (r.ok) {
        if (this.state === 'suspended') this.resume();
        return;
      }
      lastErr = r.msg;
      lastCode = r.code;
      this.emit('renewal_failed', { attempt: attempt + 1, error: lastErr });
      this.log.warn({ pin_ref: this.pinRef, attempt: attempt + 1, of: this.retries + 1, code: lastCode, err: lastErr }, 'backup pin renewal failed');
      if (DEFINITIVE.has(lastCode)) {
        refusedInARow++;
        this.refuseReads(lastErr);
      } else {
        refusedInARow = 0;
      }
      if (attempt < this.retries) await sleepUnref(this.retryDelayMs);
    }
    if (refusedInARow > this.retries) {
      this.markLost(`the cluster refused the renewal ${refusedInARow} times (last error: ${lastErr})`);
      return;
    }
    await this.suspendUntilConfirmed(token, `renewal failed ${this.retries + 1} times (last error: ${lastErr})`, refusedInARow);
  }

  /** Still ours to renew (not ended, not lost). */
  private renewable(): boolean {
    return this.state === 'active' || this.state === 'suspended';
  }

  /** A refusal: no read is served until a renewal succeeds (or the pin is declared lost). */
  private refuseReads(err: string): void {
    if (this.state !== 'active') return;
    this.state = 'suspended';
    this.lostReason = `the cluster refused the renewal: ${err}`;
    this.log.warn(
      { pin_ref: this.pinRef, read_ts: this.readTs?.toString(), err, retries: this.retries, retry_delay_ms: this.retryDelayMs },
      'backup pin renewal refused: every read fails with EIO while the renewal is retried',
    );
    this.emit('suspended', { reason: this.lostReason });
  }

  private resume(): void {
    this.state = 'active';
    this.lostReason = null;
    this.log.warn({ pin_ref: this.pinRef, read_ts: this.readTs?.toString() }, 'backup pin confirmed again: reads resume');
    this.emit('resumed');
  }

  /**
   * Reads fail (EIO) while the pin cannot be confirmed; keep renewing every
   * retryDelayMs until one succeeds (resume), the deadline passes, or the
   * cluster refuses 1 + retries times in a row (lost).
   */
  private async suspendUntilConfirmed(token: Buffer, why: string, refusedInARow: number): Promise<void> {
    if (!this.renewable()) return;
    const wasSuspended = this.state === 'suspended';
    this.state = 'suspended';
    this.lostReason = why;
    this.log.error(
      { severity: 'critical', pin_ref: this.pinRef, read_ts: this.readTs?.toString(), reason: why, deadline_in_ms: Math.max(0, this.deadline - Date.now()) },
      'backup pin cannot be confirmed: every read fails with EIO until a renewal succeeds before the pin deadline',
    );
    if (!wasSuspended) this.emit('suspended', { reason: why });
    for (;;) {
      await sleepUnref(this.retryDelayMs);
      if (this.state !== 'suspended') return;
      if (Date.now() >= this.deadline) {
        this.markLost(`pin deadline passed while the cluster was unreachable (${why})`);
        return;
      }
      const r = await this.renewOnce(token);
      if (this.state !== 'suspended') return;
      if (r.ok) {
        this.resume();
        return;
      }
      if (!DEFINITIVE.has(r.code)) {
        refusedInARow = 0;
        continue;
      }
      if (++refusedInARow > this.retries) {
        this.markLost(`the cluster refused the renewal ${refusedInARow} times (last error: ${r.msg})`);
        return;
      }
    }
  }

  /**
   * The pin no longer protects readTs. Idempotent; one critical log line.
   * Also called by PinnedSource when a read at the pinned ts reports compaction.
   */
  markLost(reason: string): void {
    if ((this.state !== 'active' && this.state !== 'suspended') || this.mode === 'unpinned') return;
    this.state = 'lost';
    this.lostReason = reason;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.log.error(
      { severity: 'critical', pin_ref: this.pinRef, read_ts: this.readTs?.toString(), reason, renewals: this.counters.renewals, renewal_failures: this.counters.renewalFailures },
      'backup pin LOST: every further read fails with EIO (versions at read_ts may be compacted); remount to start a new pin',
    );
    this.emit('lost', { reason });
  }

  /** Throws SourceError('pin_lost') once the pin is lost (or its deadline passed). Cheap: call before every read. */
  check(): void {
    if (this.state === 'active' && this.mode !== 'unpinned' && this.token && Date.now() >= this.deadline) {
      this.markLost('pin deadline passed without a successful renewal');
    }
    if (this.state === 'suspended' && Date.now() >= this.deadline) {
      this.markLost(`pin deadline passed while the cluster was unreachable (${this.lostReason})`);
    }
    if (this.state === 'lost') throw new SourceError('pin_lost', `backup pin lost: ${this.lostReason}`);
    if (this.state === 'suspended') throw new SourceError('pin_unconfirmed', `backup pin cannot be confirmed: ${this.lostReason}`);
    if (this.state === 'ended') throw new SourceError('pin_lost', 'backup session ended');
  }

  get lost(): boolean {
    return this.state === 'lost';
  }

  get suspended(): boolean {
    return this.state === 'suspended';
  }

  /**
   * Stop renewing; EndBackup when we own the pin. Idempotent, never throws
   * (a failed EndBackup is logged; the server's sweeper reaps the pin at its deadline).
   */
  end(): Promise<void> {
    if (this.ending) return this.ending;
    this.ending = (async () => {
      const wasOwned = this.mode === 'pinned' && this.token !== null;
      const prev = this.state;
      this.state = 'ended';
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      await this.renewing?.catch(() => {});
      if (wasOwned && prev !== 'idle') {
        try {
          await this.client.endBackup(this.token!, this.rpcDeadlineMs ?? 10_000);
          this.log.info({ pin_ref: this.pinRef, renewals: this.counters.renewals }, 'backup pin ended');
        } catch (e) {
          this.log.warn({ pin_ref: this.pinRef, err: (e as Error).message }, 'EndBackup failed; the cluster will expire the pin at its deadline');
        }
      }
      this.emit('ended');
    })();
    return this.ending;
  }
}

export function pinRef(token: Buffer): string {
  return createHash('sha256').update(token).digest('hex').slice(0, 12);
}

/** Pin tokens travel between hosts as lowercase hex. */
export function pinTokenToText(token: Buffer): string {
  return token.toString('hex');
}

export function pinTokenFromText(text: string): Buffer {
  const t = text.trim();
  if (t.length === 0 || t.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(t)) throw new SourceError('config', '--pin-token: expected the hex pin token printed by the host that began the pin');
  return Buffer.from(t, 'hex');
}

function sleepUnref(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
