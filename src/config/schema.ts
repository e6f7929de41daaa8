/**
 * What a settings table is made of, and everything derived from one: the config type, the
 * defaults, the checks, the flag and the environment variable of each setting. Each setting is
 * written once (src/config/settings.ts); nothing here knows a setting by name.
 *
 * Why a plain typed table and no library: zod, valibot and convict check values and infer types,
 * but none of them builds commander options with our flag and environment names and help, and
 * the messages must stay exactly as documented (`--ticket-ttl-ms must be an integer from 1 to
 * 3600000, got 0`: a setting is named by its flag, the name an operator types in a command line
 * or a config file, never by its internal name). The checks are a few lines each; a library
 * would add a second description of every setting rather than remove one.
 */
import { ConfigError } from "../errors.js";

interface SettingBase {
  /** One line: the flag's help and the README's "meaning" column. */
  readonly help: string;
  /**
   * The commander flags when they are not derived from the name (`ticketTtlMs` →
   * `--ticket-ttl-ms <ms>`); false: the setting has no flag (it is set in code only).
   */
  readonly flag?: string | false;
  /** false: no environment variable. Otherwise HEADWIRE_ and the long flag in capitals. */
  readonly env?: false;
  /** How the default reads in help and README when the value alone says nothing ("" → "none"). */
  readonly defaultText?: string;
  /**
   * What a running server does when a re-read (SIGHUP) changes it: "now", it applies at once;
   * "new sessions", sessions opened from then on get it (open ones keep theirs); absent, it
   * needs a restart (a bound port, the cache's shape: things built once at start).
   */
  readonly reload?: Reload;
  /** Never shown in a log line (a reload says it changed, not what to). */
  readonly secret?: true;
}

export type Reload = "now" | "new sessions";

export interface IntegerSetting extends SettingBase {
  readonly kind: "integer";
  readonly min: number;
  readonly max: number;
  readonly default: number;
}

export interface StringSetting extends SettingBase {
  readonly kind: "string";
  readonly default: string;
  /** What is wrong with a value ("must be ..."), or undefined when it is fine. */
  readonly check?: (value: string) => string | undefined;
}

export interface BooleanSetting extends SettingBase {
  readonly kind: "boolean";
  readonly default: boolean;
}

/** A list of strings, given as several values of one flag (`--allow 10.0.0.0/8 192.168.0.0/16`). */
export interface ListSetting extends SettingBase {
  readonly kind: "list";
  readonly default: readonly string[];
  /** What is wrong with one item ("... is not a CIDR range"), or undefined when it is fine. */
  readonly check?: (item: string) => string | undefined;
}

export type Setting = IntegerSetting | StringSetting | BooleanSetting | ListSetting;
export type SettingsTable = Readonly<Record<string, Setting>>;

type ValueOf<S extends Setting> = S extends { kind: "integer" }
  ? number
  : S extends { kind: "boolean" }
    ? boolean
    : S extends { kind: "list" }
      ? string[]
      : string;

/** The config a table describes: one field per setting, typed by its kind (and documented there). */
export type ConfigOf<T extends SettingsTable> = { -readonly [K in keyof T]: ValueOf<T[K]> };

export function defaultsOf<T extends SettingsTable>(table: T): ConfigOf<T> {
  return Object.fromEntries(
    Object.entries(table).map(([key, setting]) => [key, copyOf(setting.default)]),
  ) as ConfigOf<T>;
}

/** Where each given value came from, said after a bad one ("from HEADWIRE_PORT", "in /etc/headwire/headwire.toml"). */
export type SettingSources = Readonly<Record<string, string>>;

/**
 * The defaults with the given values on top, each checked; keys that are not settings are
 * ignored, so callers may pass their whole options object. A bad value is a ConfigError that
 * names the setting as an operator knows it (nameOf), and where the value came from if known.
 */
export function resolveSettings<T extends SettingsTable>(
  scope: string,
  table: T,
  overrides: Readonly<Record<string, unknown>>,
  sources: SettingSources = {},
): ConfigOf<T> {
  const config: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(table)) {
    const value = overrides[key] === undefined ? setting.default : overrides[key];
    const source = sources[key];
    const problem = problemOf(setting, value);
    if (problem !== undefined) {
      throw new ConfigError(`${nameOf(scope, key, setting)}${problem}${source === undefined ? "" : ` (${source})`}`);
    }
    config[key] = copyOf(value);
  }
  return config as ConfigOf<T>;
}

/**
 * A setting as messages name it: its long flag (`--ticket-ttl-ms`), the name in a command line,
 * an environment variable's and a config file's key alike; `scope.key` only for a setting that
 * has no flag (set in code: a library's caller knows that name).
 */
export function nameOf(scope: string, key: string, setting: Setting): string {
  return longFlagOf(key, setting) ?? `${scope}.${key}`;
}

/** What is wrong with a value, as the rest of a message after the setting's name (" must be ..."). */
function problemOf(setting: Setting, value: unknown): string | undefined {
  switch (setting.kind) {
    case "integer": {
      const { min, max } = setting;
      if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
        return ` must be an integer from ${min} to ${max}, got ${shown(value)}`;
      }
      return undefined;
    }
    case "string": {
      if (typeof value !== "string") return ` must be a string, got ${typeof value}`;
      const problem = setting.check?.(value);
      return problem === undefined ? undefined : ` ${problem}`;
    }
    case "boolean":
      return typeof value === "boolean" ? undefined : ` must be true or false, got ${shown(value)}`;
    case "list": {
      if (!Array.isArray(value)) return ` must be a list of strings, got ${typeof value}`;
      const bad = value.findIndex((item) => typeof item !== "string");
      if (bad !== -1) return `[${bad}] must be a string, got ${typeof value[bad]}`;
      for (const item of value as string[]) {
        const problem = setting.check?.(item);
        if (problem !== undefined) return `: ${problem}`;
      }
      return undefined;
    }
  }
}

/** A number as itself, anything else as JSON (a string in quotes: `got "soon"`, not `got soon`). */
function shown(value: unknown): string {
  return typeof value === "number" ? String(value) : (JSON.stringify(value) ?? String(value));
}

/** Lists are copied, so a config never shares an array with its caller or the defaults. */
function copyOf<V>(value: V): V {
  return (Array.isArray(value) ? [...value] : value) as V;
}

/** The commander flags of a setting (`-p, --port <port>`), or undefined when it has none. */
export function flagsOf(key: string, setting: Setting): string | undefined {
  if (setting.flag === false) return undefined;
  if (setting.flag !== undefined) return setting.flag;
  const long = `--${key.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)}`;
  switch (setting.kind) {
    case "integer":
      return `${long} ${key.endsWith("Ms") ? "<ms>" : "<n>"}`;
    case "string":
      return `${long} <value>`;
    case "boolean":
      return long;
    case "list":
      return `${long} <value...>`;
  }
}

/** The long flag alone: `--port` for `-p, --port <port>`. */
export function longFlagOf(key: string, setting: Setting): string | undefined {
  return /--[a-z0-9-]+/.exec(flagsOf(key, setting) ?? "")?.[0];
}

/** HEADWIRE_ and the long flag in capitals (`--data-port` → HEADWIRE_DATA_PORT), unless it has none. */
export function envOf(key: string, setting: Setting): string | undefined {
  const long = longFlagOf(key, setting);
  if (setting.env === false || long === undefined) return undefined;
  return `HEADWIRE_${long.slice(2).toUpperCase().replace(/-/g, "_")}`;
}

/** The default as help and README show it. */
export function defaultTextOf(setting: Setting): string {
  if (setting.defaultText !== undefined) return setting.defaultText;
  switch (setting.kind) {
    case "integer":
      return String(setting.default);
    case "string":
      return setting.default === "" ? "none" : setting.default;
    case "boolean":
      return setting.default ? "on" : "off";
    case "list":
      return setting.default.length === 0 ? "none" : setting.default.join(" ");
  }
}
