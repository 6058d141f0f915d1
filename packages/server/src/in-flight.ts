/** The requests generating now, so that a shutdown can wait for them and, past its deadline, abort them. */
export class InFlight {
  private readonly controllers = new Set<AbortController>();
  private waiters: Array<() => void> = [];

  get size(): number {
    return this.controllers.size;
  }

  add(controller: AbortController): void {
    this.controllers.add(controller);
  }

  delete(controller: AbortController): void {
    this.controllers.delete(controller);
    if (this.controllers.size === 0) for (const wake of this.waiters.splice(0)) wake();
  }

  abortAll(): void {
    for (const c of this.controllers) c.abort();
  }

  /** Resolves when nothing is in flight, or after `timeoutMs`, whichever comes first. */
  whenIdle(timeoutMs: number): Promise<void> {
    if (this.controllers.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}
