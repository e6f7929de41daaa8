/**
 * headwire as a library (`import { HeadwireClient } from "headwire"`): the package's one entry
 * point (package.json "exports"). The client is the library's purpose; the server is exported
 * too, for a program that embeds one (tests, a benchmark, a supervisor of its own). Everything
 * else under dist/ is internal: its paths may change in any release.
 */
export { HeadwireClient, type DataAddress, type QueryRequest, type QueryResult } from "./client/headwire-client.js";
export type { ClientTrace } from "./client/control-connection.js";
export type { QueryOptions } from "./http/query-options.js";
export {
  HeadwireServer,
  type HeadwireServerOptions,
  type ReconfigureResult,
  type ServerStats,
  type SettingChange,
} from "./server/headwire-server.js";
export {
  CLIENT_SETTINGS,
  DEFAULT_CLIENT_CONFIG,
  DEFAULT_SERVER_CONFIG,
  resolveClientConfig,
  resolveServerConfig,
  SERVER_SETTINGS,
  type ClientConfig,
  type ServerConfig,
} from "./config.js";
export {
  ConfigError,
  ERROR_CODES,
  HeadwireError,
  isHeadwireError,
  type ErrorCode,
  type LocalErrorCode,
  type WireErrorCode,
} from "./errors.js";
export { VERSION } from "./version.js";
