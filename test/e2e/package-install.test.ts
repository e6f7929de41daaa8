/**
 * The package as a user gets it (issue 14): `npm pack` on a copy of the sources builds dist/ and
 * packs it with its dependencies bundled; the tarball installs into an empty prefix with the
 * network off (--offline) and builds nothing; `headwire --version` and `headwire demo` run from
 * there; a project that installs it imports the library, runs it, and type-checks against its
 * declarations; and the systemd unit, pointed at the installed binary, passes systemd-analyze.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { cp, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { tempDir } from "../helpers.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
/** What `npm pack` needs to build and pack: the tests and the benchmark stay behind. */
const SOURCES = [
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "README.md",
  "bin",
  "src",
  "docs",
  "packaging",
  "dissector",
];
/** Each step is bounded, however loaded the machine: a hung npm fails the test with its output. */
const STEP_MS = 300_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** npm's own variables (set when the suite runs under `npm test`) would steer the npm we start. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...cleanEnv(), NO_COLOR: "1" } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (text: string) => (stdout += text));
    child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill("SIGKILL"), STEP_MS);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function succeeded(result: Run, what: string): Run {
  assert.equal(result.code, 0, `${what} failed:\n${result.stdout}\n${result.stderr}`);
  return result;
}

function hasCommand(command: string): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => existsSync(join(dir, command)));
}

test(
  "npm pack → an offline install in an empty prefix: the CLI, the library and its types, the systemd unit",
  { timeout: 1_200_000 },
  async (t) => {
    const dir = await tempDir(t);
    const version = (JSON.parse(await readFile(join(REPO, "package.json"), "utf8")) as { version: string }).version;

    // A copy of the sources without dist/: the tarball's dist/ must come from the pack's own build.
    const copy = join(dir, "source");
    await mkdir(copy);
    for (const name of SOURCES) await cp(join(REPO, name), join(copy, name), { recursive: true });
    await symlink(join(REPO, "node_modules"), join(copy, "node_modules"), "dir");
    const packed = succeeded(await run("npm", ["pack", "--json", "--pack-destination", dir], copy), "npm pack");
    const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf("["))) as Array<{
      filename: string;
      files: Array<{ path: string }>;
    }>;
    const files = info!.files.map((file) => file.path);
    const ours = files.filter((path) => !path.startsWith("node_modules/"));
    for (const path of [
      "bin/headwire",
      "dist/src/index.js",
      "dist/src/index.d.ts",
      "dist/src/cli/main.js",
      "packaging/headwire.service",
      "packaging/headwire.toml",
      "dissector/headwire.lua",
      "src/admin/status-page/index.html",
      "src/admin/status-page/status.js",
      "src/admin/status-page/status.css",
      "docs/operations.md",
      "README.md",
    ]) {
      assert.ok(ours.includes(path), `${path} is in the tarball`);
    }
    // The status page's plain files are served from src/admin/status-page/ (no build step): the one part of src/ shipped.
    const shipped = ours.filter(
      (path) =>
        !path.startsWith("src/admin/status-page/") &&
        /^(test|bench|src|scripts)\/|^dist\/(test|bench)\/|\.map$|(?<!\.d)\.ts$/.test(path),
    );
    assert.deepEqual(shipped, [], "no tests, benchmark, TypeScript sources or source maps");
    assert.ok(files.includes("node_modules/commander/package.json"), "the runtime dependencies are bundled");
    const tarball = join(dir, info!.filename);

    await t.test("installs offline into an empty prefix, builds nothing, and runs", async () => {
      const prefix = join(dir, "prefix");
      succeeded(
        await run("npm", ["install", "-g", "--prefix", prefix, tarball, "--offline", "--no-audit", "--no-fund"], dir),
        "npm install -g --offline",
      );
      const installed = join(prefix, "lib", "node_modules", "headwire");
      assert.ok(
        !existsSync(join(installed, "tsconfig.json")) && !existsSync(join(installed, "src", "index.ts")),
        "no sources to build",
      );
      const bin = join(prefix, "bin", "headwire");
      assert.equal(succeeded(await run(bin, ["--version"], dir), "headwire --version").stdout, `${version}\n`);
      const demo = succeeded(await run(bin, ["demo"], dir), "headwire demo");
      assert.match(demo.stdout, /demo finished: every step did what it should/);
      const dissector = succeeded(await run(bin, ["dissector"], dir), "headwire dissector");
      assert.equal(dissector.stdout, await readFile(join(REPO, "dissector", "headwire.lua"), "utf8"));
    });

    const systemdAnalyze = hasCommand("systemd-analyze")
      ? false
      : "SKIPPED: systemd-analyze is missing (Debian package systemd; .ci/run installs it)";
    await t.test(
      "the systemd unit, pointed at the installed binary, passes systemd-analyze verify",
      { skip: systemdAnalyze },
      async () => {
        const installed = join(dir, "prefix", "lib", "node_modules", "headwire");
        const bin = join(dir, "prefix", "bin", "headwire");
        // verify checks that ExecStart's binary exists and is executable: the unit, as shipped, with
        // ExecStart at the binary the install above made (the shipped path is /usr/local/bin/headwire).
        const unit = await readFile(join(installed, "packaging", "headwire.service"), "utf8");
        assert.match(unit, /^ExecStart=\/usr\/local\/bin\/headwire server --config \/etc\/headwire\/headwire\.toml /m);
        const unitCopy = join(dir, "headwire.service");
        await writeFile(unitCopy, unit.replace(/^ExecStart=\/usr\/local\/bin\/headwire /m, `ExecStart=${bin} `));
        const verified = await run("systemd-analyze", ["verify", unitCopy], dir);
        assert.equal(verified.code, 0, verified.stderr);
        assert.equal(verified.stderr, "", "no warning either (an unknown or misspelt directive is only a warning)");
      },
    );

    await t.test(
      "a project that installs it imports the library, runs it, and type-checks against its declarations",
      async () => {
        const project = join(dir, "project");
        await mkdir(project);
        await writeFile(
          join(project, "package.json"),
          JSON.stringify({ name: "uses-headwire", private: true, type: "module" }),
        );
        succeeded(
          await run("npm", ["install", tarball, "--offline", "--no-audit", "--no-fund"], project),
          "npm install --offline",
        );
        // A server and a client from the package: a real session on loopback, then both closed.
        await writeFile(
          join(project, "session.mjs"),
          `import { HeadwireClient, HeadwireServer, VERSION } from "headwire";
const server = await new HeadwireServer({ host: "127.0.0.1", controlPort: 0, dataPort: 0, cacheUrl: "memory", log: () => {} }).start();
const client = await HeadwireClient.connect({ serverPort: server.controlPort });
const result = await client.query({ url: "ftp://example.invalid/", write: false });
await client.terminate();
await server.stop();
console.log(VERSION, client.serverName, result.error?.code);
`,
        );
        const session = succeeded(await run(process.execPath, ["session.mjs"], project), "the library");
        assert.equal(session.stdout, `${version} headwire/${version} UNSUPPORTED_SCHEME\n`);

        const tsc = join(REPO, "node_modules", "typescript", "bin", "tsc");
        const tsconfig = (file: string) =>
          JSON.stringify({
            compilerOptions: {
              target: "ES2022",
              module: "NodeNext",
              moduleResolution: "NodeNext",
              strict: true,
              noEmit: true,
              skipLibCheck: false,
              types: ["node"],
              typeRoots: [join(REPO, "node_modules", "@types")],
            },
            files: [file],
          });
        await writeFile(
          join(project, "good.ts"),
          `import { HeadwireClient, HeadwireError, type ClientConfig, type QueryResult } from "headwire";
const settings: Partial<ClientConfig> = { serverHost: "127.0.0.1", serverPort: 50366, delivery: "auto" };
export async function first(url: string): Promise<QueryResult> {
  const client = await HeadwireClient.connect(settings);
  try {
    return await client.query({ url });
  } finally {
    await client.terminate();
  }
}
export const isOurs = (error: unknown): boolean => error instanceof HeadwireError;
`,
        );
        await writeFile(join(project, "tsconfig.json"), tsconfig("good.ts"));
        succeeded(
          await run(process.execPath, [tsc, "-p", "tsconfig.json"], project),
          "tsc on a file that uses headwire",
        );
        // The check can fail: a wrong use of the same declarations is refused.
        await writeFile(
          join(project, "bad.ts"),
          `import { HeadwireClient } from "headwire";\nexport const n: number = HeadwireClient.connect;\n`,
        );
        await writeFile(join(project, "tsconfig.bad.json"), tsconfig("bad.ts"));
        const refused = await run(process.execPath, [tsc, "-p", "tsconfig.bad.json"], project);
        assert.notEqual(refused.code, 0);
        assert.match(refused.stdout, /bad\.ts\(2,14\): error TS2322/);
      },
    );
  },
);
