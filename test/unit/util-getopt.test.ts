import { getopt, getoptMessage, type GetoptProblem } from '../../src/util/getopt.js';

function run(argv: string[], optstring: string): string[] {
  const seen: string[] = [];
  getopt(argv, optstring, {
    option: (letter, value) => seen.push(value === undefined ? letter : `${letter}=${value}`),
    problem: (letter, problem: GetoptProblem) => seen.push(`!${letter}:${problem}`),
  });
  return seen;
}

describe('getopt', () => {
  it.each([
    { argv: ['-F', '-f', 'x.conf'], seen: ['F', 'f=x.conf'] },
    { argv: ['-Ffx.conf'], seen: ['F', 'f=x.conf'] },
    { argv: ['operand', '-d', '3', 'other'], seen: ['d=3'] },
    { argv: ['-F', '--', '-c'], seen: ['F'] },
    { argv: ['-', '-c'], seen: ['c'] },
    { argv: ['-x', '-c'], seen: ['!x:unknown-option', 'c'] },
    { argv: ['-:'], seen: ['!::unknown-option'] },
    { argv: ['-c', '-f'], seen: ['c', '!f:missing-value'] },
    { argv: ['-S'], seen: ['S'] },
    { argv: ['-S3', '-S', '4'], seen: ['S=3', 'S'] },
  ])('$argv', ({ argv, seen }) => {
    expect(run(argv, 'Ff:d:cS::')).toEqual(seen);
  });

  it('words its diagnostics as GNU getopt does', () => {
    expect(getoptMessage('fence_xvm', 'x', 'unknown-option')).toBe(
      "fence_xvm: invalid option -- 'x'",
    );
    expect(getoptMessage('fence_xvm', 'o', 'missing-value')).toBe(
      "fence_xvm: option requires an argument -- 'o'",
    );
  });
});
