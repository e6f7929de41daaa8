/**
 * Collects one header over UDP: from a fresh ephemeral port, asks the server for a window of
 * chunks, keeps asking for what is missing (timeouts, bounded attempts, backoff), reassembles,
 * and checks the length and SHA-256 the TCP ticket announced. Duplicates, reordering and
 * corrupt datagrams are harmless: each chunk is checked (CRC-32) and stored once by index.
 */
import { createHash } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { once } from "node:events";
import { isIP } from "node:net";
import { HeadwireError } from "../errors.js";
import type { Ticket } from "../protocol/control.js";
import type { ClientTrace } from "./control-connection.js";
import { decodeDatagram, encodeRequest, MAX_RANGES_PER_REQUEST, type ChunkRange } from "../protocol/datagram.js";

export interface ReceiveOptions {
  /** Wait for the next chunk before asking again for what is missing; doubles on each silent round. */
  chunkTimeoutMs: number;
  /** Rounds of asking with no progress before giving up. */
  maxDeliveryAttempts: number;
  /** Chunks asked for at once. */
  windowChunks: number;
}

export interface ReceiveStats {
  requestsSent: number;
  chunksReceived: number;
  duplicates: number;
  rejected: number;
}

const MAX_BACKOFF_MS = 2000;

export async function receiveHeader(
  ticket: Ticket,
  options: ReceiveOptions,
  trace?: ClientTrace,
): Promise<{ header: Buffer; stats: ReceiveStats }> {
  const socket = createSocket(isIP(ticket.udpHost) === 6 ? "udp6" : "udp4");
  socket.on("error", () => {});
  socket.bind(0);
  await once(socket, "listening");
  try {
    return await new Reassembly(socket, ticket, options, trace).run();
  } finally {
    socket.close();
  }
}

class Reassembly {
  private readonly header: Buffer;
  private readonly received: boolean[];
  private receivedCount = 0;
  /** Chunks below this index have all been asked for at least once. */
  private nextToAsk = 0;
  readonly stats: ReceiveStats = { requestsSent: 0, chunksReceived: 0, duplicates: 0, rejected: 0 };

  constructor(
    private readonly socket: Socket,
    private readonly ticket: Ticket,
    private readonly options: ReceiveOptions,
    private readonly trace?: ClientTrace,
  ) {
    this.header = Buffer.alloc(ticket.bytes);
    this.received = new Array<boolean>(ticket.chunks).fill(false);
  }

  run(): Promise<{ header: Buffer; stats: ReceiveStats }> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      let silentRounds = 0;
      let timeoutMs = this.options.chunkTimeoutMs;
      const finish = (error?: HeadwireError) => {
        clearTimeout(timer);
        this.socket.removeAllListeners("message");
        if (error) return reject(error);
        const digest = createHash("sha256").update(this.header).digest();
        if (!digest.equals(this.ticket.sha256)) {
          return reject(new HeadwireError("DELIVERY_FAILED", "the reassembled header does not match its SHA-256"));
        }
        resolve({ header: this.header, stats: this.stats });
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(onSilence, timeoutMs);
      };
      const onSilence = () => {
        silentRounds++;
        if (silentRounds >= this.options.maxDeliveryAttempts) {
          return finish(
            new HeadwireError(
              "DELIVERY_FAILED",
              `${this.receivedCount} of ${this.ticket.chunks} chunks arrived after ${silentRounds} attempts`,
            ),
          );
        }
        timeoutMs = Math.min(timeoutMs * 2, MAX_BACKOFF_MS);
        this.askMissing();
        arm();
      };
      this.socket.on("message", (message: Buffer) => {
        if (!this.accept(message)) return;
        silentRounds = 0;
        timeoutMs = this.options.chunkTimeoutMs;
        if (this.receivedCount === this.ticket.chunks) return finish();
        this.askAhead();
        arm();
      });
      this.askAhead();
      arm();
    });
  }

  /** Stores a valid chunk of this ticket; true when it was new. */
  private accept(message: Buffer): boolean {
    const datagram = decodeDatagram(message);
    if (
      !datagram ||
      datagram.type !== "chunk" ||
      !datagram.token.equals(this.ticket.token) ||
      datagram.count !== this.ticket.chunks ||
      datagram.total !== this.ticket.bytes
    ) {
      this.stats.rejected++;
      return false;
    }
    if (this.received[datagram.index]) {
      this.stats.duplicates++;
      return false;
    }
    this.trace?.(
      "udp",
      "recv",
      `CHUNK ${datagram.index + 1}/${datagram.count} (${message.length} bytes, ${datagram.payload.length} of the header)`,
    );
    datagram.payload.copy(this.header, datagram.offset);
    this.received[datagram.index] = true;
    this.receivedCount++;
    this.stats.chunksReceived++;
    return true;
  }

  /** Keeps the window full: asks for new chunks so that at most windowChunks are outstanding. */
  private askAhead(): void {
    const outstanding = this.nextToAsk - this.receivedBelow(this.nextToAsk);
    const room = this.options.windowChunks - outstanding;
    if (room <= 0 || this.nextToAsk >= this.ticket.chunks) return;
    const count = Math.min(room, this.ticket.chunks - this.nextToAsk);
    this.send([{ first: this.nextToAsk, count }]);
    this.nextToAsk += count;
  }

  /** After silence: asks again for every chunk asked for and missing, up to one window. */
  private askMissing(): void {
    const ranges: ChunkRange[] = [];
    let budget = this.options.windowChunks;
    for (let i = 0; i < this.nextToAsk && budget > 0 && ranges.length < MAX_RANGES_PER_REQUEST; i++) {
      if (this.received[i]) continue;
      const last = ranges[ranges.length - 1];
      if (last && last.first + last.count === i) last.count++;
      else ranges.push({ first: i, count: 1 });
      budget--;
    }
    if (ranges.length > 0) this.send(ranges);
    else this.askAhead();
  }

  private receivedBelow(limit: number): number {
    let count = 0;
    for (let i = 0; i < limit; i++) if (this.received[i]) count++;
    return count;
  }

  private send(ranges: ChunkRange[]): void {
    this.stats.requestsSent++;
    const datagram = encodeRequest(this.ticket.token, ranges);
    if (this.trace) {
      const wanted = ranges.map((r) => (r.count === 1 ? `${r.first}` : `${r.first}-${r.first + r.count - 1}`));
      const from = this.socket.address().port;
      this.trace("udp", "send", `REQUEST chunks ${wanted.join(",")} (${datagram.length} bytes, from port ${from})`);
    }
    this.socket.send(datagram, this.ticket.udpPort, this.ticket.udpHost);
  }
}
