import { Command } from 'commander';
import { ConfigError, loadConfig } from '../core/config.js';
import { fetchWebhookSecret } from './replicate-api.js';

/** `inlet secret`: prints the account's webhook signing secret, fetched from Replicate's API. */
export function secretCommand(): Command {
  return new Command('secret')
    .description("fetch the webhook signing secret from Replicate's API and print it")
    .option('--env', 'print it as REPLICATE_WEBHOOK_SECRET=whsec_… (for a .env file)')
    .addHelpText(
      'after',
      `
Reads REPLICATE_API_TOKEN (or REPLICATE_API_TOKEN_FILE); REPLICATE_API_BASE_URL overrides
https://api.replicate.com. Prints only the secret on stdout, so that it can be captured:

  export REPLICATE_WEBHOOK_SECRET="$(npx inlet secret)"
  npx inlet secret --env >> .env`,
    )
    .action(async (flags: { env?: boolean }) => {
      const config = loadConfig();
      if (!config.REPLICATE_API_TOKEN) {
        throw new ConfigError(
          'REPLICATE_API_TOKEN is not set: create a token at https://replicate.com/account/api-tokens and export it',
        );
      }
      const key = await fetchWebhookSecret({
        baseUrl: config.REPLICATE_API_BASE_URL,
        token: config.REPLICATE_API_TOKEN,
      });
      process.stdout.write(flags.env ? `REPLICATE_WEBHOOK_SECRET=${key}\n` : `${key}\n`);
    });
}
