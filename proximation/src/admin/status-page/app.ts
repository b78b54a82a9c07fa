/**
 * The status page's script (runs in the browser; compiled by tsc into dist/admin/status-page/app.js,
 * served by status-page.ts). It asks for the admin token once and keeps it in sessionStorage (this tab
 * only, gone when the tab closes; never in a URL or cookie), sends it as a bearer header on every
 * request, polls GET /api/overview every POLL_MS and says when contact is lost. Every text from the
 * server is put in the page as text (textContent, attribute values), never as HTML. Actions (roll back,
 * activate, take a member out of rotation) are confirmed first and go through POST /api/routes/changes
 * as `deploy` sends them (activation and re-registration with deploy's default health check, a
 * rollback at once), marked as coming from the status page for the change log.
 */

const TOKEN_KEY = 'proximation-admin-token';
const POLL_MS = 2000;
const PAGE_SIZE = 25;
const HEALTH_CHECK = { path: '/', timeoutMs: 30_000 };

interface Point { at: number; requestsPerSecond: number; errorsPerSecond: number; p50Seconds: number | null; p99Seconds: number | null }
interface Member { upstream: string; identity?: string; leaseExpiresAt?: string; leaseAgeMs?: number; inFlight: number; websockets: number; lastRequestAt?: string; health: 'up' | 'down' | 'ejected' }
interface Version { name: string; active: boolean; registeredAt?: string; previewUrl?: string; members: Member[] }
interface Site { name: string; hosts: string[]; activeVersion: string | null; canRollBack?: boolean; versions: Version[] }
interface Instance { id: string; self: boolean; status?: string; startedAt: string; lastSeen: string; routesGeneration: number; workers: number; inFlight: number; rssBytes?: number; requestsPerSecond?: number; errorsPerSecond?: number }
interface Certificate { name: string; issuer: string | null; expiry: string | null; daysLeft: number | null; nextRenewal: string | null; nextAttempt: string | null; failures: number; lastError: string | null }
interface Change { generation: number; at: string; op: string; site?: string; version?: string; by: { user?: string; host?: string; peer?: string; userAgent?: string; via: string } }
interface Overview { generatedAt: string; instances: Instance[]; fleetProblem?: string; sites: Site[]; certificates: Certificate[]; changes: Change[]; history: Record<string, Point[]> }

class Refused extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;

type Child = Node | string | null | undefined;

function el(tag: string, attrs: Record<string, string> = {}, ...children: Child[]): HTMLElement {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function row(...cells: Child[]): HTMLElement {
  return el('tr', {}, ...cells.map((cell) => el('td', {}, cell)));
}

function fill(tableId: string, rows: HTMLElement[]): void {
  $(tableId).querySelector('tbody')!.replaceChildren(...rows);
}

const time = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleString() : '–');
const fixed = (n: number | undefined, digits = 1): string => (n === undefined ? '–' : n.toFixed(digits));

/** A duration for people: 42 s, 5 min, 3 h, 2 d. */
function span(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : s < 172_800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86_400)} d`;
}

/** How long before the overview was made `iso` was. */
const ago = (iso: string): string => span(Date.parse(overview!.generatedAt) - Date.parse(iso));

let token = sessionStorage.getItem(TOKEN_KEY);
let overview: Overview | undefined;
let page = 0;
let timer: number | undefined;

async function api(path: string, init: RequestInit = {}): Promise<unknown> {
  const response = await fetch(path, {
    ...init,
    cache: 'no-store',
    headers: { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${token ?? ''}`, accept: 'application/json' },
  });
  const body = (await response.json().catch(() => ({}))) as { error?: { message?: string } };
  if (!response.ok) throw new Refused(response.status, body.error?.message ?? `${response.status} ${response.statusText}`);
  return body;
}

function showLogin(message: string): void {
  if (timer !== undefined) clearTimeout(timer);
  timer = undefined;
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message;
  $('contact').textContent = 'signed out';
  $<HTMLInputElement>('token').focus();
}

function contact(ok: boolean, text: string): void {
  const badge = $('contact');
  badge.textContent = text;
  badge.classList.toggle('lost', !ok);
}

function filteredSites(): Site[] {
  const filter = $<HTMLInputElement>('filter').value.trim().toLowerCase();
  const sites = overview?.sites ?? [];
  return filter === '' ? sites : sites.filter((site) => site.name.includes(filter) || site.hosts.some((host) => host.includes(filter)));
}

function visibleSites(): Site[] {
  const sites = filteredSites();
  page = Math.min(page, Math.max(0, Math.ceil(sites.length / PAGE_SIZE) - 1));
  return sites.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
}

async function poll(): Promise<void> {
  timer = undefined;
  try {
    const names = visibleSites().map((site) => site.name).join(',');
    overview = (await api(`/api/overview?history=${encodeURIComponent(names)}`)) as Overview;
    render();
    contact(true, `live · updated ${new Date().toLocaleTimeString()}`);
  } catch (err) {
    if (err instanceof Refused && (err.status === 401 || err.status === 403)) {
      sessionStorage.removeItem(TOKEN_KEY);
      token = null;
      showLogin(err.status === 401 ? `The proxy refused this admin token: ${err.message}` : err.message);
      return;
    }
    contact(false, `contact lost since ${new Date().toLocaleTimeString()}: ${err instanceof Error ? err.message : String(err)}`);
  }
  timer = window.setTimeout(() => void poll(), POLL_MS);
}

function sitePlot(points: Point[]): SVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const [w, h] = [240, 48];
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'plot');
  svg.setAttribute('width', String(w));
  svg.setAttribute('height', String(h));
  svg.setAttribute('viewBox', `0 0 ${w} ${h}`);
  const line = (values: (number | null)[], cls: string): void => {
    const max = Math.max(...values.map((v) => v ?? 0), 1e-9);
    const d = values
      .map((v, i) => (v === null ? '' : `${i === 0 || values[i - 1] === null ? 'M' : 'L'}${((i / Math.max(values.length - 1, 1)) * w).toFixed(1)},${(h - 4 - (v / max) * (h - 14)).toFixed(1)}`))
      .join('');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('class', cls);
    path.setAttribute('d', d);
    svg.append(path);
  };
  line(points.map((p) => p.requestsPerSecond), 'rate');
  line(points.map((p) => p.p50Seconds), 'p50');
  line(points.map((p) => p.p99Seconds), 'p99');
  const last = points.at(-1);
  const label = document.createElementNS(ns, 'text');
  label.setAttribute('x', '2');
  label.setAttribute('y', '10');
  label.textContent =
    last === undefined ? 'no traffic data yet' : `${fixed(last.requestsPerSecond)} req/s · p50 ${last.p50Seconds === null ? '–' : `${(last.p50Seconds * 1000).toFixed(0)} ms`} · p99 ${last.p99Seconds === null ? '–' : `${(last.p99Seconds * 1000).toFixed(0)} ms`} (15 min)`;
  svg.append(label);
  return svg;
}

function actionButton(text: string, question: string, change: Record<string, unknown>): HTMLElement {
  const button = el('button', { type: 'button' }, text);
  button.addEventListener('click', () => {
    if (!window.confirm(question)) return;
    void act(change);
  });
  return button;
}

async function act(change: Record<string, unknown>): Promise<void> {
  const message = $('message');
  message.textContent = `Applying ${String(change.op)} on ${String(change.site)}…`;
  try {
    const result = (await api('/api/routes/changes', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'proximation-actor-via': 'status-page' },
      // As deploy: a change that sends traffic waits for the health check; a rollback goes back at once.
      body: JSON.stringify(change.op === 'rollback' ? { change } : { change, healthCheck: HEALTH_CHECK }),
    })) as { table: { generation: number } };
    message.textContent = `Done: ${String(change.op)} on ${String(change.site)}, now generation ${result.table.generation}.`;
  } catch (err) {
    message.textContent = `Refused: ${err instanceof Error ? err.message : String(err)}`;
  }
  if (timer !== undefined) clearTimeout(timer);
  await poll();
}

const HEALTH_TEXT: Record<Member['health'], string> = { up: 'healthy', down: 'failing health checks', ejected: 'ejected after connect failures' };

/** A member's lease: its age, or since when it ran out (the proxies stopped routing to it then). */
function leaseText(member: Member): string {
  if (member.leaseExpiresAt === undefined || member.leaseAgeMs === undefined) return 'static';
  const expiredFor = Date.parse(overview!.generatedAt) - Date.parse(member.leaseExpiresAt);
  return expiredFor >= 0 ? `lease expired ${span(expiredFor)} ago` : `lease renewed ${span(member.leaseAgeMs)} ago`;
}

/**
 * A member with its health (this instance's view), lease, traffic, and (while the version has others)
 * a button that takes it out of rotation: the version re-registered without it (deploy register
 * --replace), the remaining members health-checked first.
 */
function memberItem(site: Site, version: Version, member: Member): HTMLElement {
  const others = version.members.filter((m) => m.upstream !== member.upstream).map((m) => m.upstream);
  const lease = leaseText(member);
  return el(
    'li',
    { 'data-member': member.upstream },
    member.upstream,
    member.identity === undefined ? '' : ` (${member.identity})`,
    ' · ',
    el('span', { class: `health ${member.health}` }, HEALTH_TEXT[member.health]),
    ' · ',
    el('span', { class: lease.startsWith('lease expired') ? 'lease expired' : 'lease' }, lease),
    ` · ${member.inFlight} in flight${member.websockets === 0 ? '' : `, ${member.websockets} WebSocket(s)`}`,
    member.lastRequestAt === undefined ? '' : ` · last request ${ago(member.lastRequestAt)} ago`,
    ' ',
    others.length === 0
      ? null
      : actionButton('Take out of rotation', `Take ${member.upstream} out of ${site.name}/${version.name}? ${others.length} other member(s) keep serving it.`, {
          op: 'registerVersion',
          site: site.name,
          version: version.name,
          upstreams: others,
          activate: version.active,
          replace: true,
        }),
  );
}

function siteCard(site: Site, points: Point[]): HTMLElement {
  const versions = site.versions.map((version) =>
    el(
      'li',
      { class: version.active ? 'active' : '' },
      version.name,
      version.active ? ' (active)' : '',
      version.previewUrl === undefined ? null : el('span', {}, ' preview ', el('a', { href: version.previewUrl, rel: 'noreferrer' }, version.previewUrl)),
      ` registered ${time(version.registeredAt)} `,
      version.active ? null : actionButton('Activate', `Activate version ${version.name} of ${site.name}? Its upstreams are health-checked first.`, { op: 'activateVersion', site: site.name, version: version.name }),
      el('ul', {}, ...version.members.map((member) => memberItem(site, version, member))),
    ),
  );
  return el(
    'div',
    { class: 'site', 'data-site': site.name },
    el('h3', {}, site.name, ' ', el('small', {}, site.hosts.join(', '))),
    el('p', {}, 'active: ', el('span', { class: 'active-version' }, site.activeVersion ?? 'none'), ' ', site.canRollBack === true ? actionButton('Roll back', `Roll ${site.name} back to its previous version? This takes effect at once, as deploy rollback does.`, { op: 'rollback', site: site.name }) : null),
    el('div', { class: 'plots' }, sitePlot(points)),
    el('ul', {}, ...versions),
  );
}

function render(): void {
  if (overview === undefined) return;
  const { history } = overview;
  const visible = visibleSites();
  fill(
    'instances',
    overview.instances.map((instance) => {
      const tr = row(
        el('span', {}, instance.id, instance.self ? el('strong', { class: 'self' }, ' (this instance)') : null),
        instance.status ?? 'live',
        `up ${ago(instance.startedAt)}`,
        `${ago(instance.lastSeen)} ago`,
        String(instance.routesGeneration),
        String(instance.workers),
        fixed(instance.requestsPerSecond),
        fixed(instance.errorsPerSecond, 2),
        String(instance.inFlight),
        instance.rssBytes === undefined ? '–' : `${(instance.rssBytes / 2 ** 20).toFixed(0)} MiB`,
      );
      tr.dataset.instance = instance.id;
      return tr;
    }),
  );
  $('fleet-problem').textContent = overview.fleetProblem ?? '';
  const total = filteredSites().length;
  $('page').textContent = `${total === 0 ? 0 : page * PAGE_SIZE + 1}–${Math.min(total, (page + 1) * PAGE_SIZE)} of ${total}`;
  $('sites').replaceChildren(...visible.map((site) => siteCard(site, history[site.name] ?? [])));
  fill(
    'certificates',
    overview.certificates.map((c) =>
      row(c.name, c.issuer ?? '–', time(c.expiry), c.daysLeft === null ? '–' : String(c.daysLeft), time(c.nextRenewal), String(c.failures), c.lastError === null ? '' : el('span', { class: 'error' }, c.lastError), c.nextAttempt === null ? '' : `not before ${time(c.nextAttempt)}`),
    ),
  );
  fill(
    'changes',
    overview.changes.slice(0, 20).map((c) => {
      const who = [c.by.user, c.by.host === undefined ? undefined : `on ${c.by.host}`, `via ${c.by.via}`, c.by.peer === undefined ? undefined : `from ${c.by.peer}`, c.by.userAgent === undefined ? undefined : `(${c.by.userAgent})`];
      return row(String(c.generation), time(c.at), c.op, c.site ?? '', c.version ?? '', who.filter((part) => part !== undefined).join(' '));
    }),
  );
}

function start(): void {
  $('login').hidden = true;
  $('main').hidden = false;
  void poll();
}

$('login').addEventListener('submit', (event) => {
  event.preventDefault();
  token = $<HTMLInputElement>('token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $<HTMLInputElement>('token').value = '';
  start();
});
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  token = null;
  showLogin('');
});
$('filter').addEventListener('input', () => {
  page = 0;
  render();
});
$('prev').addEventListener('click', () => {
  page = Math.max(0, page - 1);
  render();
});
$('next').addEventListener('click', () => {
  page += 1;
  render();
});

if (token === null) showLogin('');
else start();
