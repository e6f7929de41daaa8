/**
 * The admin HTTP listener (`--admin-http`, 127.0.0.1:50368 by default): Prometheus metrics,
 * Kubernetes probes, the cache as JSON (and its purge), and the live status page.
 *
 *   GET    /healthz           200 while the process serves
 *   GET    /readyz            200 when listeners are bound, the cache loaded and Redis reachable; 503 and why
 *   GET    /metrics           Prometheus text (prom-client)
 *   GET    /cache             {"entries":[{key,status,bytes,storedAt,freshUntil,fresh}]}
 *   DELETE /cache?url=URL     purges one URL's entries (every variant); ?all=1 every entry: {"purged":N}
 *   GET    /                  the status page (src/admin/status-page/), /status.js, /status.css
 *   GET    /api/status        the page's snapshot; /api/events its server-sent events;
 *   GET    /api/sessions/N/trace   a session's trace for its sequence diagram
 *
 * Beyond loopback the listener requires the admin token (the config refuses such a bind
 * without one): `Authorization: Bearer TOKEN`, compared in constant time; the probes are open,
 * since a kubelet asks them and they tell nothing. A browser cannot put a header on an
 * EventSource, so `/?token=TOKEN` sets it as an HttpOnly, SameSite=Strict cookie once.
 */
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { formatAdminAddress, isLoopbackBind, type AdminAddress } from "../config/admin-address.js";
import { HeadwireError } from "../errors.js";
import type { ServerMetrics } from "../observe/metrics.js";
import type { StatusBoard } from "../observe/status-board.js";
import { sameToken } from "../server/admin-token.js";
import { parseTarget } from "../url/target.js";

export interface Readiness {
  ready: boolean;
  /** Why not, one reason each ("control listener not bound", "redis unreachable: ..."). */
  reasons: string[];
}

export interface CacheEntryView {
  key: string;
  status: number;
  bytes: number;
  storedAt: string;
  freshUntil: string;
  fresh: boolean;
}

/** What the listener asks of the server. */
export interface AdminSubject {
  readiness(): Promise<Readiness>;
  cacheEntries(): Promise<CacheEntryView[]>;
  purge(url: string | undefined): Promise<number>;
  statusSnapshot(): Promise<unknown>;
}

export interface AdminHttpOptions {
  address: AdminAddress;
  /** "" : none. Required (the config checks it) when the bind is beyond loopback. */
  token: string;
  /** Loopback callers need no token (as loopback control sessions are admin), unless false. */
  loopbackIsAdmin: boolean;
  metrics: ServerMetrics;
  board: StatusBoard;
}

const PAGE_FILES: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/status.js": { file: "status.js", type: "text/javascript; charset=utf-8" },
  "/status.css": { file: "status.css", type: "text/css; charset=utf-8" },
};
/** The page's files, shipped as they are (no build step): beside this module's source. */
const PAGE_DIR = new URL("../../../src/admin/status-page/", import.meta.url);
const COOKIE = "headwire_admin";

export class AdminHttp {
  private constructor(
    private readonly server: Server,
    private readonly subject: AdminSubject,
    private readonly options: AdminHttpOptions,
  ) {}

  static async start(subject: AdminSubject, options: AdminHttpOptions): Promise<AdminHttp> {
    const server = createServer();
    const admin = new AdminHttp(server, subject, options);
    server.on("request", (request: IncomingMessage, response: ServerResponse) => admin.handle(request, response));
    server.listen({ host: options.address.host, port: options.address.port, ipv6Only: false });
    await Promise.race([
      once(server, "listening"),
      once(server, "error").then(([error]) => {
        throw error;
      }),
    ]);
    return admin;
  }

  /** HOST:PORT as bound (the port chosen when 0 was asked). */
  get address(): string {
    const bound = this.server.address() as AddressInfo;
    return formatAdminAddress({ host: this.options.address.host, port: bound.port });
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    this.route(request, response).catch((error: unknown) => {
      if (!response.headersSent) json(response, 500, { error: { code: "INTERNAL_ERROR", message: String(error) } });
      else response.destroy();
    });
  }

  private async route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://admin.invalid");
    const path = url.pathname;
    const method = request.method ?? "GET";
    if (path === "/healthz") return text(response, 200, "ok\n");
    if (path === "/readyz") {
      const readiness = await this.subject.readiness();
      return text(
        response,
        readiness.ready ? 200 : 503,
        readiness.ready ? "ready\n" : `not ready: ${readiness.reasons.join("; ")}\n`,
      );
    }
    if (path === "/" && url.searchParams.has("token") && this.tokenMatches(url.searchParams.get("token") ?? "")) {
      response.writeHead(303, {
        location: "/",
        "set-cookie": `${COOKIE}=${encodeURIComponent(this.options.token)}; HttpOnly; SameSite=Strict; Path=/`,
      });
      return void response.end();
    }
    if (!this.authorized(request)) {
      response.setHeader("www-authenticate", 'Bearer realm="headwire admin"');
      return json(response, 401, {
        error: { code: "FORBIDDEN", message: "the admin token is required: Authorization: Bearer TOKEN" },
      });
    }
    if (path === "/metrics" && method === "GET") {
      const body = await this.options.metrics.text();
      response.writeHead(200, { "content-type": this.options.metrics.contentType });
      return void response.end(body);
    }
    if (path === "/cache" && method === "GET")
      return json(response, 200, { entries: await this.subject.cacheEntries() });
    if (path === "/cache" && method === "DELETE") return this.purge(url, response);
    if (path === "/api/status" && method === "GET") return json(response, 200, await this.subject.statusSnapshot());
    if (path === "/api/events" && method === "GET") {
      if (!this.options.board.watch(response)) {
        return json(response, 503, { error: { code: "SERVER_BUSY", message: "too many status pages watching" } });
      }
      return;
    }
    const trace = /^\/api\/sessions\/(\d+)\/trace$/.exec(path);
    if (trace && method === "GET") return json(response, 200, { trace: this.options.board.trace(Number(trace[1])) });
    const page = PAGE_FILES[path];
    if (page && method === "GET") {
      const body = await readFile(new URL(page.file, PAGE_DIR));
      response.writeHead(200, { "content-type": page.type, "cache-control": "no-cache" });
      return void response.end(body);
    }
    return json(response, 404, { error: { code: "NOT_FOUND", message: `no ${method} ${path} here` } });
  }

  /** DELETE /cache?url=URL (one URL, every variant) or ?all=1: the one purge (cache/purge.ts). */
  private async purge(url: URL, response: ServerResponse): Promise<void> {
    const target = url.searchParams.get("url");
    const all = url.searchParams.get("all") === "1";
    if ((target === null) === !all) {
      return json(response, 400, { error: { code: "BAD_REQUEST", message: "give ?url=URL or ?all=1" } });
    }
    if (target !== null) {
      try {
        parseTarget(target);
      } catch (error) {
        const code = error instanceof HeadwireError ? error.code : "INVALID_URL";
        return json(response, 400, { error: { code, message: (error as Error).message } });
      }
    }
    try {
      return json(response, 200, { purged: await this.subject.purge(target ?? undefined) });
    } catch (error) {
      const code = error instanceof HeadwireError ? error.code : "STORE_UNAVAILABLE";
      return json(response, 503, { error: { code, message: (error as Error).message } });
    }
  }

  private authorized(request: IncomingMessage): boolean {
    const { token, loopbackIsAdmin, address } = this.options;
    if (token === "") return true; // a loopback bind without a token (the config refuses any other)
    if (loopbackIsAdmin && isLoopbackBind(address.host)) return true;
    const bearer = /^Bearer (.+)$/.exec(request.headers.authorization ?? "")?.[1];
    if (bearer !== undefined) return this.tokenMatches(bearer);
    const cookie = cookieValue(request.headers.cookie ?? "", COOKIE);
    return cookie !== undefined && this.tokenMatches(cookie);
  }

  private tokenMatches(given: string): boolean {
    return this.options.token !== "" && sameToken(given, this.options.token);
  }

  async close(): Promise<void> {
    this.options.board.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(";")) {
    const [key, ...value] = part.trim().split("=");
    if (key === name) return decodeURIComponent(value.join("="));
  }
  return undefined;
}

function text(response: ServerResponse, status: number, body: string): void {
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  response.end(body);
}

function json(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { "content-type": "application/json", "cache-control": "no-store" });
  response.end(`${JSON.stringify(body)}\n`);
}
