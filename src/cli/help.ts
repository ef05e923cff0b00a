/**
 * `sdnet <command> --help`: one page per command listing every flag it takes. Commands parse
 * their arguments with {@link parseCommandArgs}, which answers `--help` / `-h` with that page
 * and records the flags the command really accepts, so test/cli/help.test.ts can check that
 * none is missing from its page.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

const WHERE = `Where a device lives: --data DIR, else $SDNET_HOME, else $XDG_DATA_HOME/sdnet, else
~/.local/share/sdnet. Relays: --relay URL (repeatable), else $SDNET_RELAY (comma-separated).`;

const DEVICE = `<device> is a paired device's name, its device id, or its EndpointId (64 hex, z-base-32,
or a unique hex prefix of 8+ characters).`;

const SERVICE = `Reaches the running "sdnet up" of its data dir; when none runs, runs the service
in-process for its own duration, unless --no-start is given (then: exit 1).`;

const COMMON_DEVICE_FLAGS = `  --data DIR           the device's data dir
  --json               machine-readable output (one JSON value per line)
  --no-start           fail (exit 1) when no sdnet up runs instead of starting the service`;

/** Per-command pages, by command (`pair invite` for subcommands). */
export const COMMAND_HELP: Record<string, string> = {
  keygen: `sdnet keygen [--out FILE] [--force] [--json]
Create a secret key file (mode 0600) and print its EndpointId.
  -o, --out FILE       where (default: $SDNET_HOME/secret.key or ~/.config/sdnet/secret.key)
  --force              replace an existing key file
  --json               {"id", "path"}
Exit: 0 written; 2 the file exists (without --force) or cannot be written.`,
  id: `sdnet id [--key FILE] [--json]
Print the EndpointId of a secret key file.
  -k, --key FILE       the key file (default: as sdnet keygen)
  --json               {"id": …}
Exit: 0; 2 missing or malformed key file.`,
  ticket: `sdnet ticket decode <ticket>
sdnet ticket encode --id HEX [--relay URL]... [--addr IP:PORT]...
Convert iroh endpoint tickets to and from JSON {id, relayUrls, directAddresses}.`,
  'ticket decode': `sdnet ticket decode <ticket>
Print an iroh endpoint ticket as JSON {id, relayUrls, directAddresses}.
Exit: 0; 2 not a ticket.`,
  'ticket encode': `sdnet ticket encode --id HEX [--relay URL]... [--addr IP:PORT]...
Make an iroh endpoint ticket.
  --id HEX             the EndpointId
  --relay URL          a relay URL (repeatable)
  --addr IP:PORT       a direct address (repeatable)
Exit: 0; 2 bad input.`,
  pipe: `sdnet pipe listen [--key FILE] [--bind ADDR]... [--relay URL]...
sdnet pipe connect <ticket> [--key FILE] [--bind ADDR]... [--relay URL]...
Pipe stdin/stdout with a peer (dumbpipe-compatible).`,
  'pipe listen': `sdnet pipe listen [--key FILE] [--bind ADDR]... [--relay URL]...
Wait for the first peer and pipe stdin/stdout with it; prints a ticket on stderr.
  -k, --key FILE       secret key file (else $IROH_SECRET, else a fresh key)
  --bind ADDR          UDP address to bind (repeatable; default 0.0.0.0:0 and [::]:0)
  --relay URL          relay to use (repeatable; else $SDNET_RELAY)
Exit: 0 when the peer closed; 1 failure; 2 bad usage.`,
  'pipe connect': `sdnet pipe connect <ticket|EndpointId> [--key FILE] [--bind ADDR]... [--relay URL]...
Connect to a listening peer and pipe stdin/stdout with it. An EndpointId alone is looked up
(pkarr at the relays, mDNS on the LAN) and every address found is dialled.
  -k, --key FILE       secret key file (else $IROH_SECRET, else a fresh key)
  --bind ADDR          UDP address to bind (repeatable)
  --relay URL          relay to use (repeatable; else $SDNET_RELAY)
Exit: 0 when done; 1 could not connect; 2 bad ticket or usage.`,
  resolve: `sdnet resolve <EndpointId> [--relay URL]... [--pkarr URL]... [--dns SERVER --dns-origin NAME] [--no-mdns] [--timeout MS] [--json]
Look an EndpointId up (pkarr at the relays, DNS, mDNS on the LAN) and print its EndpointAddr as JSON.
  --relay URL          relay whose /pkarr to ask (repeatable; else $SDNET_RELAY)
  --pkarr URL          another pkarr relay to ask (repeatable)
  --dns SERVER         a DNS server (IP:PORT) serving _iroh.<z32>.<origin> TXT records
  --dns-origin NAME    the origin those records are under (with --dns)
  --no-mdns            do not ask the LAN
  --timeout MS         how long the lookups may take (default 5000)
  --json               the same JSON (the output is JSON either way)
  --data DIR           accepted like the device commands; resolve needs no device
Exit: 0 found; 1 not found; 2 bad input.`,
  demo: `sdnet demo [--size MIB] [--keep] [--relay URL] [--json]
The tour (what npm start runs): an embedded relay, two devices as separate "sdnet up"
processes with their own data dirs, pairing with the real 12-word code, a message, a file
sent with progress and verified, the
path each step used (relay/direct), and cleanup. Under a minute.
  --size MIB           size of the demo file (default 32) for the file step
  --keep               keep the temporary data dirs and print where they are
  --relay URL          use this relay instead of starting one
  --json               one JSON object per step
Exit: 0 when every step worked; 1 otherwise; 2 bad usage.`,
  init: `sdnet init [--name NAME] [--data DIR] [--json]
Create this device (secret key, device id, name) in its data dir; again: print it.
  --name NAME          the device name (default: the host name)
${COMMON_DEVICE_FLAGS}
The data dir: --data DIR, else $SDNET_HOME, else $XDG_DATA_HOME/sdnet, else ~/.local/share/sdnet.
Exit: 0; 1 the data dir cannot be created; 2 a malformed identity is there.`,
  up: `sdnet up [--bind ADDR]... [--relay URL]... [--downloads DIR] [--web [ADDR]] [--data DIR] [--json] [--verbose]
Run the device service until Ctrl-C. First line "online <EndpointId> <home relay or ->",
then one line per event (devices, messages, pairing, transfers).
  --bind ADDR          UDP address to bind (repeatable)
  --relay URL          relay to use (repeatable)
  --downloads DIR      where received files go (default <data>/downloads)
  --name NAME          the device name when the data dir is new
  -v, --verbose        log lines (JSON) on stderr
  --auto-accept-vouches  accept introductions from paired devices without asking
  --refuse-transfers   refuse files offered by paired devices
  --web [ADDR]         serve the local web page on ADDR (default 127.0.0.1 on a free port);
                       prints "web <URL>": the URL carries a token, nothing is served without it
${COMMON_DEVICE_FLAGS}
${WHERE}
Exit: 0 after SIGINT/SIGTERM; 1 another service runs on the data dir, or it cannot start.`,
  devices: `sdnet devices [--data DIR] [--json] [--no-start]
List known devices: name, id, state, path (direct/relay), RTT.
${COMMON_DEVICE_FLAGS}
Exit: 0.`,
  msg: `sdnet msg <device> <text> [--timeout MS] [--relay URL]... [--data DIR] [--json] [--no-start]
Send a message to a paired device and wait for its acknowledgement.
  --timeout MS         how long to wait (default 10000)
  --relay URL          relay to use when running in-process (repeatable)
${COMMON_DEVICE_FLAGS}
${DEVICE}
${SERVICE}
Exit: 0 delivered; 1 not reachable; 2 unknown device.`,
  request: `sdnet request <device> [JSON] [--timeout MS] [--relay URL]... [--data DIR] [--json] [--no-start]
A request/response round trip (sdnet up answers with an echo).
  --timeout MS         how long to wait (default 10000)
  --relay URL          relay to use when running in-process (repeatable)
${COMMON_DEVICE_FLAGS}
${DEVICE}
Exit: 0 answered; 1 not reachable; 2 unknown device or bad JSON.`,
  unpair: `sdnet unpair <device> [--data DIR] [--json] [--no-start]
Forget a paired device; it can no longer reach our protocols.
${COMMON_DEVICE_FLAGS}
${DEVICE}
Exit: 0; 2 unknown device.`,
  send: `sdnet send <device> <path>... [--timeout MS] [--relay URL]... [--data DIR] [--json] [--no-start]
Send files and directories to a paired device: progress with rate and ETA on a terminal, a
line per 10 % otherwise; if the receiver goes away, waits for it and resumes. If the
receiver's disk fills up, ends with exit 1 and says so; the transfer is kept, and the same
send resumes it once space is free.
  --timeout MS         give up after this long (default 10 minutes)
  --relay URL          relay to use when running in-process (repeatable)
  --data DIR           the device's data dir
  --json               progress events, then {"event":"done","files","bytes"}
  --no-start           fail (exit 1) when no sdnet up runs instead of starting the service
${DEVICE}
${SERVICE}
Exit: 0 verified by the receiver; 1 refused, failed, timed out or the receiver's disk full; 2 unknown device or missing file.`,
  transfers: `sdnet transfers [pause|resume|cancel <id>] [--relay URL]... [--data DIR] [--json] [--no-start]
Transfers in and out with state and progress; pause, resume or cancel one.
  --relay URL          relay to use when running in-process (repeatable)
  --data DIR           the device's data dir
  --json               a JSON array
  --no-start           fail (exit 1) when no sdnet up runs instead of starting the service
${SERVICE}
Exit: 0; 1 no such transfer.`,
  pair: `sdnet pair invite|join|status|cancel|vouch|accept|refuse …
Pair devices with a 12-word code. See sdnet pair <sub> --help.`,
  'pair invite': `sdnet pair invite [--relay URL]... [--bind ADDR]... [--data DIR] [--json] [--no-start]
Show a 12-word code (first stdout line; a QR code on stderr when it is a terminal) and wait
until a device joins (the code lasts 5 minutes; 3 wrong tries burn it).
  --relay URL          relay to use when running in-process (repeatable)
  --bind ADDR          UDP address to bind when running in-process (repeatable)
  -v, --verbose        log lines on stderr
${COMMON_DEVICE_FLAGS}
${SERVICE}
Exit: 0 paired; 1 expired, burnt or cancelled.`,
  'pair join': `sdnet pair join <word>... [--node-id ID] [--timeout MS] [--relay URL]... [--data DIR] [--json] [--no-start]
Join with the 12 words typed, or the scanned QR payload.
  --node-id ID         the initiator's EndpointId (skips looking it up)
  --timeout MS         how long to look for the initiator and try (default 30000)
  --relay URL          relay to use when running in-process (repeatable)
  --bind ADDR          UDP address to bind when running in-process (repeatable)
  -v, --verbose        log lines on stderr
${COMMON_DEVICE_FLAGS}
Exit: 0 paired; 1 wrong code, not found, timed out; 2 malformed code.`,
  'pair status': `sdnet pair status [--data DIR] [--json]
Pairing sessions of the running sdnet up.
  --relay URL, --bind ADDR, -v/--verbose, --no-start: accepted, unused
${COMMON_DEVICE_FLAGS}
Exit: 0.`,
  'pair cancel': `sdnet pair cancel <session> [--data DIR] [--json]
Cancel a pairing session of the running sdnet up.
  --relay URL, --bind ADDR, -v/--verbose, --no-start: accepted, unused
${COMMON_DEVICE_FLAGS}
Exit: 0 cancelled; 1 no such session.`,
  'pair vouch': `sdnet pair vouch <device> <target>... [--data DIR] [--json] [--no-start]
Introduce a paired device to other paired devices.
  --relay URL          relay to use when running in-process (repeatable)
  --bind ADDR          UDP address to bind when running in-process (repeatable)
  -v, --verbose        log lines on stderr
${COMMON_DEVICE_FLAGS}
Exit: 0 every target accepted; 1 otherwise.`,
  'pair accept': `sdnet pair accept <introduction> [--data DIR] [--json]
Accept an introduction the running sdnet up asked about.
  --relay URL, --bind ADDR, -v/--verbose, --no-start: accepted, unused
${COMMON_DEVICE_FLAGS}
Exit: 0; 1 no such introduction.`,
  'pair refuse': `sdnet pair refuse <introduction> [--data DIR] [--json]
Refuse an introduction the running sdnet up asked about.
  --relay URL, --bind ADDR, -v/--verbose, --no-start: accepted, unused
${COMMON_DEVICE_FLAGS}
Exit: 0; 1 no such introduction.`,
};

/**
 * Flags a page documents for work merging in parallel (file transfer, issue 14) that this
 * build's parser does not have yet: test/cli/help.test.ts allows exactly these to be missing
 * from the parser. Empty it once they are on main.
 */
export const PENDING_FLAGS: Record<string, readonly string[]> = {};

/** Thrown by {@link parseCommandArgs} once the page of `command` is printed; main exits 0. */
export class HelpShown extends Error {
  readonly command: string;
  constructor(command: string) {
    super(`help for ${command}`);
    this.command = command;
    this.name = 'HelpShown';
  }
}

/** The flags each command accepted when last parsed (test/cli/help.test.ts compares them with its page). */
export const ACCEPTED_FLAGS = new Map<string, string[]>();

/** Was help asked for (before a `--` that ends the options)? */
export function wantsHelp(args: readonly string[]): boolean {
  for (const a of args) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** The page of `command`, ending with a newline. */
export function helpFor(command: string): string {
  const page = COMMAND_HELP[command] ?? COMMAND_HELP[command.split(' ')[0]!];
  return `${page ?? `sdnet ${command}: no help page (see sdnet --help)`}\n`;
}

/** `parseArgs` for the command `command`: `--help` / `-h` throws {@link HelpShown} instead. */
export function parseCommandArgs<T extends ParseArgsConfig>(command: string, config: T): ReturnType<typeof parseArgs<T>> {
  ACCEPTED_FLAGS.set(
    command,
    Object.entries(config.options ?? {}).flatMap(([name, o]) => [`--${name}`, ...(o.short !== undefined ? [`-${o.short}`] : [])]),
  );
  if (wantsHelp(config.args ?? [])) throw new HelpShown(command);
  return parseArgs(config);
}
