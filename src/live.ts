import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import type { MountConfig, OpenedSource } from './runner.js';

export type LiveHandle = OpenedSource;

/** Live cluster / demo mounts (filled in by the live-mount work). */
export async function openLive(cfg: MountConfig, _log: Logger, _metrics: Metrics): Promise<LiveHandle> {
  throw new Error(cfg.demo ? '--demo is not available in this build yet' : '--cluster is not available in this build yet');
}
