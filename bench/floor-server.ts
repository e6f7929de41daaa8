/**
 * The floor: the least a server can do for the headwire exchange. A TCP listener that greets each
 * connection with a line and answers every line it receives with one fixed line (as long as a
 * TICKET line), and a UDP socket that answers every datagram with one fixed datagram (as long as
 * the CHUNK). No cache, no parsing beyond finding line ends, no logic: what is left is the cost of
 * Node's sockets on this machine, which is what headwire's figures are divided by.
 */
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";

export interface FloorReplies {
  greeting: Buffer;
  /** The TCP reply: a TICKET line as headwire sends it, with `{port}` standing for the UDP port. */
  ticketTemplate: string;
  /** The UDP reply: a CHUNK datagram as headwire sends it. */
  chunk: Buffer;
}

export class FloorServer {
  private readonly sockets = new Set<Socket>();
  private ticketLine: Buffer = Buffer.alloc(0);

  private constructor(
    private readonly control: Server,
    private readonly data: UdpSocket,
    private readonly replies: FloorReplies,
  ) {}

  /** recvBufferBytes: the UDP receive buffer (0: the kernel default), to match headwire's data socket. */
  static async start(host: string, replies: FloorReplies, recvBufferBytes = 0): Promise<FloorServer> {
    const data = createSocket({ type: "udp4", ...(recvBufferBytes > 0 ? { recvBufferSize: recvBufferBytes } : {}) });
    data.bind(0, host);
    await once(data, "listening");
    const control = createServer();
    const floor = new FloorServer(control, data, replies);
    floor.ticketLine = Buffer.from(replies.ticketTemplate.replace("{port}", String(data.address().port)));
    data.on("message", (_message, remote) => data.send(replies.chunk, remote.port, remote.address));
    data.on("error", () => {});
    control.on("connection", (socket) => floor.serve(socket));
    control.listen({ port: 0, host, backlog: 511 });
    await once(control, "listening");
    return floor;
  }

  get controlPort(): number {
    const address = this.control.address();
    return typeof address === "object" && address ? address.port : 0;
  }

  get dataPort(): number {
    return this.data.address().port;
  }

  get sessionCount(): number {
    return this.sockets.size;
  }

  get ticketBytes(): number {
    return this.ticketLine.length;
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.on("error", () => socket.destroy());
    socket.on("close", () => this.sockets.delete(socket));
    socket.write(this.replies.greeting);
    socket.on("data", (chunk: Buffer) => {
      for (let at = chunk.indexOf(0x0a); at !== -1; at = chunk.indexOf(0x0a, at + 1)) socket.write(this.ticketLine);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.control.close(() => resolve()));
    await new Promise<void>((resolve) => this.data.close(() => resolve()));
  }
}
