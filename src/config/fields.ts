/** Value types of fence_virt.conf keys: text in, typed value out, one message per problem. */
import { z } from 'zod';
import { parseHashName } from '../protocol/constants.js';

const INTEGER = /^[+-]?\d+$/;

export const integerText = z
  .string()
  .regex(INTEGER, { error: (i) => `'${String(i.input)}' is not an integer` })
  .transform(Number);

export const flagText = integerText.transform((n) => n !== 0);

export const portText = z
  .string()
  .regex(/^\d+$/, { error: (i) => `'${String(i.input)}' is not a port number` })
  .transform(Number)
  .refine((n) => n >= 1 && n <= 65535, {
    error: (i) => `port ${String(i.input)} is out of range (1-65535)`,
  });

export const hashText = z.string().transform((text, ctx) => {
  const code = parseHashName(text);
  if (code === undefined) {
    ctx.addIssue({ code: 'custom', message: `'${text}' is not one of none, sha1, sha256, sha512` });
    return z.NEVER;
  }
  return code;
});

export const familyText = z.string().transform((text, ctx) => {
  const family = text.toLowerCase();
  if (family !== 'ipv4' && family !== 'ipv6') {
    ctx.addIssue({ code: 'custom', message: `'${text}' is not a family; use ipv4 or ipv6` });
    return z.NEVER;
  }
  return family;
});

/** `serial`, `vmchannel`, or (as C does) an integer where non-zero means vmchannel. */
export const serialModeText = z.string().transform((text, ctx) => {
  const mode = text.toLowerCase();
  if (mode === 'serial' || mode === 'vmchannel') return mode;
  if (INTEGER.test(text)) return Number(text) !== 0 ? 'vmchannel' : 'serial';
  ctx.addIssue({ code: 'custom', message: `'${text}' is not a mode; use serial or vmchannel` });
  return z.NEVER;
});

/** A comma-separated list of plugin names, lower-cased, without repeats. */
export const nameList = z.string().transform((text, ctx) => {
  const names = text
    .split(',')
    .map((n) => n.trim().toLowerCase())
    .filter((n) => n.length > 0);
  if (names.length === 0) {
    ctx.addIssue({ code: 'custom', message: 'names no listener' });
    return z.NEVER;
  }
  return [...new Set(names)];
});

/** A whole number of milliseconds within bounds. */
export const msText = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'milliseconds, a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** 0/1, yes/no, true/false, on/off. */
export const boolText = z
  .enum(['0', '1', 'yes', 'no', 'true', 'false', 'on', 'off'])
  .transform((v) => ['1', 'yes', 'true', 'on'].includes(v));
