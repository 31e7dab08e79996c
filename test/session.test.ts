import { afterEach, describe, expect, it } from 'vitest';
import { ClusterClient, ClusterSource } from '../src/source/cluster.js';
import { BackupSession, PinnedSource, openClusterSession, pinTokenFromText } from '../src/session/index.js';
import { SourceError } from '../src/source/types.js';
import { startDevCluster, type DevCluster, type DevClusterOptions } from '../src/devcluster/server.js';
import { MemorySource } from '../src/source/memory.js';
import { captureLog, sampleSource, b, type LogCapture } from './helpers/devcluster.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('timed out waiting');
    await sleep(10);
  }
}

const open: { close(): Promise<void> | void }[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function setup(opts: Partial<DevClusterOptions> = {}, sessionOpts: { retryDelayMs?: number } = {}) {
  const server: LogCapture = captureLog();
  const client: LogCapture = captureLog();
  const dc = await startDevCluster({ source: sampleSource(), minTtlMs: 150, sweepIntervalMs: 20, log: server.log, ...opts });
  open.push(dc);
  const cc = new ClusterClient({ endpoints: [dc.address], token: opts.token });
  open.push(cc);
  const session = new BackupSession({ client: cc, log: client.log, retryDelayMs: sessionOpts.retryDelayMs ?? 20 });
  open.push({ close: () => session.end() });
  const src = new PinnedSource(new ClusterSource({ endpoints: [], client: cc }), session);
  return { dc, cc, session, src, server, client };
}

const codeOf = async (p: Promise<unknown>): Promise<string> => {
  const e = await p.then(
    () => null,
    (x: unknown) => x,
  );
  expect(e).toBeInstanceOf(SourceError);
  return (e as SourceError).code;
};

describe('BackupSession', () => {
  it('begin -> renew -> end; active_pins back to 0', async () => {
    const { dc, session, src, server, client } = await setup({ token: 'tok-XYZZY' });
    const r = await session.begin({ ttlMs: 600 });
    expect(r.mode).toBe('pinned');
    expect(r.ttlMs).toBe(600);
    expect(r.pinToken?.length).toBeGreaterThan(0);
    expect(dc.activePins).toBe(1);
    expect(server.byMsg('backup_pin_begin')[0]).toMatchObject({ active_pins: 1, read_ts: r.readTs.toString(), ttl_ms: 600 });
    let renewed = 0;
    session.on('renewed', () => renewed++);
    await until(() => session.counters.renewals >= 2);
    expect(renewed).toBe(session.counters.renewals);
    expect(session.counters.renewalFailures).toBe(0);
    expect(server.byMsg('backup_pin_renew').every((l) => l.active_pins === 1)).toBe(true);
    // The pin outlives its ttl because it is renewed.
    await sleep(700);
    expect(dc.activePins).toBe(1);
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    await session.end();
    await session.end(); // idempotent
    expect(dc.activePins).toBe(0);
    expect(server.byMsg('backup_pin_end')).toHaveLength(1);
    expect(server.byMsg('backup_pin_end')[0]!.active_pins).toBe(0);
    expect(dc.calls.get('EndBackup')).toBe(1);
    // No token ever reaches a log line, on either side.
    const tokenHex = r.pinToken!.toString('hex');
    const all = JSON.stringify([...server.lines, ...client.lines]);
    expect(all).not.toContain(tokenHex);
    expect(all).not.toContain(r.pinToken!.toString('base64'));
    expect(all).not.toContain('XYZZY');
    await expect(src.get(b('a'), r.readTs)).rejects.toThrow(/ended/);
  });

  it('ttl outside the bounds is InvalidArgument with a clear message', async () => {
    const { cc } = await setup({ minTtlMs: 60_000, maxTtlMs: 86_400_000 });
    for (const ttl of [59_999, 86_400_001]) {
      const e = (await cc.beginBackup(ttl).catch((x: unknown) => x)) as SourceError;
      expect(e.code).toBe('invalid_argument');
      expect(e.message).toContain(`ttl_ms ${ttl} out of range: must be between 60000 and 86400000 ms`);
    }
    const ok = await cc.beginBackup(60_000);
    expect(ok.ttlMsEffective).toBe(60_000);
    const e = (await cc.renewBackup(ok.pinToken, 10).catch((x: unknown) => x)) as SourceError;
    expect(e.code).toBe('invalid_argument');
    await cc.endBackup(ok.pinToken);
  });

  it('the 5th concurrent pin is ResourceExhausted', async () => {
    const { dc, cc } = await setup({ minTtlMs: 1000 });
    const pins = [];
    for (let i = 0; i < 4; i++) pins.push(await cc.beginBackup(5000));
    expect(dc.activePins).toBe(4);
    const e = (await cc.beginBackup(5000).catch((x: unknown) => x)) as SourceError;
    expect(e.code).toBe('resource_exhausted');
    expect(e.message).toMatch(/too many active backups/);
    await cc.endBackup(pins[0]!.pinToken);
    const fifth = await cc.beginBackup(5000);
    for (const p of [...pins.slice(1), fifth]) await cc.endBackup(p.pinToken);
    expect(dc.activePins).toBe(0);
  });

  it('the sweeper expires a pin that is not renewed', async () => {
    const { dc, cc, server } = await setup();
    const p = await cc.beginBackup(150);
    expect(dc.activePins).toBe(1);
    await until(() => dc.activePins === 0, 2000);
    const exp = server.byMsg('backup_pin_expired');
    expect(exp).toHaveLength(1);
    expect(exp[0]).toMatchObject({ active_pins: 0, level: 40 });
    expect((await cc.renewBackup(p.pinToken, 150).catch((x: unknown) => x)) as SourceError).toMatchObject({ code: 'not_found' });
    await cc.endBackup(p.pinToken); // idempotent on an expired pin
  });

  it('falls back to GetTimestamp, unpinned, when BeginBackup is UNIMPLEMENTED', async () => {
    const { dc, session, src, client } = await setup({ backupRpc: false });
    const before = dc.hlc.current();
    const r = await session.begin({ ttlMs: 300 });
    expect(r).toMatchObject({ mode: 'unpinned', pinToken: null, ttlMs: 0 });
    expect(r.readTs).toBeGreaterThan(before);
    expect(dc.calls.get('BeginBackup')).toBeUndefined(); // the Admin service is not served at all
    expect(dc.calls.get('GetTimestamp')).toBe(1);
    const warns = client.lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1); // logged once, by the session; the mount shows r.warning without logging it again
    expect(String(warns[0]!.msg)).toMatch(/no Admin\.BeginBackup RPC \(BeginBackup answered UNIMPLEMENTED\).*WITHOUT a backup pin/);
    expect(r.warning).toBe(warns[0]!.msg);
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    await session.end();
    expect(dc.calls.get('EndBackup')).toBeUndefined();
  });

  it('renewal failures past the retry budget suspend reads (EIO); the deadline passing unconfirmed loses the pin', async () => {
    const { dc, session, src, client } = await setup();
    const r = await session.begin({ ttlMs: 600 });
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    let lostEvents = 0;
    let suspendedEvents = 0;
    session.on('lost', () => lostEvents++);
    session.on('suspended', () => suspendedEvents++);
    dc.injectFailure('RenewBackup', Infinity); // UNAVAILABLE: a transport failure, not a refusal
    await until(() => session.suspended, 3000);
    expect(session.counters.renewalFailures).toBe(4); // first attempt + 3 retries
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_unconfirmed');
    expect(await codeOf(src.scanPage(Buffer.alloc(0), null, r.readTs, { limit: 5 }))).toBe('pin_unconfirmed');
    await until(() => session.lost, 3000);
    expect(suspendedEvents).toBe(1);
    expect(lostEvents).toBe(1);
    const crit = client.lines.filter((l) => l.severity === 'critical');
    expect(crit.map((l) => String(l.msg))).toEqual([
      expect.stringMatching(/cannot be confirmed/),
      expect.stringMatching(/backup pin LOST/),
    ]);
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_lost');
    expect(() => session.check()).toThrow(/deadline passed/);
    dc.clearFailures();
    await session.end(); // still releases the pin we own
    expect(dc.activePins).toBe(0);
  });

  it('a suspended pin that a later renewal confirms resumes reads with the same bytes', async () => {
    const { dc, session, src, client } = await setup({}, { retryDelayMs: 20 });
    const r = await session.begin({ ttlMs: 1500 });
    dc.injectFailure('RenewBackup', 6); // 4 fail the round, 2 more while suspended, then success
    await until(() => session.suspended, 3000);
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_unconfirmed');
    await until(() => !session.suspended, 3000);
    expect(session.lost).toBe(false);
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    expect(client.byMsg('backup pin confirmed again: reads resume')).toHaveLength(1);
    await session.end();
    expect(dc.activePins).toBe(0);
  });

  it('a refusal (NOT_FOUND) refuses reads from the first answer on; retried 3 times retryDelayMs apart, then the pin is lost', async () => {
    const { dc, session, src, server, client } = await setup({}, { retryDelayMs: 300 });
    const r = await session.begin({ ttlMs: 3000 });
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    dc.injectFailure('RenewBackup', Infinity, 5 /* NOT_FOUND */, 'backup pin not found');
    await until(() => session.counters.renewalFailures >= 1, 3000);
    // Between the first refusal and its first retry (300 ms later) no byte is served.
    expect(session.counters.renewalFailures).toBe(1);
    expect(session.lost).toBe(false);
    expect(session.suspended).toBe(true);
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_unconfirmed');
    await until(() => session.lost, 5000);
    expect(session.counters.renewalFailures).toBe(4); // first attempt + 3 retries
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_lost');
    const attempts = server.byMsg('rpc').filter((l) => l.method === 'RenewBackup');
    expect(attempts.map((l) => l.code)).toEqual(['NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND', 'NOT_FOUND']);
    const times = attempts.map((l) => Number(l.time));
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(290);
    const crit = client.lines.filter((l) => l.severity === 'critical');
    expect(crit).toHaveLength(1);
    expect(String(crit[0]!.msg)).toMatch(/backup pin LOST/);
    expect(String(crit[0]!.reason)).toMatch(/refused the renewal 4 times.*backup pin not found/);
    dc.clearFailures();
  });

  it('a refusal that a retry contradicts (the pin is there after all) resumes reads', async () => {
    const { dc, session, src, client } = await setup({}, { retryDelayMs: 100 });
    const r = await session.begin({ ttlMs: 3000 });
    dc.injectFailure('RenewBackup', 2, 5 /* NOT_FOUND */, 'backup pin not found (lagging replica)');
    await until(() => session.suspended, 3000);
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_unconfirmed');
    await until(() => session.counters.renewals >= 1, 3000);
    expect(session.counters.renewalFailures).toBe(2);
    expect(session.suspended).toBe(false);
    expect(session.lost).toBe(false);
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    expect(client.byMsg('backup pin confirmed again: reads resume')).toHaveLength(1);
    expect(client.lines.filter((l) => l.severity === 'critical')).toHaveLength(0);
    await session.end();
    expect(dc.activePins).toBe(0);
  });

  it('transport failures: retried 3 times at the default 500 ms spacing (counted in the dev cluster log), reads served meanwhile, then suspended', async () => {
    const { dc, cc, server } = await setup();
    const log = captureLog();
    const session = new BackupSession({ client: cc, log: log.log }); // defaults: 3 retries, 500 ms
    open.push({ close: () => session.end() });
    const src = new PinnedSource(new ClusterSource({ endpoints: [], client: cc }), session, false);
    const r = await session.begin({ ttlMs: 4500 }); // renewals every 1.5 s
    dc.injectFailure('RenewBackup', Infinity); // UNAVAILABLE
    let atSuspend = -1;
    session.on('suspended', () => (atSuspend = server.byMsg('rpc').filter((l) => l.method === 'RenewBackup').length));
    await until(() => session.counters.renewalFailures >= 1, 4000);
    // A transport failure is not a refusal: the pin's deadline is ahead, reads go on during the retries.
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    await until(() => session.suspended, 5000);
    expect(atSuspend).toBe(4);
    const attempts = server.byMsg('rpc').filter((l) => l.method === 'RenewBackup').slice(0, 4);
    expect(attempts.map((l) => l.code)).toEqual(['UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE', 'UNAVAILABLE']);
    const times = attempts.map((l) => Number(l.time));
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(495);
      expect(g).toBeLessThan(1000);
    }
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_unconfirmed');
    expect(log.lines.filter((l) => l.severity === 'critical').map((l) => String(l.msg))).toEqual([expect.stringMatching(/cannot be confirmed/)]);
    dc.clearFailures();
  });

  it('one failed renewal that recovers within the retries keeps the session', async () => {
    const { dc, session } = await setup();
    await session.begin({ ttlMs: 900 });
    dc.injectFailure('RenewBackup', 2);
    await until(() => session.counters.renewals >= 1, 3000);
    expect(session.counters.renewalFailures).toBe(2);
    expect(session.lost).toBe(false);
    expect(() => session.check()).not.toThrow();
  });

  it('writes after the pin are invisible at the pinned ts; the pin holds compaction back', async () => {
    const { dc, session, src } = await setup({ retentionMs: 100 });
    const r = await session.begin({ ttlMs: 600 });
    const ts = dc.put(b('a'), b('a-after-pin'));
    const tsNew = dc.put(b('zz-new'), b('new'));
    expect(ts).toBeGreaterThan(r.readTs);
    await sleep(250); // retention passes; the pin keeps read_ts readable
    expect((await src.get(b('a'), r.readTs))?.toString()).toBe('a@20');
    expect(await src.get(b('zz-new'), r.readTs)).toBeNull();
    const page = await src.scanPage(b('zz'), b('zz\xff'), r.readTs, { limit: 10 });
    expect(page).toHaveLength(0);
    // Read at the second write's own ts: the clock is hybrid, so it need not be ts + 1.
    expect(await src.scanPage(b('zz'), b('zz\xff'), tsNew, { limit: 10 })).toHaveLength(1);
    expect(dc.watermark).toBeLessThanOrEqual(r.readTs);
    await session.end();
    // Released: the watermark moves past read_ts and an unpinned reader gets 'compacted'.
    await until(() => dc.watermark > r.readTs, 2000);
    const plain = new ClusterSource({ endpoints: [dc.address] });
    open.push(plain);
    expect(await codeOf(plain.get(b('a'), r.readTs))).toBe('compacted');
  });

  it('a compacted read on a pinned session is SourceError compacted and loses the pin', async () => {
    const { dc, session, src } = await setup();
    const r = await session.begin({ ttlMs: 300 });
    dc.compactTo(r.readTs + 1n); // something retired versions under the pin
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('compacted');
    expect(session.lost).toBe(true);
    expect(await codeOf(src.get(b('a'), r.readTs))).toBe('pin_lost');
  });

  it('--read-ts alone reads unpinned at that ts; compaction surfaces as compacted', async () => {
    const { dc, session, src, client } = await setup();
    const r = await session.begin({ ttlMs: 300, readTs: 21n });
    expect(r).toMatchObject({ mode: 'unpinned', readTs: 21n, pinToken: null });
    // The cluster HAS the backup RPCs: the warning must not claim otherwise. BeginBackup takes no read_ts, so this is unpinned time travel.
    const warns = client.lines.filter((l) => l.level === 40);
    expect(warns).toHaveLength(1);
    expect(String(warns[0]!.msg)).not.toMatch(/no Admin\.BeginBackup/);
    expect(String(warns[0]!.msg)).toMatch(/^--read-ts 21 without --pin-token is unpinned time travel: BeginBackup cannot pin a read_ts you choose.*WITHOUT a backup pin/);
    expect(r.warning).toBe(warns[0]!.msg);
    expect(dc.calls.get('BeginBackup')).toBeUndefined();
    expect((await src.get(b('a'), 21n))?.toString()).toBe('a@20');
    dc.compactTo(22n);
    const e = (await src.get(b('a'), 21n).catch((x: unknown) => x)) as SourceError;
    expect(e.code).toBe('compacted');
    expect(e.message).toMatch(/not pinned/);
  });

  it('--pin-token joins a pin: renews it, never ends it', async () => {
    const { dc, cc, server } = await setup();
    const owner = await cc.beginBackup(600);
    const joiner = new BackupSession({ client: cc, log: captureLog().log, retryDelayMs: 20 });
    await expect(joiner.begin({ ttlMs: 300, pinToken: owner.pinToken.toString('hex') })).rejects.toThrow(/--pin-token needs --read-ts/);
    const j2 = new BackupSession({ client: cc, log: captureLog().log, retryDelayMs: 20 });
    const r = await j2.begin({ ttlMs: 600, pinToken: owner.pinToken.toString('hex'), readTs: owner.readTs });
    expect(r).toMatchObject({ mode: 'joined', readTs: owner.readTs });
    await until(() => j2.counters.renewals >= 2);
    await sleep(700); // beyond the owner's ttl: the joiner kept it alive
    expect(dc.activePins).toBe(1);
    await j2.end();
    expect(dc.activePins).toBe(1);
    expect(dc.calls.get('EndBackup')).toBeUndefined();
    expect(server.byMsg('backup_pin_renew').length).toBeGreaterThanOrEqual(3);
    await cc.endBackup(owner.pinToken);
    // Joining a pin that is gone fails at begin.
    const j3 = new BackupSession({ client: cc, log: captureLog().log });
    await expect(j3.begin({ ttlMs: 300, pinToken: owner.pinToken, readTs: owner.readTs })).rejects.toMatchObject({ code: 'not_found' });
  });

  it('pin tokens as text are hex', () => {
    expect(pinTokenFromText('00ff10').toString('hex')).toBe('00ff10');
    expect(() => pinTokenFromText('xyz')).toThrow(/hex pin token/);
  });

  it('ListAdaptersAndScopes lists scopes at the pinned read_ts', async () => {
    const mem = new MemorySource();
    const seg = (s: string): string => Buffer.from(s).toString('base64url');
    mem.put(b(`!ddb|meta|table|${seg('orders')}`), b('{}'), 10n);
    mem.put(b(`!sqs|queue|meta|${seg('jobs.fifo')}`), b('{}'), 10n);
    mem.put(Buffer.concat([b('!s3|bucket|meta|photos'), Buffer.from([0, 1])]), b('{}'), 10n);
    const { dc, cc } = await setup({ source: mem, initialTs: 10n });
    const p = await cc.beginBackup(1000);
    dc.put(b(`!ddb|meta|table|${seg('later')}`), b('{}'));
    const l = await cc.listAdaptersAndScopes(p.pinToken);
    expect(l).toEqual({ dynamodb_tables: ['orders'], s3_buckets: ['photos'], redis_databases: [0], sqs_queues: ['jobs.fifo'] });
    await cc.endBackup(p.pinToken);
  });

  it('openClusterSession: pinned source, counters wired, close ends the pin', async () => {
    const server = captureLog();
    const dc = await startDevCluster({ source: sampleSource(), minTtlMs: 150, token: 'tok-q', log: server.log });
    open.push(dc);
    let renewals = 0;
    const o = await openClusterSession({
      endpoints: [dc.address],
      token: 'tok-q',
      ttlMs: 300,
      log: captureLog().log,
      counters: { pinRenewals: { inc: () => renewals++ } },
    });
    expect(o.mode).toBe('pinned');
    expect((await o.source.get(b('a'), o.readTs))?.toString()).toBe('a@20');
    await until(() => renewals >= 1);
    o.guard();
    await o.close();
    await o.close();
    expect(dc.activePins).toBe(0);
  });
});
