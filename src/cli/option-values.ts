import { InvalidArgumentError } from 'commander';

/**
 * Parsers for option values, for commander's `argParser`. A bad value becomes commander's one
 * line (`error: option '--count <n>' argument 'x' is invalid. expected …`) and exit code 1.
 */

/** A whole number in `[min, max]`. */
export function wholeNumber(min: number, max: number): (value: string) => number {
  return (value) => {
    const number = Number(value);
    if (!/^[0-9]+$/.test(value.trim()) || !Number.isSafeInteger(number)) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    if (number < min || number > max) {
      throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    }
    return number;
  };
}

/** An `http:` or `https:` URL. */
export function httpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected a URL like http://127.0.0.1:3000/webhooks/replicate');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new InvalidArgumentError('expected an http:// or https:// URL');
  }
  return url.toString();
}

/** Wraps a parser that throws plain Errors so that commander reports them as bad values. */
export function asArgument<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}
