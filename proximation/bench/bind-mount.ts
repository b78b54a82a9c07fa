/**
 * A bindfs mount of a directory: the test and benchmark stand-in for a shared volume seen by another
 * NFS client. Writes made through the backing directory show through the mount, but the mount delivers
 * no inotify events for them, as NFS delivers none for another client's writes, so only polling sees them.
 * `bindMount` throws naming the fix when bindfs is missing or the mount fails (no /dev/fuse);
 * `unmount` unmounts (fusermount, else umount), retrying for up to 5 s while the mount is busy (processes
 * just SIGKILLed may still hold files there), and never throws: it is for cleanup.
 */
import { execFile, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface BindMount {
  /** The directory written behind the mount's back. */
  readonly backing: string;
  /** The same directory through bindfs. */
  readonly mount: string;
  unmount(): Promise<void>;
}

/** Mounts the existing directory `backing` at the existing, empty directory `mount`. */
export async function bindMount(backing: string, mount: string): Promise<BindMount> {
  const probe = spawnSync('bindfs', ['--version']);
  if (probe.error !== undefined) {
    throw new Error(`bindfs is needed here and could not be run (${probe.error.message}); install it: apt-get install bindfs (scripts/install-system-deps.sh does)`);
  }
  try {
    await run('bindfs', [backing, mount]);
  } catch (err) {
    throw new Error(`bindfs ${backing} ${mount} failed (is /dev/fuse available?): ${(err as Error).message}`);
  }
  return {
    backing,
    mount,
    async unmount() {
      for (let attempt = 0; attempt < 20; attempt++) {
        const done = await run('fusermount', ['-u', mount]).catch(() => run('umount', [mount])).then(() => true, () => false);
        if (done) return;
        await sleep(250);
      }
    },
  };
}
