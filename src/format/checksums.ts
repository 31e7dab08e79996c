/**
 * CHECKSUMS in exact sha256sum(1) format, as the owner writes it: one line per
 * regular file except CHECKSUMS itself, sorted bytewise by slash-separated
 * relative path, "<hex>  <path>\n"; a path holding \n, \r or \ is escaped and
 * the line prefixed with a backslash (GNU coreutils convention).
 */
export const CHECKSUMS_FILE = 'CHECKSUMS';

export function checksumLine(hex: string, relPath: string): string {
  if (!/[\n\r\\]/.test(relPath)) return `${hex}  ${relPath}\n`;
  const esc = relPath.replace(/[\n\r\\]/g, (c) => (c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\\\'));
  return `\\${hex}  ${esc}\n`;
}

/** Byte order of relative paths (Go string comparison on UTF-8). */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
