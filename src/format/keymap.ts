/**
 * KEYMAP.jsonl records: {"encoded":…,"original":<base64url, no padding>,"kind":…}
 * one per line, written by a Go json.Encoder with HTML escaping off.
 */
import { encodeLine } from './gojson.js';

export type KeymapKind = 'sha-fallback' | 's3-leaf-data' | 'meta-suffix-rename';
export const KEYMAP_FILE = 'KEYMAP.jsonl';

export function keymapLine(encoded: string, original: Buffer, kind: KeymapKind): string {
  return encodeLine({ encoded, original: original.toString('base64url'), kind });
}
