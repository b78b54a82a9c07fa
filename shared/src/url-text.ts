/**
 * Why the WHATWG URL parser refused a text, in words a user can act on. `new URL` throws one
 * "Invalid URL" for every fault; the one users hit most (a port above 65535) deserves its own words.
 * Pure; never throws.
 */
const AUTHORITY_PORT = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(?:\[[^\]]*\]|[^:/?#]*):(\d+)(?:[/?#]|$)/;

/** The problem with `text`, which `new URL(text)` refused, such as "its port 70000 is out of range (1 to 65535)". */
export function urlParseProblem(text: string): string {
  const port = AUTHORITY_PORT.exec(text)?.[1];
  if (port !== undefined && Number(port) > 65535) return `its port ${port} is out of range (1 to 65535)`;
  return 'it is not an absolute URL';
}
