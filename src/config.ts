/**
 * All of headwire's settings, with their defaults and units in their names. Options are checked
 * once, when a server or client is built, so bad configuration fails at start. The settings
 * themselves are in src/config/settings.ts, each written once; this module gives their types,
 * defaults and checks, including the checks that involve two settings.
 */
import { ConfigError } from "./errors.js";
import { isLoopbackBind, parseAdminAddress } from "./config/admin-address.js";
import { defaultsOf, envOf, nameOf, resolveSettings, type ConfigOf, type SettingSources } from "./config/schema.js";
import { CLIENT_SETTINGS, SERVER_SETTINGS } from "./config/settings.js";

export { CLIENT_SETTINGS, DEFAULT_CONTROL_PORT, DEFAULT_DATA_PORT, SERVER_SETTINGS } from "./config/settings.js";
/** Its home is src/errors.ts; exported here too for the modules that found it here. */
export { ConfigError } from "./errors.js";

export type ServerConfig = ConfigOf<typeof SERVER_SETTINGS>;
export type ClientConfig = ConfigOf<typeof CLIENT_SETTINGS>;

export const DEFAULT_SERVER_CONFIG: Readonly<ServerConfig> = Object.freeze(defaultsOf(SERVER_SETTINGS));
export const DEFAULT_CLIENT_CONFIG: Readonly<ClientConfig> = Object.freeze(defaultsOf(CLIENT_SETTINGS));

/** A server setting as messages name it: its flag (`--cache-max-bytes`). */
const server = (key: keyof ServerConfig) => nameOf("server", key, SERVER_SETTINGS[key]);
/** A client setting as messages name it: its flag, or `client.key` for one set in code only. */
const client = (key: keyof ClientConfig) => nameOf("client", key, CLIENT_SETTINGS[key]);

/**
 * The defaults with `overrides` on top, checked; keys that are not server settings are ignored.
 * `sources` says where given values came from, for the messages (a flag, a variable, a file).
 */
export function resolveServerConfig(
  overrides: Readonly<Partial<ServerConfig>> = {},
  sources: SettingSources = {},
): ServerConfig {
  const config = resolveSettings("server", SERVER_SETTINGS, overrides, sources);
  // A cache that cannot hold one entry of the largest size it accepts stores nothing that large
  // without anyone noticing. (cacheMaxEntryBytes above maxHeaderBytes is harmless, only idle:
  // such headers are refused before the cache sees them, so it is not checked.)
  if (config.cacheMaxEntryBytes > 0 && config.cacheMaxBytes > 0 && config.cacheMaxEntryBytes > config.cacheMaxBytes) {
    throw new ConfigError(
      `${server("cacheMaxEntryBytes")} must not exceed ${server("cacheMaxBytes")} (${config.cacheMaxBytes}), got ${config.cacheMaxEntryBytes}`,
    );
  }
  // A ticket budget smaller than the largest header would refuse such headers for ever, however idle the server.
  if (config.maxTicketBytes < config.maxHeaderBytes) {
    throw new ConfigError(
      `${server("maxTicketBytes")} must be at least ${server("maxHeaderBytes")} (${config.maxHeaderBytes}), got ${config.maxTicketBytes}`,
    );
  }
  // The admin listener can purge the cache and shows every client's address: beyond loopback,
  // only for those who hold the token.
  const admin = parseAdminAddress(config.adminHttp);
  if (admin.ok && admin.address && !isLoopbackBind(admin.address.host) && config.adminToken === "") {
    throw new ConfigError(
      `--admin-http ${config.adminHttp} is beyond loopback: it needs --admin-token too (clients send it as ` +
        `"Authorization: Bearer TOKEN"), or bind it to 127.0.0.1`,
    );
  }
  return config;
}

/** The defaults with `overrides` on top, checked; keys that are not client settings are ignored. */
export function resolveClientConfig(
  overrides: Readonly<Partial<ClientConfig>> = {},
  sources: SettingSources = {},
): ClientConfig {
  const config = resolveSettings("client", CLIENT_SETTINGS, overrides, sources);
  // The first wait is used as the retransmission timeout until a round trip is measured; one
  // outside the bounds would be clamped at its first use, so it is refused as a mistake.
  const { minChunkTimeoutMs: min, chunkTimeoutMs, maxChunkTimeoutMs: max } = config;
  if (min > max) {
    throw new ConfigError(
      `${client("minChunkTimeoutMs")} must not exceed ${client("maxChunkTimeoutMs")} (${max}), got ${min}`,
    );
  }
  if (chunkTimeoutMs < min || chunkTimeoutMs > max) {
    throw new ConfigError(
      `${client("chunkTimeoutMs")} must be from ${client("minChunkTimeoutMs")} (${min}) to ${client("maxChunkTimeoutMs")} (${max}), got ${chunkTimeoutMs}`,
    );
  }
  return config;
}

/**
 * Every abuse limit off (docs/protocol.md, "Abuse limits"): for a server that only trusted clients
 * reach, or where every client and origin is one address anyway (the benchmark's load generator,
 * the tests' loopback). Never for a public server.
 */
export const WITHOUT_ABUSE_LIMITS: Readonly<Partial<ServerConfig>> = Object.freeze({
  maxSessionsPerAddress: SERVER_SETTINGS.maxSessionsPerAddress.max,
  connectionsPerSecondPerAddress: 0,
  queriesPerSecondPerAddress: 0,
  originConcurrentFetches: 0,
  originFetchesPerSecond: 0,
  linesPerSecondPerSession: SERVER_SETTINGS.linesPerSecondPerSession.max,
  badLineBurst: SERVER_SETTINGS.badLineBurst.max,
  badLinesPerSecond: SERVER_SETTINGS.badLinesPerSecond.max,
});

/** Server settings as the environment variables `headwire server` reads (for a server started as a process). */
export function serverSettingsAsEnvironment(settings: Partial<ServerConfig>): Record<string, string> {
  const environment: Record<string, string> = {};
  for (const [key, value] of Object.entries(settings)) {
    const name = envOf(key, SERVER_SETTINGS[key as keyof typeof SERVER_SETTINGS]);
    if (name !== undefined) environment[name] = String(value);
  }
  return environment;
}
