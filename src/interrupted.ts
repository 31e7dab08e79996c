/** Set-up cut short by a signal or a fatal error before the mount answered (kept apart from live.ts, which loads gRPC). */
export class Interrupted extends Error {
  constructor(readonly reason: string) {
    super(`interrupted by ${reason} before the mount answered`);
    this.name = 'Interrupted';
  }
}
