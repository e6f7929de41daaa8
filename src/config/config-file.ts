/**
 * A config file (`headwire server --config FILE`): TOML (https://toml.io/en/v1.0.0), parsed by
 * smol-toml, read into the same overrides as flags and environment variables (pure: text in,
 * values out; the file is read by the CLI).
 *
 * Why TOML: it has integers, booleans and arrays of its own, so `ticket-ttl-ms = 30_000` and
 * `allow = ["10.1.2.0/24"]` need no quoting rules; comments; no indentation that changes
 * meaning (YAML's), and no significant types hidden in unquoted words (YAML's `no` is false).
 *
 * Keys are the flags' names without `--` (`ticket-ttl-ms = 30000`), so an operator moves a
 * setting between the command line and the file without renaming it; a `--no-x` switch is
 * `x = false`. Everything is at the top level. A camelCase name or a variable's name is refused
 * with the key to write instead; any other unknown key is refused too: a typo must not pass for
 * a default.
 */
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "../errors.js";
import { envOf, longFlagOf, type SettingsTable } from "./schema.js";

/** Values by setting key, and for each the place it was given ("ticket-ttl-ms in /etc/headwire/headwire.toml"). */
export interface FileSettings {
  values: Record<string, unknown>;
  sources: Record<string, string>;
}

/** A setting's key in a config file: its long flag without `--`, and `x` for a `--no-x` switch. */
export function fileKeyOf(key: string, table: SettingsTable): string | undefined {
  const setting = table[key]!;
  const flag = longFlagOf(key, setting)?.slice(2);
  if (flag === undefined) return undefined;
  return setting.kind === "boolean" && flag.startsWith("no-") ? flag.slice(3) : flag;
}

export function parseConfigFile(text: string, path: string, table: SettingsTable): FileSettings {
  let document: Record<string, unknown>;
  try {
    document = parse(text, { unsafeKeyBehaviour: "throw" });
  } catch (error) {
    if (error instanceof TomlError) {
      const reason = error.message.split("\n")[0]!.replace(/^Invalid TOML document: /, "");
      throw new ConfigError(`${path}:${error.line}:${error.column}: not valid TOML: ${reason}`, { cause: error });
    }
    throw error;
  }
  const byFileKey = new Map<string, string>();
  for (const key of Object.keys(table)) {
    const fileKey = fileKeyOf(key, table);
    if (fileKey !== undefined) byFileKey.set(fileKey, key);
  }
  const settings: FileSettings = { values: {}, sources: {} };
  for (const [name, value] of Object.entries(document)) {
    const key = byFileKey.get(name);
    if (key === undefined) throw new ConfigError(`${path}: ${unknownKey(name, value, table)}`);
    settings.values[key] = value;
    settings.sources[key] = `${name} in ${path}`;
  }
  return settings;
}

/** Why `name` is refused, with the key meant when it can be told. */
function unknownKey(name: string, value: unknown, table: SettingsTable): string {
  const isTable = typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Date);
  if (isTable) return `[${name}]: settings are written at the top level, without tables`;
  const meant = Object.keys(table).find((key) => {
    const setting = table[key]!;
    return name === key || name === longFlagOf(key, setting) || name === envOf(key, setting);
  });
  const fileKey = meant === undefined ? undefined : fileKeyOf(meant, table);
  if (fileKey !== undefined) return `unknown setting "${name}": write it as ${fileKey} (its flag's name without --)`;
  return `unknown setting "${name}" (the keys are the flags' names without --, listed by headwire server --help)`;
}
