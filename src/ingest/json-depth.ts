/**
 * The deepest nesting of arrays and objects a delivery may have. A prediction nests a few levels;
 * model outputs rarely more than a dozen. Deeper bodies are refused (400 `too_deeply_nested`)
 * before `JSON.parse` sees them: parsing and later re-serialising (BullMQ stores the job as JSON)
 * a body nested thousands deep costs seconds of blocked event loop or overflows the stack.
 */
export const MAX_JSON_DEPTH = 128;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/**
 * True when the arrays and objects in `raw` nest deeper than `limit`. One pass over the bytes
 * that skips string contents; it validates nothing else (`JSON.parse` still does), so its cost
 * is linear and small whatever the body holds.
 */
export function nestsDeeperThan(raw: Uint8Array, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) {
      inString = true;
    } else if (byte === OPEN_ARRAY || byte === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (byte === CLOSE_ARRAY || byte === CLOSE_OBJECT) {
      depth--;
    }
  }
  return false;
}
