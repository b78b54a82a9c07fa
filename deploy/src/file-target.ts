/**
 * The routing table file on the shared directory as a RoutesTarget (`--routes FILE`,
 * `PROXIMATION_ROUTES`): reads validate the file, updates run under the file's lease lock and write
 * atomically (see routes-file.ts in @proximation/shared), so any number of deploy processes on any
 * number of hosts can change it at once without losing a change. Health checks run from this process.
 */
import { applyChangeRequest, applyRoutingTableChange, readRoutingTableFile, updateRoutingTableFile } from '@proximation/shared';
import type { RoutingTableStore } from '@proximation/shared';
import type { RoutesTarget } from './routes-target.js';

export function fileTarget(path: string): RoutesTarget {
  const read = () => readRoutingTableFile(path);
  return {
    read,
    update(request, observer) {
      const store: RoutingTableStore = {
        read,
        update: (change) =>
          updateRoutingTableFile(path, (table) => applyRoutingTableChange(table, change, new Date()), {
            ...(observer?.lockWait === undefined ? {} : { onWait: (wait) => observer.lockWait?.(wait) }),
          }),
      };
      return applyChangeRequest(store, request, { userAgent: 'proximation-deploy health check', ...(observer === undefined ? {} : { observer }) });
    },
  };
}
