/**
 * A real HTTP origin on loopback that answers each path with a header written byte for byte (any
 * line ends, case, duplicates), then a short body, and counts the requests it gets. It lives with
 * the demo, which ships in the product; the tests and the bench use it too. It listens on an
 * ephemeral port.
 *
 * Like a real HTTP/1.1 server it keeps a connection open for the next request when the response
 * says where it ends (RFC 9112 §9.3), and closes it after the response otherwise (a header with
 * Connection: close, no Content-Length, or a body of another length than announced).
 */
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { scanHeaderBlocks } from "../http/header-block.js";
import { responseFraming } from "../http/message-framing.js";

export interface CraftedResponse {
  /** The header block exactly as it goes on the wire, blank line included. */
  header: Buffer | string;
  body?: string;
}

/** A fixed response, or one computed from the raw request (for conditional requests, say). */
export type CraftedRoute = CraftedResponse | ((request: string) => CraftedResponse);

export class CraftedOrigin {
  /** Requests received, by path. */
  readonly requests = new Map<string, number>();
  /** The last raw request (request line and header) received, by path. */
  readonly lastRequest = new Map<string, string>();
  /** Answer this long after the request, like an origin across a network (0: at once). */
  responseDelayMs = 0;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    private readonly routes: Map<string, CraftedRoute>,
  ) {}

  static async start(routes: Record<string, CraftedRoute>, host = "127.0.0.1"): Promise<CraftedOrigin> {
    const server = createServer();
    const origin = new CraftedOrigin(server, new Map(Object.entries(routes)));
    server.on("connection", (socket) => origin.serve(socket));
    server.listen(0, host);
    await once(server, "listening");
    return origin;
  }

  get port(): number {
    const address = this.server.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  /** Total requests received. */
  get requestCount(): number {
    let total = 0;
    for (const count of this.requests.values()) total += count;
    return total;
  }

  set(path: string, response: CraftedRoute): void {
    this.routes.set(path, response);
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let received = "";
    let closing = false;
    const onData = (chunk: Buffer): void => {
      received += chunk.toString("latin1");
      for (let end = received.indexOf("\r\n\r\n"); end !== -1 && !closing; end = received.indexOf("\r\n\r\n")) {
        const request = received.slice(0, end + 4);
        received = received.slice(end + 4);
        closing = !this.answer(socket, request);
      }
      if (closing) socket.off("data", onData);
    };
    socket.on("data", onData);
  }

  /** Answers one request; false when the connection ends after this response. */
  private answer(socket: Socket, request: string): boolean {
    const [, method = "GET", path = "/"] = /^([A-Z]+) (\S+) HTTP\/1\.[01]\r\n/.exec(request) ?? [];
    this.requests.set(path, (this.requests.get(path) ?? 0) + 1);
    this.lastRequest.set(path, request);
    const found = this.routes.get(path);
    const route = (typeof found === "function" ? found(request) : found) ?? {
      header: "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
      body: "not found\n",
    };
    const header = typeof route.header === "string" ? Buffer.from(route.header) : route.header;
    // RFC 9110 §9.3.2: a response to HEAD has no body.
    const body = Buffer.from(method === "HEAD" ? "" : (route.body ?? ""));
    const keep = keepsConnection(method, header, body.length);
    const response = Buffer.concat([header, body]);
    const send = (): void => void (keep ? socket.write(response) : socket.end(response));
    if (this.responseDelayMs > 0) setTimeout(send, this.responseDelayMs);
    else send();
    return keep;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Whether a response leaves its connection ready for another request: its end is where it says. */
function keepsConnection(method: string, header: Buffer, bodyBytes: number): boolean {
  let scan: ReturnType<typeof scanHeaderBlocks>;
  try {
    scan = scanHeaderBlocks(header);
  } catch {
    return false; // not HTTP at all (a test of garbage answers): close after it
  }
  const final = scan?.blocks.at(-1);
  if (scan === undefined || final === undefined || scan.end !== header.length) return false;
  const framing = responseFraming(
    method === "HEAD" ? "HEAD" : "GET",
    scan.status,
    header.subarray(final.start, final.end),
  );
  return framing.persistent && framing.bodyBytes === bodyBytes;
}

/** Header sets modelled on real sites' (the seed's twitch 301 and google 200 among them). */
export const REALISTIC_HEADERS: Record<string, CraftedResponse> = {
  "/twitch": {
    header:
      "HTTP/1.1 301 Moved Permanently\r\nServer: Varnish\r\nRetry-After: 0\r\nLocation: https://www.twitch.tv/\r\n" +
      "Content-Length: 0\r\nAccept-Ranges: bytes\r\nDate: Sat, 02 May 2020 06:27:46 GMT\r\nVia: 1.1 varnish\r\n" +
      "Connection: close\r\nX-Backend: 12jz6zqSzygLMoGmOwFUBI--F_go_twitch_tv\r\n" +
      "Set-Cookie: twitch.lohp.countryCode=CL; domain=.twitch.tv; expires=Tue, 30 Apr 2030 06:27:46 GMT;\r\n" +
      "X-Served-By: cache-scl19426-SCL\r\nX-Cache: HIT\r\nX-Cache-Hits: 0\r\n\r\n",
  },
  "/google": {
    header:
      "HTTP/1.1 200 OK\r\nDate: Sat, 02 May 2020 03:36:34 GMT\r\nExpires: -1\r\nCache-Control: private, max-age=0\r\n" +
      "Content-Type: text/html; charset=ISO-8859-1\r\n" +
      'P3P: CP="This is not a P3P policy! See g.co/p3phelp for more info."\r\nServer: gws\r\n' +
      "X-XSS-Protection: 0\r\nX-Frame-Options: SAMEORIGIN\r\n" +
      "Set-Cookie: 1P_JAR=2020-05-02-03; expires=Mon, 01-Jun-2020 03:36:34 GMT; path=/; domain=.google.cl; Secure\r\n" +
      "Set-Cookie: NID=203=L6QCRtQ7mDaYBg2iaRuE4JiSzQXWzNrF33_PP_pppw171JrMPz46FXN6yKqSta9gvYzI-pTDYv7PLFQroYj; " +
      "expires=Sun, 01-Nov-2020 03:36:34 GMT; path=/; domain=.google.cl; HttpOnly\r\n" +
      "Accept-Ranges: none\r\nVary: Accept-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
    body: "0\r\n\r\n",
  },
  "/cdn": {
    // A CDN-served asset with explicit shared-cache freshness and validators.
    header:
      "HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nContent-Length: 5120\r\n" +
      'Cache-Control: public, max-age=600, s-maxage=3600\r\nETag: "5f3a-1c9e"\r\n' +
      "Last-Modified: Mon, 04 May 2020 10:00:00 GMT\r\nAge: 12\r\nVia: 1.1 varnish\r\nX-Cache: HIT\r\n\r\n",
    body: "x".repeat(5120),
  },
  "/news": {
    // A news site's front page: a long header that needs several UDP chunks.
    header:
      "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html; charset=utf-8\r\n" +
      "Cache-Control: public, max-age=60\r\nVary: Accept-Encoding, Cookie\r\n" +
      "Content-Security-Policy: default-src 'self'; script-src 'self' https://cdn.example.net https://ads.example.com; " +
      "img-src * data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; report-uri /csp-report\r\n" +
      Array.from(
        { length: 24 },
        (_, i) =>
          `Set-Cookie: tracker_${i}=${"v".repeat(40)}${i}; Path=/; Domain=.news.example; Max-Age=31536000; Secure; SameSite=Lax\r\n`,
      ).join("") +
      "Strict-Transport-Security: max-age=63072000; includeSubDomains; preload\r\nX-Cache: MISS\r\n\r\n",
  },
  "/legacy": {
    // An HTTP/1.0 origin with bare LF line ends and a non-ASCII byte in a value.
    header: Buffer.concat([
      Buffer.from("HTTP/1.0 200 OK\nServer: OldHTTPd/0.9\nX-Note: caf"),
      Buffer.from([0xe9]),
      Buffer.from("\nContent-Type: text/plain\n\n"),
    ]),
    body: "hello\n",
  },
};
