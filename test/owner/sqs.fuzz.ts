/**
 * Differential fuzzing of the sqs room against elastickv's own decoder. Not part of
 * the test suite (it needs a locally built elastickv-snapshot-decode):
 *   scripts/owner-fuzz.sh /path/to/elastickv-snapshot-decode
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { sqsAdapter } from '../../src/adapters/sqs/index.js';
import { sortTuning } from '../../src/adapters/sqs/extsort.js';
import { defaultDecodeOptions, type DecodeOptions } from '../../src/adapters/types.js';
import { encodeFsm, type FsmEntry } from '../../src/fixture/fsm.js';
import {
  demoSqsEntries,
  sqsBenchEntries,
  sqsDataKey,
  sqsGenKey,
  sqsMessageEntries,
  sqsMessageValue,
  sqsMetaKey,
  sqsQueueEntries,
  sqsSeqKey,
} from '../../src/fixture/sqs.js';
import { SnapshotView } from '../../src/source/range.js';
import { SnapshotSource } from '../../src/source/snapshot.js';
import type { KV, PageSource, ScanPageOptions } from '../../src/source/types.js';
import { Tree } from '../../src/tree/tree.js';
import { sqsFifoEntries, sqsFixtures, sqsSideRecordEntries, sqsStandardEntries, sqsVisibilityEntries } from '../golden/cases/sqs.js';
import { renderEntries, text, type Rendered } from '../helpers/render.js';

const GOLDEN = new URL('../golden/', import.meta.url).pathname;

/**
 * Differential fuzzing against elastickv's own decoder; runs only when
 * EKV_DECODE names an elastickv-snapshot-decode binary (as for golden regen).
 * The owner either decodes the snapshot — then every sqs/ file must match byte
 * for byte with no EIO — or refuses it, and then at least one of our files fails.
 */
const EKV_DECODE = process.env.EKV_DECODE;
function optionsFor(flags: string[] | undefined): Partial<DecodeOptions> {
  return {
    preserveSqsVisibility: flags?.includes('--preserve-sqs-visibility') ?? false,
    includeSqsSideRecords: flags?.includes('--include-sqs-side-records') ?? false,
  };
}

const open: Rendered[] = [];
async function render(entries: FsmEntry[], options: Partial<DecodeOptions> = {}, pageSize?: number): Promise<Rendered> {
  const r = await renderEntries(entries, { options, pageSize });
  open.push(r);
  return r;
}

function walk(dir: string, pre = ''): string[] {
  const out: string[] = [];
  for (const n of readdirSync(dir).sort()) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...walk(p, `${pre}${n}/`));
    else out.push(pre + n);
  }
  return out;
}

const sqsFiles = (r: Rendered): string[] => [...r.files.keys(), ...r.errors.keys()].filter((p) => p.startsWith('sqs/')).sort();

if (!EKV_DECODE) throw new Error('set EKV_DECODE to the path of elastickv-snapshot-decode (scripts/owner-fuzz.sh)');
describe('sqs: differential fuzz against elastickv-snapshot-decode', () => {
  let seed = 1;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;

  async function compare(entries: FsmEntry[], flags: string[]): Promise<string | null> {
    const dir = mkdtempSync(join(tmpdir(), 'ekv-sqs-fuzz-'));
    try {
      const fsm = join(dir, 'x.fsm');
      writeFileSync(fsm, encodeFsm(entries));
      let refOk = true;
      let refError = '';
      try {
        execFileSync(EKV_DECODE!, ['--input', fsm, '--output', join(dir, 'out'), ...flags], { stdio: 'pipe' });
      } catch (e) {
        refOk = false;
        refError = String((e as { stderr?: Buffer }).stderr ?? '').trim();
      }
      const r = await renderEntries(entries, { options: optionsFor(flags), pageSize: 3 });
      try {
        const ours = sqsFiles(r);
        const ourErrors = ours.filter((p) => r.errors.has(p));
        if (!refOk) return ourErrors.length > 0 ? null : `owner refused the snapshot (${refError}), every file rendered`;
        const exp = join(dir, 'out');
        const want = existsSync(join(exp, 'sqs')) ? walk(join(exp, 'sqs')).map((p) => `sqs/${p}`).sort() : [];
        if (JSON.stringify(ours) !== JSON.stringify(want)) return `file sets differ: ${JSON.stringify(ours)} vs ${JSON.stringify(want)}`;
        for (const p of want) if (!r.files.get(p)?.equals(readFileSync(join(exp, p)))) return `${p} differs`;
        return null;
      } finally {
        await r.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('random message values (field names, types, nulls, duplicates, escapes, numbers, base64)', async () => {
    seed = 4242;
    const fields = ['message_id', 'body', 'md5_of_body', 'message_attributes', 'sender_id', 'send_timestamp_millis', 'visible_at_millis', 'receive_count', 'first_receive_millis', 'current_receipt_token', 'queue_generation', 'message_group_id', 'sequence_number', 'extra'];
    const strs = ['"abc"', '""', '"<&>"', '"\\u00e9\\ud83d\\ude00"', '"\\ud800"', '"\\\\n\\t\\""', '"\u2028x"'];
    const nums = ['0', '-0', '1', '-5', '9223372036854775807', '9223372036854775808', '18446744073709551615', '18446744073709551616', '1.5', '1e3', '-1'];
    const b64s = ['[104,105]', '[]', '[300]', '"QUJD"', '""', '"QQ=="', '"QQ"', '"QR=="', '"QU\\r\\nJD"', '"_-"'];
    const attrs = ['{"a":{"DataType":"String","StringValue":"x"}}', '{ "b" : [1, 2] , "a" : null }', '{}', '{"z":1,"z":2}', '{"x":"\\ud83d"}'];
    const val = (f: string): string => {
      const r = rnd();
      if (r < 0.05) return 'null';
      if (r < 0.08) return pick(['true', '{}', '[]', '"x"', '1']);
      if (f === 'body' || f === 'current_receipt_token') return pick(b64s);
      if (f === 'message_attributes') return pick(attrs);
      if (/millis|count|generation|number/.test(f)) return pick(nums);
      return pick(strs);
    };
    const name = (f: string): string => (rnd() < 0.1 ? f.toUpperCase() : rnd() < 0.06 ? f.replace('s', '\u017f') : f);
    const failures: string[] = [];
    for (let i = 0; i < 60; i++) {
      const entries: FsmEntry[] = [];
      for (let qi = 0; qi < 3; qi++) {
        const q = `q${qi}`;
        entries.push(...sqsQueueEntries({ name: q }).filter((e) => !String(e.key).startsWith('!sqs|queue|gen|')));
        const members = Array.from({ length: 1 + Math.floor(rnd() * 6) }, () => {
          const f = pick(fields);
          return `"${name(f)}":${val(f)}`;
        });
        entries.push({ key: sqsDataKey(q, 1n, `m${i}`), value: Buffer.concat([Buffer.from([0, 0x53, 0x4d, 1]), Buffer.from(`{${members.join(',')}}`)]) });
      }
      const why = await compare(entries, rnd() < 0.5 ? [] : ['--preserve-sqs-visibility']);
      if (why) failures.push(`${i}: ${why}`);
    }
    expect(failures).toEqual([]);
  });

  it('random keys under every SQS family (queue segments extending each other, partitioned shapes, truncated trailers)', async () => {
    seed = 777;
    const names = ['abc', 'abcd', 'abcdef', 'x'];
    const encs = names.map((n) => Buffer.from(n).toString('base64url'));
    const families = ['data', 'vis', 'byage', 'dedup', 'group'];
    const failures: string[] = [];
    for (let i = 0; i < 60; i++) {
      const entries: FsmEntry[] = [];
      const seen = new Set<string>();
      const add = (e: FsmEntry): void => {
        const k = Buffer.from(e.key).toString('latin1');
        if (!seen.has(k)) entries.push(e), seen.add(k);
      };
      const live = names.slice(0, 1 + Math.floor(rnd() * names.length));
      for (const n of live) for (const e of sqsQueueEntries({ name: n, generation: 2n })) add(e);
      for (let j = 0; j < 12; j++) {
        const fam = pick(families);
        // A malformed data key of a queue without meta breaks the owner's whole decode but no file
        // of ours (there is no queue directory to fail), so data keys go to live queues only.
        const enc = fam === 'data' ? Buffer.from(pick(live)).toString('base64url') : pick(encs);
        const gen = Buffer.alloc(8);
        gen.writeBigUInt64BE(BigInt(pick([1, 2, 2, 2])));
        const part = Buffer.alloc(4);
        part.writeUInt32BE(Math.floor(rnd() * 4));
        const id = `id${j}`;
        const tail = pick<Buffer[]>([[gen, Buffer.from(Buffer.from(id).toString('base64url'))], [gen], [gen.subarray(0, 3)], [], [Buffer.from('|'), gen]]);
        const shape = rnd();
        const key =
          shape < 0.7
            ? Buffer.concat([Buffer.from(`!sqs|msg|${fam}|${enc}`), ...tail])
            : Buffer.concat([Buffer.from(`!sqs|msg|${fam}|p|${enc}|`), part, ...tail]);
        const value = fam === 'data' ? sqsMessageValue(2n, { id, body: `b${j}`, sendTs: Math.floor(rnd() * 3), generation: BigInt(pick([1, 2])) }) : Buffer.from(id);
        add({ key, value });
      }
      if (rnd() < 0.3) add({ key: Buffer.concat([Buffer.from(`!sqs|queue|tombstone|${pick(encs)}`), Buffer.alloc(8, 0)]), value: Buffer.of(1) });
      const why = await compare(entries, rnd() < 0.6 ? ['--include-sqs-side-records'] : []);
      if (why) failures.push(`${i}: ${why}`);
    }
    expect(failures).toEqual([]);
  });
});
