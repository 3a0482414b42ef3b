// The long fuzzing run: the ingest test of test/ingest/fuzz.test.ts with 10,000 hostile
// requests instead of the 1,000 that `npm test` sends. FUZZ_RUNS and FUZZ_SEED still apply.
process.env.FUZZ_RUNS ??= '10000';
await import('../ingest/fuzz.test.js');
