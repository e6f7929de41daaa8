/**
 * Where the dissector looks: the default ports (50366/tcp, 50367/udp), the ports set as
 * preferences (-o headwire_ctl.port:N, -o headwire_data.port:M), and nothing else for traffic the
 * heuristic does not recognise (a stream caught mid-session, a datagram whose magic was corrupted).
 * Packets are written by text2pcap, so the default ports are used without binding them.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeRequest } from "../../src/protocol/datagram.js";
import { tempDir } from "../helpers.js";
import { assertDissectorLoads, readFields, toPcap, tsharkUnavailable } from "./tshark.js";

const TOKEN = Buffer.from("00112233445566778899aabbccddeeff", "hex");
// A reply line with no greeting before it, as in a capture begun mid-session: no heuristic match.
const MID_SESSION = [
  Buffer.from(
    `TICKET token=${TOKEN.toString("hex")} udp=127.0.0.1:50367 bytes=430 chunks=1 cache=HIT status=301 sha256=${"ab".repeat(32)}\n`,
  ),
];
// A datagram whose magic a bit flip destroyed: only the port says it is headwire's.
const BAD_MAGIC = (() => {
  const datagram = encodeRequest(TOKEN, [{ first: 0, count: 1 }], 1);
  datagram[0] = 0x49; // "IW"
  return [datagram];
})();

async function protocols(pcap: string, options: string[] = []): Promise<string[]> {
  const rows = await readFields(pcap, "frame", ["frame.protocols", "_ws.col.Info"], options);
  return rows.map((row) => `${row["frame.protocols"][0]} | ${row["_ws.col.Info"][0]}`);
}

describe("the dissector's ports", { skip: tsharkUnavailable() }, () => {
  it("the default ports are headwire's, from either side", async (t) => {
    await assertDissectorLoads();
    const dir = await tempDir(t);
    const [tcp] = await protocols(await toPcap(dir, MID_SESSION, ["-T", "50366,40000"]));
    assert.match(tcp!, /headwire_ctl \| TICKET 430 B 1 chunk HIT$/);
    const [udp] = await protocols(await toPcap(dir, BAD_MAGIC, ["-u", "40000,50367"]));
    assert.match(udp!, /headwire_data \| headwire datagram \(malformed\)$/);
  });

  it("other ports only when set as preferences", async (t) => {
    const dir = await tempDir(t);
    const tcp = await toPcap(dir, MID_SESSION, ["-T", "43000,43001"]);
    const udp = await toPcap(dir, BAD_MAGIC, ["-u", "43002,43003"]);
    assert.doesNotMatch((await protocols(tcp))[0]!, /headwire/);
    assert.doesNotMatch((await protocols(udp))[0]!, /headwire/);
    const prefs = ["-o", "headwire_ctl.port:43000", "-o", "headwire_data.port:43003"];
    assert.match((await protocols(tcp, prefs))[0]!, /headwire_ctl \| TICKET 430 B 1 chunk HIT$/);
    assert.match((await protocols(udp, prefs))[0]!, /headwire_data \| headwire datagram \(malformed\)$/);
  });
});
