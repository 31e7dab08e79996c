import { pino, type Logger, type Level } from 'pino';

export type { Logger };

/** pino JSON to stdout (or a file). Never log tokens or record contents. */
export function makeLogger(level: string, dest?: string): Logger {
  const lvl = (['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(level) ? level : 'info') as Level;
  const stream = dest ? pino.destination({ dest, sync: true, mkdir: true }) : pino.destination({ fd: 1, sync: true });
  return pino({ level: lvl, base: { pid: process.pid, name: 'ekv-mount' }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}
