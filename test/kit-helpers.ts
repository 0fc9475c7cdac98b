/** For tests of the host kit: its files parsed, its scripts run against stand-ins for the system tools they call. */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmod, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tempDir } from './support/images.js';

/** A GLib key file (NetworkManager's keyfile format) as { section: { key: value } }. */
export function parseKeyFile(text: string): Record<string, Record<string, string>> {
  const sections: Record<string, Record<string, string>> = {};
  let current: Record<string, string> | undefined;
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    const section = /^\[([^\]]+)\]$/.exec(line);
    if (section) {
      if (sections[section[1]]) throw new Error(`section [${section[1]}] twice`);
      current = sections[section[1]] = {};
      continue;
    }
    const entry = /^([A-Za-z0-9-]+)=(.*)$/.exec(line);
    if (!entry || !current) throw new Error(`not a key file line: ${line}`);
    current[entry[1]] = entry[2];
  }
  return sections;
}

export const BASH = execFileSync('bash', ['--norc', '-c', 'command -v bash'], { encoding: 'utf8' }).trim();

/**
 * A bin directory holding only stand-ins (shell scripts given as text) and links to the real
 * tools the kit's scripts may use (`tools` adds to the usual ones), so nothing on this machine
 * is touched or consulted.
 */
export async function fakeBin(stubs: Record<string, string>, tools: string[] = []): Promise<string> {
  const bin = await tempDir();
  for (const tool of ['tr', 'basename', 'dirname', 'cat', 'grep', ...tools]) {
    await symlink(execFileSync('bash', ['--norc', '-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
  }
  for (const [name, body] of Object.entries(stubs)) {
    await writeFile(join(bin, name), `#!${BASH}\n${body}\n`);
    await chmod(join(bin, name), 0o755);
  }
  return bin;
}

/** Whether a private key and a certificate pair: openssl derives the same public key from both. */
export function keyMatchesCertificate(keyFile: string, certFile: string): boolean {
  const publicKey = (args: string[]) => execFileSync('openssl', args, { encoding: 'utf8' });
  return publicKey(['pkey', '-pubout', '-in', keyFile]) === publicKey(['x509', '-noout', '-pubkey', '-in', certFile]);
}

export function runKitScript(script: string, bin: string, env: Record<string, string> = {}, args: string[] = []) {
  return spawnSync(BASH, [script, ...args], { encoding: 'utf8', env: { PATH: bin, ...env } });
}

/** A docker CLI for setup-buildx.sh that remembers contexts and builders (all docker-container) in files under $STATE and logs every call. */
export const SETUP_BUILDX_DOCKER = `
echo "docker $*" >>"$STATE/log"
if [ "$1" = --context ]; then shift 2; fi
case "$1 $2" in
  "buildx version") exit 0 ;;
  "context inspect") [ -e "$STATE/context-$3" ] ;;
  "context create") for name; do :; done; : >"$STATE/context-$name" ;;
  "context update") exit 0 ;;
  "buildx inspect") if [ "$3" = --bootstrap ]; then echo "Name: \${4:-context}"; else [ -e "$STATE/builder-$3" ] && echo "Driver: docker-container"; fi ;;
  "buildx create") : >"$STATE/builder-$4" ;;
  "buildx rm") rm "$STATE/builder-$3" ;;
  *) echo "unexpected: docker $*" >&2; exit 2 ;;
esac`;
