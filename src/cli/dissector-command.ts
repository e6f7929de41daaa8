import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command } from "commander";

/**
 * The Wireshark dissector shipped with the package (dissector/headwire.lua at its root). Found
 * from this module's own place, dist/src/cli/, so it works from a clone and from an installed
 * package alike.
 */
export const DISSECTOR_PATH = fileURLToPath(new URL("../../../dissector/headwire.lua", import.meta.url));

export function dissectorCommand(): Command {
  return new Command("dissector")
    .summary("print the Wireshark/tshark dissector for the protocol")
    .description(
      "Print the Lua dissector that shows headwire's two channels in Wireshark and tshark: every control " +
        "line (QUERY, TICKET, ERROR ...) and every datagram (REQUEST, CHUNK, DROPS) with its fields, its " +
        "CRC-32 checked, and the token that ties a ticket to its datagrams. Redirect it into Wireshark's " +
        "personal plugin folder to install it.",
    )
    .option("--path", "print where the dissector file is instead of its text")
    .addHelpText(
      "after",
      `
Install (Wireshark and tshark load it at start; Help > About > Folders shows the folder):
  mkdir -p ~/.local/lib/wireshark/plugins
  headwire dissector > ~/.local/lib/wireshark/plugins/headwire.lua

Or use it once, without installing:
  tshark -X lua_script:"$(headwire dissector --path)" -r capture.pcapng -Y headwire_ctl

Capture a session and read it back:
  tshark -i lo -f "tcp port 50366 or udp" -w session.pcapng     # then run a client; Ctrl-C
  tshark -r session.pcapng -Y "headwire_ctl || headwire_data"
  tshark -r session.pcapng -Y 'headwire_data.token == <the TICKET token>' \\
         -T fields -e frame.number -e udp.srcport -e _ws.col.Info

Fields: headwire_ctl.command, .url, .token, .error_code, .cache, .status, .bytes (and more);
headwire_data.version, .type, .token, .request_number, .range.first, .range.count,
.chunk.index, .chunk.count, .chunk.offset, .total, .drops, .crc.status (Bad, Good).
Ports: 50366/tcp and 50367/udp by default, set in Preferences > Protocols > headwire_ctl /
headwire_data (tshark: -o headwire_ctl.port:N -o headwire_data.port:M); other ports are found
heuristically. docs/wire.md reads a whole capture with it.`,
    )
    .action((opts: { path?: boolean }) => {
      process.stdout.write(opts.path ? `${DISSECTOR_PATH}\n` : readFileSync(DISSECTOR_PATH));
    });
}
