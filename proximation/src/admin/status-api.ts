/**
 * `GET /api/status` on the admin listener: the fleet as `fleetStatus` (fleet-status.ts in shared)
 * describes it, read from the shared storage (directory or Redis) at each request (the routing table as stored, the
 * instances' heartbeats, the members' lease records), so any instance answers for the whole fleet and
 * API mode needs no volume. Same auth as the routing API (admin-server.ts). The JSON shape is the
 * contract stated in fleet-status.ts: fields may be added, never renamed. A read failure answers as
 * api-http.ts maps its code (500 for I/O); records that are corrupt or foreign are left out.
 */
import type http from 'node:http';
import { errorMessage, isProximationError, ProximationError, readFleetStatus, type FleetStorage, type RoutesLocation } from '@proximation/shared';
import type { Logger } from '../logger.js';
import { sendError, sendJson } from './api-http.js';

export const ADMIN_STATUS_PATH = '/api/status';

export function statusApi(routes: RoutesLocation, fleet: FleetStorage, log: Logger): (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void> {
  return async (_req, res) => {
    try {
      const { status, problems } = await readFleetStatus(routes, fleet);
      for (const problem of problems) log.warn({ problem }, 'fleet record ignored');
      sendJson(res, 200, status);
    } catch (err) {
      log.error({ err: errorMessage(err) }, `GET ${ADMIN_STATUS_PATH} failed`);
      sendError(res, isProximationError(err) ? err : new ProximationError('ERR_INTERNAL', `GET ${ADMIN_STATUS_PATH} failed unexpectedly; the proxy's log has the details.`));
    }
  };
}
