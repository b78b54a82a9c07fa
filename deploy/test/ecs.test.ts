import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { findSite, readRoutingTableFile } from '@proximation/shared';
import { upstreamFromEcs } from '../src/ecs-metadata.js';
import { deploy, deployOk, routesWithDev, startServer, upstream } from './helpers.js';

/** A fixture from test/fixtures/ecs (container and task metadata in the v4 format, after the AWS docs). */
async function fixture(name: string): Promise<any> {
  return JSON.parse(await readFile(new URL(`fixtures/ecs/${name}.json`, import.meta.url), 'utf8'));
}

const TASK_ID = '8f03e412-4382-4aea-923a-ca126495f665';
const TOKEN = 'AQAEAFTNrA4eEGx0AQgJ1arIq_Cc-t4tWt3fB0Hd8RKhXlKc5ccvhg==';

interface Metadata {
  /** The container metadata to serve; called per request, so it may change between requests. */
  container: () => unknown;
  task: unknown;
  /** What IMDS answers for local-ipv4; undefined: IMDS refuses the token request. */
  instanceAddress?: string;
}

/** The ECS agent's task metadata endpoint and EC2 instance metadata (IMDSv2) on 127.0.0.1; resolves to the env deploy reads. */
async function ecsEnvironment(metadata: Metadata): Promise<{ env: NodeJS.ProcessEnv; requests: string[] }> {
  const server = await startServer((req, res) => {
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === `/v4/${TASK_ID}`) return json(200, metadata.container());
    if (req.method === 'GET' && req.url === `/v4/${TASK_ID}/task`) return json(200, metadata.task);
    if (req.method === 'PUT' && req.url === '/latest/api/token' && req.headers['x-aws-ec2-metadata-token-ttl-seconds'] !== undefined && metadata.instanceAddress !== undefined) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(TOKEN);
    }
    if (req.method === 'GET' && req.url === '/latest/meta-data/local-ipv4' && req.headers['x-aws-ec2-metadata-token'] === TOKEN) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end(metadata.instanceAddress);
    }
    res.writeHead(req.url?.startsWith('/latest') === true ? 401 : 404, { 'content-type': 'text/plain' });
    res.end('no\n');
  });
  return {
    env: { ECS_CONTAINER_METADATA_URI_V4: `${server.origin}/v4/${TASK_ID}`, AWS_EC2_METADATA_SERVICE_ENDPOINT: server.origin },
    requests: server.requests,
  };
}

async function expectEcsError(promise: Promise<unknown>, code: string, ...fragments: string[]): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toMatchObject({ code });
  for (const fragment of fragments) expect((error as Error).message).toContain(fragment);
}

describe('upstreamFromEcs', () => {
  it('awsvpc: the task ENI address and the container port, without asking EC2 instance metadata', async () => {
    const container = await fixture('awsvpc-container');
    const { env, requests } = await ecsEnvironment({ container: () => container, task: await fixture('awsvpc-task') });
    expect(await upstreamFromEcs(env)).toEqual({
      upstream: 'http://10.0.2.100:8080',
      taskArn: 'arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665',
      container: 'noms-main',
      networkMode: 'awsvpc',
    });
    expect(requests.sort()).toEqual([`GET /v4/${TASK_ID}`, `GET /v4/${TASK_ID}/task`]);
  });

  it('awsvpc: --container-port when the container reports no port mappings', async () => {
    const container = await fixture('awsvpc-container');
    delete container.Ports;
    const { env } = await ecsEnvironment({ container: () => container, task: await fixture('awsvpc-task') });
    await expectEcsError(upstreamFromEcs(env), 'ERR_ECS_PORT', 'Container "noms-main" reports no TCP port mappings; pass the port the app listens on with --container-port.');
    expect((await upstreamFromEcs(env, { containerPort: 3000 })).upstream).toBe('http://10.0.2.100:3000');
  });

  it('bridge: the instance address from IMDSv2 and the IPv4 host port, not the Docker bridge address', async () => {
    const container = await fixture('bridge-container');
    const { env, requests } = await ecsEnvironment({ container: () => container, task: await fixture('bridge-task'), instanceAddress: '10.0.1.23\n' });
    expect(await upstreamFromEcs(env)).toEqual({
      upstream: 'http://10.0.1.23:32768',
      taskArn: 'arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c',
      container: 'noms-main',
      networkMode: 'bridge',
    });
    expect(requests).toContain('PUT /latest/api/token');
    expect(requests).toContain('GET /latest/meta-data/local-ipv4');
  });

  it('bridge: waits for the agent to report a dynamic host port', async () => {
    const container = await fixture('bridge-container');
    const { Ports: ports, ...unmapped } = container;
    let served = 0;
    const { env } = await ecsEnvironment({ container: () => (++served < 3 ? unmapped : { ...unmapped, Ports: ports }), task: await fixture('bridge-task'), instanceAddress: '10.0.1.23' });
    expect((await upstreamFromEcs(env, { portWaitMs: 5_000 })).upstream).toBe('http://10.0.1.23:32768');
    expect(served).toBe(3);
  });

  it('bridge: fails when the port stays unmapped, listing the mappings', async () => {
    const container = await fixture('bridge-container');
    const { env } = await ecsEnvironment({ container: () => container, task: await fixture('bridge-task'), instanceAddress: '10.0.1.23' });
    await expectEcsError(
      upstreamFromEcs(env, { containerPort: 9090, portWaitMs: 300 }),
      'ERR_ECS_PORT',
      'Container "noms-main" (network mode bridge) has no host port mapped for container port 9090',
      'after 300ms (its TCP port mappings: 8080 -> 32768, 8080 -> 32769)',
      'Map the port the app listens on in the task definition',
    );
  });

  it('asks for --container-port when the container maps several ports, and uses it', async () => {
    const container = await fixture('bridge-container');
    container.Ports.push({ ContainerPort: 9090, Protocol: 'tcp', HostPort: 32770, HostIp: '0.0.0.0' }, { ContainerPort: 53, Protocol: 'udp', HostPort: 32771 });
    const { env } = await ecsEnvironment({ container: () => container, task: await fixture('bridge-task'), instanceAddress: '10.0.1.23' });
    await expectEcsError(upstreamFromEcs(env), 'ERR_ECS_PORT', 'Container "noms-main" maps several TCP ports (8080, 9090); choose the one the app serves on with --container-port.');
    expect((await upstreamFromEcs(env, { containerPort: 9090 })).upstream).toBe('http://10.0.1.23:32770');
  });

  it('host: the instance address and the container port', async () => {
    const container = await fixture('bridge-container');
    container.Networks = [{ NetworkMode: 'host' }];
    container.Ports = [{ ContainerPort: 8080, Protocol: 'tcp', HostPort: 8080 }];
    const { env } = await ecsEnvironment({ container: () => container, task: await fixture('bridge-task'), instanceAddress: '10.0.1.23' });
    expect(await upstreamFromEcs(env)).toMatchObject({ upstream: 'http://10.0.1.23:8080', networkMode: 'host' });
  });

  it('explains what is wrong with the environment or the metadata', async () => {
    await expectEcsError(upstreamFromEcs({}), 'ERR_ECS_METADATA', 'ECS_CONTAINER_METADATA_URI_V4 is not set', 'pass --upstream instead');
    await expectEcsError(upstreamFromEcs({ ECS_CONTAINER_METADATA_URI_V4: '169.254.170.2/v4/x' }), 'ERR_ECS_METADATA', 'not an http URL');

    const container = await fixture('bridge-container');
    const { env } = await ecsEnvironment({ container: () => container, task: await fixture('bridge-task') });
    await expectEcsError(upstreamFromEcs(env), 'ERR_ECS_METADATA', `PUT ${env.AWS_EC2_METADATA_SERVICE_ENDPOINT}/latest/api/token answered 401 Unauthorized`, 'HttpPutResponseHopLimit');
    await expectEcsError(upstreamFromEcs({ ...env, ECS_CONTAINER_METADATA_URI_V4: `${env.AWS_EC2_METADATA_SERVICE_ENDPOINT}/v4/other` }), 'ERR_ECS_METADATA', '/v4/other/task answered 404 Not Found');

    const none = { ...container, Networks: [{ NetworkMode: 'none' }] };
    const { env: noneEnv } = await ecsEnvironment({ container: () => none, task: await fixture('bridge-task') });
    await expectEcsError(upstreamFromEcs(noneEnv), 'ERR_ECS_METADATA', 'uses network mode "none"', 'supports awsvpc, bridge and host');

    const { env: badEnv } = await ecsEnvironment({ container: () => ({ ...container, Ports: [{ ContainerPort: 'http' }] }), task: await fixture('bridge-task') });
    await expectEcsError(upstreamFromEcs(badEnv), 'ERR_ECS_METADATA', 'Ports[0].ContainerPort is "http", expected a port number.');
  });
});

/** An awsvpc task whose address is 127.0.0.1 and whose app is `app`: the environment deploy reads. */
async function awsvpcTaskOf(app: { port: number }): Promise<NodeJS.ProcessEnv> {
  const container = await fixture('awsvpc-container');
  container.Networks[0].IPv4Addresses = ['127.0.0.1'];
  container.Ports = [{ ContainerPort: app.port, Protocol: 'tcp', HostPort: app.port }];
  return (await ecsEnvironment({ container: () => container, task: await fixture('awsvpc-task') })).env;
}

describe('deploy register --upstream-from-ecs', () => {
  it('registers the awsvpc task itself and activates it once it answers', async () => {
    const routes = await routesWithDev();
    const app = await upstream(200);
    const env = await awsvpcTaskOf(app);
    const result = JSON.parse(await deployOk(['register', '--tag', 'devbuild-42', '--upstream-from-ecs', '--json', '--routes', routes], env));
    expect(result).toMatchObject({
      upstreams: [app.origin],
      activation: 'activated',
      healthChecked: [app.origin],
      ecs: { upstream: app.origin, networkMode: 'awsvpc', container: 'noms-main', taskArn: 'arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665' },
      // A task registering itself gets the 30 s lease unless --lease says otherwise.
      lease: { identity: 'arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665', leaseMs: 30_000 },
    });
    expect(app.requests).toEqual(['GET /']);
  });

  it('lets the bridge-mode tasks of one version join it one by one', async () => {
    const routes = await routesWithDev();
    const task = await fixture('bridge-task');
    const apps = [await upstream(200), await upstream(200)];
    for (const app of apps) {
      const container = await fixture('bridge-container');
      container.Ports = [{ ContainerPort: 8080, Protocol: 'tcp', HostPort: app.port, HostIp: '0.0.0.0' }];
      const { env } = await ecsEnvironment({ container: () => container, task, instanceAddress: '127.0.0.1' });
      await deployOk(['register', '--tag', 'devbuild-42', '--upstream-from-ecs', '--join', '--routes', routes], env);
    }
    const dev = findSite(await readRoutingTableFile(routes), 'dev');
    expect(dev).toMatchObject({ activeVersion: 'devbuild-42', versions: [{ name: 'devbuild-42', upstreams: apps.map((a) => a.origin) }] });
    for (const app of apps) expect(app.requests).toEqual(['GET /']);
  });

  it('leases the task under its task ARN; deregister --upstream-from-ecs leaves only as that task, and refuses a reused address held by another identity', async () => {
    const routes = await routesWithDev();
    const app = await upstream(200);
    const env = await awsvpcTaskOf(app);
    const arn = 'arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665';
    // The address was registered by another task first, whose lease still runs.
    await deployOk(['register', '--tag', 'devbuild-41', '--upstream', app.origin, '--lease', '30s', '--identity', 'arn:other-task', '--no-health-check', '--routes', routes]);
    const refused = await deploy(['register', '--tag', 'devbuild-42', '--upstream-from-ecs', '--lease', '30s', '--routes', routes], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`as ${arn}: the address is a member of dev/devbuild-41 registered by arn:other-task`);
    const notMine = await deploy(['deregister', '--tag', 'devbuild-41', '--upstream-from-ecs', '--routes', routes], env);
    expect(notMine.code).toBe(1);
    expect(notMine.stderr).toContain('it was registered by arn:other-task');
    await deployOk(['deregister', '--tag', 'devbuild-41', '--upstream', app.origin, '--routes', routes]);
    const result = JSON.parse(await deployOk(['register', '--tag', 'devbuild-42', '--upstream-from-ecs', '--lease', '1m', '--json', '--routes', routes], env));
    expect(result.lease).toEqual({ identity: arn, leaseMs: 60_000 });
    await deployOk(['deregister', '--tag', 'devbuild-42', '--upstream-from-ecs', '--routes', routes], env);
    expect(findSite(await readRoutingTableFile(routes), 'dev').versions.find((v) => v.name === 'devbuild-42')).toMatchObject({ upstreams: [], members: [] });
  });

  it('exits 1 without touching the routing table when the metadata cannot be read', async () => {
    const routes = await routesWithDev();
    const before = await readFile(routes, 'utf8');
    const result = await deploy(['register', '--tag', 'devbuild-42', '--upstream-from-ecs', '--routes', routes]);
    expect(result).toMatchObject({ code: 1, stdout: '' });
    expect(result.stderr).toContain('deploy: Cannot use --upstream-from-ecs: ECS_CONTAINER_METADATA_URI_V4 is not set');
    expect(await readFile(routes, 'utf8')).toBe(before);
  });
});
