/**
 * Access control for the relay (iroh `AccessControl::on_connect`, reliability.md §4): after a
 * client proved its EndpointId, decide whether it may use the relay. A denial is sent as
 * `ServerDeniesAuth` with the reason (iroh-wire §1.5).
 *
 * Built-in policy: an allow-list of EndpointIds and/or a set of bearer tokens
 * (`Authorization: Bearer …` or `?token=`). With neither configured the relay is open. With
 * either, a client gets in if its id is listed **or** it presents a listed token. Both can be
 * replaced at runtime; clients that no longer qualify are disconnected (iroh
 * `tests/runtime_auth.rs`). A custom hook can replace the policy entirely.
 *
 * @module
 */
import { PublicKey } from '../../src/identity/keys.ts';

/** What access control knows about a client. */
export interface AccessRequest {
  endpointId: PublicKey;
  /** The bearer token presented, if any. */
  token: string | undefined;
  /** The TCP peer address. */
  remoteAddress: string | undefined;
}

export type AccessDecision = { allow: true } | { allow: false; reason?: string };

/** A custom policy. May be async (e.g. a lookup in a database). */
export type AccessHook = (request: AccessRequest) => AccessDecision | Promise<AccessDecision>;

export interface AccessPolicy {
  /** EndpointIds (hex or base32, or PublicKeys) allowed without a token. */
  allowEndpoints?: ReadonlyArray<string | PublicKey>;
  /** Bearer tokens that admit any EndpointId. */
  tokens?: readonly string[];
}

/** The built-in allow-list + token policy. */
export class AccessList {
  #endpoints: Set<string> | undefined;
  #tokens: Set<string> | undefined;

  constructor(policy: AccessPolicy = {}) {
    this.update(policy);
  }

  /**
   * Replace the policy. Throws (TypeError/DecodeError) on a malformed EndpointId, leaving the
   * old policy in place.
   */
  update(policy: AccessPolicy): void {
    const endpoints =
      policy.allowEndpoints === undefined ? undefined : new Set(policy.allowEndpoints.map((e) => (e instanceof PublicKey ? e : PublicKey.fromString(e)).toString()));
    for (const t of policy.tokens ?? []) {
      if (typeof t !== 'string' || t === '' || /\s/.test(t)) throw new TypeError('Tokens must be non-empty strings without whitespace');
    }
    this.#endpoints = endpoints;
    this.#tokens = policy.tokens === undefined ? undefined : new Set(policy.tokens);
  }

  /** Whether any restriction is configured. */
  get restricted(): boolean {
    return this.#endpoints !== undefined || this.#tokens !== undefined;
  }

  check(request: AccessRequest): AccessDecision {
    if (!this.restricted) return { allow: true };
    if (this.#endpoints?.has(request.endpointId.toString())) return { allow: true };
    if (request.token !== undefined && this.#tokens?.has(request.token)) return { allow: true };
    return { allow: false, reason: 'not authorized' };
  }
}
