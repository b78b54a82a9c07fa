/**
 * Words for zod validation issues, for error messages about input that people write (a routing table
 * file, an admin API request): each issue as its JSON path (`sites[0].versions[1].name`), what is wrong
 * and the value found, at most three of them. Pure functions; they never throw.
 */
import type * as z from 'zod';

const MAX_REPORTED_ISSUES = 3;

/** "path: problem (found value); ..." for the first three issues, and how many more there were. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], root: unknown): string {
  const described = issues.flatMap((issue) => describeIssue(issue, root));
  const shown = described.slice(0, MAX_REPORTED_ISSUES).join('; ');
  const hidden = described.length - MAX_REPORTED_ISSUES;
  return hidden > 0 ? `${shown} (and ${hidden} more ${hidden === 1 ? 'problem' : 'problems'})` : shown;
}

const EXPECTED_TYPE: Partial<Record<string, string>> = {
  int: 'an integer',
  number: 'a number',
  string: 'a string',
  boolean: 'true or false',
  array: 'an array',
  object: 'an object',
};

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown field (misspelt? unknown fields are not allowed)`);
  }
  const found = valueAt(root, issue.path);
  const message =
    issue.code === 'invalid_type'
      ? found === undefined
        ? 'required field is missing'
        : `expected ${EXPECTED_TYPE[issue.expected] ?? issue.expected}`
      : issue.message;
  const shown = found === undefined ? '' : ` (found ${preview(found)})`;
  return [`${formatPath(issue.path) || 'top level'}: ${message}${shown}`];
}

function formatPath(path: readonly PropertyKey[]): string {
  return path.map((key, i) => (typeof key === 'number' ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`)).join('');
}

/** The value at `path` inside `root`, or undefined when there is none. */
export function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) {
    if (typeof value !== 'object' || value === null || !Object.hasOwn(value, key)) return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function preview(value: unknown): string {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
