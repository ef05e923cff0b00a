// Child of test/service/registry-crash.test.ts: changes the device registry of a data dir in
// a loop, one change per write, and says what each write will contain before making it, so
// the parent can kill it (-9) at any moment and check the file holds exactly the old or the
// new state. Imports the built registry (dist/) for a fast start.
//
//   node registry-writer.mjs <dataDir> <seed>
//   stdout: "open <generation>", then per change "next <generation> <ids,...>" and "done <generation>"
import { createHash } from 'node:crypto';
import { DeviceRegistry } from '../../dist/src/service/device-registry.js';
import { PublicKey, SecretKey } from '../../dist/src/identity/keys.js';

const [dataDir, seed] = process.argv.slice(2);
const registry = await DeviceRegistry.open(dataDir);
if (registry.problems.length > 0) {
  process.stdout.write(`problem ${JSON.stringify(registry.problems)}\n`);
  process.exit(3);
}
process.stdout.write(`open ${registry.generation}\n`);
const info = (i) => ({ deviceId: createHash('sha256').update(`${seed}/id/${i}`).digest('hex').replace(/^(.{8})(.{4}).(.{3}).(.{3})(.{12}).*$/, '$1-$2-4$3-a$4-$5'), name: `device ${i}`, os: 'linux', osVersion: '6', kind: 'desktop', appVersion: '0.1.0' });
for (let step = 0; ; step++) {
  const gen = registry.generation + 1;
  const ids = registry.devices().map((d) => d.endpointId);
  const pick = createHash('sha256').update(`${seed}/${gen}`).digest();
  let change;
  if (ids.length < 2 || (ids.length < 8 && pick[0] % 2 === 0)) {
    const key = SecretKey.fromBytes(pick);
    const id = key.public();
    change = () => registry.pair({ id, info: info(gen), linkKey: pick });
    ids.push(id.toString());
  } else {
    const victim = ids[pick[1] % ids.length];
    change = () => registry.unpair(PublicKey.fromString(victim));
    ids.splice(ids.indexOf(victim), 1);
  }
  process.stdout.write(`next ${gen} ${[...ids].sort().join(',')}\n`);
  change();
  await registry.flush();
  if (registry.generation !== gen) {
    process.stdout.write(`problem generation ${registry.generation} != ${gen}\n`);
    process.exit(3);
  }
  process.stdout.write(`done ${gen}\n`);
}
