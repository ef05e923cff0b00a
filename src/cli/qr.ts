/**
 * A small QR code encoder (ISO/IEC 18004, Model 2) for the pairing payload that
 * `sdnet pair invite` shows on a terminal: byte mode, error correction level L, versions
 * 1–20 (up to 858 bytes), the mask chosen by the standard's penalty rules. Rendered with
 * Unicode half blocks and explicit ANSI colours (dark on light, whatever the terminal's
 * theme), two modules per character row, with a 4-module quiet zone.
 *
 * @module
 */

/** Level L block structure per version 1–20: [EC codewords per block, blocks of group 1, data codewords each, blocks of group 2, data codewords each]. */
const L_BLOCKS: readonly (readonly [number, number, number, number, number])[] = [
  [7, 1, 19, 0, 0],
  [10, 1, 34, 0, 0],
  [15, 1, 55, 0, 0],
  [20, 1, 80, 0, 0],
  [26, 1, 108, 0, 0],
  [18, 2, 68, 0, 0],
  [20, 2, 78, 0, 0],
  [24, 2, 97, 0, 0],
  [30, 2, 116, 0, 0],
  [18, 2, 68, 2, 69],
  [20, 4, 81, 0, 0],
  [24, 2, 92, 2, 93],
  [26, 4, 107, 0, 0],
  [30, 3, 115, 1, 116],
  [22, 5, 87, 1, 88],
  [24, 5, 98, 1, 99],
  [28, 1, 107, 5, 108],
  [30, 5, 120, 1, 121],
  [28, 3, 113, 4, 114],
  [28, 3, 107, 5, 108],
];

export const QR_MAX_VERSION = L_BLOCKS.length;

// ------------------------------------------------------------------ GF(256), polynomial 0x11d

const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;
}
const gfMul = (a: number, b: number): number => (a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!);

/** The generator polynomial of degree n: ∏ (x − α^i), i < n; coefficients high to low, leading 1 dropped. */
function rsGenerator(n: number): Uint8Array {
  let poly = [1];
  for (let i = 0; i < n; i++) {
    const next = new Array<number>(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j]! ^= poly[j]!;
      next[j + 1]! ^= gfMul(poly[j]!, EXP[i]!);
    }
    poly = next;
  }
  return Uint8Array.from(poly.slice(1));
}

/** The n EC codewords of `data` (remainder of data·x^n by the generator). */
export function reedSolomon(data: Uint8Array, n: number): Uint8Array {
  const gen = rsGenerator(n);
  const rem = new Uint8Array(n);
  for (const d of data) {
    const factor = d ^ rem[0]!;
    rem.copyWithin(0, 1);
    rem[n - 1] = 0;
    for (let i = 0; i < n; i++) rem[i]! ^= gfMul(gen[i]!, factor);
  }
  return rem;
}

// ------------------------------------------------------------------ layout

/** Side of a version's symbol in modules. */
export const qrSize = (version: number): number => 17 + 4 * version;

/** Centres of the alignment patterns along one axis (empty for version 1). */
export function alignmentPositions(version: number): number[] {
  if (version === 1) return [];
  const count = Math.floor(version / 7) + 2;
  const size = qrSize(version);
  const step = Math.ceil((size - 13) / (count - 1) / 2) * 2;
  const out = [6];
  for (let i = count - 1; i >= 1; i--) out.splice(1, 0, size - 7 - (count - 1 - i) * step);
  return out;
}

/** Modules that carry codewords (the symbol minus every function pattern and format/version info). */
export function dataModules(version: number): number {
  const size = qrSize(version);
  let n = size * size;
  n -= 3 * 64; // finders with separators
  n -= 2 * (size - 16); // timing patterns between the finders
  n -= 31; // format information (2 × 15) and the dark module
  const a = alignmentPositions(version).length;
  if (a > 0) {
    n -= 25 * (a * a - 3); // alignment patterns, minus the three under the finders
    n += 10 * (a - 2); // ... which overlap the timing patterns by 5 modules each
  }
  if (version >= 7) n -= 36; // version information
  return n;
}

function bch(value: number, poly: number, bits: number): number {
  const degree = 31 - Math.clz32(poly);
  let v = value << degree;
  while (31 - Math.clz32(v) >= degree) v ^= poly << (31 - Math.clz32(v) - degree);
  return ((value << degree) | v) & ((1 << bits) - 1);
}

const MASKS: readonly ((r: number, c: number) => boolean)[] = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (_r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

class Matrix {
  readonly size: number;
  readonly dark: Uint8Array;
  readonly reserved: Uint8Array;
  constructor(size: number) {
    this.size = size;
    this.dark = new Uint8Array(size * size);
    this.reserved = new Uint8Array(size * size);
  }
  set(r: number, c: number, dark: boolean): void {
    this.dark[r * this.size + c] = dark ? 1 : 0;
    this.reserved[r * this.size + c] = 1;
  }
  get(r: number, c: number): boolean {
    return this.dark[r * this.size + c] === 1;
  }
}

function placeFunctionPatterns(m: Matrix, version: number): void {
  const size = m.size;
  const finder = (r0: number, c0: number): void => {
    for (let r = -1; r <= 7; r++) {
      for (let c = -1; c <= 7; c++) {
        const rr = r0 + r;
        const cc = c0 + c;
        if (rr < 0 || cc < 0 || rr >= size || cc >= size) continue;
        const inner = r >= 0 && r <= 6 && c >= 0 && c <= 6;
        const dark = inner && (r === 0 || r === 6 || c === 0 || c === 6 || (r >= 2 && r <= 4 && c >= 2 && c <= 4));
        m.set(rr, cc, dark);
      }
    }
  };
  finder(0, 0);
  finder(0, size - 7);
  finder(size - 7, 0);
  for (let i = 8; i < size - 8; i++) {
    m.set(6, i, i % 2 === 0);
    m.set(i, 6, i % 2 === 0);
  }
  const pos = alignmentPositions(version);
  for (const r of pos) {
    for (const c of pos) {
      // Not over the finders.
      if ((r === 6 && c === 6) || (r === 6 && c === size - 7) || (r === size - 7 && c === 6)) continue;
      for (let dr = -2; dr <= 2; dr++) for (let dc = -2; dc <= 2; dc++) m.set(r + dr, c + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
    }
  }
  // Reserve the format areas (written after masking) and the dark module.
  for (let i = 0; i < 9; i++) {
    if (!m.reserved[8 * size + i]) m.set(8, i, false);
    if (!m.reserved[i * size + 8]) m.set(i, 8, false);
  }
  for (let i = 0; i < 8; i++) {
    m.set(8, size - 1 - i, false);
    m.set(size - 1 - i, 8, false);
  }
  m.set(size - 8, 8, true);
  if (version >= 7) {
    const bits = bch(version, 0x1f25, 18);
    for (let i = 0; i < 18; i++) {
      const dark = ((bits >> i) & 1) === 1;
      const a = Math.floor(i / 3);
      const b = (i % 3) + size - 11;
      m.set(a, b, dark);
      m.set(b, a, dark);
    }
  }
}

function placeFormat(m: Matrix, mask: number): void {
  const size = m.size;
  // Level L is 01, then the mask: 5 bits, BCH(15,5), XOR the fixed pattern (ISO 18004 §7.9).
  const bits = bch((0b01 << 3) | mask, 0x537, 15) ^ 0x5412;
  const bit = (i: number): boolean => ((bits >> i) & 1) === 1;
  // First copy, around the top-left finder (bit 0 nearest the top).
  for (let i = 0; i <= 5; i++) m.set(i, 8, bit(i));
  m.set(7, 8, bit(6));
  m.set(8, 8, bit(7));
  m.set(8, 7, bit(8));
  for (let i = 9; i < 15; i++) m.set(8, 14 - i, bit(i));
  // Second copy, split between the other two finders.
  for (let i = 0; i < 8; i++) m.set(8, size - 1 - i, bit(i));
  for (let i = 8; i < 15; i++) m.set(size - 15 + i, 8, bit(i));
  m.set(size - 8, 8, true);
}

function placeData(m: Matrix, codewords: Uint8Array): void {
  const size = m.size;
  let bitIndex = 0;
  const total = codewords.length * 8;
  let upward = true;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5; // skip the vertical timing column
    for (let k = 0; k < size; k++) {
      const r = upward ? size - 1 - k : k;
      for (let dc = 0; dc < 2; dc++) {
        const c = right - dc;
        if (m.reserved[r * size + c]) continue;
        const dark = bitIndex < total && ((codewords[bitIndex >> 3]! >> (7 - (bitIndex & 7))) & 1) === 1;
        m.dark[r * size + c] = dark ? 1 : 0;
        bitIndex++;
      }
    }
    upward = !upward;
  }
}

function applyMask(m: Matrix, mask: number): void {
  const f = MASKS[mask]!;
  for (let r = 0; r < m.size; r++) for (let c = 0; c < m.size; c++) if (!m.reserved[r * m.size + c] && f(r, c)) m.dark[r * m.size + c]! ^= 1;
}

/** The standard's penalty score of a masked symbol (rules N1–N4). */
function penalty(m: Matrix): number {
  const size = m.size;
  let score = 0;
  const line = (get: (i: number, j: number) => boolean): void => {
    for (let i = 0; i < size; i++) {
      let run = 1;
      for (let j = 1; j <= size; j++) {
        if (j < size && get(i, j) === get(i, j - 1)) run++;
        else {
          if (run >= 5) score += 3 + (run - 5);
          run = 1;
        }
      }
      // Finder-like 1:1:3:1:1 with 4 light modules on one side.
      for (let j = 0; j + 10 < size; j++) {
        const p = [true, false, true, true, true, false, true];
        const matchAt = (o: number): boolean => p.every((v, k) => get(i, o + k) === v);
        const light = (o: number): boolean => [0, 1, 2, 3].every((k) => !get(i, o + k));
        if ((matchAt(j) && light(j + 7)) || (light(j) && matchAt(j + 4))) score += 40;
      }
    }
  };
  line((i, j) => m.get(i, j));
  line((i, j) => m.get(j, i));
  for (let r = 0; r + 1 < size; r++) {
    for (let c = 0; c + 1 < size; c++) {
      const d = m.get(r, c);
      if (m.get(r, c + 1) === d && m.get(r + 1, c) === d && m.get(r + 1, c + 1) === d) score += 3;
    }
  }
  let darkCount = 0;
  for (const v of m.dark) darkCount += v;
  const percent = (darkCount * 100) / (size * size);
  score += Math.floor(Math.abs(percent - 50) / 5) * 10;
  return score;
}

/** The codewords of `data` in byte mode at `version`, blocks interleaved with their EC codewords. */
function codewordsFor(data: Uint8Array, version: number): Uint8Array {
  const [ec, g1, d1, g2, d2] = L_BLOCKS[version - 1]!;
  const capacity = g1 * d1 + g2 * d2;
  const bits: number[] = [];
  const put = (value: number, n: number): void => {
    for (let i = n - 1; i >= 0; i--) bits.push((value >> i) & 1);
  };
  put(0b0100, 4);
  put(data.length, version <= 9 ? 8 : 16);
  for (const b of data) put(b, 8);
  put(0, Math.min(4, capacity * 8 - bits.length));
  while (bits.length % 8 !== 0) bits.push(0);
  const bytes: number[] = [];
  for (let i = 0; i < bits.length; i += 8) bytes.push(bits.slice(i, i + 8).reduce((a, b) => (a << 1) | b, 0));
  for (let pad = 0xec; bytes.length < capacity; pad ^= 0xec ^ 0x11) bytes.push(pad);
  const blocks: Uint8Array[] = [];
  let offset = 0;
  for (let i = 0; i < g1 + g2; i++) {
    const len = i < g1 ? d1 : d2;
    blocks.push(Uint8Array.from(bytes.slice(offset, offset + len)));
    offset += len;
  }
  const ecBlocks = blocks.map((b) => reedSolomon(b, ec));
  const out: number[] = [];
  for (let i = 0; i < Math.max(d1, d2); i++) for (const b of blocks) if (i < b.length) out.push(b[i]!);
  for (let i = 0; i < ec; i++) for (const b of ecBlocks) out.push(b[i]!);
  return Uint8Array.from(out);
}

/** A QR symbol: `modules[r][c]` is true for dark. */
export interface QrSymbol {
  readonly version: number;
  readonly mask: number;
  readonly size: number;
  isDark(r: number, c: number): boolean;
}

/**
 * Encode `text` (UTF-8, byte mode, level L) in the smallest version that holds it.
 *
 * @throws {RangeError} when it does not fit version 20 (858 bytes)
 */
export function encodeQr(text: string, options: { mask?: number } = {}): QrSymbol {
  const data = new TextEncoder().encode(text);
  let version = 0;
  for (let v = 1; v <= QR_MAX_VERSION; v++) {
    const [, g1, d1, g2, d2] = L_BLOCKS[v - 1]!;
    const header = 4 + (v <= 9 ? 8 : 16);
    if (header + data.length * 8 <= (g1 * d1 + g2 * d2) * 8) {
      version = v;
      break;
    }
  }
  if (version === 0) throw new RangeError(`${data.length} bytes do not fit a version-${QR_MAX_VERSION} QR code`);
  const codewords = codewordsFor(data, version);
  const build = (mask: number): Matrix => {
    const m = new Matrix(qrSize(version));
    placeFunctionPatterns(m, version);
    placeData(m, codewords);
    applyMask(m, mask);
    placeFormat(m, mask);
    return m;
  };
  let best: { m: Matrix; mask: number } | undefined;
  if (options.mask !== undefined) best = { m: build(options.mask), mask: options.mask };
  else {
    let bestScore = Infinity;
    for (let mask = 0; mask < 8; mask++) {
      const m = build(mask);
      const s = penalty(m);
      if (s < bestScore) {
        bestScore = s;
        best = { m, mask };
      }
    }
  }
  const { m, mask } = best!;
  return { version, mask, size: m.size, isDark: (r, c) => m.get(r, c) };
}

/** The symbol with a quiet zone as rows of booleans (true: dark). */
export function qrRows(symbol: QrSymbol, quiet = 4): boolean[][] {
  const n = symbol.size + 2 * quiet;
  const rows: boolean[][] = [];
  for (let r = 0; r < n; r++) {
    const row: boolean[] = [];
    for (let c = 0; c < n; c++) {
      const rr = r - quiet;
      const cc = c - quiet;
      row.push(rr >= 0 && cc >= 0 && rr < symbol.size && cc < symbol.size && symbol.isDark(rr, cc));
    }
    rows.push(row);
  }
  return rows;
}

/** `text` as a QR code for a terminal: half blocks, black on white via ANSI colours. */
export function renderQr(text: string): string {
  const rows = qrRows(encodeQr(text));
  const lines: string[] = [];
  for (let r = 0; r < rows.length; r += 2) {
    let line = '';
    for (let c = 0; c < rows[r]!.length; c++) {
      const top = rows[r]![c]!;
      const bottom = rows[r + 1]?.[c] ?? false;
      // ▀ in the top module's colour over the bottom module's colour.
      line += `\x1b[${top ? 30 : 97};${bottom ? 40 : 107}m▀`;
    }
    lines.push(`${line}\x1b[0m`);
  }
  return lines.join('\n');
}
