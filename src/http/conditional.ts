/**
 * Conditional requests: the validators a cache sends to ask "has this changed?" (RFC 9110 §13.1).
 * A stored ETag becomes If-None-Match and a stored Last-Modified If-Modified-Since
 * (RFC 9111 §4.3.1); an origin whose response has not changed answers 304 Not Modified.
 */

/**
 * Validators for a conditional request (RFC 9110 §13.1), as sent on the request's first hop. Values
 * are latin1 strings, one char per byte, exactly as the origin sent the validator: an ETag may hold
 * obs-text (RFC 9110 §8.8.3), and only the same bytes match it at the origin.
 */
export interface ConditionalFields {
  "If-None-Match"?: string;
  "If-Modified-Since"?: string;
}

/**
 * The conditional fields among request headers keyed by lower-case name (as a cache's
 * revalidation headers come), or undefined when there is none: no validator, no condition.
 */
export function conditionalFieldsOf(headers: Readonly<Record<string, unknown>>): ConditionalFields | undefined {
  const fields: ConditionalFields = {};
  const ifNoneMatch = headers["if-none-match"];
  const ifModifiedSince = headers["if-modified-since"];
  if (typeof ifNoneMatch === "string") fields["If-None-Match"] = ifNoneMatch;
  if (typeof ifModifiedSince === "string") fields["If-Modified-Since"] = ifModifiedSince;
  return Object.keys(fields).length > 0 ? fields : undefined;
}
