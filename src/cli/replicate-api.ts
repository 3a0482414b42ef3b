/**
 * The one call inlet makes to Replicate's API: the account's webhook signing secret.
 * See https://replicate.com/docs/topics/webhooks/verify-webhook
 */

/** A failure a user can act on; the message is the one line to print. */
export class ReplicateApiError extends Error {
  override name = 'ReplicateApiError';
}

export interface FetchSecretOptions {
  /** e.g. `https://api.replicate.com`; a path on it is kept (for proxies). */
  baseUrl: string;
  token: string;
  /** @defaultValue `15000` */
  timeoutMs?: number;
}

/**
 * `GET /v1/webhooks/default/secret` → the `whsec_…` key. Throws {@link ReplicateApiError} for a
 * refused token, an unexpected answer or an unreachable API, never with the token in the message.
 */
export async function fetchWebhookSecret(options: FetchSecretOptions): Promise<string> {
  const base = options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`;
  const url = new URL('v1/webhooks/default/secret', base);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { authorization: `Bearer ${options.token}`, 'user-agent': 'inlet' },
      redirect: 'error',
      signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
    });
  } catch (error) {
    throw new ReplicateApiError(
      `cannot reach ${url.origin}: ${networkCause(error)}; check the network or REPLICATE_API_BASE_URL`,
    );
  }
  if (response.status === 401 || response.status === 403) {
    throw new ReplicateApiError(
      `Replicate refused the token (${response.status}): check REPLICATE_API_TOKEN (https://replicate.com/account/api-tokens)`,
    );
  }
  if (!response.ok) {
    throw new ReplicateApiError(
      `Replicate answered ${response.status} ${response.statusText} for ${url.pathname}; try again later`,
    );
  }
  const body = (await response.json().catch(() => undefined)) as { key?: unknown } | undefined;
  if (typeof body?.key !== 'string' || !body.key.startsWith('whsec_')) {
    throw new ReplicateApiError(`Replicate's answer for ${url.pathname} has no whsec_ key`);
  }
  return body.key;
}

function networkCause(error: unknown): string {
  const err = error as Error & { cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return 'no answer in time';
  return err.cause?.code ?? err.cause?.message ?? err.message;
}
