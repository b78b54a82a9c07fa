/**
 * RFC 6455 framing, just enough for a tunnel to shut a WebSocket down cleanly.
 *
 * `FrameBoundaryTracker` watches the byte stream of one direction of a WebSocket connection and
 * knows whether it sits between two frames: a Close frame may only be injected there, anywhere
 * else it would corrupt the frame in flight. It reads only the 2–14 byte frame headers and counts
 * payload bytes; it never unmasks, copies or validates payloads, and never allocates. It accepts
 * any byte stream and never throws: on a stream that is not WebSocket framing its answers are
 * meaningless (the endpoints fail such a connection themselves). Payload lengths above 2^53 bytes
 * lose precision, which only matters for a frame nobody can send.
 *
 * `buildCloseFrame` builds a Close control frame; it throws `ProximationError`
 * `ERR_WS_CLOSE_FRAME_INVALID` for a code an endpoint may not send or a reason over 123 bytes.
 */
import { randomFillSync } from 'node:crypto';
import { ProximationError } from '@proximation/shared';

const OPCODE_CLOSE = 0x8;

const enum Phase {
  /** Between frames: the next byte starts a frame. */
  Boundary,
  SecondByte,
  ExtendedLength,
  MaskKey,
  Payload,
}

export class FrameBoundaryTracker {
  private phase = Phase.Boundary;
  private opcode = 0;
  private extendedLengthBytesLeft = 0;
  private maskKeyBytesLeft = 0;
  private payloadBytesLeft = 0;
  private closeFramesSeen = 0;

  /** True when every byte pushed so far belongs to a complete frame. */
  get atBoundary(): boolean {
    return this.phase === Phase.Boundary;
  }

  /** How many Close frames (opcode 0x8) have started so far: their header is complete. */
  get closeFrames(): number {
    return this.closeFramesSeen;
  }

  /**
   * Accounts for `chunk` and returns how many of its bytes were consumed: all of them, or, with
   * `stopAtBoundary`, those up to the first frame boundary (0 when already at one), so that the
   * caller can split the chunk there. Unconsumed bytes must be pushed again later.
   */
  push(chunk: Buffer, stopAtBoundary = false): number {
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      if (this.phase === Phase.Payload) {
        const available = length - i;
        if (this.payloadBytesLeft > available) {
          this.payloadBytesLeft -= available;
          return length;
        }
        i += this.payloadBytesLeft;
        this.payloadBytesLeft = 0;
        this.phase = Phase.Boundary;
        continue;
      }
      if (stopAtBoundary && this.phase === Phase.Boundary) return i;
      this.headerByte(chunk[i++]!);
    }
    return length;
  }

  /** Payload bytes are counted in bulk by push(); every other byte goes through here. */
  private headerByte(byte: number): void {
    switch (this.phase) {
      case Phase.Boundary:
        this.opcode = byte & 0x0f;
        this.phase = Phase.SecondByte;
        return;
      case Phase.SecondByte: {
        this.maskKeyBytesLeft = byte & 0x80 ? 4 : 0;
        const length7 = byte & 0x7f;
        if (length7 < 126) {
          this.payloadBytesLeft = length7;
          this.lengthComplete();
        } else {
          this.payloadBytesLeft = 0;
          this.extendedLengthBytesLeft = length7 === 126 ? 2 : 8;
          this.phase = Phase.ExtendedLength;
        }
        return;
      }
      case Phase.ExtendedLength:
        // Multiplication, not shifts: 32-bit shifts would wrap lengths of 2^31 and more.
        this.payloadBytesLeft = this.payloadBytesLeft * 256 + byte;
        if (--this.extendedLengthBytesLeft === 0) this.lengthComplete();
        return;
      case Phase.MaskKey:
        if (--this.maskKeyBytesLeft === 0) this.headerComplete();
        return;
    }
  }

  private lengthComplete(): void {
    if (this.maskKeyBytesLeft > 0) this.phase = Phase.MaskKey;
    else this.headerComplete();
  }

  private headerComplete(): void {
    if (this.opcode === OPCODE_CLOSE) this.closeFramesSeen++;
    this.phase = this.payloadBytesLeft > 0 ? Phase.Payload : Phase.Boundary;
  }
}

/** Control frame payloads are at most 125 bytes, two of which hold the code. */
const MAX_CLOSE_REASON_BYTES = 123;

/** Codes an endpoint may put in a Close frame (RFC 6455 §7.4 and the IANA registry). */
function isSendableCloseCode(code: number): boolean {
  return (
    Number.isInteger(code) &&
    ((code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
      (code >= 3000 && code <= 4999))
  );
}

/**
 * A complete Close frame carrying `code` and `reason`. `masked` is for frames sent to a server
 * (client-to-server frames must be masked, with an unpredictable key); server-to-client frames
 * must not be.
 */
export function buildCloseFrame(code: number, reason: string, masked: boolean): Buffer {
  if (!isSendableCloseCode(code)) {
    throw new ProximationError(
      'ERR_WS_CLOSE_FRAME_INVALID',
      `WebSocket close code ${code} may not be sent: use 1000–1003, 1007–1014 or 3000–4999 (RFC 6455 §7.4)`,
    );
  }
  const reasonBytes = Buffer.byteLength(reason);
  if (reasonBytes > MAX_CLOSE_REASON_BYTES) {
    throw new ProximationError(
      'ERR_WS_CLOSE_FRAME_INVALID',
      `WebSocket close reason "${reason.slice(0, 40)}…" is ${reasonBytes} bytes in UTF-8: shorten it to at most ${MAX_CLOSE_REASON_BYTES}`,
    );
  }
  const payloadLength = 2 + reasonBytes;
  const payloadStart = masked ? 6 : 2;
  const frame = Buffer.allocUnsafe(payloadStart + payloadLength);
  frame[0] = 0x80 | OPCODE_CLOSE; // FIN: control frames are never fragmented.
  frame[1] = (masked ? 0x80 : 0) | payloadLength;
  frame.writeUInt16BE(code, payloadStart);
  frame.write(reason, payloadStart + 2, 'utf8');
  if (masked) {
    randomFillSync(frame, 2, 4);
    for (let i = 0; i < payloadLength; i++) frame[payloadStart + i]! ^= frame[2 + (i & 3)]!;
  }
  return frame;
}
