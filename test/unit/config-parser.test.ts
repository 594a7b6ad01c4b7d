import { ConfigSyntaxError, parseConfig } from '../../src/config/parser.js';
import type { ConfigBlock, ConfigValue } from '../../src/config/types.js';

function syntaxError(text: string): ConfigSyntaxError {
  try {
    parseConfig(text, 'test.conf');
  } catch (error) {
    if (error instanceof ConfigSyntaxError) return error;
    throw error;
  }
  throw new Error('expected a syntax error');
}

describe('parseConfig grammar', () => {
  test('assignments, blocks and blocks carrying a value, in file order with lines', () => {
    const root = parseConfig('a = "1";\nblk {\n  k = "v";\n  inner = "x" { }\n}\n');
    expect(root.name).toBe('');
    expect(root.children.map((c) => [c.kind, c.name, c.line])).toEqual([
      ['value', 'a', 1],
      ['block', 'blk', 2],
    ]);
    const blk = root.children[1] as ConfigBlock;
    expect(blk.children[0]).toEqual({ kind: 'value', name: 'k', value: 'v', line: 3 });
    expect(blk.children[1]).toEqual({
      kind: 'block',
      name: 'inner',
      value: 'x',
      children: [],
      line: 4,
    });
  });

  test('empty blocks are allowed; tokens need no spaces', () => {
    const root = parseConfig('a{}b{c="d";}');
    expect(root.children.map((c) => c.name)).toEqual(['a', 'b']);
    expect(((root.children[1] as ConfigBlock).children[0] as ConfigValue).value).toBe('d');
  });

  test('comments only at token start; # inside identifiers and values is literal', () => {
    const root = parseConfig('# top\nnob#ackend = "x#y"; # trailing\n#k = "v";\n');
    expect(root.children).toEqual([{ kind: 'value', name: 'nob#ackend', value: 'x#y', line: 2 }]);
  });

  test('values may span lines and keep the newline; the next item has the right line', () => {
    const root = parseConfig('k = "line1\nline2";\nnext = "n";');
    expect((root.children[0] as ConfigValue).value).toBe('line1\nline2');
    expect(root.children[1]?.line).toBe(3);
  });

  test('characters other than space, tab, newline and punctuation are identifier letters', () => {
    const root = parseConfig('weird.key-1/x@y = "v";');
    expect(root.children[0]?.name).toBe('weird.key-1/x@y');
  });
});

describe('parseConfig errors name file, line and column', () => {
  test('missing semicolon', () => {
    const error = syntaxError('fence_virtd {\n\tlistener = "multicast"\n}\n');
    expect(error.message).toBe("test.conf:3:1: expected ';' after value, found '}'");
    expect([error.line, error.column]).toEqual([3, 1]);
  });

  test('empty file and comment-only file', () => {
    expect(syntaxError('').message).toMatch(/^test\.conf:1:1: empty configuration/);
    expect(syntaxError('# nothing\n\n').message).toMatch(/^test\.conf:3:1: empty configuration/);
  });

  test('empty quoted value is an error', () => {
    expect(syntaxError('a {\n  k = "";\n}').message).toMatch(/^test\.conf:2:7: empty quoted value/);
  });

  test('unterminated value points at its opening quote', () => {
    expect(syntaxError('k = "abc;\n').message).toBe('test.conf:1:5: unterminated quoted value');
  });

  test('unquoted value', () => {
    expect(syntaxError('k = v;').message).toBe(
      "test.conf:1:5: expected a quoted value after '=', found 'v'",
    );
  });

  test('unclosed block names the block and its line', () => {
    expect(syntaxError('\nouter {\n  k = "v";\n').message).toBe(
      "test.conf:4:1: unexpected end of file: block 'outer' opened on line 2 is not closed with '}'",
    );
  });

  test('stray closing brace', () => {
    expect(syntaxError('k = "v";\n}').message).toBe(
      "test.conf:2:1: unexpected '}' with no open block",
    );
  });

  test('identifier followed by identifier', () => {
    expect(syntaxError('a b { }').message).toBe(
      "test.conf:1:3: expected '=' or '{' after 'a', found 'b'",
    );
  });

  test('values are never echoed in errors (they may be passwords)', () => {
    expect(syntaxError('password "s3cret";').message).toBe(
      "test.conf:1:10: expected '=' or '{' after 'password', found a quoted value",
    );
  });

  test('a quoted value where a name belongs', () => {
    expect(syntaxError('"v";').message).toMatch(/^test\.conf:1:1: expected a key or block name/);
  });

  test('CR is not whitespace: CRLF files fail with a hint', () => {
    const error = syntaxError('fence_virtd {\r\n\tlistener = "multicast";\r\n}\r\n');
    expect(error.line).toBe(2);
    expect(error.message).toContain("after '\\r', found 'listener'");
    expect(error.message).toContain('CR is not whitespace');
  });

  test('the default file name is shown when none is given', () => {
    expect(() => parseConfig('x')).toThrow(/^<config>:1:2: /);
  });
});
