/** Parse "256MiB", "64MB", "1g", "1048576" into bytes (binary units; SI suffixes accepted as binary too, like rclone). */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)?\s*$/i.exec(s);
  if (!m) throw new Error(`invalid size ${JSON.stringify(s)} (use e.g. 256MiB, 1GiB, 65536)`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }[m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'];
  return Math.floor(parseFloat(m[1]!) * mult);
}

export function formatSize(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1 && Number.isInteger(v / 1024)) {
    v /= 1024;
    i++;
  }
  return `${v}${u[i]}`;
}

/** Parse "300", "300s", "1500ms", "5m", "1h" into milliseconds (a bare number is seconds). */
export function parseDurationMs(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(s);
  if (!m) throw new Error(`invalid duration ${JSON.stringify(s)} (use e.g. 300s, 1500ms, 5m)`);
  const mult = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's').toLowerCase() as 'ms' | 's' | 'm' | 'h'];
  return Math.round(parseFloat(m[1]!) * mult);
}
