import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** The cookie a browser keeps after logging in to the dashboard. */
export const SESSION_COOKIE = 'inlet_admin';

/** How long a dashboard login lasts. @defaultValue 12 hours */
export const SESSION_SECONDS = 12 * 3600;

/**
 * Checks admin credentials against `INLET_ADMIN_TOKEN` without leaking, through timing, how much
 * of a guess was right.
 *
 * A browser session is the cookie `v1.<expires>.<HMAC-SHA256(token, "inlet-admin:v1:<expires>")>`:
 * it proves the holder once knew the token, never contains it, expires on its own, and every
 * session ends when the token is changed. Nothing is kept server-side, so any number of ingest
 * replicas accept each other's sessions.
 */
export class AdminCredentials {
  private readonly tokenDigest: Buffer;

  constructor(private readonly token: string) {
    this.tokenDigest = sha256(token);
  }

  /** True when `candidate` is the admin token. */
  matchesToken(candidate: string): boolean {
    // Digests have equal length whatever was sent, as timingSafeEqual requires.
    return timingSafeEqual(sha256(candidate), this.tokenDigest);
  }

  /** True for `Authorization: Bearer <token>`. */
  matchesAuthorization(header: string | undefined): boolean {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
    return match?.[1] !== undefined && this.matchesToken(match[1]);
  }

  /** A new session cookie value, valid for {@link SESSION_SECONDS}. */
  issueSession(now = Date.now()): string {
    const expires = Math.floor(now / 1000) + SESSION_SECONDS;
    return `v1.${expires}.${this.sign(expires)}`;
  }

  /** True for a session this token issued that has not expired. */
  verifySession(value: string | undefined, now = Date.now()): boolean {
    const match = /^v1\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})$/.exec(value ?? '');
    if (!match?.[1] || !match[2]) return false;
    const expires = Number(match[1]);
    if (expires * 1000 <= now) return false;
    const expected = Buffer.from(this.sign(expires));
    const given = Buffer.from(match[2]);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  private sign(expires: number): string {
    return createHmac('sha256', this.token).update(`inlet-admin:v1:${expires}`).digest('base64url');
  }
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
