/**
 * POSIX/GNU getopt over argv, shared by fence_virtd and the agents: operands are skipped (GNU
 * permutes them away), `--` ends the options, letters cluster (`-du`), a value is attached
 * (`-ofoo`) or the next word, and `x::` takes an optional value that must be attached. Each
 * option or problem is reported in command-line order; what it means is the caller's business.
 */
export type GetoptProblem = 'unknown-option' | 'missing-value';

export interface GetoptHandlers {
  option(letter: string, value: string | undefined): void;
  problem(letter: string, problem: GetoptProblem): void;
}

export function getopt(argv: readonly string[], optstring: string, on: GetoptHandlers): void {
  for (let i = 0; i < argv.length; i += 1) {
    const word = argv[i]!;
    if (word === '--') return;
    if (!word.startsWith('-') || word === '-') continue;
    for (let j = 1; j < word.length; j += 1) {
      const letter = word[j]!;
      const at = letter === ':' ? -1 : optstring.indexOf(letter);
      if (at === -1) {
        on.problem(letter, 'unknown-option');
        continue;
      }
      const takes =
        optstring[at + 1] !== ':' ? 'no' : optstring[at + 2] === ':' ? 'optional' : 'required';
      if (takes === 'no') {
        on.option(letter, undefined);
        continue;
      }
      const rest = word.slice(j + 1);
      if (rest.length > 0 || takes === 'optional') {
        on.option(letter, rest.length > 0 ? rest : undefined);
      } else if (i + 1 < argv.length) {
        i += 1;
        on.option(letter, argv[i]);
      } else {
        on.problem(letter, 'missing-value');
      }
      break;
    }
  }
}

/** GNU getopt's own diagnostic for a problem, as printed on stderr. */
export function getoptMessage(program: string, letter: string, problem: GetoptProblem): string {
  return problem === 'unknown-option'
    ? `${program}: invalid option -- '${letter}'`
    : `${program}: option requires an argument -- '${letter}'`;
}
