/**
 * Commander options made from a settings table (src/config/settings.ts): one option per setting
 * that has a flag, with its environment variable, default and help, so a command never writes a
 * setting again. Values are only read here (digits become a number); whether they are right is
 * checked where every other caller's are, when the config is resolved, so a bad value gets the
 * same message (`--ticket-ttl-ms must be an integer from 1 to 3600000, got "soon"`) from a flag,
 * a variable or a config file, and never commander's message followed by the whole help.
 */
import { Option, type Command } from "commander";
import {
  defaultTextOf,
  envOf,
  flagsOf,
  longFlagOf,
  type ConfigOf,
  type SettingSources,
  type SettingsTable,
} from "../config/schema.js";

/** Settings given on the command line or in the environment, and where each variable's came from. */
export interface GivenSettings<T extends SettingsTable> {
  values: Partial<ConfigOf<T>>;
  /** "from HEADWIRE_PORT" for a value a variable gave; a flag's value needs no source (its name is the flag). */
  sources: SettingSources;
}

/** Reads a parsed command's options back as config overrides (an option left unset is absent, so its default applies). */
export type SettingsReader<T extends SettingsTable> = (command: Command) => GivenSettings<T>;

export function settingOption(key: string, table: SettingsTable): Option | undefined {
  const setting = table[key]!;
  const flags = flagsOf(key, setting);
  if (flags === undefined) return undefined;
  const option = new Option(flags, setting.help);
  const env = envOf(key, setting);
  if (env !== undefined) option.env(env);
  // A list whose flag takes one value (`--trust-udp-host <host>`) is given by repeating the flag:
  // a variadic one would swallow the URL arguments that follow it.
  if (setting.kind === "list" && !option.variadic) {
    option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
  }
  // An empty string or list means "none": no default is shown, the config supplies it. A
  // `--no-` flag gets its default (true) from commander.
  const showsDefault =
    setting.kind === "integer" ||
    (setting.kind === "string" && setting.default !== "") ||
    (setting.kind === "boolean" && !option.negate);
  if (showsDefault) option.default(setting.default);
  return option;
}

/** Adds an option for every setting of `table` that has a flag, in the table's order. */
export function addSettingOptions<T extends SettingsTable>(command: Command, table: T): SettingsReader<T> {
  const names: Array<[key: string, attribute: string]> = [];
  for (const key of Object.keys(table)) {
    const option = settingOption(key, table);
    if (option === undefined) continue;
    command.addOption(option);
    names.push([key, option.attributeName()]);
  }
  return (command) => {
    const opts = command.opts();
    const values: Record<string, unknown> = {};
    const sources: Record<string, string> = {};
    for (const [key, attribute] of names) {
      // A default shown in the help is not a value given: it must not hide a config file's.
      const source = command.getOptionValueSource(attribute);
      if (opts[attribute] === undefined || (source !== "cli" && source !== "env")) continue;
      values[key] = valueOf(table[key]!.kind, opts[attribute]);
      if (source === "env") sources[key] = `from ${envOf(key, table[key]!)}`;
    }
    return { values: values as Partial<ConfigOf<T>>, sources };
  };
}

/** Digits are a number for an integer setting; anything else stays as typed, to be refused by name. */
function valueOf(kind: string, value: unknown): unknown {
  return kind === "integer" && typeof value === "string" && /^\d{1,15}$/.test(value) ? Number(value) : value;
}

/** The README's table of settings: flag, environment variable, default, what SIGHUP does with it, meaning. */
export function settingsTableRows(table: SettingsTable): string[][] {
  const rows: string[][] = [];
  for (const [key, setting] of Object.entries(table)) {
    const flag = longFlagOf(key, setting);
    if (flag === undefined) continue;
    const env = envOf(key, setting);
    // A string default is a value to type, shown as code; "none" and the other words are not.
    const shown = defaultTextOf(setting);
    const plain = setting.kind !== "string" || setting.defaultText !== undefined || setting.default === "";
    const reload = setting.reload ?? "restart";
    rows.push([
      `\`${flag}\``,
      env === undefined ? "" : `\`${env}\``,
      plain ? shown : `\`${shown}\``,
      reload,
      setting.help,
    ]);
  }
  return rows;
}
