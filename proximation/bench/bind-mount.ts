/**
 * A bindfs mount of a directory: the test and benchmark stand-in for a shared volume seen by another
 * NFS client. Writes made through the backing directory show through the mount, but the mount delivers
 * no inotify events for them, as NFS delivers none for another client's writes, so only polling sees them.
 * `bindMount` throws naming the fix when bindfs is missing or the mount fails (no /dev/fuse);
 * `unmount` unmounts (fusermount, else umount) and never throws: it is for cleanup.
 */
import { execFile, spawnSync } from 'node:child_process';
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
      await run('fusermount', ['-u', mount]).catch(() => run('umount', [mount])).catch(() => undefined);
    },
  };
}
