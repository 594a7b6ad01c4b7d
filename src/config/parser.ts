/**
 * Parser for the fence_virt.conf grammar (docs/protocol.md §15.1, §15.2).
 *
 * The tree keeps items in FILE order; lookups (lookup.ts) and the dump (dump.ts) apply the
 * C suite's reversed order themselves.
 */
import type { ConfigBlock, ConfigNode } from './tree.js';

/** A syntax error whose message names the file, the line and the column. */
export class ConfigSyntaxError extends Error {
  constructor(
    readonly fileName: string,
    readonly line: number,
    readonly column: number,
    readonly reason: string,
  ) {
    super(`${fileName}:${line}:${column}: ${reason}`);
    this.name = 'ConfigSyntaxError';
  }
}

type TokenKind = 'id' | 'value' | '{' | '}' | ';' | '=' | 'eof';

interface Token {
  kind: TokenKind;
  text: string;
  line: number;
  column: number;
}

/** Characters that end an identifier. CR is deliberately absent: C treats it as a letter. */
const NOT_IDENTIFIER = new Set([' ', '\t', '\n', '{', '}', ';', '=', '"']);
const WHITESPACE = new Set([' ', '\t', '\n']);
const PUNCTUATION = new Set(['{', '}', ';', '=']);

class Lexer {
  private pos = 0;
  private line = 1;
  private column = 1;

  constructor(
    private readonly text: string,
    private readonly fileName: string,
  ) {}

  next(): Token {
    this.skipBlanksAndComments();
    const line = this.line;
    const column = this.column;
    if (this.pos >= this.text.length) return { kind: 'eof', text: '', line, column };
    const ch = this.text[this.pos] as string;
    if (PUNCTUATION.has(ch)) {
      this.advance();
      return { kind: ch as TokenKind, text: ch, line, column };
    }
    if (ch === '"') return this.quoted(line, column);
    let end = this.pos;
    while (end < this.text.length && !NOT_IDENTIFIER.has(this.text[end] as string)) end++;
    const text = this.text.slice(this.pos, end);
    while (this.pos < end) this.advance();
    return { kind: 'id', text, line, column };
  }

  private skipBlanksAndComments(): void {
    while (this.pos < this.text.length) {
      const ch = this.text[this.pos] as string;
      if (WHITESPACE.has(ch)) {
        this.advance();
      } else if (ch === '#') {
        while (this.pos < this.text.length && this.text[this.pos] !== '\n') this.advance();
      } else {
        return;
      }
    }
  }

  private quoted(line: number, column: number): Token {
    this.advance();
    const start = this.pos;
    while (this.pos < this.text.length && this.text[this.pos] !== '"') this.advance();
    if (this.pos >= this.text.length) {
      throw new ConfigSyntaxError(this.fileName, line, column, 'unterminated quoted value');
    }
    const text = this.text.slice(start, this.pos);
    this.advance();
    if (text.length === 0) {
      throw new ConfigSyntaxError(
        this.fileName,
        line,
        column,
        'empty quoted value "" is not allowed (remove the key instead)',
      );
    }
    return { kind: 'value', text, line, column };
  }

  private advance(): void {
    if (this.text[this.pos] === '\n') {
      this.line++;
      this.column = 1;
    } else {
      this.column++;
    }
    this.pos++;
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case 'eof':
      return 'end of file';
    case 'value':
      return 'a quoted value'; // never echo it: it may be a password
    case 'id':
      return `'${token.text.replace(/\r/g, '\\r')}'`;
    default:
      return `'${token.kind}'`;
  }
}

function crHint(token: Token): string {
  return token.text.includes('\r')
    ? ' (the file has CR characters, e.g. Windows line endings; CR is not whitespace here)'
    : '';
}

class Parser {
  private token: Token;

  constructor(
    private readonly lexer: Lexer,
    private readonly fileName: string,
  ) {
    this.token = lexer.next();
  }

  parseFile(): ConfigBlock {
    const root: ConfigBlock = { kind: 'block', name: '', value: undefined, children: [], line: 0 };
    root.children = this.items(undefined);
    if (root.children.length === 0) {
      this.fail(this.token, 'empty configuration: expected at least one key or block');
    }
    return root;
  }

  /** Items until '}' (inside `open`) or end of file (top level). */
  private items(open: ConfigBlock | undefined): ConfigNode[] {
    const items: ConfigNode[] = [];
    for (;;) {
      const token = this.token;
      if (token.kind === 'eof') {
        if (open) {
          this.fail(
            token,
            `unexpected end of file: block '${open.name}' opened on line ${open.line} is not closed with '}'`,
          );
        }
        return items;
      }
      if (token.kind === '}') {
        if (!open) this.fail(token, "unexpected '}' with no open block");
        this.advance();
        return items;
      }
      if (token.kind !== 'id') {
        this.fail(token, `expected a key or block name, found ${describe(token)}`);
      }
      items.push(this.item(token));
    }
  }

  private item(name: Token): ConfigNode {
    const after = this.advance();
    if (after.kind === '{') {
      this.advance();
      return this.block(name, undefined);
    }
    if (after.kind !== '=') {
      this.fail(
        after,
        `expected '=' or '{' after '${name.text.replace(/\r/g, '\\r')}', found ${describe(after)}${crHint(name)}${crHint(after)}`,
      );
    }
    const value = this.advance();
    if (value.kind !== 'value') {
      this.fail(
        value,
        `expected a quoted value after '=', found ${describe(value)}${crHint(value)}`,
      );
    }
    const end = this.advance();
    if (end.kind === ';') {
      this.advance();
      return { kind: 'value', name: name.text, value: value.text, line: name.line };
    }
    if (end.kind === '{') {
      this.advance();
      return this.block(name, value.text);
    }
    this.fail(end, `expected ';' after value, found ${describe(end)}${crHint(end)}`);
  }

  private block(name: Token, value: string | undefined): ConfigBlock {
    const block: ConfigBlock = {
      kind: 'block',
      name: name.text,
      value,
      children: [],
      line: name.line,
    };
    block.children = this.items(block);
    return block;
  }

  private advance(): Token {
    this.token = this.lexer.next();
    return this.token;
  }

  private fail(token: Token, reason: string): never {
    throw new ConfigSyntaxError(this.fileName, token.line, token.column, reason);
  }
}

/** Parses fence_virt.conf text into a root block named ''. Throws ConfigSyntaxError. */
export function parseConfig(text: string, fileName = '<config>'): ConfigBlock {
  return new Parser(new Lexer(text, fileName), fileName).parseFile();
}
