/**
 * The wire format of the proxy's admin routing API, shared by the server (proximation) and its client
 * (deploy), so the two cannot disagree:
 *
 *   GET  /api/routes          → 200, the routing table as stored (routes.json), ETag "<generation>"
 *   POST /api/routes/changes  ← {"change": RoutingTableChange, "healthCheck"?: {"path", "timeoutMs"}}
 *                               (at most MAX_CHANGE_REQUEST_BYTES; optional If-Match: "<generation>")
 *                             → 200 {"table", "changed", "healthChecked"}, ETag of the new table
 *   errors                    → 4xx/5xx {"error": {"code", "message"}}, plus "results" (one per checked
 *                               upstream) for ERR_HEALTH_CHECK_FAILED
 *
 * The codes are the ProximationError codes of the operation, as in file mode. Parsers throw
 * ProximationError: `parseChangeRequest` ERR_INVALID_REQUEST naming each wrong field (for a 400);
 * `parseChangeResponse` what `validateRoutingTable` throws for the table, ERR_PROXY_RESPONSE for the
 * rest; `errorFromBody` never throws and returns undefined for a body that is not an error body.
 */
import * as z from 'zod';
import { ProximationError } from './errors.js';
import { HealthCheckFailedError } from './health-check.js';
import { routingChangeRequestSchema } from './health-gate.js';
import type { RoutingChangeRequest, RoutingChangeResult } from './health-gate.js';
import { validateRoutingTable } from './routing-table.js';
import type { RoutingTable } from './routing-table.js';
import { describeIssues } from './validation-issues.js';

export const ADMIN_ROUTES_PATH = '/api/routes';
export const ADMIN_CHANGES_PATH = '/api/routes/changes';
export const MAX_CHANGE_REQUEST_BYTES = 64 * 1024;

/** The ETag of a state of the routing table: its generation, quoted (a strong validator). */
export function routingTableETag(generation: number): string {
  return `"${generation}"`;
}

export function parseChangeRequest(value: unknown, source: string): RoutingChangeRequest {
  const result = routingChangeRequestSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  throw new ProximationError(
    'ERR_INVALID_REQUEST',
    `Invalid change request (${source}): ${describeIssues(result.error.issues, value)}. ` +
      'Send {"change": {"op": ..., ...}, "healthCheck"?: {"path", "timeoutMs"}}.',
  );
}

export interface ChangeResponseBody {
  readonly table: RoutingTable;
  readonly changed: boolean;
  readonly healthChecked: readonly string[];
}

// Responses are parsed leniently (unknown fields ignored) so that a newer proxy may add fields.
const changeResponseSchema = z.object({ table: z.unknown(), changed: z.boolean(), healthChecked: z.array(z.string()) });
const upstreamHealthSchema = z.object({ upstream: z.string(), healthy: z.boolean(), attempts: z.int(), outcome: z.string() });
const errorBodySchema = z.object({
  error: z.object({ code: z.string().regex(/^ERR_[A-Z0-9_]+$/), message: z.string(), results: z.array(upstreamHealthSchema).optional() }),
});

export function parseChangeResponse(value: unknown, source: string): RoutingChangeResult {
  const result = changeResponseSchema.safeParse(value);
  if (!result.success) {
    throw new ProximationError('ERR_PROXY_RESPONSE', `${source} answered with an unexpected body: ${describeIssues(result.error.issues, value)}.`);
  }
  return { table: validateRoutingTable(result.data.table, source), changed: result.data.changed, healthChecked: result.data.healthChecked };
}

export interface ErrorResponseBody {
  readonly error: { readonly code: string; readonly message: string; readonly results?: HealthCheckFailedError['results'] };
}

export function errorBody(err: ProximationError): ErrorResponseBody {
  return { error: { code: err.code, message: err.message, ...(err instanceof HealthCheckFailedError ? { results: err.results } : {}) } };
}

/** The ProximationError an error body describes (a HealthCheckFailedError when it lists results). */
export function errorFromBody(value: unknown): ProximationError | undefined {
  const result = errorBodySchema.safeParse(value);
  if (!result.success) return undefined;
  const { code, message, results } = result.data.error;
  return code === 'ERR_HEALTH_CHECK_FAILED' && results !== undefined ? new HealthCheckFailedError(message, results) : new ProximationError(code, message);
}
