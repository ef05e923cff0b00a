/**
 * The `sdnet` command line.
 *
 * Exit status: 0 on success, 2 for bad usage or bad input (one line on stderr, never a
 * stack trace), 1 for other failures.
 *
 * @module
 */
import { DecodeError, SdnetError } from '../util/errors.ts';
import { KeyFileError } from '../identity/index.ts';
import { processIo, UsageError, type CliIo } from './io.ts';
import { id, keygen, ticket } from './commands-identity.ts';
import { demo } from './demo.ts';
import { pipe } from './pipe.ts';
import { devices, init, msg, request, unpair, up } from './device-commands.ts';
import { pair } from './pair-commands.ts';
import { send, transfers } from './transfer-commands.ts';
import { resolveCommand } from './resolve.ts';
import { packageVersion } from './version.ts';
import { HelpShown, helpFor, wantsHelp } from './help.ts';

const VERSION = packageVersion();

const HELP = `sdnet — peer-to-peer networking, wire-compatible with iroh 1.0

Usage:
  sdnet keygen [--out FILE] [--force] [--json]
                                            create a secret key (default: ${'$'}SDNET_HOME/secret.key
                                            or ~/.config/sdnet/secret.key); prints the EndpointId
  sdnet id [--key FILE] [--json]            print the EndpointId of a key file
  sdnet ticket decode <ticket>              print a ticket as JSON {id, relayUrls, directAddresses}
  sdnet ticket encode --id HEX [--relay URL]... [--addr IP:PORT]...
                                            make an iroh endpoint ticket
  sdnet pipe listen [--key FILE] [--bind ADDR]
                                            pipe stdin/stdout with the first peer that connects
                                            (prints a ticket on stderr; dumbpipe-compatible)
  sdnet pipe connect <ticket|EndpointId> [--key FILE] [--relay URL]...
                                            pipe stdin/stdout with a listening peer (an id
                                            alone is looked up: pkarr at the relays, mDNS)
  sdnet resolve <EndpointId> [--relay URL]... [--pkarr URL]... [--timeout MS]
                                            look an id up (pkarr at the relays, mDNS on the
                                            LAN); prints its EndpointAddr as JSON, exit 1 if not found
  sdnet demo [--size MIB] [--keep] [--relay URL] [--json]
                                            the tour (what 'npm start' runs): a relay, two
                                            devices, pairing, a message, a file, the paths

Devices (the data dir: --data DIR, else $SDNET_HOME, else $XDG_DATA_HOME/sdnet,
else ~/.local/share/sdnet; relays: --relay URL..., else $SDNET_RELAY):
  sdnet init [--name NAME] [--json]         create this device (key, device id, name); again: show it
  sdnet up [--bind ADDR]... [--relay URL]... [--downloads DIR] [--web [ADDR]] [--json] [--verbose]
                                            run the device service until Ctrl-C: first line
                                            "online <id> <relay|->", then one line per event;
                                            --web: a local page (its URL carries a token)
  sdnet devices [--json]                    known devices: name, id, state, path, RTT
  sdnet msg <device> <text> [--timeout MS] [--json]
                                            send a message, wait for its acknowledgement
  sdnet request <device> [JSON] [--json]    a request/response round trip (sdnet up echoes it)
  sdnet unpair <device> [--json]            forget a paired device
  sdnet pair invite [--json]                show a 12-word code (and a QR code on a terminal);
                                            wait until a device joins (5 minutes, 3 wrong tries)
  sdnet pair join <word>... [--node-id ID] [--timeout MS] [--json]
                                            join with the words typed, or the scanned QR payload
  sdnet pair status|cancel <session> [--json]
                                            pairing sessions of the running sdnet up
  sdnet pair vouch <device> <target>...     introduce a paired device to other paired devices
  sdnet pair accept|refuse <introduction>   answer an introduction (sdnet up asks; or run
                                            sdnet up --auto-accept-vouches)
  sdnet send <device> <path>... [--timeout MS] [--json]
                                            send files and directories (encrypted, verified per
                                            chunk); waits for the receiver and resumes if it goes away
  sdnet transfers [pause|resume|cancel <id>] [--json]
                                            transfers in and out with state and progress
  <device> is a name, a device id, or an EndpointId (hex, z-base-32, or a hex prefix of 8+).
  Commands reach the running "sdnet up" of their data dir; without one they run in-process
  (--no-start: exit 1 instead).

sdnet <command> --help lists every flag of a command.

Exit status: 0 ok, 1 failure, 2 bad usage or bad input.
`;

type Command = (args: string[], io: CliIo) => Promise<number>;
/** Commands with subcommands: `sdnet pair --help` shows the group's page. */
const GROUPS = new Set(['pair', 'ticket', 'pipe']);
export const COMMANDS: Record<string, Command> = { keygen, id, ticket, pipe, demo, init, up, devices, msg, request, unpair, pair, send, transfers, resolve: resolveCommand };

const INPUT_ERROR_CODES = new Set(['ERR_DEVICE_UNKNOWN', 'ERR_DEVICE_AMBIGUOUS', 'ERR_IDENTITY_MALFORMED', 'ERR_IDENTITY_NOT_FOUND', 'ERR_INVALID_ARGUMENT']);

/** Is this error the user's input being wrong (exit 2) rather than the program failing? */
function isInputError(err: unknown): boolean {
  // A key file that is missing, malformed, too open or already present is the user's to fix.
  if (err instanceof UsageError || err instanceof DecodeError || err instanceof KeyFileError) return true;
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string') return false;
  // A device argument that names no device or several, a malformed identity in the data dir.
  return code.startsWith('ERR_PARSE_ARGS') || INPUT_ERROR_CODES.has(code);
}

/** Run the CLI with `argv` (without the node and script paths); resolves to the exit status. */
export async function run(argv: string[], io: CliIo = processIo(new AbortController().signal)): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(HELP);
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V') {
    io.stdout(`${VERSION}\n`);
    return 0;
  }
  const command = COMMANDS[name];
  if (command === undefined) {
    io.stderr(`sdnet: unknown command "${name}" (see sdnet --help)\n`);
    return 2;
  }
  if (GROUPS.has(name) && (args[0] === '--help' || args[0] === '-h')) {
    io.stdout(helpFor(name));
    return 0;
  }
  try {
    return await command(args, io);
  } catch (err) {
    if (err instanceof HelpShown) {
      io.stdout(helpFor(err.command));
      return 0;
    }
    // A command that parses without parseCommandArgs still answers --help with its page.
    if (wantsHelp(args) && String((err as { code?: unknown }).code).startsWith('ERR_PARSE_ARGS')) {
      io.stdout(helpFor(name));
      return 0;
    }
    const message = err instanceof Error ? err.message.split('\n')[0]! : String(err);
    io.stderr(`sdnet ${name}: ${message}\n`);
    if (isInputError(err)) return 2;
    if (!(err instanceof SdnetError) && io.env.SDNET_DEBUG) io.stderr(`${(err as Error).stack ?? ''}\n`);
    return 1;
  }
}

