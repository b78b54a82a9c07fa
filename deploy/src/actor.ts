/**
 * Who runs this `deploy` command, for the proxy's change log: the login name (or the uid where the
 * system has no name for it, as in a container without a passwd entry) and the host name. Never throws.
 */
import os from 'node:os';

export function deployActor(): { user: string; host: string } {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    user = `uid ${process.getuid?.() ?? 'unknown'}`;
  }
  return { user, host: os.hostname() };
}
