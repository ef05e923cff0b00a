/**
 * Every type a public signature of the package names is exported, so a user can name it too
 * (issue 11 item 9: `Endpoint.relays()` returned `RelayInfo[]`, but nobody could import
 * `RelayInfo`). Walks the exports of `sdnet` and `sdnet/relay-server` with the TypeScript
 * checker: classes' public members, interfaces' members, aliases, functions' parameters and
 * return types (declared or inferred), and fails on any class, interface, alias or enum of ours
 * that is reached but exported by neither entry. Members marked `@internal` are skipped.
 */
import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = fileURLToPath(new URL('../..', import.meta.url));
const entries = [`${root}src/index.ts`, `${root}relay-server/src/index.ts`];

function unexportedTypes(): string[] {
  const program = ts.createProgram(entries, {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2023,
    allowImportingTsExtensions: true,
    strict: true,
    noEmit: true,
    types: ['node'],
  });
  const checker = program.getTypeChecker();
  const resolve = (s: ts.Symbol): ts.Symbol => (s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s);
  const exported = new Set<ts.Symbol>();
  for (const entry of entries) {
    const mod = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
    for (const s of checker.getExportsOfModule(mod)) exported.add(resolve(s));
  }
  const ours = (d: ts.Declaration): boolean => {
    const f = d.getSourceFile().fileName;
    return f.startsWith(root) && !f.includes('/node_modules/');
  };
  const typeLike = ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias | ts.SymbolFlags.Class | ts.SymbolFlags.Enum;
  const seen = new Set<ts.Symbol>();
  const missing = new Set<string>();

  const hidden = (m: ts.Node): boolean =>
    (ts.getCombinedModifierFlags(m as ts.Declaration) & (ts.ModifierFlags.Private | ts.ModifierFlags.Protected)) !== 0 ||
    ((m as ts.NamedDeclaration).name !== undefined && ts.isPrivateIdentifier((m as ts.NamedDeclaration).name!)) ||
    ts.getJSDocTags(m).some((t) => t.tagName.text === 'internal') ||
    /@internal\b/.test(m.getFullText().slice(0, m.getLeadingTriviaWidth()));

  const visitSymbol = (sym: ts.Symbol | undefined, from: string): void => {
    if (!sym || seen.has(sym)) return;
    seen.add(sym);
    const decls = sym.declarations ?? [];
    if (!decls.some(ours)) return;
    if (sym.flags & typeLike && !exported.has(sym)) {
      const file = decls[0]!.getSourceFile().fileName.slice(root.length);
      missing.add(`${sym.name} (${file}), reached from ${from}`);
    }
    for (const d of decls) visitDeclaration(d, sym.name);
  };
  const visitType = (t: ts.Type, from: string, depth = 0): void => {
    if (depth > 4) return;
    visitSymbol(t.aliasSymbol ?? t.getSymbol(), from);
    for (const u of t.isUnionOrIntersection() ? t.types : []) visitType(u, from, depth + 1);
    for (const a of (t.flags & ts.TypeFlags.Object ? checker.getTypeArguments(t as ts.TypeReference) : undefined) ?? []) visitType(a, from, depth + 1);
  };
  const visitTypeNode = (node: ts.Node | undefined, from: string): void => {
    if (!node) return;
    let name: ts.Node | undefined;
    if (ts.isTypeReferenceNode(node)) name = node.typeName;
    else if (ts.isExpressionWithTypeArguments(node)) name = node.expression;
    else if (ts.isTypeQueryNode(node)) name = node.exprName;
    if (name) {
      const s = checker.getSymbolAtLocation(name);
      if (s) visitSymbol(resolve(s), from);
    }
    ts.forEachChild(node, (c) => visitTypeNode(c, from));
  };
  const visitMember = (m: ts.Node, from: string): void => {
    const fn = m as ts.SignatureDeclarationBase;
    fn.typeParameters?.forEach((p) => visitTypeNode(p.constraint, from));
    fn.parameters?.forEach((p) => visitTypeNode(p.type, from));
    const declared = (m as { type?: ts.TypeNode }).type;
    if (declared) return visitTypeNode(declared, from);
    if (ts.isMethodDeclaration(m) || ts.isFunctionDeclaration(m) || ts.isGetAccessorDeclaration(m)) {
      const sig = checker.getSignatureFromDeclaration(m);
      if (sig) visitType(checker.getReturnTypeOfSignature(sig), `${from} (inferred)`);
    } else if (ts.isPropertyDeclaration(m) || ts.isVariableDeclaration(m)) {
      visitType(checker.getTypeAtLocation(m), `${from} (inferred)`);
    }
  };
  const visitDeclaration = (d: ts.Declaration, from: string): void => {
    if (ts.isClassDeclaration(d) || ts.isInterfaceDeclaration(d)) {
      d.heritageClauses?.forEach((h) => h.types.forEach((t) => visitTypeNode(t, from)));
      for (const m of d.members as ts.NodeArray<ts.Node>) {
        if (hidden(m)) continue;
        const name = (m as ts.NamedDeclaration).name?.getText() ?? 'constructor';
        visitMember(m, `${from}.${name}`);
      }
    } else if (ts.isTypeAliasDeclaration(d)) {
      visitTypeNode(d.type, from);
    } else if (ts.isFunctionDeclaration(d) || ts.isVariableDeclaration(d)) {
      visitMember(d, from);
    }
  };

  for (const s of exported) visitSymbol(s, s.name);
  return [...missing].sort();
}

describe('public API surface', () => {
  it('exports every type that a public signature names', () => {
    expect(unexportedTypes()).toEqual([]);
  }, 60_000);
});
