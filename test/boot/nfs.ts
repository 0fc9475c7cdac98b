/**
 * The host side of the device's storage: a userspace NFS server (nfs-ganesha with its VFS
 * backend; this kind of machine's kernel has no nfsd) exporting a directory over NFS 4.1 on
 * 127.0.0.1:2049, which QEMU's user network shows the guest as 10.0.2.2:2049.
 *
 * The docker step mounts with vers=4,minorversion=1,proto=tcp: NFSv4 needs only port 2049 (no
 * rpcbind, mountd or statd), so the server registers with no portmapper. Ganesha's failure to
 * reach one is logged, not fatal.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';

export const NFS_PORT = 2049;

export interface NfsServer {
  /** The host directory behind the export. */
  dir: string;
  log: string;
  stop(): Promise<void>;
}

function ganeshaConfig(dir: string, pseudo: string, recovery: string): string {
  return `
NFS_CORE_PARAM {
  Protocols = 4;
  NFS_Port = ${NFS_PORT};
  Bind_addr = 127.0.0.1;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}
NFSv4 {
  # No 90 s grace period at start: there are no earlier clients whose locks need reclaiming.
  Graceless = true;
  RecoveryBackend = fs;
  RecoveryRoot = ${recovery};
  Minor_Versions = 1, 2;
}
NFS_KRB5 { Active_krb5 = false; }
EXPORT {
  Export_Id = 1;
  Path = ${dir};
  Pseudo = ${pseudo};
  Access_Type = RW;
  # The device mounts, creates and loop-mounts its data image as root.
  Squash = No_Root_Squash;
  Protocols = 4;
  Transports = TCP;
  SecType = sys;
  FSAL { Name = VFS; }
}
`;
}

const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => (child.exitCode !== null || child.signalCode !== null ? resolve() : child.once('exit', () => resolve())));
}

/** Starts ganesha exporting `dir` as `pseudo` (the path the device mounts); `work` holds its config and log. */
export async function startNfsServer(dir: string, pseudo: string, work: string): Promise<NfsServer> {
  if (await portOpen(NFS_PORT)) throw new Error(`port ${NFS_PORT} on 127.0.0.1 is taken: another NFS server runs here; stop it first`);
  const recovery = join(work, 'recovery');
  await mkdir(recovery, { recursive: true });
  const config = join(work, 'ganesha.conf');
  const log = join(work, 'ganesha.log');
  await writeFile(config, ganeshaConfig(dir, pseudo, recovery));
  const child = spawn('ganesha.nfsd', ['-F', '-L', log, '-f', config, '-p', join(work, 'ganesha.pid'), '-N', 'NIV_EVENT'], {
    stdio: 'ignore',
  });
  const failed = new Promise<never>((_, reject) => {
    child.once('error', reject);
    child.once('exit', async (code) =>
      reject(new Error(`ganesha.nfsd exited (${code}) during start-up:\n${await readFile(log, 'utf8').catch(() => '')}`)),
    );
  });
  const started = (async () => {
    for (let i = 0; i < 100 && !(await portOpen(NFS_PORT)); i++) await new Promise((r) => setTimeout(r, 100));
    if (!(await portOpen(NFS_PORT))) throw new Error(`ganesha.nfsd did not listen on ${NFS_PORT} within 10 s; see ${log}`);
  })();
  try {
    await Promise.race([started, failed]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  failed.catch(() => undefined);
  return {
    dir,
    log,
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited(child);
      clearTimeout(timer);
    },
  };
}
