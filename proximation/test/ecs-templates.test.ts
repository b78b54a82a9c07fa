/**
 * ecs/proximation.cfn.yaml and ecs/task-definition.json, held against the image (Dockerfile.proximation)
 * and the program itself, without an AWS account:
 * - the template is well formed (references, conditions, resource types, no unused parameter);
 * - the container listens where the task definition, the load balancer and the security groups send
 *   traffic (ports computed by the program's own loadConfig from the image's ENV plus the task's
 *   environment), mounts the image's VOLUME as the letsencrypt directory, through an EFS access point
 *   whose uid/gid is the image's user, and gets a stopTimeout above the drain timeout;
 * - every variable it sets is a setting proximation reads, with a value loadConfig accepts;
 * - the health check is the image's, and run for real it passes against a running proximation's admin
 *   listener and fails without one;
 * - the scheduled renewal runs the service's container with a command the CLI's own parser accepts
 *   (run in-process, stopped by an unreadable routing table before anything could reach a CA);
 * - the standalone task definition is the template's, placeholders substituted, and docs/operations.md
 *   explains each placeholder and variable.
 * Each check lists problems instead of asserting, so the last test shows each one catching the mistake
 * it is there for.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SETTINGS, loadConfig, type Config } from '../src/config.js';
import { evaluate, parseTemplate, templateProblems, type Json, type JsonObject, type Template, type Values } from './support/cloudformation.js';
import { readImageConfig, type ImageConfig } from './support/dockerfile.js';
import { managed, table, tempDir, writeRoutes } from './support/fixtures.js';
import { freePorts, runMain } from './support/process.js';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../', import.meta.url));
const read = (file: string): Promise<string> => fs.readFile(path.join(repo, file), 'utf8');
const resources = managed();

const TEMPLATE_FILE = 'ecs/proximation.cfn.yaml';
const template = parseTemplate(await read(TEMPLATE_FILE), TEMPLATE_FILE);
const image = readImageConfig(await read('Dockerfile.proximation'));
const standalone = JSON.parse(await read('ecs/task-definition.json')) as TaskDefinition;
const standaloneApp = JSON.parse(await read('ecs/app-task-definition.json')) as TaskDefinition;
const operationsGuide = await read('docs/operations.md');

/** The resource types the template may use, with the attributes Fn::GetAtt may read from each. */
const RESOURCE_TYPES: Record<string, readonly string[]> = {
  'AWS::EC2::SecurityGroup': ['GroupId', 'VpcId'],
  'AWS::EC2::SecurityGroupIngress': [],
  'AWS::ECS::Service': ['Name', 'ServiceArn'],
  'AWS::ECS::TaskDefinition': ['TaskDefinitionArn'],
  'AWS::EFS::AccessPoint': ['AccessPointId', 'Arn'],
  'AWS::EFS::FileSystem': ['Arn', 'FileSystemId'],
  'AWS::EFS::MountTarget': ['IpAddress'],
  'AWS::ElasticLoadBalancingV2::Listener': ['ListenerArn'],
  'AWS::ElasticLoadBalancingV2::LoadBalancer': ['CanonicalHostedZoneID', 'DNSName', 'LoadBalancerArn', 'LoadBalancerFullName'],
  'AWS::ElasticLoadBalancingV2::TargetGroup': ['TargetGroupArn', 'TargetGroupFullName'],
  'AWS::IAM::Role': ['Arn', 'RoleId'],
  'AWS::Logs::LogGroup': ['Arn'],
  'AWS::Scheduler::Schedule': ['Arn'],
};

/**
 * What ecs/task-definition.json has where the template has a parameter, a resource or a pseudo
 * parameter (other parameters take their defaults); docs/operations.md explains each.
 */
const PLACEHOLDERS: Values = {
  parameters: {
    ImageUri: '<IMAGE_URI>',
    AcmeEmail: '<ACME_EMAIL>',
    AdminTokenSecretArn: '<ADMIN_TOKEN_SECRET_ARN>',
    FileSystemId: '<EFS_FILE_SYSTEM_ID>',
    AppImageUri: '<APP_IMAGE_URI>',
    AppTag: '<APP_TAG>',
  },
  resources: {
    'AppTaskRole.Arn': '<APP_TASK_ROLE_ARN>',
    FileSystem: '<EFS_FILE_SYSTEM_ID>',
    AccessPoint: '<EFS_ACCESS_POINT_ID>',
    LogGroup: '<LOG_GROUP>',
    'ExecutionRole.Arn': '<EXECUTION_ROLE_ARN>',
    'TaskRole.Arn': '<TASK_ROLE_ARN>',
  },
  pseudo: { 'AWS::StackName': 'proximation', 'AWS::Region': '<AWS_REGION>' },
};
/** Values an operator would put in place of the placeholders that reach proximation's settings. */
const PLACEHOLDER_EXAMPLES: Record<string, string> = { '<ACME_EMAIL>': 'ops@example.com' };
/** A secret's value as docs/operations.md has it made: `openssl rand -hex 32`. */
const SECRET_EXAMPLE = randomBytes(32).toString('hex');

/**
 * The docker-library `node` images create their `node` user and group with id 1000
 * (`groupadd --gid 1000 node && useradd --uid 1000 --gid node`); USER names it, ECS and EFS need numbers.
 */
const NODE_IMAGE_USERS: Record<string, { uid: number; gid: number }> = { node: { uid: 1000, gid: 1000 } };

// --- The ECS API's shape of a task definition (ecs/task-definition.json, and the template's, converted) ---

interface ContainerDefinition {
  name: string;
  image: string;
  entryPoint?: string[];
  command?: string[];
  portMappings?: { containerPort: number; protocol?: string }[];
  environment?: { name: string; value: string }[];
  secrets?: { name: string; valueFrom: string }[];
  mountPoints?: { sourceVolume: string; containerPath: string; readOnly?: boolean }[];
  healthCheck?: { command: string[]; interval?: number; timeout?: number; retries?: number; startPeriod?: number };
  stopTimeout?: number;
  logConfiguration?: { logDriver: string; options?: Record<string, string> };
  [key: string]: unknown;
}

interface TaskDefinition {
  family: string;
  volumes?: { name: string; efsVolumeConfiguration?: { fileSystemId: string; transitEncryption?: string; authorizationConfig?: { accessPointId?: string; iam?: string } } }[];
  containerDefinitions: ContainerDefinition[];
  [key: string]: unknown;
}

/** CloudFormation's property names where they are not the API's with a capital first letter. */
const API_NAMES: Record<string, string> = { EFSVolumeConfiguration: 'efsVolumeConfiguration', FilesystemId: 'fileSystemId', IAM: 'iam' };

/** A CloudFormation AWS::ECS::TaskDefinition's properties in the API's (and the JSON file's) shape. */
function apiShape(node: Json): Json {
  if (Array.isArray(node)) return node.map(apiShape);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node).map(([key, value]) => [
      API_NAMES[key] ?? key.charAt(0).toLowerCase() + key.slice(1),
      // Log driver options are named by the driver, not by ECS.
      key === 'Options' ? value : apiShape(value),
    ]),
  );
}

function resourceOfType(t: Template, type: string): [string, JsonObject] {
  const found = Object.entries(t.Resources).filter(([, r]) => r.Type === type);
  if (found.length !== 1) throw new Error(`${TEMPLATE_FILE}: expected one ${type}, found ${found.length}`);
  const [name, resource] = found[0]!;
  return [name, resource.Properties as JsonObject];
}

/** The proxies' ECS service (the other one, AppService, runs the app). */
function proxyService(t: Template): JsonObject {
  const service = t.Resources.Service;
  if (service?.Type !== 'AWS::ECS::Service') throw new Error(`${TEMPLATE_FILE}: no AWS::ECS::Service named Service`);
  return service.Properties as JsonObject;
}

/** The resource a `{ Ref: name }` property names. */
function referenced(t: Template, ref: Json | undefined): JsonObject {
  const name = (ref as { Ref?: string } | undefined)?.Ref;
  const resource = name === undefined ? undefined : t.Resources[name];
  if (resource === undefined) throw new Error(`${TEMPLATE_FILE}: ${JSON.stringify(ref)} is no reference to a resource`);
  return resource.Properties as JsonObject;
}

function taskDefinitionOf(t: Template, properties: JsonObject): TaskDefinition {
  return apiShape(evaluate(t, properties, PLACEHOLDERS)) as unknown as TaskDefinition;
}

/** The task definition the ECS service runs. */
function serviceTaskDefinition(t: Template): TaskDefinition {
  return taskDefinitionOf(t, referenced(t, proxyService(t).TaskDefinition));
}

/** The task definition of the app's service (deploy run as the entrypoint). */
function appTaskDefinition(t: Template, values: Values = PLACEHOLDERS): TaskDefinition {
  const service = t.Resources.AppService?.Properties as JsonObject | undefined;
  const properties = referenced(t, service?.TaskDefinition);
  return apiShape(evaluate(t, properties, values)) as unknown as TaskDefinition;
}

/** The task definition the renewal schedule runs. */
function renewTaskDefinition(t: Template): TaskDefinition {
  const target = resourceOfType(t, 'AWS::Scheduler::Schedule')[1].Target as { EcsParameters: JsonObject };
  return taskDefinitionOf(t, referenced(t, target.EcsParameters.TaskDefinitionArn));
}

function onlyContainer(taskDefinition: TaskDefinition): ContainerDefinition {
  const [container, ...others] = taskDefinition.containerDefinitions;
  if (container === undefined || others.length > 0) throw new Error(`task definition ${taskDefinition.family}: expected one container`);
  return container;
}

/** The environment the process sees: the image's ENV, then the task's variables and secrets. */
function processEnv(container: ContainerDefinition): Record<string, string> {
  const example = (value: string): string => PLACEHOLDER_EXAMPLES[value] ?? value;
  return {
    ...image.env,
    ...Object.fromEntries((container.environment ?? []).map((e) => [e.name, example(e.value)])),
    ...Object.fromEntries((container.secrets ?? []).map((s) => [s.name, SECRET_EXAMPLE])),
  };
}

/** Every variable the task sets must be one proximation reads, with a value its loadConfig accepts. */
function settingsProblems(container: ContainerDefinition): string[] {
  const known = new Set(SETTINGS.map((s) => s.env));
  const names = [...(container.environment ?? []), ...(container.secrets ?? [])].map((e) => e.name);
  const problems = names.filter((name) => !known.has(name)).map((name) => `${name} is not a setting proximation reads (SETTINGS in proximation/src/config.ts)`);
  try {
    loadConfig({}, processEnv(container));
  } catch (err) {
    problems.push(`loadConfig refuses the task's environment: ${(err as Error).message}`);
  }
  return problems;
}

const sorted = (ports: Iterable<number>): number[] => [...new Set(ports)].sort((a, b) => a - b);

/** The service's container against the image and the configuration it makes. */
function containerProblems(taskDefinition: TaskDefinition, config: Config): string[] {
  const problems: string[] = [];
  const container = onlyContainer(taskDefinition);
  const listening = sorted([config.httpPort, config.httpsPort, config.adminPort]);
  const mapped = sorted((container.portMappings ?? []).map((p) => p.containerPort));
  if (JSON.stringify(mapped) !== JSON.stringify(listening)) problems.push(`container ports ${mapped.join(', ')}; proximation listens on ${listening.join(', ')}`);
  if (JSON.stringify(sorted(image.exposedPorts)) !== JSON.stringify(listening)) problems.push(`the image EXPOSEs ${image.exposedPorts.join(', ')}; proximation listens on ${listening.join(', ')}`);
  if (['127.0.0.1', '::1'].includes(config.adminAddress)) problems.push(`the admin listener is on ${config.adminAddress}: the load balancer's health checks cannot reach it`);

  const mount = (container.mountPoints ?? []).find((m) => m.containerPath === config.letsencryptDir);
  if (mount === undefined) problems.push(`nothing is mounted at the letsencrypt directory ${config.letsencryptDir}`);
  if (!image.volumes.includes(config.letsencryptDir)) problems.push(`the image's VOLUME ${image.volumes.join(', ')} is not the letsencrypt directory ${config.letsencryptDir}`);
  const efs = taskDefinition.volumes?.find((v) => v.name === mount?.sourceVolume)?.efsVolumeConfiguration;
  if (mount?.readOnly === true) problems.push('the letsencrypt directory is mounted read-only');
  if (efs?.transitEncryption !== 'ENABLED' || efs.authorizationConfig?.iam !== 'ENABLED' || efs.authorizationConfig.accessPointId === undefined) {
    problems.push(`the letsencrypt volume is not EFS with transit encryption, IAM and an access point: ${JSON.stringify(efs)}`);
  }

  const imageCheck = image.healthCheck;
  const check = container.healthCheck;
  const expected = imageCheck && { command: ['CMD', ...imageCheck.command], interval: imageCheck.intervalMs / 1000, timeout: imageCheck.timeoutMs / 1000, retries: imageCheck.retries, startPeriod: imageCheck.startPeriodMs / 1000 };
  if (JSON.stringify(check) !== JSON.stringify(expected)) problems.push(`health check ${JSON.stringify(check)} is not the image's HEALTHCHECK ${JSON.stringify(expected)}`);
  // ECS's default when the task definition gives none.
  const stopTimeout = container.stopTimeout ?? 30;
  if (stopTimeout <= config.drainTimeoutMs / 1000) problems.push(`stopTimeout ${stopTimeout} s does not exceed the drain timeout ${config.drainTimeoutMs / 1000} s: ECS would SIGKILL a draining proxy`);
  return problems;
}

interface Ingress {
  IpProtocol: string;
  FromPort: number;
  ToPort: number;
  CidrIp?: Json;
  SourceSecurityGroupId?: Json;
}

/** Load balancer, target groups, security groups and EFS access point against the configuration and image. */
function wiringProblems(t: Template, config: Config, user: { uid: number; gid: number }): string[] {
  const problems: string[] = [];
  const props = (type: string): JsonObject[] => Object.values(t.Resources).filter((r) => r.Type === type).map((r) => r.Properties as JsonObject);
  const toTarget = new Map<number, number>();
  for (const listener of props('AWS::ElasticLoadBalancingV2::Listener')) {
    const [action] = listener.DefaultActions as { TargetGroupArn: Json }[];
    const group = referenced(t, action?.TargetGroupArn);
    toTarget.set(Number(listener.Port), Number(group.Port));
    if (group.HealthCheckPort !== String(config.adminPort) || group.HealthCheckPath !== '/healthz') {
      problems.push(`target group on ${String(group.Port)} checks health at ${String(group.HealthCheckPort)}${String(group.HealthCheckPath)}, not ${config.adminPort}/healthz`);
    }
  }
  const expected = [[80, config.httpPort], [443, config.httpsPort]];
  if (JSON.stringify([...toTarget].sort((a, b) => a[0] - b[0])) !== JSON.stringify(expected)) {
    problems.push(`the load balancer forwards ${JSON.stringify([...toTarget])}; proximation needs ${JSON.stringify(expected)}`);
  }
  if (config.publicHttpsPort !== 443) problems.push(`redirects name port ${config.publicHttpsPort}, the load balancer listens on 443`);
  for (const mapping of proxyService(t).LoadBalancers as { ContainerPort: number; TargetGroupArn: Json }[]) {
    const port = Number(referenced(t, mapping.TargetGroupArn).Port);
    if (mapping.ContainerPort !== port) problems.push(`the service registers container port ${mapping.ContainerPort} in the target group of port ${port}`);
  }

  const ingress = props('AWS::EC2::SecurityGroup').flatMap((g) => (g.SecurityGroupIngress ?? []) as unknown as Ingress[]);
  const opens = (port: number): Ingress[] => ingress.filter((rule) => rule.FromPort <= port && port <= rule.ToPort);
  for (const port of [config.httpPort, config.httpsPort, config.adminPort]) {
    if (opens(port).length === 0) problems.push(`no security group lets traffic reach port ${port}`);
  }
  if (opens(config.adminPort).some((rule) => rule.CidrIp === '0.0.0.0/0')) problems.push(`the admin port ${config.adminPort} is open to 0.0.0.0/0`);

  for (const accessPoint of props('AWS::EFS::AccessPoint')) {
    const posix = accessPoint.PosixUser as { Uid: string; Gid: string };
    const owner = (accessPoint.RootDirectory as { CreationInfo: { OwnerUid: string; OwnerGid: string } }).CreationInfo;
    if ([posix.Uid, posix.Gid, owner.OwnerUid, owner.OwnerGid].join() !== [user.uid, user.gid, user.uid, user.gid].join()) {
      problems.push(`the access point acts as ${posix.Uid}:${posix.Gid} and creates its root owned by ${owner.OwnerUid}:${owner.OwnerGid}; the image runs as ${user.uid}:${user.gid}`);
    }
  }
  return problems;
}

function imageUser(config: ImageConfig): { uid: number; gid: number } {
  const user = config.user ?? 'root';
  const numeric = /^(\d+)(?::(\d+))?$/.exec(user);
  if (numeric !== null) return { uid: Number(numeric[1]), gid: Number(numeric[2] ?? numeric[1]) };
  const known = config.base.startsWith('node:') ? NODE_IMAGE_USERS[user] : undefined;
  if (known === undefined) throw new Error(`Dockerfile.proximation: USER ${user} on ${config.base}: its uid/gid are not known here`);
  return known;
}

/**
 * `proximation <argv>` with the renewal task's environment, in-process. An unreadable routing table
 * stops it (exit 1, naming the file) after the argument parser and --random-delay's value were accepted
 * and before anything could reach a CA; a usage error exits 2.
 */
async function renewArgvProblems(argv: string[], env: Record<string, string>): Promise<string[]> {
  const dir = await tempDir('proximation-ecs-renew-');
  try {
    // A proximation directory (renew refuses any other) whose table is broken: renew gets as far as reading it.
    const routes = path.join(dir.path, 'proximation', 'routes.json');
    await fs.mkdir(path.dirname(routes));
    await fs.writeFile(routes, 'not a routing table');
    const { code, err } = await runMain(argv, { ...env, PROXIMATION_LETSENCRYPT_DIR: dir.path, PROXIMATION_ROUTES: routes });
    return code === 1 && err.includes(routes) ? [] : [`proximation ${argv.join(' ')} exited ${code}: ${err.trim()}`];
  } finally {
    await dir.close();
  }
}

const configOf = (container: ContainerDefinition): Config => loadConfig({}, processEnv(container));

function set(node: Json, keys: (string | number)[], value: Json): void {
  const last = keys.at(-1)!;
  const parent = keys.slice(0, -1).reduce<Json>((n, k) => (n as Record<string | number, Json>)[k]!, node);
  (parent as Record<string | number, Json>)[last] = value;
}

/** A copy of the template with one change. */
function mutated(keys: (string | number)[], value: Json): Template {
  const copy = structuredClone(template);
  set(copy as unknown as Json, keys, value);
  return copy;
}

describe(TEMPLATE_FILE, () => {
  const service = serviceTaskDefinition(template);
  const container = onlyContainer(service);

  it('is a well-formed template: every reference and condition resolves, known resource types, no unused parameter', () => {
    expect(templateProblems(template, RESOURCE_TYPES)).toEqual([]);
  });

  it("sets only settings proximation reads, with values its loadConfig accepts", () => {
    expect(settingsProblems(container)).toEqual([]);
    const config = configOf(container);
    expect(config.issuer).toBe('acme');
    expect(config.adminToken).toBe(SECRET_EXAMPLE);
  });

  it('with a Route 53 zone, tells the tasks to answer DNS-01 there and lets them change only _acme-challenge TXT records in it', () => {
    const values: Values = {
      ...PLACEHOLDERS,
      parameters: { ...PLACEHOLDERS.parameters, Route53HostedZoneId: 'Z0EXAMPLE' },
      pseudo: { ...PLACEHOLDERS.pseudo, 'AWS::Partition': 'aws', 'AWS::AccountId': '123456789012' },
    };
    const withZone = apiShape(evaluate(template, referenced(template, proxyService(template).TaskDefinition), values)) as unknown as TaskDefinition;
    const dnsContainer = onlyContainer(withZone);
    expect(settingsProblems(dnsContainer)).toEqual([]);
    expect(configOf(dnsContainer).dnsProvider).toBe('route53');
    expect(configOf(container).dnsProvider).toBeUndefined();
    // The role's last policy is the one that depends on the zone.
    const policy = ((template.Resources.TaskRole!.Properties as JsonObject).Policies as Json[]).at(-1)!;
    const role = JSON.stringify(evaluate(template, policy, values));
    expect(role).toContain('"route53:ChangeResourceRecordSets"');
    expect(role).toContain('"route53:ChangeResourceRecordSetsNormalizedRecordNames":["_acme-challenge.*"]');
    expect(role).toContain('hostedzone/Z0EXAMPLE');
    expect(() => evaluate(template, policy, { ...values, parameters: PLACEHOLDERS.parameters })).toThrow('AWS::NoValue');
  });

  it('runs the container as the image is built: ports, volume, health check, stop timeout', () => {
    expect(containerProblems(service, configOf(container))).toEqual([]);
  });

  it('sends 80/443 to the ports proximation listens on, keeps the admin port private, and mounts EFS as the image user', () => {
    expect(imageUser(image)).toEqual({ uid: 1000, gid: 1000 });
    expect(wiringProblems(template, configOf(container), imageUser(image))).toEqual([]);
  });

  it("passes its health check against a running proximation's admin listener, and fails without one", async () => {
    const [command, ...args] = container.healthCheck!.command.slice(1) as [string, ...string[]];
    const proxy = await resources.proxy(table([]));
    const healthy = await run(command, args, { env: { PATH: process.env.PATH, PROXIMATION_ADMIN_PORT: String(proxy.server.admin.port) } });
    expect(healthy.stderr).toBe('');
    const [nothing] = (await freePorts(1)) as [number];
    await expect(run(command, args, { env: { PATH: process.env.PATH, PROXIMATION_ADMIN_PORT: String(nothing) } })).rejects.toMatchObject({ code: 1 });
  });

  it('renews twice a day, spread by the scheduler\'s flexible window, with the service container and a command the CLI accepts', async () => {
    const schedule = resourceOfType(template, 'AWS::Scheduler::Schedule')[1];
    expect(schedule.ScheduleExpression).toMatch(/^cron\(\d+ \d+,\d+ \* \* \? \*\)$/);
    // The scheduler picks the start within the hour; a --random-delay would bill a Fargate task for sleeping.
    expect(schedule.FlexibleTimeWindow).toEqual({ Mode: 'FLEXIBLE', MaximumWindowInMinutes: 60 });
    const renew = renewTaskDefinition(template);
    const renewContainer = onlyContainer(renew);
    const argv = renewContainer.command ?? [];
    expect(argv).toEqual(['renew']);
    expect(await renewArgvProblems(argv, processEnv(renewContainer))).toEqual([]);
    // The service's container, minus what only serving needs, so it renews the same lineages with the same account.
    const { portMappings, healthCheck, secrets, stopTimeout, ...common } = container;
    expect(renewContainer).toEqual({
      ...common,
      command: argv,
      logConfiguration: { ...common.logConfiguration, options: { ...common.logConfiguration?.options, 'awslogs-stream-prefix': 'renew' } },
    });
    expect(renew.volumes).toEqual(service.volumes);
    expect(settingsProblems(renewContainer)).toEqual([]);
  });
});

/** The value of `flag` in `argv` (deploy run's flags), else `fallback`; durations in seconds. */
function flagSeconds(argv: readonly string[], flag: string, fallback: number): number {
  const at = argv.indexOf(flag);
  if (at === -1) return fallback;
  const value = /^(\d+)(s|m)$/.exec(argv[at + 1] ?? '');
  if (value === null) throw new Error(`${flag} ${argv[at + 1]}: not a duration this check reads (such as 20s or 2m)`);
  return Number(value[1]) * (value[2] === 'm' ? 60 : 1);
}

/** The time an app is given between its SIGTERM and ECS's SIGKILL, at least. */
const APP_SHUTDOWN_S = 5;

/**
 * The app's container: deploy run as the entrypoint (its flags, then "--"), the app's command after it;
 * the drain inside the lease and, with the app's shutdown, inside the stopTimeout; the shared volume
 * mounted where PROXIMATION_LETSENCRYPT_DIR says, as the proxies mount it; the app port mapped and open
 * to the proxies.
 */
function appProblems(t: Template, app: TaskDefinition, proxies: TaskDefinition): string[] {
  const problems: string[] = [];
  const container = onlyContainer(app);
  const entry = container.entryPoint ?? [];
  if (entry[0] !== 'deploy' || entry[1] !== 'run' || entry.at(-1) !== '--') problems.push(`the entrypoint ${JSON.stringify(entry)} is not deploy run [flags] --`);
  if ((container.command ?? []).length === 0) problems.push('no app command after deploy run\'s "--"');
  const lease = flagSeconds(entry, '--lease', 30);
  const drain = flagSeconds(entry, '--drain-timeout', 30);
  const stopTimeout = container.stopTimeout ?? 30;
  if (drain > lease) problems.push(`--drain-timeout ${drain} s is longer than the lease ${lease} s`);
  if (stopTimeout < drain + APP_SHUTDOWN_S) problems.push(`stopTimeout ${stopTimeout} s does not hold the drain (${drain} s) and ${APP_SHUTDOWN_S} s for the app's shutdown: ECS would SIGKILL a draining task`);
  const dir = (container.environment ?? []).find((e) => e.name === 'PROXIMATION_LETSENCRYPT_DIR')?.value;
  const mount = (container.mountPoints ?? []).find((m) => m.containerPath === dir);
  if (dir === undefined || mount === undefined || mount.readOnly === true) problems.push(`PROXIMATION_LETSENCRYPT_DIR ${dir} is not a read-write mount`);
  const volume = app.volumes?.find((v) => v.name === mount?.sourceVolume);
  const proxyVolume = proxies.volumes?.find((v) => v.name === onlyContainer(proxies).mountPoints?.[0]?.sourceVolume);
  if (JSON.stringify(volume) !== JSON.stringify(proxyVolume)) problems.push(`the app mounts ${JSON.stringify(volume)}, the proxies ${JSON.stringify(proxyVolume)}`);
  const ports = (container.portMappings ?? []).map((p) => p.containerPort);
  if (ports.length !== 1) problems.push(`the app maps ports ${ports.join(', ')}; --upstream-from-ecs needs its one port`);
  const group = t.Resources.AppSecurityGroup?.Properties as JsonObject | undefined;
  const groups: Values = { ...PLACEHOLDERS, resources: { ...PLACEHOLDERS.resources, 'TaskSecurityGroup.GroupId': '<PROXIES>' } };
  const rules = evaluate(t, (group?.SecurityGroupIngress ?? []) as Json, groups) as unknown as Ingress[];
  const fromProxies = rules.some((r) => Number(r.FromPort) <= ports[0]! && ports[0]! <= Number(r.ToPort) && r.SourceSecurityGroupId === '<PROXIES>');
  if (!fromProxies) problems.push(`the app's security group does not let the proxies reach port ${ports[0]}`);
  return problems;
}

/**
 * deploy run (the real bin) with the app container's entrypoint and command, in an ECS-like
 * environment: a task metadata endpoint for this container, PROXIMATION_LETSENCRYPT_DIR on a routing
 * table with no site for the tag. It gets past its flags, the ECS lookup and the lease and drain rules,
 * then stops before starting the app (exit 1, no site for the tag); a usage error exits 2.
 */
async function appEntrypointProblems(container: ContainerDefinition): Promise<string[]> {
  const [, ...argv] = [...(container.entryPoint ?? []), ...(container.command ?? [])];
  const port = container.portMappings?.[0]?.containerPort ?? 0;
  const metadata = await resources.upstream((req, res) => {
    const body = req.url === '/v4/task-1/task'
      ? { TaskARN: 'arn:aws:ecs:eu-west-1:123456789012:task/default/task-1' }
      : { Name: container.name, Networks: [{ NetworkMode: 'awsvpc', IPv4Addresses: ['10.0.2.100'] }], Ports: [{ ContainerPort: port, Protocol: 'tcp', HostPort: port }] };
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  });
  const dir = await tempDir('proximation-ecs-app-');
  try {
    const routes = path.join(dir.path, 'proximation', 'routes.json');
    await writeRoutes(routes, table([{ name: 'other', hosts: ['other.example.com'], upstreams: ['http://10.0.9.9:8080'] }]));
    const bin = fileURLToPath(new URL('../../deploy/dist/bin/deploy.js', import.meta.url));
    const env = { PATH: process.env.PATH, PROXIMATION_LETSENCRYPT_DIR: dir.path, ECS_CONTAINER_METADATA_URI_V4: `${metadata.origin}/v4/task-1` };
    const result = await run(process.execPath, [bin, ...argv], { env }).then(() => ({ code: 0, stderr: '' }), (err: { code: number; stderr: string }) => err);
    return result.code === 1 && result.stderr.includes('No site\'s tag prefix matches tag') ? [] : [`deploy ${argv.join(' ')} exited ${result.code}: ${result.stderr.trim()}`];
  } finally {
    await dir.close();
  }
}

describe('the app task (deploy run as the entrypoint)', () => {
  const example: Values = { ...PLACEHOLDERS, parameters: { ...PLACEHOLDERS.parameters, AppImageUri: 'app:devbuild-42', AppTag: 'devbuild-42' } };

  it('runs the app under deploy run with a drain inside the lease and the stopTimeout, on the proxies\' volume, reachable by them', () => {
    expect(appProblems(template, appTaskDefinition(template), serviceTaskDefinition(template))).toEqual([]);
    expect(onlyContainer(appTaskDefinition(template, example)).command).toEqual(['node', 'server.js']);
  });

  it('passes deploy run\'s own checks, up to where it would start the app', async () => {
    expect(await appEntrypointProblems(onlyContainer(appTaskDefinition(template, example)))).toEqual([]);
  });

  it('is in ecs/app-task-definition.json with placeholders, each explained in docs/operations.md', () => {
    expect(standaloneApp).toEqual(appTaskDefinition(template));
    for (const word of new Set(JSON.stringify(standaloneApp).match(/<[A-Z_]+>/g))) expect(operationsGuide, `docs/operations.md should explain ${word}`).toContain(`\`${word}\``);
  });

  it('checks that catch a stopTimeout without room for the drain, a drain beyond the lease, and a flag deploy refuses', async () => {
    const APP_CONTAINER = ['Resources', 'AppTaskDefinition', 'Properties', 'ContainerDefinitions', 0];
    const entry = (template.Resources.AppTaskDefinition!.Properties as any).ContainerDefinitions[0].EntryPoint as Json[];
    const problems = (t: Template) => appProblems(t, appTaskDefinition(t), serviceTaskDefinition(t)).join('\n');
    expect(problems(mutated([...APP_CONTAINER, 'StopTimeout'], 22))).toMatch(/stopTimeout 22 s does not hold the drain \(20 s\)/);
    expect(problems(mutated([...APP_CONTAINER, 'EntryPoint', entry.indexOf('--lease') + 1], '15s'))).toMatch(/--drain-timeout 20 s is longer than the lease 15 s/);
    const misspelt = appTaskDefinition(mutated([...APP_CONTAINER, 'EntryPoint', entry.indexOf('--join')], '--joni'), example);
    expect((await appEntrypointProblems(onlyContainer(misspelt))).join()).toMatch(/exited 2: deploy: Unknown option --joni/);
  });
});

describe('ecs/task-definition.json', () => {
  it("is the template's task definition with placeholders, each explained in docs/operations.md with every variable", () => {
    expect(standalone).toEqual(serviceTaskDefinition(template));
    const placeholders = new Set(JSON.stringify(standalone).match(/<[A-Z_]+>/g));
    expect(placeholders.size).toBeGreaterThan(0);
    const container = onlyContainer(standalone);
    const variables = [...(container.environment ?? []), ...(container.secrets ?? [])].map((e) => e.name);
    for (const word of [...placeholders, ...variables]) expect(operationsGuide, `docs/operations.md should explain ${word}`).toContain(`\`${word}\``);
  });
});

describe('the checks above', () => {
  const SERVICE_CONTAINER = ['Resources', 'TaskDefinition', 'Properties', 'ContainerDefinitions', 0];
  const containerOf = (t: Template): ContainerDefinition => onlyContainer(serviceTaskDefinition(t));
  const config = configOf(containerOf(template));

  it('catch a wrong port, mount path, stop timeout or health check', () => {
    const cases: [(string | number)[], Json, RegExp][] = [
      [[...SERVICE_CONTAINER, 'PortMappings', 0, 'ContainerPort'], 8081, /container ports 8081, 8443, 9180; proximation listens on 8080, 8443, 9180/],
      [[...SERVICE_CONTAINER, 'MountPoints', 0, 'ContainerPath'], '/letsencrypt', /nothing is mounted at the letsencrypt directory \/etc\/letsencrypt/],
      [[...SERVICE_CONTAINER, 'StopTimeout'], 20, /stopTimeout 20 s does not exceed the drain timeout 20 s/],
      [[...SERVICE_CONTAINER, 'HealthCheck', 'StartPeriod'], 5, /is not the image's HEALTHCHECK/],
    ];
    for (const [keys, value, problem] of cases) expect(containerProblems(serviceTaskDefinition(mutated(keys, value)), config).join('\n')).toMatch(problem);
  });

  it('catch a misspelt variable and a value proximation refuses', () => {
    const env = [...SERVICE_CONTAINER, 'Environment'];
    expect(settingsProblems(containerOf(mutated([...env, 0, 'Name'], 'PROXIMATION_ISUER')))).toEqual([
      'PROXIMATION_ISUER is not a setting proximation reads (SETTINGS in proximation/src/config.ts)',
    ]);
    expect(settingsProblems(containerOf(mutated([...env, 0, 'Value'], 'letsencrypt'))).join()).toMatch(/PROXIMATION_ISSUER="letsencrypt" is not valid/);
  });

  it('catch wiring that misses the listeners, opens the admin port, or mounts as another user', () => {
    const cases: [(string | number)[], Json, RegExp][] = [
      [['Resources', 'HttpsTargetGroup', 'Properties', 'Port'], 443, /the load balancer forwards \[\[80,8080\],\[443,443\]\]/],
      [['Resources', 'HttpTargetGroup', 'Properties', 'HealthCheckPort'], '8080', /checks health at 8080\/healthz, not 9180\/healthz/],
      [['Resources', 'TaskSecurityGroup', 'Properties', 'SecurityGroupIngress', 3, 'CidrIp'], '0.0.0.0/0', /the admin port 9180 is open to 0.0.0.0\/0/],
      [['Resources', 'AccessPoint', 'Properties', 'PosixUser', 'Uid'], '0', /the access point acts as 0:1000/],
    ];
    for (const [keys, value, problem] of cases) expect(wiringProblems(mutated(keys, value), config, imageUser(image)).join('\n')).toMatch(problem);
  });

  it('catch a dangling reference, an unknown attribute or type, and an unused parameter', () => {
    const cases: [(string | number)[], Json, RegExp][] = [
      [['Resources', 'Service', 'Properties', 'Cluster'], { Ref: 'Cluster' }, /Resources.Service.Properties.Cluster: Cluster is no parameter, resource or pseudo parameter/],
      [['Outputs', 'ServiceName', 'Value'], { 'Fn::GetAtt': ['Service', 'Arn'] }, /AWS::ECS::Service has no attribute Arn/],
      [['Resources', 'LogGroup', 'Type'], 'AWS::Logs::LogGrup', /type AWS::Logs::LogGrup is not one of/],
      [['Parameters', 'Unused'], { Type: 'String' }, /Parameters.Unused is never used/],
      [['Resources', 'FileSystem', 'Condition'], 'CreateFilesystem', /condition CreateFilesystem is not defined/],
    ];
    for (const [keys, value, problem] of cases) expect(templateProblems(mutated(keys, value), RESOURCE_TYPES).join('\n')).toMatch(problem);
  });

  it('catch a renew command the CLI refuses', async () => {
    const env = processEnv(onlyContainer(renewTaskDefinition(template)));
    expect((await renewArgvProblems(['renew', '--random-dealy', '1h'], env)).join()).toMatch(/exited 2: proximation: Unknown option --random-dealy. Did you mean --random-delay\?/);
    expect((await renewArgvProblems(['renew', '--random-delay', 'an hour'], env)).join()).toMatch(/exited 2: .*--random-delay/);
    expect((await renewArgvProblems(['serve', '--random-delay', '1h'], env)).join()).toMatch(/exited 2: .*--random-delay is an option of "proximation renew" only/);
  });
});
