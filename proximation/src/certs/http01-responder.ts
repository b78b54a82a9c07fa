/**
 * Answers HTTP-01 challenges for the HTTP listener from the shared challenge store, whichever instance
 * placed the token (RFC 8555 8.3). A token the store does not hold, or that is not base64url, is
 * unknown (undefined). A store that cannot be read is logged and treated as unknown: the CA then sees a
 * 404 and the order fails and is retried, which is all that could happen anyway.
 */
import { errorMessage } from '@proximation/shared';
import type { ChallengeLookup } from '../listeners/http-listener.js';
import type { Logger } from '../logger.js';
import type { ChallengeStore } from './challenge-store.js';

export function http01Responder(store: ChallengeStore, log: Logger): ChallengeLookup {
  return async (token) => {
    try {
      const keyAuthorization = await store.get('http-01', token);
      if (keyAuthorization !== undefined) log.info({ token }, 'answering an HTTP-01 challenge');
      return keyAuthorization;
    } catch (err) {
      log.error({ token, err: errorMessage(err) }, 'cannot read the HTTP-01 challenge store');
      return undefined;
    }
  };
}
