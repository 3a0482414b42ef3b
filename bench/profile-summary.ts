import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** The parts of a V8 `.cpuprofile` (written by `node --cpu-prof`) this summary reads. */
interface CpuProfile {
  nodes: Array<{
    id: number;
    hitCount?: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }>;
  startTime: number;
  endTime: number;
}

/** Where a function lives: a package, Node's own code, inlet's, or a V8 pseudo-frame. */
function placeOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node core';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1]}` : (rest[0] ?? url);
  }
  const dist = url.indexOf('/dist/');
  if (dist !== -1) return `inlet ${url.slice(dist + 1)}`;
  return url;
}

/** A function's file, short: `ioredis/built/Command.js`, `node:net`, `dist/ingest/app.js`. */
function fileOf(url: string): string {
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length);
  const dist = url.indexOf('/dist/');
  return dist === -1 ? url : url.slice(dist + 1);
}

/**
 * Summarises every `.cpuprofile` in `folder`: self time by package (or inlet file) and the
 * functions with the most self time. Plain text, for the terminal and the report.
 */
export function summariseProfiles(folder: string, top = 25): string {
  if (!existsSync(folder)) return 'bench: no CPU profile was written\n';
  const lines: string[] = [];
  for (const file of readdirSync(folder).filter((name) => name.endsWith('.cpuprofile'))) {
    const profile = JSON.parse(readFileSync(join(folder, file), 'utf8')) as CpuProfile;
    const hits = profile.nodes.reduce((sum, node) => sum + (node.hitCount ?? 0), 0);
    const msPerHit = (profile.endTime - profile.startTime) / 1000 / Math.max(1, hits);
    const byPlace = new Map<string, number>();
    const byFunction = new Map<string, number>();
    for (const node of profile.nodes) {
      const count = node.hitCount ?? 0;
      if (count === 0) continue;
      const { functionName, url, lineNumber } = node.callFrame;
      const place = placeOf(url, functionName);
      byPlace.set(place, (byPlace.get(place) ?? 0) + count);
      const name = `${functionName || '(anonymous)'} ${fileOf(url) || place}:${lineNumber + 1}`;
      byFunction.set(name, (byFunction.get(name) ?? 0) + count);
    }
    const busy = hits - (byPlace.get('(idle)') ?? 0);
    const share = (count: number) =>
      `${((count / Math.max(1, busy)) * 100).toFixed(1)}%`.padStart(6);
    lines.push(
      `\nCPU profile ${file}: ${((hits * msPerHit) / 1000).toFixed(1)} s sampled, ${((busy * msPerHit) / 1000).toFixed(1)} s busy (shares below are of busy time)`,
      '\nself time by place:',
    );
    for (const [place, count] of [...byPlace].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      if (place !== '(idle)') lines.push(`  ${share(count)}  ${place}`);
    }
    lines.push('\nfunctions with the most self time:');
    for (const [name, count] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      if (!name.startsWith('(idle)')) lines.push(`  ${share(count)}  ${name}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

// `node --import tsx bench/profile-summary.ts <folder>` summarises profiles taken by hand.
if (process.argv[1]?.endsWith('profile-summary.ts') && process.argv[2]) {
  process.stdout.write(summariseProfiles(process.argv[2]));
}
