import { manifestKey, P_BLOB, chunkKey } from '../../../src/adapters/s3/keys.js';
import { bucketMetaKey, hlc, s3BucketEntries, s3ObjectEntries, s3UploadEntries } from '../../../src/fixture/s3.js';
import type { GoldenFixture } from '../fixtures.js';

const T = hlc(1767225600123, 7);

/** s3 golden fixtures: records in elastickv's internal encodings; expected trees come from elastickv's own decoder. */
export const s3Fixtures: GoldenFixture[] = [
  {
    name: 's3-basic',
    entries: [
      ...s3BucketEntries({ name: 'photos', generation: 1n, createdAtHLC: T, owner: 'alice', region: 'us-east-1', acl: 'private', withGenCounter: true }),
      ...s3ObjectEntries({ bucket: 'photos', generation: 1n, key: 'README.txt', body: 'hello <s3> & friends\n', contentType: 'text/plain; charset=utf-8', lastModifiedHLC: T }),
      ...s3ObjectEntries({
        bucket: 'photos',
        generation: 1n,
        key: '2026/01/beach.jpg',
        body: Buffer.from(Array.from({ length: 700 }, (_, i) => i % 251)),
        chunkSize: 256,
        contentType: 'image/jpeg',
        cacheControl: 'max-age=60',
        contentDisposition: 'inline; filename="beach.jpg"',
        userMetadata: { 'x-camera': 'pixel', author: 'Ålice' },
        lastModifiedHLC: hlc(1767225600000),
      }),
      ...s3ObjectEntries({ bucket: 'photos', generation: 1n, key: 'a dir/with space+plus.txt', body: 'spaces\n', contentType: 'text/plain', contentEncoding: 'gzip' }),
      ...s3BucketEntries({ name: 'logs', generation: 3n, createdAtHLC: T }),
      ...s3ObjectEntries({ bucket: 'logs', generation: 3n, key: 'app/2026-01-01.log', body: 'boot ok\n' }),
      ...s3BucketEntries({ name: 'empty-bucket', generation: 1n }),
      // Bucket directory names are filename-encoded; object keys are written as raw paths.
      ...s3BucketEntries({ name: 'odd bucket+ü', generation: 2n }),
      ...s3ObjectEntries({ bucket: 'odd bucket+ü', generation: 2n, key: 'é/ü ñ.txt', body: 'unicode path\n', userMetadata: { note: '<b>&</b>' } }),
    ],
  },
  {
    name: 's3-multipart',
    entries: [
      ...s3BucketEntries({ name: 'media', generation: 1n, createdAtHLC: T }),
      ...s3ObjectEntries({
        bucket: 'media',
        generation: 1n,
        key: 'videos/movie.mp4',
        contentType: 'video/mp4',
        uploadId: 'mpu-7',
        lastModifiedHLC: T,
        parts: [
          { chunks: ['part1-chunk0|', 'part1-chunk1|', 'p1c2|'], partVersion: hlc(1767225600001, 3) },
          { chunks: ['part2-chunk0|', 'part2-c1|'], partVersion: hlc(1767225600002) },
          { chunks: ['part3-offloaded-chunk0|', 'part3-offloaded-chunk1|'], offloaded: true, chunkRefVersion: hlc(1767225600003) },
          { chunks: ['part4-only|'], partVersion: hlc(1767225600004) },
        ],
      }),
      // A stale part version of part 2 under the same upload: not in the body.
      ...s3ObjectEntries({
        bucket: 'media',
        generation: 1n,
        key: 'videos/movie.mp4',
        uploadId: 'mpu-7',
        noManifest: true,
        parts: [{ partNo: 2, chunks: ['STALE-PART-VERSION|'], partVersion: hlc(1767225599999) }],
      }),
      // A stale upload attempt's chunks for the same object: not in the body.
      ...s3ObjectEntries({ bucket: 'media', generation: 1n, key: 'videos/movie.mp4', uploadId: 'mpu-old', noManifest: true, body: 'OLD-UPLOAD' }),
      // A legacy single-PUT manifest without chunk_sizes.
      ...s3ObjectEntries({ bucket: 'media', generation: 1n, key: 'legacy.bin', parts: [{ partNo: 1, chunks: ['legacy-a|', 'legacy-bb|'], omitChunkSizes: true }], uploadId: 'legacy' }),
    ],
  },
  {
    name: 's3-empty-object',
    entries: [
      ...s3BucketEntries({ name: 'b', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'empty', body: '', contentType: 'text/plain' }),
      ...s3ObjectEntries({ bucket: 'b', generation: 1n, key: 'dir/empty.dat', body: '', lastModifiedHLC: 0n }),
    ],
  },
  {
    name: 's3-leaf-collision',
    entries: [
      ...s3BucketEntries({ name: 'col', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'col', generation: 1n, key: 'a', body: 'I am a\n' }),
      ...s3ObjectEntries({ bucket: 'col', generation: 1n, key: 'a/b', body: 'I am a/b\n' }),
      ...s3ObjectEntries({ bucket: 'col', generation: 1n, key: 'a!', body: 'sorts between a and a/\n' }),
      // Nested: x/y is renamed inside x/, KEYMAP.jsonl at the bucket root records the relative path.
      ...s3BucketEntries({ name: 'col2', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'col2', generation: 1n, key: 'x/y', body: 'x/y leaf\n' }),
      ...s3ObjectEntries({ bucket: 'col2', generation: 1n, key: 'x/y/z/deep.txt', body: 'deep\n' }),
      // An in-flight offloaded PUT (chunkref only, no manifest) under q/ still forces q's rename.
      ...s3BucketEntries({ name: 'col3', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'col3', generation: 1n, key: 'q', body: 'q leaf\n' }),
      ...s3ObjectEntries({ bucket: 'col3', generation: 1n, key: 'q/inflight', parts: [{ chunks: ['zz'], offloaded: true }], noManifest: true }),
    ],
  },
  {
    name: 's3-meta-suffix',
    flags: ['--rename-collisions'],
    entries: [
      ...s3BucketEntries({ name: 'm', generation: 1n }),
      ...s3ObjectEntries({ bucket: 'm', generation: 1n, key: 'notes.txt', body: 'plain\n' }),
      ...s3ObjectEntries({ bucket: 'm', generation: 1n, key: 'notes.txt.elastickv-meta.json', body: '{"user":"data"}\n', contentType: 'application/json' }),
    ],
  },
  {
    name: 's3-generations',
    entries: [
      // Bucket recreated: live generation 5; generation 4's rows are stale.
      ...s3BucketEntries({ name: 'gen', generation: 5n, createdAtHLC: T, withGenCounter: true }),
      ...s3ObjectEntries({ bucket: 'gen', generation: 4n, key: 'keep.txt', body: 'STALE generation 4\n' }),
      ...s3ObjectEntries({ bucket: 'gen', generation: 4n, key: 'only-old.txt', body: 'STALE only in 4\n' }),
      ...s3ObjectEntries({ bucket: 'gen', generation: 5n, key: 'keep.txt', body: 'live generation 5\n' }),
      // An in-flight PUT in the live generation (blobs, no manifest): not an object.
      ...s3ObjectEntries({ bucket: 'gen', generation: 5n, key: 'inflight.bin', body: 'partial', noManifest: true }),
      // An in-flight multipart upload: excluded by default.
      ...s3UploadEntries({ bucket: 'gen', generation: 5n, key: 'big.iso', uploadId: 'mpu-9', parts: [1, 2] }),
      // A bucket with no meta record at all: every generation's objects are written.
      ...s3ObjectEntries({ bucket: 'nometa', generation: 2n, key: 'x.txt', body: 'no bucket meta\n' }),
    ],
  },
  {
    name: 's3-orphans-uploads',
    flags: ['--include-orphans', '--include-incomplete-uploads'],
    entries: [
      ...s3BucketEntries({ name: 'gen', generation: 5n }),
      ...s3ObjectEntries({ bucket: 'gen', generation: 4n, key: 'keep.txt', body: 'STALE generation 4\n', chunkSize: 8 }),
      ...s3ObjectEntries({ bucket: 'gen', generation: 5n, key: 'keep.txt', body: 'live generation 5\n' }),
      ...s3ObjectEntries({ bucket: 'gen', generation: 5n, key: 'dir/inflight.bin', body: 'partial', noManifest: true, uploadId: 'u/x' }),
      ...s3UploadEntries({ bucket: 'gen', generation: 5n, key: 'big.iso', uploadId: 'mpu-9', parts: [1, 2] }),
      ...s3UploadEntries({ bucket: 'gen', generation: 4n, key: 'old.iso', uploadId: 'mpu-8', parts: [1] }),
      ...s3UploadEntries({ bucket: 'uploads-only', generation: 1n, key: 'k', uploadId: 'mpu-1', parts: [3] }),
    ],
  },
  {
    // Manifest/bucket JSON as Go's decoder reads it: case-insensitive field names, duplicate
    // fields (last wins), null fields, invalid UTF-8 and lone surrogates (U+FFFD), escapes,
    // uint64 HLCs beyond 2^53, HTML characters escaped by MarshalIndent.
    name: 's3-json-quirks',
    entries: [
      {
        key: bucketMetaKey('q'),
        value: '{"BUCKET_NAME":"ignored","Generation":7,"created_at_hlc":116105448513536000,"OWNER":"b\\u00f6b <&>","region":null,"acl":"x","acl":"public-read"}',
      },
      {
        key: manifestKey(Buffer.from('q'), 7n, Buffer.from('obj')),
        value: Buffer.concat([
          Buffer.from('{"upload_id":"u1","ETag":"e\\ud800x\\ud83d\\ude00'),
          Buffer.from([0xff, 0xc3]),
          Buffer.from(
            '","size_bytes":5,"last_modified_hlc":18446744073709551615,"content_type":null,"Content_Type":"text/x\\u2028y","user_metadata":{"k":"v","k":"w","n":null,"\\u00e9":"<>"},"CACHE_CONTROL":"no-store","parts":[{"part_no":1,"chunk_count":1,"chunk_sizes":[5],"unknown":{"a":[1,2]}}],"extra":true}',
          ),
        ]),
      },
      { key: chunkKey(P_BLOB, { bucket: Buffer.from('q'), gen: 7n, object: Buffer.from('obj'), uploadId: Buffer.from('u1'), partNo: 1n, chunkNo: 0n, partVersion: 0n }), value: 'hello' },
    ],
  },
];

