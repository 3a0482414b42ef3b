import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's CPU figures (`getconf CLK_TCK`; 100 on Linux). */
const TICKS_PER_SECOND = 100;

/** CPU seconds one process has used so far (user + system, all threads), from /proc. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may itself hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** The live descendants of `pid` (a cluster primary's workers), from /proc. */
export function descendants(pid: number): number[] {
  let children: number[];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
  return children.flatMap((child) => [child, ...descendants(child)]);
}

/** CPU seconds `pid` and its live descendants have used so far. */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  for (const each of [pid, ...descendants(pid)]) {
    try {
      total += processCpuSeconds(each);
    } catch {
      // Exited between the listing and the read.
    }
  }
  return total;
}

/** CPU seconds the whole machine has been busy so far (every core, every process). */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  // cpu user nice system idle iowait irq softirq steal …: busy is all but idle and iowait.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const busy = ticks.reduce(
    (sum, value, index) => (index === 3 || index === 4 ? sum : sum + value),
    0,
  );
  return busy / TICKS_PER_SECOND;
}

/**
 * Measures CPU time over a span: per named bench process (with its child processes), and what the rest of the machine used
 * (other people's builds and tests), which tells how much a round was disturbed.
 */
export class CpuMeter {
  private readonly start: Map<string, number>;
  private readonly machineStart = machineBusySeconds();

  /** @param withChildren - names whose child processes count too (a cluster primary's workers). */
  constructor(
    private readonly pids: Record<string, number>,
    private readonly withChildren: string[] = [],
  ) {
    this.start = new Map(Object.entries(pids).map(([name, pid]) => [name, this.cpuOf(name, pid)]));
  }

  /** CPU seconds per process since the meter started, and `other`: everything else. */
  read(): Record<string, number> {
    const used: Record<string, number> = {};
    let ours = 0;
    for (const [name, pid] of Object.entries(this.pids)) {
      used[name] = this.cpuOf(name, pid) - (this.start.get(name) ?? 0);
      ours += used[name];
    }
    used.other = Math.max(0, machineBusySeconds() - this.machineStart - ours);
    return used;
  }

  private cpuOf(name: string, pid: number): number {
    return this.withChildren.includes(name) ? treeCpuSeconds(pid) : processCpuSeconds(pid);
  }
}
