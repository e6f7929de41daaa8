/**
 * `headwire client -v`: every control line and datagram on standard error, in curl -v's
 * convention: "> " what the client sent, "< " what it received, "* " notes. Control lines are
 * shown as they are on the wire; datagrams are named "UDP" first. Standard output is untouched.
 */
import type { ClientTrace } from "../client/control-connection.js";
import { visibleInLine } from "./client-output.js";

export function verboseTrace(write: (text: string) => void): ClientTrace {
  return (channel, direction, text) => {
    const mark = direction === "send" ? ">" : direction === "recv" ? "<" : "*";
    // A server's text may hold control characters: escaped, so it cannot move the cursor.
    const shown = visibleInLine(text);
    write(`${mark} ${channel === "udp" || direction === "note" ? `${channel.toUpperCase()} ` : ""}${shown}\n`);
  };
}
