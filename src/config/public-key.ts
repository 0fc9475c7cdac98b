/**
 * What an authorized_keys line's base64 blob must hold. A truncated key, a type word that does not
 * match the blob, or a weak RSA key builds fine and then nobody can log in, so the blob is parsed here.
 */
import { invalid } from './checks.js';

/** Far above the largest real key (an RSA 16384-bit .pub line is about 2.8 KiB). */
const MAX_LINE_BYTES = 16 * 1024;
const MIN_RSA_BITS = 2048;

/** Bytes of one coordinate of each NIST curve's point. */
const CURVE_COORDINATE_BYTES: Record<string, number> = { nistp256: 32, nistp384: 48, nistp521: 66 };

const LINE =
  /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) ([A-Za-z0-9+/]+={0,2})(?: [^\x00-\x08\x0a-\x1f\x7f\u2028\u2029]*)?$/;

/** Reads the SSH wire format (RFC 4251 section 5): length-prefixed strings. */
class WireReader {
  private offset = 0;
  constructor(
    private readonly blob: Buffer,
    private readonly type: string,
  ) {}

  string(): Buffer {
    if (this.offset + 4 > this.blob.length) this.cutShort();
    const length = this.blob.readUInt32BE(this.offset);
    if (this.offset + 4 + length > this.blob.length) this.cutShort();
    this.offset += 4 + length;
    return this.blob.subarray(this.offset - length, this.offset);
  }

  text(): string {
    return this.string().toString('latin1');
  }

  /** A positive mpint's magnitude without leading zero bytes. */
  positiveInteger(): Buffer {
    const value = this.string();
    if (value.length === 0 || value[0] & 0x80) invalid(`holds a damaged ${this.type} key; paste the line of the .pub file unchanged`);
    const first = value.findIndex((byte) => byte !== 0);
    return first === -1 ? Buffer.alloc(0) : value.subarray(first);
  }

  end(): void {
    if (this.offset !== this.blob.length)
      invalid(`has data after the end of its ${this.type} key; paste the line of the .pub file unchanged`);
  }

  private cutShort(): never {
    invalid(`holds an incomplete ${this.type} key (cut short); paste the whole line of the .pub file`);
  }
}

function checkLength(type: string, what: string, actual: number, expected: number): void {
  if (actual !== expected)
    invalid(`holds a ${type} key whose ${what} is ${actual} bytes instead of ${expected}; paste the line of the .pub file unchanged`);
}

function bitLength(magnitude: Buffer): number {
  return magnitude.length === 0 ? 0 : (magnitude.length - 1) * 8 + magnitude[0].toString(2).length;
}

/** Parses what follows the type string inside the blob, refusing keys sshd would not take. */
function checkKeyData(reader: WireReader, type: string): void {
  if (type === 'ssh-ed25519' || type === 'sk-ssh-ed25519@openssh.com') {
    checkLength(type, 'public key', reader.string().length, 32);
  } else if (type === 'ssh-rsa') {
    const exponent = reader.positiveInteger();
    if (exponent.length === 0 || !(exponent[exponent.length - 1] & 1))
      invalid('holds an RSA key with an invalid public exponent; paste the line of the .pub file unchanged');
    const bits = bitLength(reader.positiveInteger());
    if (bits < MIN_RSA_BITS)
      invalid(
        `holds a ${bits}-bit RSA key, too weak for current OpenSSH; use one of at least ${MIN_RSA_BITS} bits or ssh-keygen -t ed25519`,
      );
  } else {
    const curve = /nistp\d+/.exec(type)?.[0] ?? '';
    const named = reader.text();
    if (named !== curve)
      invalid(`says ${type} but its key is on curve ${JSON.stringify(named)}; paste the line of the .pub file unchanged`);
    const point = reader.string();
    // Uncompressed point: 0x04, then X and Y.
    checkLength(type, 'point', point.length, 1 + 2 * CURVE_COORDINATE_BYTES[curve]);
    if (point[0] !== 4) invalid(`holds a ${type} key whose point is not in uncompressed form; paste the line of the .pub file unchanged`);
  }
  // Security keys (sk-*, OpenSSH 8.2 and later) end with the FIDO application, normally "ssh:".
  if (type.startsWith('sk-')) reader.string();
}

/**
 * Returns the line trimmed, or calls `invalid`. Accepts ed25519, RSA (2048 bits and more), ECDSA on
 * the NIST curves and the two security-key types (parsed like their plain forms); refuses DSA,
 * which OpenSSH disables since 7.0.
 */
export function checkPublicKey(value: string): string {
  // Pasted `cat key.pub` output carries a trailing newline; anything else multi-line is refused.
  const line = value.trim();
  if (Buffer.byteLength(line) > MAX_LINE_BYTES)
    invalid('is longer than 16 KiB, far more than any OpenSSH public key; paste one line of a .pub file, e.g. ~/.ssh/id_ed25519.pub');
  if (line.startsWith('ssh-dss ')) invalid('is a DSA key, which OpenSSH refuses since 7.0; make one with ssh-keygen -t ed25519');
  const match = LINE.exec(line);
  if (!match) invalid('does not look like an OpenSSH public key; paste one line of a .pub file, e.g. ~/.ssh/id_ed25519.pub');
  const [, type, base64] = match;
  const blob = Buffer.from(base64, 'base64');
  // Buffer.from skips what it cannot decode; a round trip shows a damaged or mis-padded encoding.
  if (blob.toString('base64') !== base64) invalid('has damaged base64 key data; paste the line of the .pub file unchanged');
  const reader = new WireReader(blob, type);
  const inner = reader.text();
  if (inner !== type) invalid(`says ${type} but holds a ${JSON.stringify(inner)} key; paste the line of the .pub file unchanged`);
  checkKeyData(reader, type);
  reader.end();
  return line;
}
