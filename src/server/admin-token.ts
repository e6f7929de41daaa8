import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Constant-time comparison of a given admin token with the server's, so it cannot be guessed
 * byte by byte from timings: both are hashed first, which also makes their lengths equal.
 */
export function sameToken(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}
