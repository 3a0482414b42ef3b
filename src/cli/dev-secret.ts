import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The signing secret `inlet dev` makes up when none is configured, kept in `.inlet/dev-secret`
 * so that it survives restarts and `inlet send` run in the same folder signs with it unasked.
 *
 * Why a generated secret rather than skipping verification: the ingest then runs in dev exactly
 * as in production, so a proxy or body parser that breaks signatures fails on the laptop, not
 * after the deploy; and nothing unsigned is ever accepted, even by a dev server on a tunnel.
 */

/** The folder, relative to the working directory, where `inlet dev` keeps its state. */
export const STATE_DIR = '.inlet';

function secretPath(cwd: string): string {
  return join(cwd, STATE_DIR, 'dev-secret');
}

/** The dev secret saved in `cwd`, if `inlet dev` ever made one there. */
export function readDevSecret(cwd = process.cwd()): string | undefined {
  const file = secretPath(cwd);
  if (!existsSync(file)) return undefined;
  const secret = readFileSync(file, 'utf8').trim();
  return secret.length > 0 ? secret : undefined;
}

/** The saved dev secret, or a new one saved (readable by this user only) for next time. */
export function ensureDevSecret(cwd = process.cwd()): { secret: string; created: boolean } {
  const existing = readDevSecret(cwd);
  if (existing) return { secret: existing, created: false };
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  mkdirSync(join(cwd, STATE_DIR), { recursive: true });
  writeFileSync(secretPath(cwd), `${secret}\n`, { mode: 0o600 });
  return { secret, created: true };
}
