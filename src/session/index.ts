export { BackupSession, pinRef, pinTokenFromText, pinTokenToText, readTsWithoutPinWarning, NO_BACKUP_RPC_WARNING } from './session.js';
export type { BackupSessionOptions, BeginOptions, BeginResult, PinMode, SessionCounters, SessionState } from './session.js';
export { PinnedSource } from './pinned.js';
export { openClusterSession } from './open.js';
export type { OpenClusterOptions, OpenedCluster } from './open.js';
export { parsePinFile, readPinFile, removePinFile, renderPinFile, writePinFile } from './pinfile.js';
export type { PinFile, PinFileContext } from './pinfile.js';
