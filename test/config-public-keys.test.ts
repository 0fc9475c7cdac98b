import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../src/config/load.js';
import { UserError } from '../src/errors.js';

/** Keys made by ssh-keygen itself, by name: ed25519, rsa3072, rsa1024, ecdsa256, ecdsa384, ecdsa521. */
const keys: Record<string, string> = {};
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'config-keys-'));
  const made: [string, string[]][] = [
    ['ed25519', ['-t', 'ed25519']],
    ['rsa3072', ['-t', 'rsa', '-b', '3072']],
    ['rsa1024', ['-t', 'rsa', '-b', '1024']],
    ['ecdsa256', ['-t', 'ecdsa', '-b', '256']],
    ['ecdsa384', ['-t', 'ecdsa', '-b', '384']],
    ['ecdsa521', ['-t', 'ecdsa', '-b', '521']],
  ];
  for (const [name, args] of made) {
    const file = join(dir, name);
    execFileSync('ssh-keygen', ['-q', ...args, '-N', '', '-C', 'me@laptop', '-f', file]);
    keys[name] = (await readFile(`${file}.pub`, 'utf8')).trim();
  }
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function resolvedKeys(line: string): string[] {
  return resolveConfig({ ssh: { authorizedKeys: [line] } }).ssh.authorizedKeys;
}

function errorOf(line: string): string {
  try {
    resolvedKeys(line);
  } catch (error) {
    expect(error).toBeInstanceOf(UserError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error(`expected ${line.slice(0, 80)} to be rejected`);
}

/** SSH wire format: each field as a 32-bit length and its bytes, base64-encoded. */
function wire(...fields: (string | Buffer)[]): string {
  return Buffer.concat(
    fields.flatMap((field) => {
      const bytes = typeof field === 'string' ? Buffer.from(field) : field;
      const length = Buffer.alloc(4);
      length.writeUInt32BE(bytes.length);
      return [length, bytes];
    }),
  ).toString('base64');
}

function blobOf(line: string): Buffer {
  return Buffer.from(line.split(' ')[1], 'base64');
}

describe('ssh.authorizedKeys', () => {
  it('accepts the keys ssh-keygen makes, and security keys (sk-*) that parse', () => {
    for (const name of ['ed25519', 'rsa3072', 'ecdsa256', 'ecdsa384', 'ecdsa521']) {
      expect(resolvedKeys(`${keys[name]}\n`)).toEqual([keys[name]]);
    }
    const skEd25519 = `sk-ssh-ed25519@openssh.com ${wire('sk-ssh-ed25519@openssh.com', Buffer.alloc(32, 7), 'ssh:')} me@yubikey`;
    expect(resolvedKeys(skEd25519)).toEqual([skEd25519]);
    const point = blobOf(keys.ecdsa256).subarray(-65);
    const skEcdsa = `sk-ecdsa-sha2-nistp256@openssh.com ${wire('sk-ecdsa-sha2-nistp256@openssh.com', 'nistp256', point, 'ssh:')}`;
    expect(resolvedKeys(skEcdsa)).toEqual([skEcdsa]);
  });

  it('refuses a truncated key', () => {
    const [type, base64] = keys.ed25519.split(' ');
    expect(errorOf(`${type} ${base64.slice(0, -4)}`)).toMatch(
      /^config key ssh.authorizedKeys\[0\] "ssh-ed25519 .* holds an incomplete ssh-ed25519 key \(cut short\); paste the whole line of the .pub file$/,
    );
    expect(errorOf('ssh-ed25519 AAAA')).toMatch(
      /^config key ssh.authorizedKeys\[0\] "ssh-ed25519 AAAA" holds an incomplete ssh-ed25519 key/,
    );
    const [rsaType, rsaBase64] = keys.rsa3072.split(' ');
    expect(errorOf(`${rsaType} ${rsaBase64.slice(0, 200)}`)).toMatch(/holds an incomplete ssh-rsa key/);
  });

  it('refuses a type word that does not match the blob', () => {
    expect(errorOf(keys.ed25519.replace('ssh-ed25519', 'ssh-rsa'))).toMatch(
      /^config key ssh.authorizedKeys\[0\] "ssh-rsa .* says ssh-rsa but holds a "ssh-ed25519" key; paste the line of the .pub file unchanged$/,
    );
    expect(errorOf(keys.ecdsa256.replace('nistp256', 'nistp384'))).toMatch(
      /says ecdsa-sha2-nistp384 but holds a "ecdsa-sha2-nistp256" key/,
    );
    const point = blobOf(keys.ecdsa256).subarray(-65);
    expect(errorOf(`ecdsa-sha2-nistp256 ${wire('ecdsa-sha2-nistp256', 'nistp384', point)}`)).toMatch(
      /says ecdsa-sha2-nistp256 but its key is on curve "nistp384"/,
    );
  });

  it('refuses key data of the wrong size, extra data and damaged base64', () => {
    expect(errorOf(`ssh-ed25519 ${wire('ssh-ed25519', Buffer.alloc(31, 1))}`)).toMatch(
      /holds a ssh-ed25519 key whose public key is 31 bytes instead of 32/,
    );
    const point = blobOf(keys.ecdsa384).subarray(-97);
    expect(errorOf(`ecdsa-sha2-nistp256 ${wire('ecdsa-sha2-nistp256', 'nistp256', point)}`)).toMatch(
      /holds a ecdsa-sha2-nistp256 key whose point is 97 bytes instead of 65/,
    );
    const withExtra = Buffer.concat([blobOf(keys.ed25519), Buffer.from([0, 0, 0, 0])]).toString('base64');
    expect(errorOf(`ssh-ed25519 ${withExtra}`)).toMatch(/has data after the end of its ssh-ed25519 key/);
    // The last character carries bits past the data: a hand-edited or mis-copied line.
    expect(errorOf(keys.ecdsa256.replace(/.= /, 'B= '))).toMatch(/has damaged base64 key data/);
  });

  it('refuses an RSA key under 2048 bits and DSA keys', () => {
    expect(errorOf(keys.rsa1024)).toMatch(
      /^config key ssh.authorizedKeys\[0\] "ssh-rsa .* holds a 1024-bit RSA key, too weak for current OpenSSH; use one of at least 2048 bits or ssh-keygen -t ed25519$/,
    );
    expect(errorOf(`ssh-dss ${wire('ssh-dss', Buffer.alloc(20))}`)).toMatch(/is a DSA key, which OpenSSH refuses since 7.0/);
  });

  it('refuses a line over 16 KiB before decoding it', () => {
    const huge = `ssh-ed25519 ${'A'.repeat(1024 * 1024)}`;
    const message = errorOf(huge);
    expect(message).toMatch(/^config key ssh.authorizedKeys\[0\] "ssh-ed25519 A+\.\.\. is longer than 16 KiB/);
    expect(message.length).toBeLessThan(250);
  });
});
