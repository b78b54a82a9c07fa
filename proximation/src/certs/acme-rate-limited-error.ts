/**
 * The ACME CA's "too many requests" (HTTP 429), with when it allows the next attempt. A module of its own
 * so that the certificate manager can read `retryAfter` without loading the ACME client: a local-CA
 * process never does.
 */
import { ProximationError } from '@proximation/shared';

export class AcmeRateLimitedError extends ProximationError {
  constructor(
    message: string,
    /** When the CA allows the next attempt, from its Retry-After header; undefined without one. */
    readonly retryAfter: Date | undefined,
  ) {
    super('ERR_ACME_RATE_LIMITED', message);
  }
}
