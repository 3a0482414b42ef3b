import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { ConfigError } from '../core/config.js';

/** `inlet init`: a starter processor and the config around it, in an existing project. */
export function initCommand(): Command {
  return new Command('init')
    .description(
      'write a starter TypeScript processor, tsconfig, .env example and compose override here',
    )
    .addHelpText(
      'after',
      `
Writes only files that do not exist yet; an existing file is kept and said so. In package.json
it sets "type": "module" when no type is set (TypeScript processors are ES modules); a project
that says "type": "commonjs" gets its processor as .mts instead, so nothing of it changes.`,
    )
    .action(() => {
      const cwd = process.cwd();
      const ext = moduleType(cwd) === 'commonjs' ? 'mts' : 'ts';
      const processor = `processors/save-prediction.${ext}`;
      const files: Array<[string, string]> = [
        [processor, PROCESSOR],
        [`processors/save-prediction.test.${ext}`, processorTest(ext)],
        ['tsconfig.json', TSCONFIG],
        ['.env.example', envExample(processor)],
        ['docker-compose.override.yml', composeOverride(processor)],
      ];
      for (const [file, text] of files) {
        const path = join(cwd, file);
        if (existsSync(path)) {
          process.stdout.write(`kept ${file} (exists)\n`);
          continue;
        }
        mkdirSync(dirname(path), { recursive: true });
        writeFileSync(path, text);
        process.stdout.write(`wrote ${file}\n`);
      }
      process.stdout.write(
        `\nnext: npx inlet dev --watch  (with INLET_PROCESSORS=./${processor}, as in .env.example)\n      npx inlet send --status succeeded  (in another terminal)\n`,
      );
    });
}

/** The package's module type, after setting "module" where none is set. */
function moduleType(cwd: string): string {
  const file = join(cwd, 'package.json');
  if (!existsSync(file)) {
    writeFileSync(file, `${JSON.stringify({ private: true, type: 'module' }, null, 2)}\n`);
    process.stdout.write('wrote package.json ("type": "module")\n');
    return 'module';
  }
  let pkg: Record<string, unknown>;
  try {
    pkg = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new ConfigError(`package.json is not JSON: ${(error as Error).message}`);
  }
  if (pkg.type === undefined) {
    writeFileSync(file, `${JSON.stringify({ ...pkg, type: 'module' }, null, 2)}\n`);
    process.stdout.write(
      'set "type": "module" in package.json (processors are ES modules; name CommonJS files .cjs)\n',
    );
    return 'module';
  }
  if (pkg.type === 'commonjs') {
    process.stdout.write(
      'package.json says "type": "commonjs": kept; the processor is written as .mts (an ES module either way)\n',
    );
  }
  return String(pkg.type);
}

const PROCESSOR = `import { appendFile } from 'node:fs/promises';
import { defineProcessor } from 'inlet-webhooks';

/** Your model's output: a list of file URLs for an image model. Adjust to yours. */
type Output = string[];

/**
 * A starter processor: records each succeeded prediction in a JSON-lines file (a stand-in for
 * your database). inlet runs it once per prediction, retried with backoff when it throws;
 * throw UnrecoverableError (from 'inlet-webhooks') for errors no retry can fix.
 */
export default defineProcessor<Record<string, unknown>, Output>({
  name: 'save-prediction',
  statuses: ['succeeded'],
  async handle(prediction, ctx) {
    const record = { id: prediction.id, output: prediction.output, webhookId: ctx.webhookId };
    await appendFile(process.env.SAVE_PREDICTIONS_FILE ?? 'predictions.jsonl', \`\${JSON.stringify(record)}\\n\`);
    ctx.log.info({ outputs: prediction.output?.length ?? 0 }, 'prediction saved');
  },
});
`;

function processorTest(ext: string): string {
  return `import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { test } from 'node:test';
import { runProcessorOnce, samplePredictions } from 'inlet-webhooks/testing';
import processor from './save-prediction.${ext}';

// Run with: node --test processors/*.test.${ext} (Node 23.6+), or node --import tsx --test processors/*.test.${ext}
test('saves a succeeded prediction, skips the others', async () => {
  process.env.SAVE_PREDICTIONS_FILE = 'test-predictions.jsonl';
  const samples = samplePredictions();
  const run = await runProcessorOnce(processor, samples.succeeded);
  assert.equal(run.outcome, 'succeeded');
  assert.match(await readFile('test-predictions.jsonl', 'utf8'), new RegExp(samples.succeeded.id));
  assert.equal((await runProcessorOnce(processor, samples.processing)).outcome, 'skipped');
  await rm('test-predictions.jsonl');
});
`;
}

const TSCONFIG = `{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "verbatimModuleSyntax": true,
    "erasableSyntaxOnly": true,
    "allowImportingTsExtensions": true
  },
  "include": ["processors"]
}
`;

function envExample(processor: string): string {
  return `# Copy to .env (inlet reads it; variables set in the shell win).
INLET_PROCESSORS=./${processor}
# From \`npx inlet secret\` (needs REPLICATE_API_TOKEN); inlet dev makes a dev secret without it.
REPLICATE_WEBHOOK_SECRET=
# Unset: inlet dev uses 127.0.0.1:6379 or starts a private redis-server.
# REDIS_URL=redis://127.0.0.1:6379
`;
}

function composeOverride(processor: string): string {
  return `# Your processors in inlet's compose stack: put this file next to inlet's docker-compose.yml
# (docker compose reads docker-compose.override.yml by itself), or pass both with -f.
# The image runs Node 24, which strips TypeScript types itself: .ts processors run as written.
services:
  worker:
    volumes:
      - ./processors:/app/processors:ro
    environment:
      INLET_PROCESSORS: ./${processor}
`;
}
