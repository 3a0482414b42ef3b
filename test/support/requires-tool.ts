/**
 * The `skip` option of a test that needs a tool from outside npm (Chromium, promtool,
 * docker-compose): `false` when it is there, a reason to skip when it is not. Under CI (`CI` set,
 * as `.ci/run` runs) a missing tool is an error instead, so a failed install can never pass as a
 * skipped test.
 */
export function unlessInstalled(present: boolean, what: string): false | string {
  if (present) return false;
  if (process.env.CI) throw new Error(`${what} is missing in CI: .ci/run should have installed it`);
  return `${what} is not installed`;
}
