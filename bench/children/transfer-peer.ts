/**
 * Child of `bench/transfer.ts`: one device with the transfer module.
 *
 *   node transfer-peer.ts recv <dataDir> <port> <downloads>
 *       runs until SIGTERM; prints {"ready":true}, then {"stage","bytes"} for each
 *       transfer event (progress at ≤ 10 Hz); on SIGTERM {"result":true,"maxRssMiB"}
 *   node transfer-peer.ts send <dataDir> <port> <file> <device>
 *       sends the file, prints {"result":true,"ms","bytes","maxRssMiB"} once it is verified
 */
import { Core } from '../../src/service/index.ts';
import { transferModule } from '../../src/protocols/transfer/index.ts';
import { emit, finish, runMain } from './common.ts';

const maxRssMiB = (): number => Math.round(process.resourceUsage().maxRSS / 1024);

runMain(async () => {
  const [role, dataDir, port, arg, device] = process.argv.slice(2);
  if (role === 'recv') {
    const core = await Core.init({ dataDir: dataDir!, bind: [`127.0.0.1:${port}`], downloadsDir: arg!, modules: { transfer: transferModule() } });
    core.networking.on('transfer-progress', (p) => emit({ stage: p.stage, bytes: p.bytesDone ?? 0 }));
    emit({ ready: true });
    await new Promise<void>((r) => process.once('SIGTERM', () => r()));
    const rss = maxRssMiB();
    await core.shutdown();
    finish({ maxRssMiB: rss });
  } else if (role === 'send') {
    const core = await Core.init({ dataDir: dataDir!, bind: [`127.0.0.1:${port}`], modules: { transfer: transferModule() } });
    emit({ ready: true });
    const t0 = performance.now();
    const r = await core.shareWithDevice(device!, [arg!], { timeoutMs: 60 * 60_000 });
    const ms = performance.now() - t0;
    const rss = maxRssMiB();
    await core.shutdown();
    finish({ ms: Math.round(ms), bytes: r.bytes, maxRssMiB: rss });
  } else throw new Error(`unknown role ${role}`);
});
