/**
 * A polling loop for state on the shared directory (which gives no change events): `poll` runs every
 * `intervalMs` after the previous run finished, so runs never overlap and a slow volume slows the loop
 * instead of piling reads up. The timer is unref()ed (polling alone keeps no process alive). `stop`
 * ends the loop; a run in progress finishes and schedules nothing more.
 */
export function pollEvery(intervalMs: number, poll: () => Promise<void>): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (): void => {
    timer = setTimeout(() => {
      void poll().finally(() => {
        if (!stopped) schedule();
      });
    }, intervalMs);
    timer.unref();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
