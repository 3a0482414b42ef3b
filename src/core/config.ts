import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from './config-error.js';

export { ConfigError };

const MiB = 1024 * 1024;

/** `1` on, `0` (or unset) off; nothing else, so that `false` or `no` cannot mean on. */
const flag = z.enum(['0', '1'], { message: 'expected 1 or 0' }).transform((v) => v === '1');

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ message: 'expected a whole number' })
    .int({ message: 'expected a whole number' })
    .min(min, { message: `expected at least ${min}` })
    .max(max, { message: `expected at most ${max}` });

const list = z.string().transform((s) => s.split(/[\s,]+/).filter((item) => item.length > 0));

/**
 * Every environment variable inlet reads, with its default. The README's configuration table is
 * written from this list, and its names are part of inlet's public interface.
 */
const schema = z.object({
  /**
   * Redis (or a Redis-compatible server). With `REDIS_CLUSTER=1`, one or more seed nodes of the
   * cluster separated by commas (`redis://:pass@10.0.0.1:7000,redis://10.0.0.2:7000`); the
   * first URL's user, password and scheme (`rediss://` for TLS) apply to every node.
   * @defaultValue `redis://127.0.0.1:6379`
   */
  REDIS_URL: z.string().refine((value) => value.split(',').every((url) => isRedisUrl(url.trim())), {
    message: 'expected redis://host:port or rediss://…',
  }),
  /**
   * `1`: `REDIS_URL` names nodes of a Redis Cluster. inlet then follows `MOVED`/`ASK` redirects
   * and failovers, and needs a hash tag in `INLET_PREFIX` (`{inlet}`) unless `INLET_SHARDS` is
   * above 1, when it tags each shard itself. @defaultValue `0` (a single Redis)
   */
  REDIS_CLUSTER: flag.default(false),
  /**
   * How many BullMQ queues deliveries are spread over, by prediction id; each is one hash slot,
   * so that a cluster spreads them over its masters. `1` keeps the key layout of a single queue.
   * @defaultValue `1`
   */
  INLET_SHARDS: int(1, 1024).default(1),
  /**
   * Which shards this worker takes from: comma-separated indexes or ranges (`0-3,7`), counted
   * from 0; may name shards at or above `INLET_SHARDS` to drain them after lowering it.
   * @defaultValue every shard, `0` to `INLET_SHARDS - 1`
   */
  INLET_WORKER_SHARDS: z
    .string()
    .regex(/^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$/, {
      message: 'expected indexes or ranges like 0-3,7',
    })
    .transform(parseShardList)
    .optional(),
  /**
   * The ingest answers 202 only once this many replicas have the delivery (`WAIT`, on the node
   * that stored it); else 503 with Retry-After. `0` answers once the master has it.
   * @defaultValue `0`
   */
  INLET_MIN_REPLICAS: int(0, 16).default(0),
  /** How long the ingest waits for `INLET_MIN_REPLICAS` replicas. @defaultValue `500` */
  INLET_REPLICA_TIMEOUT_MS: int(1, 10_000).default(500),
  /**
   * One or more `whsec_…` secrets separated by spaces or commas; any one verifying is enough. As
   * in the reference Standard Webhooks library, the base64 key alone (without `whsec_`) works too.
   */
  REPLICATE_WEBHOOK_SECRET: list.optional(),
  /**
   * `1` accepts unsigned deliveries. Local work only; refused together with a configured secret.
   * @defaultValue off (`0`)
   */
  INLET_INSECURE_SKIP_VERIFY: flag.default(false),
  /** @defaultValue `3000` */
  PORT: int(0, 65535).default(3000),
  /** @defaultValue `0.0.0.0` */
  HOST: z.string().min(1).default('0.0.0.0'),
  /** Allowed skew of `webhook-timestamp`, both ways. @defaultValue `300` */
  WEBHOOK_TOLERANCE_SECONDS: int(1, 86_400).default(300),
  /** Larger bodies get 413. @defaultValue 10 MiB */
  INLET_MAX_BODY_BYTES: int(5 * MiB, 1024 * MiB).default(10 * MiB),
  /** Redis key prefix for everything inlet stores; `{inlet}` for Redis Cluster. @defaultValue `inlet` */
  INLET_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_{}.-]+$/, { message: 'expected letters, digits, _ . - { }' })
    .default('inlet'),
  /**
   * How long a `webhook-id` stays known after its delivery was accepted, so that a repeat is
   * answered `duplicate` even after its job was removed. @defaultValue 172800 (48 h)
   */
  INLET_DEDUP_WINDOW_SECONDS: int(86_400).default(172_800),
  /** Comma-separated processor modules (paths or package names); empty = the built-in logger. */
  INLET_PROCESSORS: list.default([]),
  /** Jobs one worker process runs at once. @defaultValue `10` */
  WORKER_CONCURRENCY: int(1, 1000).default(10),
  /** Tries per delivery before it is dead-lettered. @defaultValue `8` */
  INLET_ATTEMPTS: int(1, 100).default(8),
  /** Base of exponential backoff (with jitter) between tries. @defaultValue `1000` */
  INLET_BACKOFF_MS: int(0, 3_600_000).default(1000),
  /** How long dead-lettered deliveries are kept before they expire. @defaultValue 14 days */
  INLET_DEAD_LETTER_RETENTION_SECONDS: int(3600).default(14 * 86_400),
  /**
   * How long a worker's hold on a job, and on its prediction, lasts without renewal. Renewed while
   * the job runs; after a crash another worker takes the job over once it has expired and the
   * stall check has seen it. Longer tolerates processors that block the event loop; shorter
   * recovers faster. @defaultValue `30000`
   */
  INLET_LOCK_DURATION_MS: int(200, 600_000).default(30_000),
  /** How often a worker looks for jobs whose worker died. @defaultValue `15000` */
  INLET_STALLED_INTERVAL_MS: int(100, 600_000).default(15_000),
  /**
   * Times a job may be recovered after its worker died before it is dead-lettered, so that a
   * delivery that crashes every worker cannot take them all down in turn. @defaultValue `2`
   */
  INLET_MAX_STALLED_COUNT: int(0, 100).default(2),
  /**
   * How long a stopping worker lets running processors finish before it aborts `ctx.signal`;
   * jobs still running 1.5 s later are handed back to the queue, and the worker exits within
   * grace + 2 s even when Redis is unreachable. Keep that below the orchestrator's kill timeout
   * (`docker stop`: 10 s). @defaultValue `7000`
   */
  INLET_SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(7_000),
  /**
   * How long one processor run may take unless the processor sets `timeoutMs`; past it
   * `ctx.signal` is aborted and the run fails (and is retried). Without it, a hung processor
   * would hold its prediction for ever. @defaultValue `600000` (10 minutes)
   */
  INLET_PROCESSOR_TIMEOUT_MS: int(100, 86_400_000).default(600_000),
  /**
   * How long the per-prediction ledger remembers which terminal processors ran. At least the
   * dead-letter retention, so a re-driven delivery never re-runs them. @defaultValue that
   * retention plus one day
   */
  INLET_LEDGER_RETENTION_SECONDS: int(3600).optional(),
  /** Protects the dashboard and admin API; unset turns them off. */
  INLET_ADMIN_TOKEN: z.string().min(16, { message: 'expected at least 16 characters' }).optional(),
  /** pino level. @defaultValue `info` */
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Token for Replicate's API, used by `inlet secret`. */
  REPLICATE_API_TOKEN: z.string().min(1).optional(),
  /** @defaultValue `https://api.replicate.com` */
  REPLICATE_API_BASE_URL: z
    .url({ message: 'expected an http(s) URL' })
    .default('https://api.replicate.com'),
  // --- `inlet reconcile` and the keep-outputs processor (README: "Never lose a prediction") ---
  /** How far back a reconcile pass walks `GET /v1/predictions`. @defaultValue `86400` (24 h) */
  INLET_RECONCILE_WINDOW_SECONDS: int(60, 30 * 86_400).default(86_400),
  /**
   * How long after a prediction completed the reconciler leaves it to its webhook (Replicate
   * retries the terminal one for about a minute). @defaultValue `300`
   */
  INLET_RECONCILE_GRACE_SECONDS: int(0, 86_400).default(300),
  /** Seconds between passes of the long-running `inlet reconcile`. @defaultValue `300` */
  INLET_RECONCILE_INTERVAL_SECONDS: int(1, 86_400).default(300),
  /** Most API requests (list pages and gets) one pass makes. @defaultValue `50` */
  INLET_RECONCILE_PAGE_BUDGET: int(1, 100_000).default(50),
  /** How long the reconciler's lease in Redis lasts without renewal. @defaultValue `30000` */
  INLET_RECONCILE_LEASE_MS: int(1000, 600_000).default(30_000),
  /** Port of the reconciler's own `/metrics`; `0` turns it off. @defaultValue `9465` */
  INLET_RECONCILE_METRICS_PORT: int(0, 65535).default(9465),
  /**
   * Where the keep-outputs processor stores output files: `file:///dir` or
   * `s3://bucket/prefix` (AWS_REGION, AWS_ENDPOINT_URL_S3 and the usual AWS credentials).
   * @defaultValue `file://<working directory>/outputs`
   */
  INLET_OUTPUT_STORE_URL: z
    .url({ protocol: /^(file|s3)$/, message: 'expected file:///dir or s3://bucket/prefix' })
    .optional(),
  /** Largest output file keep-outputs stores. @defaultValue 1 GiB */
  INLET_OUTPUT_MAX_BYTES: int(1, 1024 * 1024 * MiB).default(1024 * MiB),
});

export type Config = z.infer<typeof schema>;

function isRedisUrl(value: string): boolean {
  try {
    return /^rediss?:$/.test(new URL(value).protocol);
  } catch {
    return false;
  }
}

/** `0-3,7` → [0, 1, 2, 3, 7]: sorted, without repeats. */
function parseShardList(value: string): number[] {
  const shards = new Set<number>();
  for (const part of value.split(',')) {
    const [from, to = from] = part.trim().split('-').map(Number) as [number, number?];
    for (let shard = from; shard <= Math.min(to, 1023); shard++) shards.add(shard);
  }
  return [...shards].sort((a, b) => a - b);
}

/** Variables that may instead be read from a file named by `NAME_FILE` (Docker secrets). */
const FILE_VARIABLES = [
  'REPLICATE_WEBHOOK_SECRET',
  'INLET_ADMIN_TOKEN',
  'REPLICATE_API_TOKEN',
  'REDIS_URL',
] as const;

const DEFAULTS: Record<string, string> = { REDIS_URL: 'redis://127.0.0.1:6379' };

/**
 * Reads and validates inlet's configuration from an environment.
 * Empty variables count as unset. Throws {@link ConfigError} with one line naming the variable.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string | undefined> = { ...DEFAULTS };
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') input[key] = value.trim();
  }
  for (const key of FILE_VARIABLES) {
    const file = env[`${key}_FILE`];
    if (!file) continue;
    if (env[key]) throw new ConfigError(`set ${key} or ${key}_FILE, not both`);
    input[key] = readSecretFile(`${key}_FILE`, file);
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = issue?.path.join('.') ?? 'configuration';
    throw new ConfigError(`${name}: ${issue?.message ?? 'invalid'} (got ${show(name, input)})`);
  }
  checkRedisLayout(parsed.data);
  return parsed.data;
}

/**
 * Refuses, in one line, a Redis setup that could only fail later, delivery by delivery: several
 * hosts without `REDIS_CLUSTER=1`, a cluster prefix whose keys would not share a slot (BullMQ's
 * scripts would get CROSSSLOT), or a hash tag of the user's beside the shards' own.
 */
function checkRedisLayout(config: Config): void {
  const hosts = config.REDIS_URL.split(',').length;
  if (hosts > 1 && !config.REDIS_CLUSTER) {
    throw new ConfigError(
      `REDIS_URL: names ${hosts} hosts; set REDIS_CLUSTER=1 for a Redis Cluster, or give one URL`,
    );
  }
  const prefix = config.INLET_PREFIX;
  const braces = /[{}]/.test(prefix);
  if (config.INLET_SHARDS > 1 && braces) {
    throw new ConfigError(
      `INLET_PREFIX: with INLET_SHARDS above 1 leave out the braces (got "${prefix}"); inlet gives each shard its own hash tag`,
    );
  }
  if (config.REDIS_CLUSTER && config.INLET_SHARDS === 1 && !hasHashTag(prefix)) {
    throw new ConfigError(
      `INLET_PREFIX: a Redis Cluster needs a hash tag so that a queue's keys share a slot: set INLET_PREFIX={${prefix.replace(/[{}]/g, '') || 'inlet'}} (got "${prefix}")`,
    );
  }
}

/** True when every key under `prefix` hashes by a tag in it: `{…}` with something inside. */
export function hasHashTag(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open === -1) return false;
  const close = prefix.indexOf('}', open + 1);
  return close > open + 1;
}

function readSecretFile(name: string, file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new ConfigError(`${name}: cannot read ${file} (${code})`);
  }
}

/** Shows a bad value in an error line, unless it is a secret; URLs lose their credentials. */
function show(name: string, input: Record<string, string | undefined>): string {
  const secret = /SECRET|TOKEN/.test(name);
  const value = input[name];
  if (value === undefined) return 'nothing';
  return secret ? 'a value that is not shown' : JSON.stringify(redactUrl(value));
}

/**
 * `text` with the credentials of any URL in it replaced by `…`: the user-info part
 * (`redis://user:password@host`) and `password=` query parameters. For anything that prints a
 * configured URL: errors, logs, CLI messages. Works on text that is not a valid URL too.
 */
export function redactUrl(text: string): string {
  return text
    .replace(/(\/\/)[^/?#\s@,]*@/g, '$1…@')
    .replace(/([?&](?:password|pass|pwd)=)[^&#\s]*/gi, '$1…');
}

/**
 * The ingest's own check: it refuses to start without a signing secret unless verification is
 * explicitly skipped, and refuses both at once rather than silently ignore the secret.
 */
export function requireWebhookSecrets(config: Config): string[] {
  const secrets = config.REPLICATE_WEBHOOK_SECRET ?? [];
  if (secrets.length > 0 && config.INLET_INSECURE_SKIP_VERIFY) {
    throw new ConfigError(
      'INLET_INSECURE_SKIP_VERIFY=1 and REPLICATE_WEBHOOK_SECRET are both set: unset INLET_INSECURE_SKIP_VERIFY to verify signatures (or unset the secret for unsigned local work)',
    );
  }
  if (secrets.length === 0 && !config.INLET_INSECURE_SKIP_VERIFY) {
    throw new ConfigError(
      'REPLICATE_WEBHOOK_SECRET is not set: run `inlet secret` to fetch it, or set INLET_INSECURE_SKIP_VERIFY=1 for local work',
    );
  }
  return secrets;
}
