import { test } from "node:test";
import assert from "node:assert/strict";
import { responseFraming } from "../../src/http/message-framing.js";

const section = (text: string): Buffer => Buffer.from(text, "latin1");

test("no body: a response to HEAD, a 204 and a 304 end at their header, whatever they announce (RFC 9112 §6.3)", () => {
  const announced = section("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
  assert.deepEqual(responseFraming("HEAD", 200, announced), { persistent: true, bodyBytes: 0 });
  const chunkedHead = section("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  assert.deepEqual(responseFraming("HEAD", 200, chunkedHead), { persistent: true, bodyBytes: 0 });
  for (const status of [204, 304]) {
    const text = section(`HTTP/1.1 ${status} X\r\nContent-Length: 99\r\nETag: "a"\r\n\r\n`);
    assert.deepEqual(responseFraming("GET", status, text), { persistent: true, bodyBytes: 0 }, String(status));
  }
});

test("Content-Length: the body's length, a list of equal values as one value (RFC 9110 §8.6)", () => {
  const one = section("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n");
  assert.deepEqual(responseFraming("GET", 200, one), { persistent: true, bodyBytes: 5 });
  const list = section("HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\nContent-Length: 7\r\n\r\n");
  assert.deepEqual(responseFraming("GET", 200, list), { persistent: true, bodyBytes: 7 });
  const zero = section("HTTP/1.1 301 Moved\r\nLocation: /x\r\nContent-Length: 0\r\n\r\n");
  assert.deepEqual(responseFraming("GET", 301, zero), { persistent: true, bodyBytes: 0 });
});

test("the connection is closed where the response's end cannot be told or the origin says so", () => {
  const cases: [string, number, string, RegExp][] = [
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 200, "GET", /Transfer-Encoding/],
    ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 200, "GET", /Transfer-Encoding/],
    ["HTTP/1.1 200 OK\r\nServer: x\r\n\r\n", 200, "GET", /no Content-Length/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 200, "GET", /conflicting/],
    ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 200, "GET", /invalid Content-Length/],
    ["HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", 200, "GET", /invalid Content-Length/],
    ["HTTP/1.1 204 No Content\r\nConnection: keep-alive, Close\r\n\r\n", 204, "GET", /Connection: close/],
    ["HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, "HEAD", /Connection: close/],
    ["HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n", 200, "GET", /not an HTTP\/1\.1/],
    ["HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", 101, "GET", /101/],
  ];
  for (const [text, status, method, reason] of cases) {
    const framing = responseFraming(method as "GET" | "HEAD", status, section(text));
    assert.equal(framing.persistent, false, text);
    assert.match((framing as { reason: string }).reason, reason, text);
  }
});

test("a Connection field naming other tokens keeps the connection", () => {
  const text = section("HTTP/1.1 204 No Content\r\nConnection: keep-alive, closed-captions\r\n\r\n");
  assert.deepEqual(responseFraming("GET", 204, text), { persistent: true, bodyBytes: 0 });
});
