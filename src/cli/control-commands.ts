/**
 * Control-socket commands that modules of the CLI add (pairing, transfer): the running
 * `sdnet up` answers them next to the device commands, and the in-process fallback runs the
 * same functions.
 *
 * @module
 */
import type { NetworkingService } from '../service/networking-service.ts';

export type ControlCommand = (service: NetworkingService, args: Record<string, unknown>) => Promise<unknown>;

/** Extra commands by name (`pair-invite`, …). */
export const CONTROL_COMMANDS = new Map<string, ControlCommand>();
