/**
 * Samples of a Prometheus text exposition, keyed `name{label="value",…}` with labels sorted, so a
 * test can ask for one series without caring in which order the exporter printed its labels.
 */
export class Scrape {
  readonly samples = new Map<string, number>();

  constructor(readonly text: string) {
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const at = line.lastIndexOf(' ');
      this.samples.set(normalise(line.slice(0, at)), Number(line.slice(at + 1)));
    }
  }

  /** The value of one series, or undefined when the scrape does not have it. */
  get(name: string, labels: Record<string, string> = {}): number | undefined {
    return this.samples.get(seriesKey(name, labels));
  }

  /** True when any series of `name` is present. */
  has(name: string): boolean {
    for (const key of this.samples.keys())
      if (key === name || key.startsWith(`${name}{`)) return true;
    return false;
  }
}

/** Fetches and parses `<baseUrl>/metrics`; `deadlineMs` aborts a scrape that hangs. */
export async function scrape(baseUrl: string, deadlineMs = 30_000): Promise<Scrape> {
  const response = await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(deadlineMs) });
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return new Scrape(await response.text());
}

function seriesKey(name: string, labels: Record<string, string>): string {
  const parts = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`);
  return parts.length > 0 ? `${name}{${parts.join(',')}}` : name;
}

function normalise(series: string): string {
  const brace = series.indexOf('{');
  if (brace === -1) return series;
  const labels: Record<string, string> = {};
  for (const match of series
    .slice(brace + 1, -1)
    .matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
    labels[match[1] as string] = JSON.parse(`"${match[2]}"`);
  }
  return seriesKey(series.slice(0, brace), labels);
}
