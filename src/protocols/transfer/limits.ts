/**
 * Limits of the file-transfer protocol (`sdnet/xfer/1`): every size and count a peer
 * controls is bounded here before anything is allocated for it (pairing-transfer.md B.3,
 * "Hostile-peer limits").
 *
 * @module
 */

/** The ALPN of the file-transfer protocol (paired peers only). */
export const XFER_ALPN = 'sdnet/xfer/1';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Largest manifest (bytes of the Offer frame). */
export const XFER_MAX_MANIFEST_BYTES = 16 * MiB;
/** Entries (files and directories) of one manifest. */
export const XFER_MAX_ENTRIES = 100_000;
/** A relative path, in UTF-8 bytes. */
export const XFER_MAX_PATH_BYTES = 4096;
/** One path component, in UTF-8 bytes. */
export const XFER_MAX_COMPONENT_BYTES = 255;
/** Components of one path. */
export const XFER_MAX_DEPTH = 64;
/** Smallest and largest chunk size (a power of two); the default. */
export const XFER_MIN_CHUNK_SIZE = 64 * KiB;
export const XFER_MAX_CHUNK_SIZE = 16 * MiB;
export const XFER_DEFAULT_CHUNK_SIZE = 1 * MiB;
/** Chunks of one file (its table is 32 bytes a chunk: at most 32 MiB). */
export const XFER_MAX_CHUNKS_PER_FILE = 1 << 20;
/** Largest control message other than an Offer (bytes of JSON). */
export const XFER_MAX_CONTROL_BYTES = 64 * KiB;
/** Chunks one Get may ask for. */
export const XFER_MAX_CHUNKS_PER_GET = 16;
/** Bytes the receiver has requested and not yet received, over all its streams (the window). */
export const XFER_WINDOW_BYTES = 16 * MiB;
/** Streams the receiver pulls on at once. */
export const XFER_PULL_STREAMS = 4;
/** Streams of one connection the protocol serves at once. */
export const XFER_MAX_CONCURRENT_STREAMS = 16;
/** Transfers one peer may have in progress towards us at once (more are refused). */
export const XFER_MAX_TRANSFERS_PER_PEER = 4;
/** A stream silent this long is reset; a control stream without progress this long is given up (ms). */
export const XFER_IDLE_TIMEOUT_MS = 30_000;
/** A chunk that fails to open or to match its table is re-requested this many times before the transfer fails. */
export const XFER_MAX_CHUNK_RETRIES = 3;
/** The receiver's state is saved after this many verified bytes… */
export const XFER_STATE_SAVE_BYTES = 64 * MiB;
/** …or this long after the last save (ms), whichever comes first. */
export const XFER_STATE_SAVE_MS = 2_000;
/** Progress events at most this often (ms): ≤ 10 Hz. */
export const XFER_PROGRESS_INTERVAL_MS = 100;
/** Progress messages on the control stream (receiver → sender) this often (ms). */
export const XFER_CONTROL_PROGRESS_MS = 500;
/** A transfer paused for a full disk looks for free space this often (ms). */
export const XFER_DISK_RETRY_MS = 1_000;
/** Length of a reason or message a peer sends. */
export const XFER_MAX_REASON_LENGTH = 1024;
/** Finished transfers remembered for `sdnet transfers`. */
export const XFER_MAX_FINISHED = 64;
