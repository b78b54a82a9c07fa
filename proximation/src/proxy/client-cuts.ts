/**
 * Why the proxy itself cut a client connection or HTTP/2 stream while an exchange on it was unfinished,
 * so that the access log names the timeout (or the drain) instead of saying the client went away.
 *
 * The listeners mark the connection (an HTTP/1.1 socket or an HTTP/2 session) or the stream just before
 * they close it, or as Node closes it for them (the request timeout); a session's streams are marked
 * with it, because a destroyed stream forgets its session. `cutOf` reads the mark of a request's stream
 * or socket when the exchange ends. Marks live as long as what they mark
 * (weak keys); a later mark replaces an earlier one. Nothing here throws.
 */
import type { IncomingMessage } from 'node:http';
import type { ProxyRequest } from './types.js';

/**
 * - `idle`: PROXIMATION_IDLE_TIMEOUT passed with nothing moving while the proxy waited on the client
 *   (between requests, a response the client stopped reading, an upload it stopped sending);
 * - `body`: PROXIMATION_REQUEST_TIMEOUT passed before the request body was complete;
 * - `drain`: the shutdown's PROXIMATION_DRAIN_TIMEOUT passed.
 */
export type ClientCut = 'idle' | 'body' | 'drain';

/** The setting behind each cut, for messages that tell an operator what to change. */
export const CUT_SETTINGS: Readonly<Record<ClientCut, string>> = {
  idle: 'PROXIMATION_IDLE_TIMEOUT',
  body: 'PROXIMATION_REQUEST_TIMEOUT',
  drain: 'PROXIMATION_DRAIN_TIMEOUT',
};

const marks = new WeakMap<object, ClientCut>();

/** Marks a socket, session or stream as cut by the proxy for `cut`. */
export function markCut(target: object, cut: ClientCut): void {
  marks.set(target, cut);
}

/** Why the proxy cut this request's stream or connection, if it did. */
export function cutOf(req: ProxyRequest | IncomingMessage): ClientCut | undefined {
  return marks.get('stream' in req ? req.stream : req.socket);
}
