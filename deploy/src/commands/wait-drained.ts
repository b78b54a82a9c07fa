/**
 * `deploy wait-drained --site S --version V [--timeout D]`: waits until no live proxy instance has
 * requests or WebSockets in flight to the version (by their heartbeats, fleet-status.ts in shared), so
 * CI may stop its tasks. Exit 0 once drained (at once when nothing is in flight), 1 on timeout naming
 * what is still open per upstream. Polls every second (drain.ts); the heartbeats are at most one period old.
 */
import { findSite, findVersion, formatDuration } from '@proximation/shared';
import { COMMON_OPTIONS, COMMON_OPTIONS_HELP, JSON_OPTION, JSON_OPTION_HELP, durationFlag, openRoutesTarget, output, parseFlags, required } from '../command-line.js';
import type { Command } from '../command-line.js';
import { inFlightPhrase, waitUntilDrained } from '../drain.js';

const NAME = 'wait-drained';
const DEFAULT_TIMEOUT_MS = 300_000;

const OPTIONS = { ...COMMON_OPTIONS, ...JSON_OPTION, site: { type: 'string' }, version: { type: 'string' }, timeout: { type: 'string' } } as const;

const HELP = `Usage: deploy wait-drained --site <site> --version <version> [--timeout <duration>]

Waits until no proxy instance has requests or WebSockets in flight to the version (as their
heartbeats report, a few seconds old at most), then exits 0: its tasks may be stopped. On timeout
it exits 1, naming each upstream with what is still open.

Options:
  --site <site>          the site
  --version <version>    the version, such as the one just replaced
  --timeout <duration>   how long to wait (default 5m)
${JSON_OPTION_HELP}
${COMMON_OPTIONS_HELP}

With --json: {"site", "version", "waitedMs"}.`;

export const waitDrainedCommand: Command = {
  name: NAME,
  synopsis: 'wait-drained --site <site> --version <version> [--timeout <duration>]',
  summary: 'Wait until no proxy has requests or WebSockets in flight to a version.',
  async run(args, env) {
    const values = parseFlags(args, OPTIONS, NAME);
    if (values === undefined) return HELP;
    const site = required(values.site, '--site', 'name the site, such as --site dev', NAME);
    const version = required(values.version, '--version', 'name the version, such as --version devbuild-41', NAME);
    const timeoutMs = values.timeout === undefined ? DEFAULT_TIMEOUT_MS : durationFlag(values.timeout, '--timeout', NAME);
    const target = await openRoutesTarget(values, env, NAME);
    findVersion(findSite(await target.read(), site), version);
    let instances = 0;
    const waitedMs = await waitUntilDrained({
      what: `${site}/${version}`,
      timeoutMs,
      hint: 'Wait longer (--timeout), or stop the tasks anyway and let those requests fail.',
      open: async () => {
        const status = await target.status();
        instances = status.instances.length;
        const members = status.sites.find((s) => s.name === site)?.versions.find((v) => v.name === version)?.members ?? [];
        return members.filter((m) => m.inFlight + m.websockets > 0).map((m) => inFlightPhrase(m.upstream, m.inFlight, m.websockets));
      },
    });
    return output(values.json, { site, version, waitedMs }, `${site}/${version} is drained: nothing in flight on ${instances} live instance(s) (waited ${formatDuration(waitedMs)})`);
  },
};
