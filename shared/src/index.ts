export { ProximationError, isProximationError, errorMessage, isErrnoCode } from './errors.js';
export { normalizeHostname, inspectHostname, hostnameMatchesPattern } from './hostname.js';
export { DEFAULT_PROXY_PORTS, ownListenerProblem, restrictedTargetProblem } from './upstream-target.js';
export { UPSTREAM_SCHEME_NAMES, upstreamEndpoint } from './upstream-origin.js';
export type { UpstreamEndpoint, UpstreamScheme } from './upstream-origin.js';
export type { NormalizeHostnameOptions } from './hostname.js';
export { parseDuration, formatDuration } from './duration.js';
export { hstsHeaderValue, hstsProblems } from './hsts.js';
export type { HstsPolicy, HstsFieldNames } from './hsts.js';
export { writeFileAtomic, readFileIfExists, fsyncDirectory } from './file-storage.js';
export type { WriteFileAtomicOptions } from './file-storage.js';
export { acquireLock, withLock } from './lock.js';
export { withStorageLock, checkStorageKey } from './storage/storage.js';
export type { Storage, StorageLock, StorageLockOptions, StorageWriteOptions } from './storage/storage.js';
export { FileStorage, describeKey } from './storage/file-backend.js';
export {
  connectRedisStorage,
  parseRedisUrl,
  redactRedisUrl,
  checkRedisKeyPrefix,
  RedisStorage,
  DEFAULT_REDIS_KEY_PREFIX,
} from './storage/redis-backend.js';
export type { RedisStorageOptions } from './storage/redis-backend.js';
export type { Lock, LockOptions, LockWait } from './lock.js';
export { parseJsonText } from './json-text.js';
export {
  ROUTING_TABLE_SCHEMA_VERSION,
  MAX_HISTORY,
  parseRoutingTable,
  validateRoutingTable,
  serializeRoutingTable,
  emptyRoutingTable,
  normalizeUpstreamUrl,
  checkVersionName,
  defaultTagPrefix,
  findSite,
  findVersion,
  siteForTag,
  addSite,
  removeSite,
  setSiteHsts,
  registerVersion,
  activateVersion,
  rollback,
  removeVersion,
  pruneVersions,
  applyRoutingTableChange,
  upstreamsGainingTraffic,
  SITE_CHALLENGES,
  setSitePreview,
  previewHost,
  certificateNames,
  previewLabelProblem,
  deregisterUpstreams,
  pruneExpiredMembers,
} from './routing-table.js';
export {
  MIN_LEASE_MS,
  MAX_LEASE_MS,
  memberKey,
  memberExpiresAt,
  identityProblem,
  checkLease,
  clockFrom,
} from './members.js';
export type { MemberClock, MemberRenewal } from './members.js';
export { fileFleetStorage, fleetStorageOf, LEASE_KIND, INSTANCE_KIND, REREAD_MS } from './fleet-storage.js';
export type { FleetStorage, FleetRecords, LeaseReadOptions, LeaseRecord, InstanceRecord, UpstreamTraffic, CertificateState } from './fleet-storage.js';
export { updateRoutingTableWithLeases } from './member-update.js';
export { isWildcardHost, wildcardOf, wildcardProblem } from './wildcard-host.js';
export { networkMatcher, parseNetwork } from './networks.js';
export type { Network } from './networks.js';
export type {
  RoutingTable,
  Site,
  SiteChallenge,
  SitePreview,
  IssuancePolicy,
  SiteVersion,
  VersionMember,
  MemberLease,
  DeregisterRequest,
  AddSiteRequest,
  RegisterVersionRequest,
  TrafficGuard,
  RoutingTableChange,
} from './routing-table.js';
export { keepLastGoodCopy, lastGoodCopyGeneration, lastGoodCopyPath, readRoutingTable, updateRoutingTable, readRoutingTableFile, routesFileLocation, routesNotFound, updateRoutingTableFile } from './routes-file.js';
export type { RoutesLocation, RoutingTableUpdate, RoutingTableUpdateOptions } from './routes-file.js';
export { describeFetchFailure } from './fetch-failure.js';
export { checkUpstreams, healthCheckFailed, isHealthCheckPath, HealthCheckFailedError } from './health-check.js';
export type { HealthCheckOptions, UpstreamHealth } from './health-check.js';
export { applyChangeRequest, HEALTH_GATE_ROUNDS } from './health-gate.js';
export type { RoutingChangeRequest, RoutingChangeResult, RoutingTableStore, ChangeRequestOptions, ChangeObserver } from './health-gate.js';
export {
  ADMIN_ROUTES_PATH,
  ADMIN_CHANGES_PATH,
  MAX_CHANGE_REQUEST_BYTES,
  routingTableETag,
  parseChangeRequest,
  parseChangeResponse,
  errorBody,
  errorFromBody,
} from './admin-api.js';
export type { ChangeResponseBody, ErrorResponseBody } from './admin-api.js';
export {
  usageError,
  parseCommandLine,
  nearestName,
  unknownVariableWarnings,
  rejectPositionals,
  required,
  integerFlag,
  durationFlag,
  output,
  plural,
  packageVersion,
  runCommandLine,
} from './command-line.js';
export type { UsageContext, OptionTable, FlagsOf } from './command-line.js';
export { urlParseProblem } from './url-text.js';
export { permissionHint } from './permission-hint.js';
export { fleetStatus, readFleetStatus, formatFleetStatus, liveInstances, sumTraffic, HEARTBEAT_PERIODS_TO_LIVE } from './fleet-status.js';
export type { FleetStatus } from './fleet-status.js';
export { copyStorage, ROUTES_KEY } from './storage/copy.js';
export { MirroredStorage } from './storage/mirrored-storage.js';
export type { CopyResult } from './storage/copy.js';
export { openStorage, checkStorageSetting, parseStorageSetting, openStorageSetting } from './storage/open-storage.js';
export type { StorageSetting } from './storage/open-storage.js';
export { appendChangeLogEntry, recordRoutingChange, readChangeLog, changeLogKey, MAX_CHANGE_LOG_ENTRIES } from './change-log.js';
export type { ChangeLogEntry } from './change-log.js';
