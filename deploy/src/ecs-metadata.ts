/**
 * The upstream under which this ECS container is reachable from the proxies, read from the ECS task
 * metadata endpoint version 4, so a container can register itself at start-up
 * (`deploy register --upstream-from-ecs`). The ECS agent puts the endpoint's URL into every container
 * as ECS_CONTAINER_METADATA_URI_V4; `GET ${uri}` describes the container, `GET ${uri}/task` the task.
 *
 * By the container's network mode (`Networks[0].NetworkMode` of the container metadata):
 * - awsvpc (Fargate, or EC2 with a task ENI): the task's ENI address `Networks[0].IPv4Addresses[0]`
 *   and the container port; the proxies reach the task directly.
 * - bridge: `Networks[0].IPv4Addresses[0]` is the container's address on its host's Docker bridge
 *   (172.17.x.x), which no other host can reach, and the v4 metadata does not carry the host's address.
 *   So the address is the container instance's private IPv4 from EC2 instance metadata (IMDSv2:
 *   `PUT /latest/api/token`, then `GET /latest/meta-data/local-ipv4` at
 *   AWS_EC2_METADATA_SERVICE_ENDPOINT, default http://169.254.169.254), and the port is the host port
 *   Docker mapped the container port to (`Ports[].HostPort`; when IPv4 and IPv6 are bound separately,
 *   the IPv4 binding, `HostIp` 0.0.0.0). A bridge-mode container reaches IMDSv2 only if the instance's
 *   metadata hop limit is 2 or more. The agent reports dynamic host ports shortly after the container
 *   started, so a missing binding is awaited for up to `portWaitMs`.
 * - host: the instance's address as for bridge, and the host port (the container port itself).
 * The container port is `containerPort` if given, else the container's only TCP port in `Ports[]`.
 * Upstreams are plain http (`http://address:port`).
 *
 * Throws ProximationError ERR_ECS_METADATA (variable missing or malformed, endpoint unreachable or
 * answering something unexpected; names the URL and field) or ERR_ECS_PORT (no, several or unmapped
 * ports; says which ports exist and to use --container-port).
 */
import { isIPv4 } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { ProximationError, describeFetchFailure, formatDuration } from '@proximation/shared';

export interface EcsOptions {
  /** The port the app listens on inside the container; needed when it exposes several. */
  readonly containerPort?: number;
  /** How long to wait for the agent to report a bridge-mode host port; default 10 s. */
  readonly portWaitMs?: number;
}

export interface EcsUpstream {
  /** Such as http://10.0.2.100:8080. */
  readonly upstream: string;
  readonly taskArn: string;
  readonly container: string;
  readonly networkMode: string;
}

const REQUEST_TIMEOUT_MS = 2_000;
const DEFAULT_PORT_WAIT_MS = 10_000;
const PORT_POLL_MS = 250;
const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';

interface PortMapping {
  readonly containerPort: number;
  readonly hostPort: number | undefined;
  readonly hostIp: string | undefined;
}

interface Container {
  readonly name: string;
  readonly networkMode: string;
  readonly ipv4: string | undefined;
  /** TCP mappings only. */
  readonly ports: readonly PortMapping[];
}

export async function upstreamFromEcs(env: NodeJS.ProcessEnv, options: EcsOptions = {}): Promise<EcsUpstream> {
  const uri = metadataUri(env);
  const [task, first] = await Promise.all([getJson(`${uri}/task`), getJson(uri)]);
  const taskArn = readString(readObject(task, `${uri}/task`, 'the task metadata'), 'TaskARN', `${uri}/task`);
  let container = parseContainer(first, uri);
  const base = { taskArn, container: container.name, networkMode: container.networkMode };

  switch (container.networkMode) {
    case 'awsvpc': {
      if (container.ipv4 === undefined) throw metadataError(`${uri} lists no IPv4 address for container "${container.name}" (Networks[0].IPv4Addresses).`);
      const port = options.containerPort ?? onlyPort(container);
      return { ...base, upstream: `http://${container.ipv4}:${port}` };
    }
    case 'bridge':
    case 'host': {
      const deadline = Date.now() + (options.portWaitMs ?? DEFAULT_PORT_WAIT_MS);
      let port = hostPort(container, options.containerPort);
      while (port === undefined && Date.now() < deadline) {
        await delay(PORT_POLL_MS);
        container = parseContainer(await getJson(uri), uri);
        port = hostPort(container, options.containerPort);
      }
      if (port === undefined) {
        throw portError(
          `Container "${container.name}" (network mode ${container.networkMode}) has no host port mapped for ${options.containerPort === undefined ? 'its port' : `container port ${options.containerPort}`} ` +
            `in ${uri} after ${formatDuration(options.portWaitMs ?? DEFAULT_PORT_WAIT_MS)}${describePorts(container)}. ` +
            'Map the port the app listens on in the task definition (portMappings, hostPort 0 for a dynamic one), and pass --container-port if it maps several.',
        );
      }
      return { ...base, upstream: `http://${await instanceAddress(env)}:${port}` };
    }
    default:
      throw metadataError(
        `Container "${container.name}" uses network mode ${JSON.stringify(container.networkMode)} (${uri}); --upstream-from-ecs supports awsvpc, bridge and host. Pass --upstream instead.`,
      );
  }
}

function metadataUri(env: NodeJS.ProcessEnv): string {
  const value = env.ECS_CONTAINER_METADATA_URI_V4;
  if (value === undefined || value === '') {
    throw metadataError(
      'ECS_CONTAINER_METADATA_URI_V4 is not set, so this is not running in an ECS task (or its agent predates 1.39.0). Run it inside the task, or pass --upstream instead of --upstream-from-ecs.',
    );
  }
  if (!/^https?:\/\/[^\s]+$/.test(value) || !URL.canParse(value)) {
    throw metadataError(`ECS_CONTAINER_METADATA_URI_V4 is ${JSON.stringify(value)}, not an http URL such as http://169.254.170.2/v4/<id>.`);
  }
  return value.replace(/\/+$/, '');
}

/** The single TCP container port, for awsvpc where the container port is what the proxies connect to. */
function onlyPort(container: Container): number {
  const ports = [...new Set(container.ports.map((p) => p.containerPort))];
  if (ports.length === 1) return ports[0]!;
  throw portError(
    ports.length === 0
      ? `Container "${container.name}" reports no TCP port mappings; pass the port the app listens on with --container-port.`
      : `Container "${container.name}" maps several TCP ports (${ports.join(', ')}); choose the one the app serves on with --container-port.`,
  );
}

/** The host port for the chosen container port, or undefined while the agent has not reported it. */
function hostPort(container: Container, requested: number | undefined): number | undefined {
  const ports = [...new Set(container.ports.map((p) => p.containerPort))];
  if (requested === undefined && ports.length > 1) {
    throw portError(`Container "${container.name}" maps several TCP ports (${ports.join(', ')}); choose the one the app serves on with --container-port.`);
  }
  const port = requested ?? ports[0];
  const bindings = container.ports.filter((p) => p.containerPort === port && p.hostPort !== undefined && p.hostPort > 0);
  const ipv4 = bindings.find((p) => p.hostIp === undefined || p.hostIp === '' || p.hostIp === '0.0.0.0' || isIPv4(p.hostIp));
  const bound = (ipv4 ?? bindings[0])?.hostPort;
  // In host mode the container's ports are the host's, mapped or not.
  return bound ?? (container.networkMode === 'host' ? port : undefined);
}

function describePorts(container: Container): string {
  if (container.ports.length === 0) return ' (it reports no TCP port mappings)';
  const mappings = container.ports.map((p) => `${p.containerPort} -> ${p.hostPort === undefined ? 'none' : p.hostPort}`);
  return ` (its TCP port mappings: ${mappings.join(', ')})`;
}

/** The container instance's private IPv4 address, from EC2 instance metadata (IMDSv2). */
async function instanceAddress(env: NodeJS.ProcessEnv): Promise<string> {
  const endpoint = (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, '');
  const hint =
    'In bridge and host network mode deploy registers the instance\'s private address, which it reads from EC2 instance metadata (IMDSv2); ' +
    'let containers reach it (instance metadata hop limit 2 or more: HttpPutResponseHopLimit), or pass --upstream instead.';
  const tokenUrl = `${endpoint}/latest/api/token`;
  const token = await request(tokenUrl, { method: 'PUT', headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' } }, hint);
  const addressUrl = `${endpoint}/latest/meta-data/local-ipv4`;
  const address = (await request(addressUrl, { headers: { 'x-aws-ec2-metadata-token': token } }, hint)).trim();
  if (!isIPv4(address)) throw metadataError(`GET ${addressUrl} answered ${preview(address)}, not an IPv4 address. ${hint}`);
  return address;
}

async function getJson(url: string): Promise<unknown> {
  const text = await request(url, {}, 'Is deploy running inside the ECS task whose metadata it should read?');
  try {
    return JSON.parse(text);
  } catch {
    throw metadataError(`GET ${url} did not answer JSON: ${preview(text)}.`);
  }
}

async function request(url: string, init: RequestInit, hint: string): Promise<string> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  } catch (err) {
    throw metadataError(`${init.method ?? 'GET'} ${url} ${describeFetchFailure(err, REQUEST_TIMEOUT_MS)}. ${hint}`);
  }
  const text = await response.text();
  if (!response.ok) throw metadataError(`${init.method ?? 'GET'} ${url} answered ${response.status} ${response.statusText}: ${preview(text)}. ${hint}`);
  return text;
}

function parseContainer(value: unknown, url: string): Container {
  const container = readObject(value, url, 'the container metadata');
  const name = readString(container, 'Name', url);
  const networks = container.Networks;
  if (!Array.isArray(networks) || networks.length === 0) {
    throw metadataError(`${url}: container "${name}" has no Networks; --upstream-from-ecs needs its network mode. Pass --upstream instead.`);
  }
  const network = readObject(networks[0], url, 'Networks[0]');
  const networkMode = readString(network, 'NetworkMode', url, 'Networks[0].');
  const addresses = network.IPv4Addresses;
  const ipv4 = Array.isArray(addresses) && typeof addresses[0] === 'string' && isIPv4(addresses[0]) ? addresses[0] : undefined;
  const ports = container.Ports === undefined ? [] : container.Ports;
  if (!Array.isArray(ports)) throw metadataError(`${url}: Ports is ${preview(ports)}, expected an array.`);
  return { name, networkMode, ipv4, ports: ports.flatMap((port, i) => parsePort(port, url, i)) };
}

function parsePort(value: unknown, url: string, index: number): PortMapping[] {
  const port = readObject(value, url, `Ports[${index}]`);
  const protocol = port.Protocol ?? 'tcp';
  if (protocol !== 'tcp') return [];
  const number = (field: string): number | undefined => {
    const found = port[field];
    if (found === undefined) return undefined;
    if (Number.isInteger(found) && (found as number) >= 0 && (found as number) <= 65535) return found as number;
    throw metadataError(`${url}: Ports[${index}].${field} is ${preview(found)}, expected a port number.`);
  };
  const containerPort = number('ContainerPort');
  if (containerPort === undefined) throw metadataError(`${url}: Ports[${index}] has no ContainerPort.`);
  const hostIp = typeof port.HostIp === 'string' ? port.HostIp : undefined;
  return [{ containerPort, hostPort: number('HostPort'), hostIp }];
}

function readObject(value: unknown, url: string, what: string): Record<string, unknown> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  throw metadataError(`${url}: ${what} is ${preview(value)}, expected a JSON object.`);
}

function readString(object: Record<string, unknown>, field: string, url: string, prefix = ''): string {
  const value = object[field];
  if (typeof value === 'string' && value !== '') return value;
  throw metadataError(`${url}: ${prefix}${field} is ${value === undefined ? 'missing' : preview(value)}, expected a non-empty string.`);
}

function preview(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(JSON.stringify(value));
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function metadataError(message: string): ProximationError {
  return new ProximationError('ERR_ECS_METADATA', `Cannot use --upstream-from-ecs: ${message}`);
}

function portError(message: string): ProximationError {
  return new ProximationError('ERR_ECS_PORT', `Cannot use --upstream-from-ecs: ${message}`);
}
