/**
 * `work`, or a rejection with `late()`'s error once `ms` have passed, whichever comes first. The
 * timer is cleared as soon as either settles, so that it never holds a process open. `work` itself
 * is not cancelled: a late answer is ignored.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}
