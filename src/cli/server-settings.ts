/**
 * The settings `headwire server` runs with, from their four places in order of precedence:
 * flags > environment variables > the config file (--config) > defaults. Commander has already
 * put a flag over its variable; the file goes under both. Read at start and again at each SIGHUP
 * (the flags and the environment do not change while the process runs; the file may).
 */
import { readFile } from "node:fs/promises";
import { parseConfigFile } from "../config/config-file.js";
import { longFlagOf, type SettingSources } from "../config/schema.js";
import { ConfigError, resolveServerConfig, SERVER_SETTINGS, type ServerConfig } from "../config.js";
import type { GivenSettings } from "./setting-options.js";

export interface ServerSettings {
  /** The given values (file, variables, flags), as HeadwireServer and reconfigure() take them. */
  values: Partial<ServerConfig>;
  sources: SettingSources;
  /** The values resolved and checked: a ConfigError was thrown instead if one was bad. */
  config: ServerConfig;
  /**
   * The file's settings that a flag or a variable hides ("ticket-ttl-ms in FILE is overridden by
   * HEADWIRE_TICKET_TTL_MS"): said at start and at each reload, or an operator who edits the file
   * wonders why nothing changes.
   */
  overridden: string[];
}

export async function loadServerSettings(
  given: GivenSettings<typeof SERVER_SETTINGS>,
  configFile: string | undefined,
): Promise<ServerSettings> {
  const file =
    configFile === undefined
      ? { values: {}, sources: {} }
      : parseConfigFile(await readConfigFile(configFile), configFile, SERVER_SETTINGS);
  const values = { ...file.values, ...given.values } as Partial<ServerConfig>;
  const sources: Record<string, string> = { ...file.sources };
  // A flag's value hides the file's, and so does its source: the message must name where it came from.
  const overridden: string[] = [];
  for (const key of Object.keys(given.values)) {
    const inFile = sources[key];
    if (inFile !== undefined) {
      const by =
        given.sources[key]?.replace(/^from /, "") ?? longFlagOf(key, SERVER_SETTINGS[key as keyof ServerConfig]);
      overridden.push(`${inFile} is overridden by ${by}`);
    }
    delete sources[key];
  }
  Object.assign(sources, given.sources);
  return { values, sources, config: resolveServerConfig(values, sources), overridden };
}

async function readConfigFile(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new ConfigError(`--config ${path} cannot be read: ${code ?? message}`, { cause: error });
  }
}
