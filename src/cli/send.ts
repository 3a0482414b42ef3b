import { Command, Option } from 'commander';
import { ConfigError, loadConfig } from '../core/config.js';
import { decodeSecret, type SigningKey } from '../ingest/signature.js';
import { readDevSecret } from './dev-secret.js';
import { asArgument, httpUrl, wholeNumber } from './option-values.js';
import { postDeliveries, type SendResult } from './post-deliveries.js';
import { readPredictionData } from './prediction-file.js';
import {
  parsePredictionIds,
  parseStatuses,
  planDeliveries,
  planGivenDeliveries,
  type StatusChoice,
  shuffled,
} from './send-plan.js';

/** Where `inlet ingest` and `inlet dev` listen by default. */
export const DEFAULT_WEBHOOK_URL = 'http://127.0.0.1:3000/webhooks/replicate';

interface SendFlags {
  url: string;
  status: StatusChoice[];
  count: number;
  prediction?: string[];
  duplicate?: number | true;
  shuffle?: boolean;
  concurrency: number;
  secret?: string;
  unsigned?: boolean;
  json?: boolean;
  data?: string;
}

/** `inlet send`: signed sample deliveries to an ingest, like `stripe trigger`. */
export function sendCommand(): Command {
  return new Command('send')
    .description('send correctly signed sample Replicate deliveries to an ingest')
    .option('--url <url>', 'the webhook URL to deliver to', httpUrl, DEFAULT_WEBHOOK_URL)
    .addOption(
      new Option(
        '--status <list>',
        'statuses each prediction is delivered in, in order, comma-separated: starting, processing, succeeded, failed, canceled, aborted; or "all" (start, processing, then each terminal status in turn across predictions)',
      )
        .argParser(asArgument(parseStatuses))
        .default(parseStatuses('starting,processing,succeeded'), 'starting,processing,succeeded'),
    )
    .option('--count <n>', 'how many predictions', wholeNumber(1, 100_000), 1)
    .option(
      '--prediction <ids>',
      'prediction ids to use, comma-separated, instead of --count new ones',
      asArgument(parsePredictionIds),
    )
    .option(
      '--duplicate [times]',
      'send each delivery again with the same webhook-id, as Replicate retries (default once)',
      wholeNumber(1, 10),
    )
    .option(
      '--data <file>',
      'send your own prediction(s) instead of samples: a JSON object or array, from a file or - (stdin)',
    )
    .option('--shuffle', 'send all deliveries in random order (Replicate promises no order)')
    .option('--concurrency <n>', 'predictions sent at once', wholeNumber(1, 256), 16)
    .option(
      '--secret <whsec>',
      'signing secret (default: REPLICATE_WEBHOOK_SECRET, else the one `inlet dev` keeps in .inlet/)',
    )
    .option(
      '--unsigned',
      'send without a signature (for an ingest with INLET_INSECURE_SKIP_VERIFY=1)',
    )
    .option('--json', 'print one JSON line per delivery on stdout (summary on stderr)')
    .addHelpText(
      'after',
      `
Each prediction's deliveries go out in order; predictions go out side by side.
Exits 1 when any delivery is rejected or cannot be sent.

Examples:
  inlet send                                       one prediction: starting, processing, succeeded
  inlet send --status succeeded --prediction abc   one terminal delivery for prediction abc
  inlet send --count 50 --status all --duplicate   50 predictions through every status, each
                                                   delivery sent twice (300 requests)
  inlet send --prediction abc,def --status processing,succeeded --shuffle
                                                   late and repeated deliveries for abc and def
  inlet send --data prediction.json                your model's real output, signed and sent
  curl -s -H "Authorization: Bearer $REPLICATE_API_TOKEN" \\
    https://api.replicate.com/v1/predictions/ID | inlet send --data -`,
    )
    .action(async (flags: SendFlags, command: Command) => {
      if (flags.prediction !== undefined && command.getOptionValueSource('count') === 'cli') {
        throw new ConfigError('--prediction names the predictions: leave out --count');
      }
      if (flags.data !== undefined) {
        const clash = ['status', 'count', 'prediction'].find(
          (name) => command.getOptionValueSource(name) === 'cli',
        );
        if (clash) throw new ConfigError(`--data gives the predictions: leave out --${clash}`);
      }
      const keys = flags.unsigned ? [] : signingKeys(flags.secret);
      const duplicates = flags.duplicate === true ? 1 : (flags.duplicate ?? 0);
      const planned =
        flags.data !== undefined
          ? planGivenDeliveries(readPredictionData(flags.data), duplicates)
          : planDeliveries({
              statuses: flags.status,
              count: flags.count,
              predictionIds: flags.prediction,
              duplicates,
              url: flags.url,
            });
      const sequences = flags.shuffle ? shuffled(planned) : planned;
      const started = Date.now();
      const results = await postDeliveries(sequences, {
        url: flags.url,
        keys,
        concurrency: flags.concurrency,
        onResult: flags.json ? printJson : undefined,
      });
      const summary = summarize(results, planned.length, flags.url, Date.now() - started);
      (flags.json ? process.stderr : process.stdout).write(summary.text);
      if (summary.failed) process.exitCode = 1;
    });
}

/** The keys to sign with: `--secret`, else the configured secrets, else the dev secret. */
function signingKeys(flag: string | undefined): SigningKey[] {
  const configured = flag ? [flag] : (loadConfig().REPLICATE_WEBHOOK_SECRET ?? []);
  const secrets =
    configured.length > 0 ? configured : [readDevSecret()].filter((s) => s !== undefined);
  if (secrets.length === 0) {
    throw new ConfigError(
      'no signing secret: set REPLICATE_WEBHOOK_SECRET (as the ingest has it), pass --secret, or --unsigned for an ingest that skips verification',
    );
  }
  return secrets.map((secret) => {
    try {
      return decodeSecret(secret);
    } catch (error) {
      throw new ConfigError(
        `${flag ? '--secret' : 'REPLICATE_WEBHOOK_SECRET'}: ${(error as Error).message}`,
      );
    }
  });
}

function printJson(result: SendResult): void {
  const { delivery, outcome, httpStatus, reason } = result;
  const line = {
    webhookId: delivery.webhookId,
    predictionId: delivery.predictionId,
    status: delivery.status,
    repeat: delivery.repeat,
    outcome,
    httpStatus,
    reason,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

/** The summary line, and one line per distinct reason something was rejected or failed. */
export function summarize(
  results: SendResult[],
  predictions: number,
  url: string,
  ms: number,
): { text: string; failed: boolean } {
  const counts = { accepted: 0, duplicate: 0, rejected: 0, failed: 0 };
  const reasons = new Map<string, number>();
  for (const result of results) {
    counts[result.outcome]++;
    if (result.reason) reasons.set(result.reason, (reasons.get(result.reason) ?? 0) + 1);
  }
  const count = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;
  const lines = [
    `sent ${count(results.length, 'delivery', 'deliveries')} for ${count(predictions, 'prediction', 'predictions')} to ${url} in ${(ms / 1000).toFixed(1)} s: ` +
      `${counts.accepted} accepted, ${counts.duplicate} duplicate, ${counts.rejected} rejected, ${counts.failed} failed`,
  ];
  for (const [reason, times] of reasons) lines.push(`  ${times} × ${reason}`);
  return { text: `${lines.join('\n')}\n`, failed: counts.rejected + counts.failed > 0 };
}
