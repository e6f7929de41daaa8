/**
 * TicketRegistry alone: no sockets. Time is an injected clock (`now`), so expiry is tested by
 * moving a number, never by waiting.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { HeadwireError } from "../../src/errors.js";
import { TOKEN_BYTES } from "../../src/protocol/datagram.js";
import { canonicalAddress, TicketRegistry, type DeliveryTicket } from "../../src/server/ticket-registry.js";

const TTL_MS = 5000;

/** A registry on a clock the test moves; closed after the test. */
function registry(
  t: { after: (fn: () => void) => void },
  maxTicketsPerSession = 8,
): { tickets: TicketRegistry; clock: { ms: number } } {
  const clock = { ms: 1_000_000 };
  const tickets = new TicketRegistry({ ticketTtlMs: TTL_MS, maxTicketsPerSession, now: () => clock.ms });
  t.after(() => tickets.close());
  return { tickets, clock };
}

function fields(sessionId = 1, peerAddress = "127.0.0.1", chunkCount = 1) {
  return {
    header: Buffer.from("HTTP/1.1 200 OK\r\n\r\n"),
    peerAddress,
    sessionId,
    chunkPayloadBytes: 1160,
    chunkCount,
    budgetBytes: 4096,
  };
}

test("issue: a fresh ticket carries its fields, a 16-byte token, nothing sent, and the clock's expiry", (t) => {
  const { tickets, clock } = registry(t);
  const ticket = tickets.issue(fields(7, "192.0.2.1", 3));
  assert.equal(ticket.token.length, TOKEN_BYTES);
  assert.equal(ticket.peerAddress, "192.0.2.1");
  assert.equal(ticket.sessionId, 7);
  assert.equal(ticket.chunkCount, 3);
  assert.equal(ticket.budgetBytes, 4096);
  assert.equal(ticket.expiresAtMs, clock.ms + TTL_MS);
  assert.equal(ticket.bytesSent, 0);
  assert.equal(ticket.sentOnce, undefined);
  assert.equal(ticket.distinctChunksSent, 0);
  assert.equal(tickets.size, 1);
  assert.equal(tickets.find(ticket.token), ticket);
});

test("issue: tokens are distinct, also across a refill of the token pool (256 tokens a pool)", (t) => {
  const { tickets } = registry(t, 10_000);
  const seen = new Set<string>();
  const issued: DeliveryTicket[] = [];
  for (let i = 0; i < 600; i++) issued.push(tickets.issue(fields()));
  for (const ticket of issued) seen.add(ticket.token.toString("hex"));
  assert.equal(seen.size, 600);
  // Each ticket keeps its own token: a later pool refill does not overwrite an earlier one.
  for (const ticket of issued) assert.equal(tickets.find(ticket.token), ticket);
});

test("find: an unknown token, or one of the wrong length, finds nothing", (t) => {
  const { tickets } = registry(t);
  const ticket = tickets.issue(fields());
  const other = Buffer.from(ticket.token);
  other[0]! ^= 0xff;
  assert.equal(tickets.find(other), undefined);
  assert.equal(tickets.find(ticket.token.subarray(0, 8)), undefined);
  assert.equal(tickets.find(Buffer.alloc(0)), undefined);
});

test("a ticket is bound to the address it was issued for (the data server compares peerAddress)", (t) => {
  const { tickets } = registry(t);
  const a = tickets.issue(fields(1, canonicalAddress("::ffff:127.0.0.1")));
  const b = tickets.issue(fields(2, canonicalAddress("::1")));
  assert.equal(tickets.find(a.token)?.peerAddress, "127.0.0.1");
  assert.equal(tickets.find(b.token)?.peerAddress, "::1");
});

test("expiry: live until its ttl, gone from the ttl on (find drops it)", (t) => {
  const { tickets, clock } = registry(t);
  const ticket = tickets.issue(fields());
  clock.ms += TTL_MS - 1;
  assert.equal(tickets.find(ticket.token), ticket);
  clock.ms += 1;
  assert.equal(tickets.find(ticket.token), undefined);
  assert.equal(tickets.size, 0, "find removed the expired ticket");
});

test("sweep drops the expired tickets at the front and keeps the live ones", (t) => {
  const { tickets, clock } = registry(t, 100);
  const old = [tickets.issue(fields(1)), tickets.issue(fields(2))];
  clock.ms += 1000;
  const young = tickets.issue(fields(1));
  clock.ms += TTL_MS - 1000;
  tickets.sweep();
  assert.equal(tickets.size, 1);
  for (const ticket of old) assert.equal(tickets.find(ticket.token), undefined);
  assert.equal(tickets.find(young.token), young);
  // Session 2's only ticket expired: revoking it afterwards is harmless.
  tickets.revokeSession(2);
  assert.equal(tickets.size, 1);
});

test("expiry, for any schedule of issues and clock steps: find answers exactly for the unexpired", (t) => {
  const { tickets, clock } = registry(t, 1000);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 2 * TTL_MS }), { minLength: 1, maxLength: 30 }), (steps) => {
      const issued: DeliveryTicket[] = [];
      for (const step of steps) {
        issued.push(tickets.issue(fields()));
        clock.ms += step;
      }
      if (steps.length % 2 === 0) tickets.sweep(); // with or without a sweep first
      for (const ticket of issued) {
        const live = ticket.expiresAtMs > clock.ms;
        assert.equal(tickets.find(ticket.token) === ticket, live, `expires ${ticket.expiresAtMs}, now ${clock.ms}`);
      }
      tickets.revokeSession(1);
      assert.equal(tickets.size, 0);
    }),
    { seed: 20260517, numRuns: 200 },
  );
});

test("per-session cap: one ticket over maxTicketsPerSession revokes that session's oldest only", (t) => {
  const { tickets } = registry(t, 3);
  const first = [1, 2, 3].map(() => tickets.issue(fields(1)));
  const otherSession = tickets.issue(fields(2));
  const fourth = tickets.issue(fields(1));
  assert.equal(tickets.find(first[0]!.token), undefined, "the oldest of session 1 is revoked");
  for (const ticket of [first[1]!, first[2]!, fourth, otherSession]) assert.equal(tickets.find(ticket.token), ticket);
  assert.equal(tickets.size, 4);
});

test("per-session cap, for any interleaving of sessions: each keeps exactly its newest `cap` tickets", (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5 }),
      fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 1, maxLength: 60 }),
      (cap, sessions) => {
        const { tickets } = registry(t, cap);
        const bySession = new Map<number, DeliveryTicket[]>();
        for (const id of sessions) {
          const list = bySession.get(id) ?? [];
          list.push(tickets.issue(fields(id)));
          bySession.set(id, list);
        }
        let expected = 0;
        for (const list of bySession.values()) {
          const kept = list.slice(-cap);
          expected += kept.length;
          for (const ticket of list) assert.equal(tickets.find(ticket.token) !== undefined, kept.includes(ticket));
        }
        assert.equal(tickets.size, expected);
        tickets.close();
      },
    ),
    { seed: 20260517, numRuns: 200 },
  );
});

test("revokeSession drops every ticket of that session and no other; an unknown session is a no-op", (t) => {
  const { tickets } = registry(t);
  const mine = [tickets.issue(fields(1)), tickets.issue(fields(1))];
  const theirs = tickets.issue(fields(2));
  tickets.revokeSession(99);
  assert.equal(tickets.size, 3);
  tickets.revokeSession(1);
  for (const ticket of mine) assert.equal(tickets.find(ticket.token), undefined);
  assert.equal(tickets.find(theirs.token), theirs);
  assert.equal(tickets.size, 1);
  // The session's bookkeeping is gone too: a new ticket for it starts a fresh cap count.
  tickets.revokeSession(1);
  const again = tickets.issue(fields(1));
  assert.equal(tickets.find(again.token), again);
});

test("byte budget: the fields the data server accounts in are the ticket's own, kept per ticket", (t) => {
  const { tickets } = registry(t);
  const a = tickets.issue({ ...fields(1, "127.0.0.1", 3), budgetBytes: 5000 });
  const b = tickets.issue({ ...fields(1, "127.0.0.1", 3), budgetBytes: 7000 });
  // The data server spends from the ticket it found: what it writes is what the next find sees.
  const found = tickets.find(a.token)!;
  found.bytesSent += 1200;
  found.sentOnce = new Uint8Array(found.chunkCount);
  found.sentOnce[0] = 1;
  found.distinctChunksSent = 1;
  assert.equal(tickets.find(a.token)!.bytesSent, 1200);
  assert.equal(tickets.find(a.token)!.budgetBytes - tickets.find(a.token)!.bytesSent, 3800);
  assert.equal(tickets.find(b.token)!.bytesSent, 0, "another ticket's budget is untouched");
  assert.equal(tickets.find(b.token)!.sentOnce, undefined);
});

test("pendingDeliveries: tickets being collected, or issued under a second ago, and not yet sent in full", (t) => {
  const { tickets, clock } = registry(t, 100);
  const fresh = tickets.issue(fields(1, "127.0.0.1", 2));
  assert.equal(tickets.pendingDeliveries(), 1, "just issued: its client is about to collect");
  clock.ms += 1000;
  assert.equal(tickets.pendingDeliveries(), 0, "nobody asked for it within a second: not waited for");
  fresh.bytesSent = 100;
  fresh.distinctChunksSent = 1;
  assert.equal(tickets.pendingDeliveries(), 1, "being collected: waited for");
  fresh.distinctChunksSent = 2;
  assert.equal(tickets.pendingDeliveries(), 0, "every chunk sent once: delivered");
  const late = tickets.issue(fields(2));
  assert.equal(tickets.pendingDeliveries(), 1);
  clock.ms += TTL_MS;
  assert.equal(tickets.pendingDeliveries(), 0, "expired tickets are swept, never pending");
  assert.equal(tickets.find(late.token), undefined);
  assert.equal(tickets.size, 0);
});

test("close clears every ticket and stops the sweeper (the test process can exit)", (t) => {
  const { tickets } = registry(t);
  const ticket = tickets.issue(fields());
  tickets.close();
  assert.equal(tickets.size, 0);
  assert.equal(tickets.find(ticket.token), undefined);
  assert.equal(tickets.pendingDeliveries(), 0);
  tickets.close(); // twice is harmless
});

test("canonicalAddress unwraps IPv4-mapped IPv6 and lower-cases, and leaves the rest", () => {
  assert.equal(canonicalAddress("::ffff:127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalAddress("::FFFF:192.0.2.7"), "192.0.2.7");
  assert.equal(canonicalAddress("127.0.0.1"), "127.0.0.1");
  assert.equal(canonicalAddress("::1"), "::1");
  assert.equal(canonicalAddress("2001:DB8::1"), "2001:db8::1");
  // The hex form of a mapped address is not unwrapped (Node reports the dotted form).
  assert.equal(canonicalAddress("::ffff:7f00:1"), "::ffff:7f00:1");
  assert.equal(canonicalAddress(""), "");
});

test("canonicalAddress: any IPv4 address and its mapped form are the same peer; idempotent", () => {
  const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join("."));
  const prefix = fc.constantFrom("::ffff:", "::FFFF:", "::Ffff:");
  fc.assert(
    fc.property(ipv4, prefix, (address, mapped) => {
      assert.equal(canonicalAddress(`${mapped}${address}`), address);
      assert.equal(canonicalAddress(address), address);
    }),
    { seed: 20260517, numRuns: 300 },
  );
  fc.assert(
    fc.property(fc.oneof(fc.ipV6(), fc.ipV4(), fc.ipV4Extended()), (address) => {
      const once = canonicalAddress(address);
      assert.equal(canonicalAddress(once), once);
    }),
    { seed: 20260517, numRuns: 300 },
  );
});

/** A registry with a global header budget, on a clock the test moves. */
function budgeted(t: { after: (fn: () => void) => void }, maxTicketBytes: number, maxTicketsPerSession = 8) {
  const clock = { ms: 1_000_000 };
  const tickets = new TicketRegistry({
    ticketTtlMs: TTL_MS,
    maxTicketsPerSession,
    maxTicketBytes,
    now: () => clock.ms,
  });
  t.after(() => tickets.close());
  return { tickets, clock };
}

function withHeader(header: Buffer, sessionId = 1) {
  return { ...fields(sessionId), header };
}

function busy(error: unknown): boolean {
  return error instanceof HeadwireError && error.code === "SERVER_BUSY" && /ticket memory budget/.test(error.message);
}

test("ticket budget: past maxTicketBytes issue refuses with SERVER_BUSY; expiry gives the bytes back", (t) => {
  const { tickets, clock } = budgeted(t, 1000);
  tickets.issue(withHeader(Buffer.alloc(400)));
  clock.ms += 1;
  tickets.issue(withHeader(Buffer.alloc(400), 2));
  assert.equal(tickets.bytes, 800);
  assert.throws(() => tickets.issue(withHeader(Buffer.alloc(400), 3)), busy);
  assert.equal(tickets.size, 2, "a refused ticket is not half issued");
  clock.ms += TTL_MS - 1; // the first ticket expires
  assert.equal(tickets.bytes, 400);
  tickets.issue(withHeader(Buffer.alloc(400), 3));
  clock.ms += TTL_MS;
  assert.equal(tickets.bytes, 0);
});

test("ticket budget: a header Buffer shared by many tickets (a cached entry) is counted once", (t) => {
  const { tickets } = budgeted(t, 1000, 1000);
  const cached = Buffer.alloc(600);
  for (let i = 0; i < 100; i++) tickets.issue(withHeader(cached, i));
  assert.equal(tickets.bytes, 600);
  assert.throws(() => tickets.issue(withHeader(Buffer.alloc(600))), busy);
  for (let i = 0; i < 99; i++) tickets.revokeSession(i);
  assert.equal(tickets.bytes, 600, "still held by one ticket");
  tickets.revokeSession(99);
  assert.equal(tickets.bytes, 0);
});

test("ticket budget: a ticket that revokes its session's oldest may use the bytes that one gives back", (t) => {
  const { tickets } = budgeted(t, 1000, 2);
  tickets.issue(withHeader(Buffer.alloc(500)));
  tickets.issue(withHeader(Buffer.alloc(500)));
  assert.throws(() => tickets.issue(withHeader(Buffer.alloc(500), 2)), busy, "another session cannot");
  tickets.issue(withHeader(Buffer.alloc(500)));
  assert.equal(tickets.bytes, 1000);
  assert.equal(tickets.size, 2);
});

test("ticket budget, for any schedule: bytes are those of the live tickets' distinct headers, never past the budget", (t) => {
  const MAX = 4000;
  const op = fc.oneof(
    fc.record({
      kind: fc.constant("issue" as const),
      session: fc.nat(3),
      shared: fc.nat(2),
      bytes: fc.integer({ min: 1, max: 1500 }),
      fresh: fc.boolean(),
    }),
    fc.record({ kind: fc.constant("advance" as const), ms: fc.integer({ min: 0, max: TTL_MS }) }),
    fc.record({ kind: fc.constant("revoke" as const), session: fc.nat(3) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const { tickets, clock } = budgeted(t, MAX, 3);
      const pool = [Buffer.alloc(700), Buffer.alloc(1100), Buffer.alloc(1500)];
      const live: DeliveryTicket[] = [];
      const expected = () => {
        const now = clock.ms;
        const held = new Set(
          live.filter((k) => k.expiresAtMs > now && tickets.find(k.token) === k).map((k) => k.header),
        );
        return [...held].reduce((sum, header) => sum + header.length, 0);
      };
      for (const step of ops) {
        if (step.kind === "advance") clock.ms += step.ms;
        else if (step.kind === "revoke") tickets.revokeSession(step.session);
        else {
          const header = step.fresh ? Buffer.alloc(step.bytes) : pool[step.shared]!;
          const before = expected();
          const alreadyHeld = live.some((k) => k.header === header && tickets.find(k.token) === k);
          try {
            live.push(tickets.issue(withHeader(header, step.session)));
            assert.ok(alreadyHeld || tickets.bytes <= MAX);
          } catch (error) {
            assert.ok(busy(error));
            assert.ok(!alreadyHeld && before + header.length > MAX, "refused only past the budget");
          }
        }
        assert.equal(tickets.bytes, expected());
        assert.ok(tickets.bytes <= MAX);
      }
      tickets.close();
    }),
    { numRuns: 200 },
  );
});

test("credit: whatever the reports, the budget gets back at most the sent datagrams and the cap, and a repeat adds nothing", (t) => {
  const { tickets } = registry(t, 100_000);
  const op = fc.oneof(
    fc.record({ send: fc.integer({ min: 0, max: 4 }) }, { noNullPrototype: true }),
    fc.record({ drops: fc.integer({ min: 0, max: 80 }) }, { noNullPrototype: true }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 40 }), fc.integer({ min: 0, max: 20_000 }), (ops, capBytes) => {
      const ticket = tickets.issue({
        ...fields(1, "127.0.0.1", 8),
        header: Buffer.alloc(8 * 100),
        chunkPayloadBytes: 100,
        budgetBytes: 1e9,
      });
      const largest = 100 + 44;
      let highest = 0;
      for (const step of ops) {
        if ("send" in step) {
          assert.ok(tickets.charge(ticket, step.send, largest));
          continue;
        }
        const before = { budget: ticket.budgetBytes, credited: ticket.creditedDatagrams };
        const credit = tickets.credit(ticket, step.drops, capBytes);
        assert.equal(ticket.budgetBytes - before.budget, credit.bytes);
        assert.equal(ticket.creditedDatagrams - before.credited, credit.datagrams);
        assert.ok(credit.datagrams <= Math.max(0, step.drops - highest), "only what the report adds");
        assert.deepEqual(tickets.credit(ticket, step.drops, capBytes), { datagrams: 0, bytes: 0, capped: false });
        highest = Math.max(highest, step.drops);
        assert.equal(ticket.reportedDrops, highest);
        assert.ok(ticket.creditedDatagrams <= ticket.datagramsSent, "never more than was sent");
        assert.ok(ticket.creditedDatagrams <= highest);
        assert.ok(ticket.creditedBytes <= capBytes, "never past the cap");
        assert.ok(ticket.creditedBytes <= ticket.creditedDatagrams * largest);
      }
    }),
  );
});

test("credit: a drop is worth the largest chunk datagram, so any lost chunk can be sent again (the last one may be short)", (t) => {
  const { tickets } = registry(t);
  // 950 bytes in chunks of 100: nine of 144 bytes on the wire and a last one of 94; the mean (139) would fall short.
  const ticket = tickets.issue({ ...fields(1, "127.0.0.1", 10), header: Buffer.alloc(950), chunkPayloadBytes: 100 });
  for (let i = 0; i < 10; i++) assert.ok(tickets.charge(ticket, i, i === 9 ? 94 : 144));
  const budget = ticket.budgetBytes;
  assert.deepEqual(tickets.credit(ticket, 3, 10_000), { datagrams: 3, bytes: 3 * 144, capped: false });
  assert.equal(ticket.budgetBytes, budget + 3 * 144);
  assert.deepEqual(
    tickets.credit(ticket, 9, 1000),
    { datagrams: 4, bytes: 1000 - 3 * 144, capped: true },
    "cut by the cap",
  );
  assert.equal(ticket.creditedBytes, 1000);
});
