import { randomBytes } from 'node:crypto';
import type { Job } from 'bullmq';
import type { RedisClient } from '../core/redis.js';
import { bullmqCommand } from '../core/scripts/bullmq-script.js';
import {
  type FetchLedgerSettings,
  MOVE_TO_ACTIVE,
  MOVE_TO_FINISHED,
  moveToActiveAndBegin11,
  moveToFinishedAndBegin14,
} from '../core/scripts/fetch-and-begin.js';
import { defineScripts } from '../core/scripts/redis-script.js';
import type { FinishArgs, FinishCarrier, LedgerOptions } from './prediction-ledger.js';
import { type Processor, wantedByStatus } from './processor.js';

/** Prediction-lock tokens: unique per process and try, without a random draw per job. */
const PROCESS_TOKEN = randomBytes(6).toString('hex');
let tryTokens = 0;

/** A new try's token, held in the prediction lock while its processors run. */
export function tryToken(prefix: string): string {
  return `${prefix}:${PROCESS_TOKEN}:${++tryTokens}`;
}

/** The ledger's decision on a job, taken by the script that fetched it. */
export interface FetchedBegin {
  /** The try's token: the prediction lock's value when the answer is `run`. */
  token: string;
  /** beginDelivery-3's answer. */
  reply: string[];
}

interface PendingFinish {
  args: FinishArgs;
  resolve: (first: number) => void;
  reject: (error: Error) => void;
  /** Sends the finish as a call of its own. */
  alone: () => Promise<number>;
}

/** At most this many answers wait for their dispatch; more means jobs fetched and never run. */
const MAX_WAITING = 10_000;

/**
 * The ledger's calls that ride on one shard's BullMQ fetches (the fetch-and-begin scripts): the
 * begin of each job fetched, kept until its dispatcher takes it as the job's processor starts;
 * and the finish of each delivery, held until BullMQ completes its job, in the same turn of the
 * event loop, and sent with it.
 */
export class LedgerOnFetch implements FinishCarrier {
  private readonly begins = new Map<string, FetchedBegin & { fetch: string }>();
  private readonly finishes = new Map<string, PendingFinish>();
  private sweeping = false;
  /** What the fetch scripts are built with: the same for every shard of a worker. */
  readonly settings: FetchLedgerSettings;

  constructor(
    /** The queue's key prefix, `<BullMQ prefix>:<queue name>:`: how the scripts name it. */
    readonly queueKey: string,
    readonly ledger: LedgerOptions,
    processors: readonly Processor[],
  ) {
    this.settings = {
      lockTtlMs: ledger.lockTtlMs,
      retentionSeconds: ledger.retentionSeconds,
      wanted: wantedByStatus(processors),
    };
  }

  /**
   * The decision fetched with this very try of `job`, once. A job fetched again by a script
   * that does not begin (BullMQ's moveToDelayed also fetches) finds none: its fetch differs.
   */
  take(job: Job): FetchedBegin | undefined {
    const id = job.id;
    if (id === undefined) return undefined;
    const entry = this.begins.get(id);
    if (!entry) return undefined;
    this.begins.delete(id);
    if (entry.fetch !== fetchOf(job.processedOn, job.attemptsStarted)) return undefined;
    return { token: entry.token, reply: entry.reply };
  }

  /**
   * Ends a delivery with BullMQ's completion of its job `jobId`. BullMQ completes a job in the
   * microtasks after its processor function returns, so when that has not happened by the end
   * of this turn of the event loop (a worker closing completes nothing), `alone` sends it.
   * Resolves with finishDelivery-3's answer.
   */
  finishWithJob(jobId: string, args: FinishArgs, alone: () => Promise<number>): Promise<number> {
    return new Promise((resolve, reject) => {
      const earlier = this.finishes.get(jobId);
      if (earlier) sendAlone(earlier); // one of an earlier try still held: never lose it
      this.finishes.set(jobId, { args, resolve, reject, alone });
      if (this.sweeping) return;
      this.sweeping = true;
      setImmediate(() => {
        this.sweeping = false;
        for (const pending of this.finishes.values()) sendAlone(pending);
        this.finishes.clear();
      });
    });
  }

  /**
   * The extra arguments of one fetch script call, and what to do with its answer;
   * `completedJobId` names the job a `moveToFinished` completes, whose held finish rides along.
   */
  call(completedJobId?: string): FetchCall {
    const token = tryToken('fetch');
    const args: Array<string | number> = [this.ledger.prefix, token];
    const finish = completedJobId === undefined ? undefined : this.finishes.get(completedJobId);
    if (finish) {
      this.finishes.delete(completedJobId as string);
      const { predictionId, webhookId, token: finishToken, processor, terminal } = finish.args;
      args.push(predictionId, webhookId, finishToken, processor, terminal);
    }
    return {
      args,
      answered: (raw) => {
        const [, begun, finished, bullmq] = raw as [string, unknown, unknown, unknown];
        if (finish) finish.resolve(Number(finished));
        if (Array.isArray(begun) && Array.isArray(bullmq)) this.keep(bullmq, token, begun);
        return bullmq;
      },
      failed: () => {
        if (finish) sendAlone(finish);
      },
    };
  }

  private keep(bullmq: unknown[], token: string, reply: string[]): void {
    const [fields, id] = bullmq as [string[], string];
    let processedOn: number | undefined;
    let attemptsStarted = 0;
    for (let i = 0; i < fields.length - 1; i += 2) {
      if (fields[i] === 'processedOn') processedOn = Number(fields[i + 1]);
      else if (fields[i] === 'ats') attemptsStarted = Number(fields[i + 1]);
    }
    if (this.begins.size >= MAX_WAITING) {
      const oldest = this.begins.keys().next().value;
      if (oldest !== undefined) this.begins.delete(oldest);
    }
    this.begins.set(String(id), { token, reply, fetch: fetchOf(processedOn, attemptsStarted) });
  }
}

interface FetchCall {
  args: Array<string | number>;
  /** Takes the script's answer apart; returns BullMQ's. */
  answered(raw: unknown): unknown;
  failed(): void;
}

function sendAlone(pending: PendingFinish): void {
  pending.alone().then(pending.resolve, pending.reject);
}

function fetchOf(processedOn: number | undefined, attemptsStarted: number): string {
  return `${processedOn ?? ''}:${attemptsStarted}`;
}

/**
 * Makes BullMQ's workers on `redis` fetch their jobs with the fetch-and-begin scripts, built
 * with the settings the shards share (they differ only in their queue and ledger prefix). BullMQ
 * defines its scripts on a connection only under names the connection has no command of, so
 * `moveToActive` and `moveToFinished` of BullMQ's version become functions that call the
 * wrapped scripts with the shard's ledger arguments and hand BullMQ its own answer, unchanged.
 * Call before any worker on `redis` starts.
 */
export function installLedgerOnFetch(redis: RedisClient, shards: readonly LedgerOnFetch[]): void {
  const settings = shards[0]?.settings;
  if (!settings) return;
  const installed = installedSettings.get(redis) ?? settings;
  if (shards.some((shard) => !sameSettings(shard.settings, installed))) {
    throw new Error('installLedgerOnFetch: the shards of one connection differ in their settings');
  }
  installedSettings.set(redis, settings);
  defineScripts(redis, moveToActiveAndBegin11(settings), moveToFinishedAndBegin14(settings));
  const byQueue = new Map(shards.map((shard) => [shard.queueKey, shard]));
  for (const { name, keys, argc, queueArg } of [MOVE_TO_ACTIVE, MOVE_TO_FINISHED]) {
    const wrapped = `${name}AndBegin` as const;
    Object.defineProperty(redis, bullmqCommand(name), {
      configurable: true,
      value: async (args: Array<string | number | Buffer | undefined>): Promise<unknown> => {
        // BullMQ leaves an unused last argument undefined; ioredis would send it as ''.
        const own = args.slice(0, keys + argc).map((arg) => arg ?? '');
        const shard = byQueue.get(String(own[keys + queueArg - 1]));
        if (!shard) return redis[wrapped](own);
        // moveToFinished's ARGV[1] is the job it completes.
        const call = shard.call(name === MOVE_TO_FINISHED.name ? String(own[keys]) : undefined);
        let raw: unknown;
        try {
          raw = await redis[wrapped]([...own, ...call.args]);
        } catch (error) {
          call.failed();
          throw error;
        }
        return call.answered(raw);
      },
    });
  }
}

/** What each connection's fetch scripts were built with: a second install must agree. */
const installedSettings = new WeakMap<RedisClient, FetchLedgerSettings>();

function sameSettings(a: FetchLedgerSettings, b: FetchLedgerSettings): boolean {
  const entries = (settings: FetchLedgerSettings) => JSON.stringify([...settings.wanted]);
  return (
    a.lockTtlMs === b.lockTtlMs &&
    a.retentionSeconds === b.retentionSeconds &&
    entries(a) === entries(b)
  );
}
