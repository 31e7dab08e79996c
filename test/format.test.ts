import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeSegment, encodeBinarySegment, encodeSegment, isShaFallback, MAX_SEGMENT_BYTES, SegmentError } from '../src/format/filename.js';
import { encodeLine, GoMap, GoRaw, goB64, goStr, marshal, formatFloat } from '../src/format/gojson.js';
import { keymapLine } from '../src/format/keymap.js';
import { checksumLine, comparePaths } from '../src/format/checksums.js';
import { renderManifest, rfc3339Nano, snapshotIndexFromPath } from '../src/format/manifest.js';
import { defaultDecodeOptions } from '../src/adapters/types.js';
import { isSafeName } from '../src/tree/tree.js';

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('filename encoding', () => {
  it('round-trips random bytes (property, 5000 cases)', () => {
    const rnd = seeded(42);
    for (let i = 0; i < 5000; i++) {
      const len = Math.floor(rnd() * 120);
      const raw = Buffer.from(Array.from({ length: len }, () => Math.floor(rnd() * 256)));
      const enc = encodeSegment(raw);
      expect(enc.length).toBeLessThanOrEqual(MAX_SEGMENT_BYTES);
      expect(/^[A-Za-z0-9._%-]*$/.test(enc)).toBe(true);
      if (!isShaFallback(enc)) expect(decodeSegment(enc).equals(raw)).toBe(true);
      const bin = encodeBinarySegment(raw);
      if (!isShaFallback(bin)) expect(decodeSegment(bin).equals(raw)).toBe(true);
    }
  });

  it('passes unreserved bytes through and %-encodes the rest in uppercase', () => {
    expect(encodeSegment(Buffer.from('Az09._-'))).toBe('Az09._-');
    expect(encodeSegment(Buffer.from('a/b c:\u00e9'))).toBe('a%2Fb%20c%3A%C3%A9');
    expect(encodeSegment(Buffer.from([0, 0xff]))).toBe('%00%FF');
  });

  it('240-byte boundary: exactly 240 encoded bytes stay, 241 fall back to SHA', () => {
    expect(encodeSegment(Buffer.alloc(240, 'a'))).toBe('a'.repeat(240));
    const long = Buffer.alloc(241, 'a');
    const enc = encodeSegment(long);
    expect(isShaFallback(enc)).toBe(true);
    expect(enc).toBe(createHash('sha256').update(long).digest('hex').slice(0, 32) + '__' + 'a'.repeat(64));
    // 80 bytes that each need %HH = 240 encoded bytes: fits; 81 do not.
    expect(encodeSegment(Buffer.alloc(80, ' '))).toBe('%20'.repeat(80));
    expect(isShaFallback(encodeSegment(Buffer.alloc(81, ' ')))).toBe(true);
  });

  it('SHA fallback keeps the %-encoded first 64 raw bytes and needs KEYMAP to reverse', () => {
    const raw = Buffer.concat([Buffer.from('/'.repeat(70)), randomBytes(900)]);
    const enc = encodeSegment(raw);
    expect(enc.slice(32, 34)).toBe('__');
    expect(enc.slice(34)).toBe('%2F'.repeat(64));
    expect(() => decodeSegment(enc)).toThrow(SegmentError);
  });

  it('names that look like a SHA fallback or a b64. name are themselves hashed', () => {
    const looksSha = Buffer.from('0123456789abcdef0123456789abcdef__x');
    expect(encodeSegment(looksSha)).not.toBe(looksSha.toString());
    expect(isShaFallback(encodeSegment(looksSha))).toBe(true);
    expect(isShaFallback(encodeSegment(Buffer.from('b64.AAAA')))).toBe(true);
  });

  it('binary keys take the b64. path (base64url, no padding)', () => {
    expect(encodeBinarySegment(Buffer.from([0, 1, 2, 3]))).toBe('b64.AAECAw');
    expect(encodeBinarySegment(Buffer.from([0xfb, 0xff]))).toBe('b64.-_8');
    expect(decodeSegment('b64.-_8')).toEqual(Buffer.from([0xfb, 0xff]));
    expect(isShaFallback(encodeBinarySegment(randomBytes(200)))).toBe(true);
  });

  it('".", ".." and "" encode as the owner does, and the tree never exposes them as names', () => {
    expect(encodeSegment(Buffer.from('.'))).toBe('.');
    expect(encodeSegment(Buffer.from('..'))).toBe('..');
    expect(encodeSegment(Buffer.alloc(0))).toBe('');
    for (const n of ['.', '..', '', 'a/b', 'a\0b']) expect(isSafeName(n)).toBe(false);
    expect(isSafeName('..json')).toBe(true);
  });

  it('rejects malformed encoded names', () => {
    for (const bad of ['%', '%4', '%GG', 'a b', 'b64.***']) expect(() => decodeSegment(bad)).toThrow(SegmentError);
  });
});

describe('Go-compatible JSON', () => {
  it('escapes strings as encoding/json does', () => {
    expect(marshal('<a&b>')).toBe('"\\u003ca\\u0026b\\u003e"');
    expect(marshal('<a&b>', { escapeHTML: false })).toBe('"<a&b>"');
    expect(marshal('\b\f\n\r\t\u0001"\\')).toBe('"\\b\\f\\n\\r\\t\\u0001\\"\\\\"');
    expect(marshal('\u2028\u2029')).toBe('"\\u2028\\u2029"');
    expect(marshal(goStr(Buffer.from([0x61, 0xff, 0x62])))).toBe('"a\\ufffdb"');
    expect(marshal(goB64(Buffer.from('hi')))).toBe('"aGk="');
  });

  it('formats float64 like Go', () => {
    expect(['0', '1', '1.5', '1e-7', '0.000001', '1e+21', '100000000000000000000', '-2.5e-10'].map((x) => formatFloat(parseFloat(x)))).toEqual([
      '0',
      '1',
      '1.5',
      '1e-7',
      '0.000001',
      '1e+21',
      '100000000000000000000',
      '-2.5e-10',
    ]);
    expect(marshal(12345678901234567890n)).toBe('12345678901234567890');
  });

  it('orders struct fields as declared and map keys bytewise; indents like MarshalIndent', () => {
    const v = { z: 1, a: new GoMap([['b', 2], ['10', 1], ['2', 3], ['A', null]]), e: [], o: {}, r: new GoRaw(' {"x" : [1, 2], "y":{}} ') };
    expect(marshal(v)).toBe('{"z":1,"a":{"10":1,"2":3,"A":null,"b":2},"e":[],"o":{},"r":{"x":[1,2],"y":{}}}');
    expect(encodeLine({ k: [1, { n: 'x' }], r: new GoRaw('{"a":[1]}') }, { indent: '  ' })).toBe(
      '{\n  "k": [\n    1,\n    {\n      "n": "x"\n    }\n  ],\n  "r": {\n    "a": [\n      1\n    ]\n  }\n}\n',
    );
  });
});

describe('KEYMAP, CHECKSUMS, MANIFEST', () => {
  it('KEYMAP lines carry base64url originals without padding', () => {
    expect(keymapLine('abc__x', Buffer.from([0xfb, 0xff, 0x3c]), 'sha-fallback')).toBe('{"encoded":"abc__x","original":"-_88","kind":"sha-fallback"}\n');
  });

  it('CHECKSUMS lines are sha256sum format, escaping odd paths GNU-style', () => {
    expect(checksumLine('ab', 'x/y.json')).toBe('ab  x/y.json\n');
    expect(checksumLine('ab', 'a\\b\nc')).toBe('\\ab  a\\\\b\\nc\n');
    expect(['b', 'a/b', 'a-b', 'a'].sort(comparePaths)).toEqual(['a', 'a-b', 'a/b', 'b']);
  });

  it('MANIFEST.json has every owner field in order, 2-space indent, trailing newline', () => {
    const out = renderManifest({
      phase: 'phase0-snapshot-decode',
      elastickvVersion: 'dev',
      snapshotIndex: 100n,
      lastCommitTS: 4517352099840000n,
      wallTime: new Date('2026-04-29T15:42:11.094Z'),
      source: { fsmPath: '/data/0000000000000064.fsm' },
      scopes: new Map(),
      options: defaultDecodeOptions(),
    }).toString();
    expect(out).toBe(`{
  "format_version": 1,
  "phase": "phase0-snapshot-decode",
  "elastickv_version": "dev",
  "snapshot_index": 100,
  "last_commit_ts": 4517352099840000,
  "wall_time_iso": "2026-04-29T15:42:11.094Z",
  "source": {
    "fsm_path": "/data/0000000000000064.fsm"
  },
  "adapters": {
    "dynamodb": {},
    "s3": {},
    "redis": {},
    "sqs": {}
  },
  "exclusions": {
    "include_incomplete_uploads": false,
    "include_orphans": false,
    "preserve_sqs_visibility": false,
    "include_sqs_side_records": false
  },
  "checksum_algorithm": "sha256",
  "checksum_format": "sha256sum",
  "encoded_filename_charset": "rfc3986-unreserved-plus-percent",
  "key_segment_max_bytes": 240,
  "s3_meta_suffix": ".elastickv-meta.json",
  "s3_collision_strategy": "leaf-data-suffix",
  "dynamodb_layout": "per-item"
}
`);
    expect(rfc3339Nano(new Date('2026-01-02T03:04:05.000Z'))).toBe('2026-01-02T03:04:05Z');
    expect(rfc3339Nano(new Date('2026-01-02T03:04:05.120Z'))).toBe('2026-01-02T03:04:05.12Z');
    expect(snapshotIndexFromPath('/x/0000000000000064.fsm')).toBe(64n);
    expect(snapshotIndexFromPath('/x/snap.fsm')).toBeUndefined();
    expect(snapshotIndexFromPath('/x/+5.fsm')).toBeUndefined();
  });
});

describe('ordered key segments', () => {
  it('escape NUL, terminate with 00 01, round-trip, and refuse malformed input', async () => {
    const { encodeSegmentBytes, readSegment, segmentPrefix } = await import('../src/format/segment.js');
    const cases = [Buffer.alloc(0), Buffer.from('abc'), Buffer.of(0), Buffer.of(0, 1, 0xff, 0), Buffer.from('a\0b')];
    for (const raw of cases) {
      const enc = encodeSegmentBytes(raw);
      expect(enc.subarray(enc.length - 2)).toEqual(Buffer.of(0, 1));
      expect(enc.subarray(0, enc.length - 2)).toEqual(segmentPrefix(raw));
      const tail = Buffer.concat([Buffer.from('x'), enc, Buffer.from('rest')]);
      expect(readSegment(tail, 1)).toEqual({ raw, next: 1 + enc.length });
    }
    expect(encodeSegmentBytes(Buffer.from('a\0b'))).toEqual(Buffer.of(0x61, 0, 0xff, 0x62, 0, 1));
    expect(readSegment(Buffer.of(0x61, 0, 0x02), 0)).toBeNull(); // bad escape
    expect(readSegment(Buffer.of(0x61, 0x62), 0)).toBeNull(); // unterminated
    expect(readSegment(Buffer.of(0x61, 0), 0)).toBeNull(); // cut after NUL
    // Byte order of raw values is preserved by the encoding.
    const raws = [Buffer.of(0), Buffer.of(0, 0), Buffer.of(0, 1), Buffer.of(1), Buffer.from('a'), Buffer.from('a\0'), Buffer.from('ab')];
    const sorted = [...raws].sort(Buffer.compare).map((r) => r.toString('hex'));
    expect([...raws].map(encodeSegmentBytes).sort(Buffer.compare).map((e) => readSegment(e, 0)!.raw.toString('hex'))).toEqual(sorted);
  });
});
