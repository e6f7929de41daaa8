/**
 * The orchestrator's own small exchanges with a server on loopback: capturing one real lookup
 * (the floor replays its bytes) and warming the cache before a measured run.
 */
import { createSocket } from "node:dgram";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { encodeRequest } from "../src/protocol/datagram.js";

export const HOST = "127.0.0.1";

/** One lookup's bytes as headwire sent them, and their sizes. */
export interface Exchange {
  greeting: string;
  ticketTemplate: string;
  chunk: Buffer;
  queryBytes: number;
  ticketBytes: number;
  requestBytes: number;
  chunkBytes: number;
}

/** A bare line client for the orchestrator's own small exchanges (capture, warm-up). */
class LineClient {
  private buffered = "";
  private readonly waiting: ((line: string) => void)[] = [];
  private readonly lines: string[] = [];

  private constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffered += chunk.toString("latin1");
      for (let nl = this.buffered.indexOf("\n"); nl !== -1; nl = this.buffered.indexOf("\n")) {
        const line = this.buffered.slice(0, nl + 1);
        this.buffered = this.buffered.slice(nl + 1);
        const waiter = this.waiting.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      }
    });
  }

  static async open(port: number): Promise<LineClient> {
    const socket = connect({ host: HOST, port });
    await once(socket, "connect");
    return new LineClient(socket);
  }

  next(timeoutMs = 15_000): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no line from the server in time")), timeoutMs);
      this.waiting.push((l) => {
        clearTimeout(timer);
        resolve(l);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** One real lookup against headwire, byte for byte: the floor answers with the same sizes. */
export async function captureExchange(controlPort: number, url: string): Promise<Exchange> {
  const client = await LineClient.open(controlPort);
  const greeting = await client.next();
  const query = `QUERY ${url}\n`;
  client.socket.write(query);
  await client.next(); // MISS: fetched from the origin
  client.socket.write(query);
  const ticket = await client.next();
  if (!ticket.startsWith("TICKET ") || !ticket.includes("cache=HIT")) throw new Error(`capture: ${ticket.trim()}`);
  const token = Buffer.from(/token=([0-9a-f]{32})/.exec(ticket)![1]!, "hex");
  const dataPort = Number(/udp=127\.0\.0\.1:(\d+)/.exec(ticket)![1]);
  const request = encodeRequest(token, [{ first: 0, count: 1 }]);
  const udp = createSocket("udp4");
  udp.bind(0, HOST);
  await once(udp, "listening");
  const chunkPromise = once(udp, "message");
  udp.send(request, dataPort, HOST);
  const timer = setTimeout(() => udp.emit("error", new Error("capture: no CHUNK within 5 s")), 5000);
  const [chunk] = (await chunkPromise) as [Buffer];
  clearTimeout(timer);
  udp.close();
  client.close(); // the ticket dies with its session: close only after collecting
  return {
    greeting,
    ticketTemplate: ticket.replace(/udp=127\.0\.0\.1:\d+/, "udp=127.0.0.1:{port}"),
    chunk,
    queryBytes: Buffer.byteLength(query),
    ticketBytes: Buffer.byteLength(ticket),
    requestBytes: request.length,
    chunkBytes: chunk.length,
  };
}

/** Asks for every URL once (pipelined, within the per-session queue limit), so that all are cached. */
export async function warmCache(controlPort: number, urls: string[]): Promise<void> {
  const client = await LineClient.open(controlPort);
  await client.next();
  for (let first = 0; first < urls.length; first += 16) {
    const batch = urls.slice(first, first + 16);
    client.socket.write(batch.map((url) => `QUERY ${url}\n`).join(""));
    for (const url of batch) {
      const line = await client.next();
      if (!line.startsWith("TICKET ")) throw new Error(`warm-up ${url}: ${line.trim()}`);
    }
  }
  client.close();
}
