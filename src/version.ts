import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const manifest = require("../../package.json") as { version: string };

/** headwire's version, from package.json. */
export const VERSION: string = manifest.version;
