/**
 * `sdnet keygen`, `sdnet id` and `sdnet ticket encode|decode`.
 *
 * @module
 */
import { parseCommandArgs } from './help.ts';
import { resolve } from 'node:path';
import { EndpointAddr, EndpointTicket, PublicKey, SecretKey, defaultKeyPath, loadSecretKey, saveSecretKey, tlsServerName } from '../identity/index.ts';
import type { CliIo } from './io.ts';
import { UsageError } from './io.ts';

export async function keygen(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('keygen', { args, options: { out: { type: 'string', short: 'o' }, force: { type: 'boolean' }, json: { type: 'boolean' } }, allowPositionals: false });
  const path = resolve(values.out ?? defaultKeyPath(io.env));
  const key = SecretKey.generate();
  await saveSecretKey(path, key, { overwrite: values.force === true });
  if (values.json) {
    io.stdout(`${JSON.stringify({ id: key.public().toString(), path })}\n`);
    return 0;
  }
  io.stderr(`wrote secret key to ${path} (mode 0600)\n`);
  io.stdout(`${key.public().toString()}\n`);
  return 0;
}

export async function id(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCommandArgs('id', { args, options: { key: { type: 'string', short: 'k' }, json: { type: 'boolean' } }, allowPositionals: false });
  const key = await loadSecretKey(resolve(values.key ?? defaultKeyPath(io.env)));
  const pub = key.public();
  if (values.json) {
    io.stdout(`${JSON.stringify({ id: pub.toString(), short: pub.fmtShort(), z32: pub.toZ32(), tlsServerName: tlsServerName(pub) })}\n`);
  } else {
    io.stdout(`${pub.toString()}\n`);
  }
  return 0;
}

export async function ticket(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === 'decode') {
    const { positionals } = parseCommandArgs('ticket decode', { args: rest, options: {}, allowPositionals: true });
    if (positionals.length !== 1) throw new UsageError('usage: sdnet ticket decode <ticket>');
    const t = EndpointTicket.parse(positionals[0]!.trim());
    io.stdout(`${JSON.stringify(t.addr.toJSON())}\n`);
    return 0;
  }
  if (sub === 'encode') {
    const { values } = parseCommandArgs('ticket encode', {
      args: rest,
      options: { id: { type: 'string' }, relay: { type: 'string', multiple: true }, addr: { type: 'string', multiple: true } },
      allowPositionals: false,
    });
    if (values.id === undefined) throw new UsageError('usage: sdnet ticket encode --id HEX [--relay URL]... [--addr IP:PORT]...');
    const addr = EndpointAddr.from({ id: PublicKey.fromString(values.id), relayUrls: values.relay ?? [], directAddresses: values.addr ?? [] });
    io.stdout(`${new EndpointTicket(addr).toString()}\n`);
    return 0;
  }
  throw new UsageError('usage: sdnet ticket <decode|encode> ...');
}
