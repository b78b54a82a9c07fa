/**
 * The status page's static parts on the admin listener: `GET /` (the HTML shell), `GET
 * /status/app.js` (the page's script, compiled by tsc from status-page/app.ts into
 * dist/admin/status-page/app.js, read once at start; a build without it fails at start with ENOENT) and `GET /status/app.css`. They need no token: they hold no data; the script asks
 * for the token and sends it as a bearer header to `GET /api/overview` and the routing API.
 *
 * Every answer carries a strict Content-Security-Policy (scripts and styles from this origin only, no
 * inline script, connections to this origin only, no framing), `X-Content-Type-Options: nosniff`,
 * `Referrer-Policy: no-referrer` and `Cache-Control: no-store`. `handle` answers true when it served
 * the request.
 */
import { readFileSync } from 'node:fs';
import type http from 'node:http';

export const STATUS_PAGE_HEADERS: Readonly<http.OutgoingHttpHeaders> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>proximation status</title>
<link rel="stylesheet" href="/status/app.css">
<script type="module" src="/status/app.js"></script>
</head>
<body>
<header><h1>proximation</h1><span id="contact" class="contact">connecting</span><button id="forget" type="button">Forget token</button></header>
<form id="login" hidden><label>Admin token <input id="token" type="password" autocomplete="off" required></label> <button type="submit">Open</button><p id="login-error" class="error" role="alert"></p></form>
<main id="main" hidden>
<section><h2>Instances</h2><table id="instances"><thead><tr><th>Instance</th><th>Status</th><th>Age</th><th>Heartbeat</th><th>Generation</th><th>Workers</th><th>Requests/s</th><th>Errors/s</th><th>In flight</th><th>RSS</th></tr></thead><tbody></tbody></table><p id="fleet-problem" class="error" role="alert"></p></section>
<section><h2>Sites <input id="filter" type="search" placeholder="filter by name or host"> <span id="pager"><button id="prev" type="button">&lsaquo;</button> <span id="page"></span> <button id="next" type="button">&rsaquo;</button></span></h2><div id="sites"></div></section>
<section><h2>Certificates</h2><table id="certificates"><thead><tr><th>Name</th><th>Issuer</th><th>Expires</th><th>Days left</th><th>Next renewal</th><th>Failures</th><th>Last error</th><th>Backoff</th></tr></thead><tbody></tbody></table></section>
<section><h2>Recent changes</h2><table id="changes"><thead><tr><th>Generation</th><th>When</th><th>Change</th><th>Site</th><th>Version</th><th>By</th></tr></thead><tbody></tbody></table></section>
</main>
<p id="message" class="message" role="status"></p>
</body>
</html>
`;

const CSS = `body{font:14px/1.4 system-ui,sans-serif;margin:0 1.5em;color:#1d2228}
header{display:flex;gap:1em;align-items:baseline}h1{font-size:1.3em}h2{font-size:1.05em;margin-top:1.6em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.25em .6em;border-bottom:1px solid #dde1e6;vertical-align:top}
th{font-weight:600;background:#f3f5f7}.contact{padding:.1em .6em;border-radius:1em;background:#e6f4ea}
.contact.lost{background:#fde7e9;color:#8a1020;font-weight:600}.error{color:#8a1020}.message{color:#8a1020;font-weight:600}
.site{border:1px solid #dde1e6;border-radius:6px;padding:.5em .8em;margin:.6em 0}.site h3{margin:0;font-size:1em}
.active{font-weight:600;color:#0b6b2b}li.active li{font-weight:400;color:#1d2228}.self{color:#1a63c9}.health.down,.health.ejected,.lease.expired{color:#8a1020;font-weight:600}.plots{display:flex;gap:1em}.plot{border:1px solid #eef0f2}.plot text{font-size:10px;fill:#555}
.plot .rate{stroke:#1a63c9;fill:none}.plot .p50{stroke:#0b6b2b;fill:none}.plot .p99{stroke:#b0560b;fill:none}
button{font:inherit}dialog::backdrop{background:rgba(0,0,0,.3)}
`;

export class StatusPage {
  private readonly script: string;

  constructor() {
    // From the package root, so the same path holds whether this module runs from dist/ or (tests) src/.
    this.script = readFileSync(new URL('../../dist/admin/status-page/app.js', import.meta.url), 'utf8');
  }

  handle(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    if (path === '/favicon.ico') {
      // Browsers ask for it unprompted; a 404 would be a console error on every load.
      res.writeHead(204, STATUS_PAGE_HEADERS);
      res.end();
      return true;
    }
    const asset =
      path === '/' ? { type: 'text/html; charset=utf-8', body: HTML }
      : path === '/status/app.js' ? { type: 'text/javascript; charset=utf-8', body: this.script }
      : path === '/status/app.css' ? { type: 'text/css; charset=utf-8', body: CSS }
      : undefined;
    if (asset === undefined) return false;
    res.writeHead(200, { ...STATUS_PAGE_HEADERS, 'content-type': asset.type, 'content-length': Buffer.byteLength(asset.body) });
    res.end(req.method === 'HEAD' ? undefined : asset.body);
    return true;
  }
}
