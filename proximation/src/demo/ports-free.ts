/**
 * Whether the demo's listeners can start, asked before the demo changes anything: a second `proximation
 * demo` (or `npm start`) beside a running one must fail without rewriting the running one's routing
 * table. `requirePortsFree` binds each port for a moment and releases it; a port another process holds
 * throws ProximationError ERR_DEMO_PORT_TAKEN naming the port, its setting and the likely cause. Port 0
 * is always free. What binding fails with otherwise (EACCES) is thrown as `listen` throws it. A process
 * that takes a port between this check and the real listen still makes the start fail, later.
 */
import net from 'node:net';
import { ProximationError } from '@proximation/shared';
import { listenIfFree } from '../listeners/listen.js';

export interface DemoPort {
  port: number;
  host: string | undefined;
  /** The variable that sets it, for the message. */
  setting: string;
}

export async function requirePortsFree(ports: readonly DemoPort[]): Promise<void> {
  for (const { port, host, setting } of ports) {
    if (port === 0) continue;
    const probe = net.createServer();
    const bound = await listenIfFree(probe, port, host);
    if (bound !== undefined) await new Promise<void>((resolve) => probe.close(() => resolve()));
    else {
      throw new ProximationError(
        'ERR_DEMO_PORT_TAKEN',
        `Port ${port} (${setting}) is in use, probably by a proximation demo that is already running; nothing was changed. ` +
          `Use the running one, stop it first, or give this one other ports (${setting}=...).`,
      );
    }
  }
}
