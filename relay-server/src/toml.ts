/**
 * A small TOML subset parser for the relay's config file (TOML v1.0.0, https://toml.io):
 *
 * - `key = value` with bare (`A-Za-z0-9_-`) or quoted keys, dotted keys (`a.b = 1`);
 * - `[table]` and `[a.b]` headers;
 * - values: basic strings `"…"` (escapes `\" \\ \b \t \n \f \r \uXXXX \UXXXXXXXX`), literal
 *   strings `'…'`, integers (decimal with `_`, `0x`/`0o`/`0b`), floats, booleans, arrays
 *   (which may span lines and end with a comma) and inline tables `{ a = 1 }`;
 * - `#` comments.
 *
 * Not supported (rejected with an error naming the line): multi-line strings, dates and
 * times, arrays of tables `[[…]]`. Redefining a key is an error, as in TOML.
 *
 * @module
 */

export type TomlValue = string | number | boolean | TomlValue[] | TomlTable;
export interface TomlTable {
  [key: string]: TomlValue;
}

/** A syntax error in a TOML document, with its 1-based line. */
export class TomlError extends Error {
  readonly line: number;

  constructor(message: string, line: number) {
    super(`TOML line ${line}: ${message}`);
    this.name = 'TomlError';
    this.line = line;
  }
}

const BARE_KEY = /[A-Za-z0-9_-]/;

/** Set an own property even for names like `__proto__` (assignment would change the prototype). */
function define(table: TomlTable, key: string, value: TomlValue): void {
  Object.defineProperty(table, key, { value, enumerable: true, writable: true, configurable: true });
}

class Parser {
  readonly #src: string;
  #pos = 0;
  #line = 1;

  constructor(src: string) {
    this.#src = src;
  }

  fail(message: string): never {
    throw new TomlError(message, this.#line);
  }

  peek(): string | undefined {
    return this.#src[this.#pos];
  }

  next(): string {
    const c = this.#src[this.#pos++];
    if (c === undefined) this.fail('unexpected end of input');
    if (c === '\n') this.#line++;
    return c;
  }

  /** Skip spaces and tabs (and, inside arrays, newlines and comments). */
  skipSpace(newlines = false): void {
    for (;;) {
      const c = this.peek();
      if (c === ' ' || c === '\t' || c === '\r') this.#pos++;
      else if (newlines && c === '\n') this.next();
      else if (newlines && c === '#') this.skipComment();
      else return;
    }
  }

  skipComment(): void {
    while (this.peek() !== undefined && this.peek() !== '\n') this.#pos++;
  }

  /** End of a line: optional comment, then newline or end of input. */
  endOfLine(): void {
    this.skipSpace();
    if (this.peek() === '#') this.skipComment();
    const c = this.peek();
    if (c === undefined) return;
    if (c !== '\n') this.fail(`unexpected ${JSON.stringify(c)} after value`);
    this.next();
  }

  parseDocument(): TomlTable {
    const root: TomlTable = {};
    let current = root;
    const defined = new Set<TomlTable>();
    for (;;) {
      this.skipSpace();
      const c = this.peek();
      if (c === undefined) return root;
      if (c === '\n') {
        this.next();
        continue;
      }
      if (c === '#') {
        this.skipComment();
        continue;
      }
      if (c === '[') {
        this.next();
        if (this.peek() === '[') this.fail('arrays of tables ([[…]]) are not supported');
        this.skipSpace();
        const path = this.parseKeyPath();
        this.skipSpace();
        if (this.next() !== ']') this.fail('expected ] after table name');
        current = this.tableAt(root, path);
        if (defined.has(current)) this.fail(`table [${path.join('.')}] defined twice`);
        defined.add(current);
        this.endOfLine();
        continue;
      }
      this.parseKeyValue(current);
      this.endOfLine();
    }
  }

  tableAt(root: TomlTable, path: string[]): TomlTable {
    let t = root;
    for (const k of path) {
      // Own properties only: a key named "constructor" or "__proto__" is just a key.
      const existing = Object.hasOwn(t, k) ? t[k] : undefined;
      if (existing === undefined) {
        const fresh: TomlTable = {};
        define(t, k, fresh);
        t = fresh;
      } else if (typeof existing === 'object' && !Array.isArray(existing)) {
        t = existing;
      } else {
        this.fail(`key ${k} is not a table`);
      }
    }
    return t;
  }

  parseKeyValue(table: TomlTable): void {
    const path = this.parseKeyPath();
    this.skipSpace();
    if (this.next() !== '=') this.fail('expected = after key');
    this.skipSpace();
    const value = this.parseValue();
    const last = path.pop()!;
    const target = this.tableAt(table, path);
    if (Object.hasOwn(target, last)) this.fail(`key ${[...path, last].join('.')} defined twice`);
    define(target, last, value);
  }

  parseKeyPath(): string[] {
    const parts = [this.parseKey()];
    for (;;) {
      this.skipSpace();
      if (this.peek() !== '.') return parts;
      this.next();
      this.skipSpace();
      parts.push(this.parseKey());
    }
  }

  parseKey(): string {
    const c = this.peek();
    if (c === '"') return this.parseBasicString();
    if (c === "'") return this.parseLiteralString();
    let key = '';
    while (this.peek() !== undefined && BARE_KEY.test(this.peek()!)) key += this.next();
    if (key === '') this.fail(`expected a key, got ${JSON.stringify(c ?? 'end of input')}`);
    return key;
  }

  parseValue(): TomlValue {
    const c = this.peek();
    if (c === '"') {
      if (this.#src.startsWith('"""', this.#pos)) this.fail('multi-line strings are not supported');
      return this.parseBasicString();
    }
    if (c === "'") {
      if (this.#src.startsWith("'''", this.#pos)) this.fail('multi-line strings are not supported');
      return this.parseLiteralString();
    }
    if (c === '[') return this.parseArray();
    if (c === '{') return this.parseInlineTable();
    let word = '';
    while (this.peek() !== undefined && /[A-Za-z0-9_+\-.:]/.test(this.peek()!)) word += this.next();
    if (word === 'true') return true;
    if (word === 'false') return false;
    if (word === '') this.fail(`expected a value, got ${JSON.stringify(c ?? 'end of input')}`);
    return this.parseNumber(word);
  }

  parseNumber(word: string): number {
    if (/^[+-]?(inf|nan)$/.test(word)) return word.includes('nan') ? NaN : word.startsWith('-') ? -Infinity : Infinity;
    const prefixed = /^(0x[0-9A-Fa-f_]+|0o[0-7_]+|0b[01_]+)$/.exec(word);
    if (prefixed) {
      const digits = word.slice(2).replace(/_/g, '');
      const radix = word[1] === 'x' ? 16 : word[1] === 'o' ? 8 : 2;
      if (digits === '' || /__|^_|_$/.test(word.slice(2))) this.fail(`invalid number ${word}`);
      return this.safe(parseInt(digits, radix), word);
    }
    if (/^[+-]?(0|[1-9](_?[0-9])*)$/.test(word)) return this.safe(Number(word.replace(/_/g, '')), word);
    if (/^[+-]?(0|[1-9](_?[0-9])*)(\.[0-9](_?[0-9])*)?([eE][+-]?[0-9](_?[0-9])*)?$/.test(word)) return Number(word.replace(/_/g, ''));
    if (/^\d{4}-\d{2}-\d{2}/.test(word) || /^\d{2}:\d{2}/.test(word)) this.fail('dates and times are not supported');
    return this.fail(`invalid value ${word}`);
  }

  safe(n: number, word: string): number {
    if (!Number.isSafeInteger(n)) this.fail(`integer ${word} is too large`);
    return n;
  }

  parseBasicString(): string {
    this.next(); // "
    let out = '';
    for (;;) {
      const c = this.next();
      if (c === '"') return out;
      if (c === '\n') this.fail('newline in a basic string');
      if (c !== '\\') {
        out += c;
        continue;
      }
      const e = this.next();
      switch (e) {
        case '"':
        case '\\':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 't':
          out += '\t';
          break;
        case 'n':
          out += '\n';
          break;
        case 'f':
          out += '\f';
          break;
        case 'r':
          out += '\r';
          break;
        case 'u':
        case 'U': {
          const n = e === 'u' ? 4 : 8;
          let hex = '';
          for (let i = 0; i < n; i++) hex += this.next();
          if (!/^[0-9A-Fa-f]+$/.test(hex)) this.fail(`invalid escape \\${e}${hex}`);
          const cp = parseInt(hex, 16);
          if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) this.fail(`invalid code point \\${e}${hex}`);
          out += String.fromCodePoint(cp);
          break;
        }
        default:
          this.fail(`invalid escape \\${e}`);
      }
    }
  }

  parseLiteralString(): string {
    this.next(); // '
    let out = '';
    for (;;) {
      const c = this.next();
      if (c === "'") return out;
      if (c === '\n') this.fail('newline in a literal string');
      out += c;
    }
  }

  parseArray(): TomlValue[] {
    this.next(); // [
    const out: TomlValue[] = [];
    for (;;) {
      this.skipSpace(true);
      if (this.peek() === ']') {
        this.next();
        return out;
      }
      out.push(this.parseValue());
      this.skipSpace(true);
      const c = this.next();
      if (c === ']') return out;
      if (c !== ',') this.fail('expected , or ] in array');
    }
  }

  parseInlineTable(): TomlTable {
    this.next(); // {
    const table: TomlTable = {};
    this.skipSpace();
    if (this.peek() === '}') {
      this.next();
      return table;
    }
    for (;;) {
      this.skipSpace();
      this.parseKeyValue(table);
      this.skipSpace();
      const c = this.next();
      if (c === '}') return table;
      if (c !== ',') this.fail('expected , or } in inline table');
    }
  }
}

/**
 * Parse a TOML document (the subset above) into plain objects.
 *
 * @throws {TomlError} on a syntax error or an unsupported construct
 */
export function parseToml(text: string): TomlTable {
  return new Parser(text.startsWith('\uFEFF') ? text.slice(1) : text).parseDocument();
}
