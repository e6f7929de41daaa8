/**
 * Commander options made from a settings table (src/config/settings.ts): one option per setting
 * that has a flag, with its environment variable, default and help, so a command never writes a
 * setting again. Values are only parsed here (a whole number is a whole number); their bounds are
 * checked where every other caller's are, when the config is resolved.
 */
import { Option, type Command } from "commander";
import { defaultTextOf, envOf, flagsOf, longFlagOf, type ConfigOf, type SettingsTable } from "../config/schema.js";
import { integer } from "./parse.js";

/** Reads the parsed options back as config overrides (an option left unset is absent, so its default applies). */
export type SettingsReader<T extends SettingsTable> = (opts: Record<string, unknown>) => Partial<ConfigOf<T>>;

export function settingOption(key: string, table: SettingsTable): Option | undefined {
  const setting = table[key]!;
  const flags = flagsOf(key, setting);
  if (flags === undefined) return undefined;
  const option = new Option(flags, setting.help);
  const env = envOf(key, setting);
  if (env !== undefined) option.env(env);
  if (setting.kind === "integer") option.argParser(integer);
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
  return (opts) => {
    const overrides: Record<string, unknown> = {};
    for (const [key, attribute] of names) if (opts[attribute] !== undefined) overrides[key] = opts[attribute];
    return overrides as Partial<ConfigOf<T>>;
  };
}

/** The README's table of settings: flag, environment variable, default, meaning. */
export function settingsTableRows(table: SettingsTable): string[][] {
  const rows: string[][] = [];
  for (const [key, setting] of Object.entries(table)) {
    const flag = longFlagOf(key, setting);
    if (flag === undefined) continue;
    const env = envOf(key, setting);
    // A string default is a value to type, shown as code; "none" and the other words are not.
    const shown = defaultTextOf(setting);
    const plain = setting.kind !== "string" || setting.defaultText !== undefined || setting.default === "";
    rows.push([`\`${flag}\``, env === undefined ? "" : `\`${env}\``, plain ? shown : `\`${shown}\``, setting.help]);
  }
  return rows;
}
