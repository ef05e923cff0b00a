/**
 * The browser entry (`src/browser.ts`) must reach no `node:` module: esbuild bundles it for
 * the browser platform (where a `node:` import cannot resolve) and the output and its import
 * graph are searched for any.
 */
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const builtins = /^(node:|ws$|fs$|os$|net$|tls$|dgram$|http$|https$|crypto$|path$|child_process$)/;

describe('browser entry', () => {
  it('bundles for the browser platform with no node: module and no ws', async () => {
    const result = await build({
      entryPoints: [`${root}src/browser.ts`],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    expect(result.errors).toEqual([]);
    const imports: string[] = [];
    for (const [file, input] of Object.entries(result.metafile.inputs)) {
      for (const imp of input.imports) if (builtins.test(imp.path) || imp.external) imports.push(`${file} -> ${imp.path}`);
    }
    expect(imports).toEqual([]);
    const inputs = Object.keys(result.metafile.inputs);
    // The Node-only modules of the endpoint are not on the path.
    for (const nodeOnly of ['src/transport/io/udp.ts', 'src/endpoint/node-platform.ts', 'src/relay/client/node-transport.ts', 'src/transport/crypto/node-provider.ts', 'src/transport/paths/relay-probe.ts', 'src/endpoint/x509.ts']) {
      expect(inputs).not.toContain(nodeOnly);
    }
    // The endpoint itself is (the test would pass vacuously on an empty entry otherwise).
    expect(inputs).toContain('src/endpoint/endpoint-base.ts');
    const text = result.outputFiles[0]!.text;
    expect(text.match(/["'`]node:[a-z_/]+["'`]/g) ?? []).toEqual([]);
    expect(text.match(/\brequire\(/g) ?? []).toEqual([]);
  });
});
