/**
 * nginx, from Debian's packages, as a real origin: what headwire delivers for its responses is
 * byte for byte what `curl -s -D - -o /dev/null` records. Skips loudly without nginx or curl.
 */
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { HeadwireClient } from "../../src/client/headwire-client.js";
import { VERSION } from "../../src/version.js";
import { startServer, tempDir } from "../helpers.js";

const execFileAsync = promisify(execFile);
/** The User-Agent the server sends (headwire/<version>): curl is given the same one to compare. */
const USER_AGENT = `headwire/${VERSION}`;
const NGINX = ["/usr/sbin/nginx", "nginx"].find((path) => !spawnSync(path, ["-v"]).error);

async function freePort(): Promise<number> {
  const probe = createServer().listen(0, "127.0.0.1");
  await once(probe, "listening");
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

async function startNginx(t: Parameters<typeof tempDir>[0] & { after: (fn: () => void) => void }, dir: string) {
  const port = await freePort();
  await mkdir(join(dir, "html"), { recursive: true });
  await writeFile(join(dir, "html", "index.html"), "<h1>hello from nginx</h1>\n");
  await writeFile(join(dir, "html", "style.css"), "body { color: red }\n");
  // nginx's workers run as an unprivileged user: they must reach the files.
  await chmod(dir, 0o755);
  await chmod(join(dir, ".."), 0o755);
  await writeFile(
    join(dir, "nginx.conf"),
    `
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp-body; proxy_temp_path ${dir}/tmp-proxy; fastcgi_temp_path ${dir}/tmp-fcgi;
  uwsgi_temp_path ${dir}/tmp-uwsgi; scgi_temp_path ${dir}/tmp-scgi;
  types { text/html html; text/css css; }
  server {
    listen 127.0.0.1:${port};
    root ${dir}/html;
    location = /moved { return 301 /index.html; }
    location = /cached { add_header Cache-Control "public, max-age=600"; add_header X-Custom "a"; add_header X-Custom "b"; try_files /index.html =404; }
    location = /teapot { return 418; }
    location = /echo { add_header X-UA "$http_user_agent"; add_header X-Lang "$http_accept_language"; add_header X-Accept "[$http_accept]"; return 204; }
  }
}
`,
  );
  const nginx = spawn(NGINX!, ["-p", dir, "-c", join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: "ignore" });
  // SIGTERM: the master stops its workers too (SIGKILL would leave them running, orphaned).
  t.after(async () => {
    if (nginx.exitCode !== null || nginx.signalCode !== null) return;
    const exited = once(nginx, "exit");
    nginx.kill("SIGTERM");
    await exited;
  });
  // Ready when it answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await execFileAsync("curl", ["-q", "-s", "-o", "/dev/null", `http://127.0.0.1:${port}/`]).then(
      () => true,
      () => false,
    );
    if (ok) return port;
    if (Date.now() > deadline) throw new Error("nginx did not start");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

test("nginx as an origin: headwire delivers exactly what curl records", async (t) => {
  if (!NGINX) return t.skip("nginx not installed: apt-get install nginx");
  if (spawnSync("curl", ["--version"]).error) return t.skip("curl not installed: apt-get install curl");
  const dir = await tempDir(t);
  const port = await startNginx(t, join(dir, "nginx"));
  const server = await startServer(dir, {}, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: join(dir, "out") });
  t.after(() => client.destroy());
  for (const path of ["/", "/index.html", "/style.css", "/moved", "/cached", "/teapot", "/missing"]) {
    const url = `http://127.0.0.1:${port}${path}`;
    // curl first: nginx's Date header changes by the second, so compare within one second.
    for (let attempt = 0; ; attempt++) {
      const { stdout: curl } = await execFileAsync(
        "curl",
        // curl's default request, with headwire's User-Agent (the one field headwire keeps its own).
        ["-q", "--noproxy", "*", "-s", "-A", USER_AGENT, "-D", "-", "-o", "/dev/null", url],
        { encoding: "buffer" },
      );
      await server.purge(url);
      const ours = await client.query({ url, write: false });
      assert.equal(ours.error, undefined, `${path}: ${JSON.stringify(ours.error)}`);
      if (ours.header!.equals(curl) || attempt === 2) {
        assert.equal(ours.header!.toString("latin1"), curl.toString("latin1"), path);
        break;
      }
    }
  }
  // nginx keeps the connection (no Connection: close asked), and so does the server: the fetches
  // above, bodies of a known length each, went on kept connections, with the same bytes.
  t.diagnostic(`origin connections: ${JSON.stringify(server.stats().originConnections)}`);
  assert.ok(server.stats().originConnections.reused >= 1, JSON.stringify(server.stats().originConnections));
});

test("-H and -A as curl sends them: nginx answers headwire and curl with the same bytes", async (t) => {
  if (!NGINX) return t.skip("nginx not installed: apt-get install nginx");
  if (spawnSync("curl", ["--version"]).error) return t.skip("curl not installed: apt-get install curl");
  const dir = await tempDir(t);
  const port = await startNginx(t, join(dir, "nginx"));
  const server = await startServer(dir, {}, t);
  const client = await HeadwireClient.connect({ serverPort: server.controlPort, outDir: join(dir, "out") });
  t.after(() => client.destroy());
  const url = `http://127.0.0.1:${port}/echo`;
  const flags = ["-A", "curl-alike/1.0", "-H", "Accept-Language: fr, en;q=0.5", "-H", "Accept:"];
  const headers = [
    { name: "User-Agent", value: "curl-alike/1.0" },
    { name: "Accept-Language", value: "fr, en;q=0.5" },
    { name: "Accept", value: "" },
  ];
  for (let attempt = 0; ; attempt++) {
    const { stdout: curl } = await execFileAsync(
      "curl",
      ["-q", "--noproxy", "*", "-s", ...flags, "-D", "-", "-o", "/dev/null", url],
      { encoding: "buffer" },
    );
    await server.purge(url);
    const ours = await client.query({ url, options: { headers }, write: false });
    assert.equal(ours.error, undefined, JSON.stringify(ours.error));
    const text = ours.header!.toString("latin1");
    assert.match(text, /\r\nX-UA: curl-alike\/1\.0\r\n/);
    assert.match(text, /\r\nX-Lang: fr, en;q=0\.5\r\n/);
    assert.match(text, /\r\nX-Accept: \[\]\r\n/, "no Accept sent, as curl -H 'Accept:'");
    if (ours.header!.equals(curl) || attempt === 2) {
      assert.equal(text, curl.toString("latin1"));
      break;
    }
  }
});
