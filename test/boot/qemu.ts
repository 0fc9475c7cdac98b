/**
 * Boots a patched image under qemu-system-aarch64 the way U-Boot would boot it on the C2: the
 * kernel and initrd the image's rootfs carries, and the kernel command line its boot.ini builds,
 * plus only what QEMU's virt machine needs (see VIRT_ARGS). The check service in the image
 * prints `CHECK name=value` lines on the serial console; they are collected per boot.
 */
import { execFile as execFileCallback, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { expandBootArgs } from '../../src/formats/hush.js';

const execFile = promisify(execFileCallback);
const SECTOR = 512;

/**
 * Appended to the boot configuration's command line. console=ttyAMA0: the virt machine's serial
 * port is a PL011, not the C2's meson UART (ttyS0 in boot.ini) or a Pi's serial0; as the last
 * console= it becomes /dev/console, where the check service prints. apparmor=0: Debian's kernel
 * enables AppArmor, whose userspace the image does not have (HardKernel's 3.16 kernel has no
 * AppArmor either). systemd.show_status=1: Pi OS's cmdline.txt says `quiet`, which hides the unit
 * status lines the test reads (builder-storage stopping before poweroff). net.ifnames=0: QEMU's
 * NICs are the test's own, configured by name as eth0 and eth1 (test/boot/guest/); HardKernel's
 * boot.ini passes it already, Pi OS's cmdline.txt does not, and systemd would name them enp0s2, enp0s3.
 */
export const VIRT_ARGS = ['console=ttyAMA0', 'apparmor=0', 'systemd.show_status=1', 'net.ifnames=0'];

export interface Partitions {
  boot: number;
  rootfs: number;
}

/** Byte offsets of partitions 1 (FAT) and 2 (ext4), read with sfdisk. */
export async function partitionOffsets(image: string): Promise<Partitions> {
  const { stdout } = await execFile('sfdisk', ['--json', image]);
  const parts = (JSON.parse(stdout) as { partitiontable: { partitions: { start: number }[] } }).partitiontable.partitions;
  return { boot: parts[0].start * SECTOR, rootfs: parts[1].start * SECTOR };
}

/** A file from the FAT, by mtools (the real tool, not this project's FAT code). */
export async function readBootFile(image: string, offsets: Partitions, name: string): Promise<string> {
  const { stdout } = await execFile('mtype', ['-i', `${image}@@${offsets.boot}`, `::${name}`], {
    env: { ...process.env, MTOOLS_SKIP_CHECK: '1' },
  });
  return stdout;
}

async function debugfs(image: string, offsets: Partitions, command: string): Promise<string> {
  const { stdout } = await execFile('debugfs', ['-R', command, `${image}?offset=${offsets.rootfs}`], { maxBuffer: 16 << 20 });
  return stdout;
}

export interface BootFiles {
  kernel: string;
  initrd: string;
  kernelVersion: string;
  /** The kernel command line: cmdline.txt, or boot.ini's bootargs as U-Boot expands them; then VIRT_ARGS. */
  append: string;
}

/** Copies the newest kernel and its initrd out of the image's /boot and builds the command line. */
export async function bootFilesOf(image: string, work: string): Promise<BootFiles> {
  const offsets = await partitionOffsets(image);
  const listing = await debugfs(image, offsets, 'ls -p /boot');
  const versions = [...listing.matchAll(/\/vmlinuz-([^/]+)\//g)]
    .map((m) => m[1])
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
  const kernelVersion = versions.at(-1);
  if (!kernelVersion) throw new Error(`the image's /boot has no vmlinuz-*: ${listing}`);
  const kernel = join(work, `vmlinuz-${kernelVersion}`);
  const initrd = join(work, `initrd.img-${kernelVersion}`);
  await debugfs(image, offsets, `dump /boot/vmlinuz-${kernelVersion} ${kernel}`);
  await debugfs(image, offsets, `dump /boot/initrd.img-${kernelVersion} ${initrd}`);
  // A Raspberry Pi's firmware passes cmdline.txt, its one line, as it is; U-Boot expands boot.ini's bootargs.
  const cmdline = await readBootFile(image, offsets, 'cmdline.txt').catch(() => undefined);
  const args = cmdline !== undefined ? cmdline.trim() : expandBootArgs(await readBootFile(image, offsets, 'boot.ini'));
  const append = [args, ...VIRT_ARGS].join(' ');
  return { kernel, initrd, kernelVersion, append };
}

export interface BootOptions {
  image: string;
  files: BootFiles;
  /** The serial console is copied here. */
  log: string;
  timeoutMs: number;
  /** Pull the plug (SIGKILL) this long after the check service prints this marker. */
  powerCut?: { marker: string; afterMs: number };
  /** QEMU user-network forwards from the test machine's 127.0.0.1 into the guest. */
  forwards?: Forward[];
  /** A second NIC on a tap device of the test machine. */
  tap?: Tap;
  /** Called for every CHECK line as it arrives (the guest keeps running meanwhile). */
  onCheck?: (name: string, value: string) => void;
  /** The guest's RTC at power-on (QEMU's `-rtc base=`, UTC), instead of the test machine's clock. */
  rtcBase?: string;
}

/** A TCP port on the test machine's 127.0.0.1 that QEMU forwards to guestAddress:guestPort. */
export interface Forward {
  hostPort: number;
  guestAddress: string;
  guestPort: number;
}

/**
 * A tap device QEMU creates on the test machine as it starts (and that goes with it), and the MAC
 * of the guest's NIC on it. The tap is down and has no address until the test gives it them.
 */
export interface Tap {
  ifname: string;
  mac: string;
}

export interface BootResult {
  /** Every value each CHECK name was given, in order. */
  checks: Map<string, string[]>;
  /** poweroff: QEMU exited by itself (the guest powered off); powercut; timeout. */
  end: 'poweroff' | 'powercut' | 'timeout';
  exitCode: number | null;
  /** From start to the first CHECK line (userspace reached and the check service running). */
  userspaceSeconds?: number;
  seconds: number;
  log: string;
}

const CHECK_LINE = /CHECK ([a-z0-9-]+)=(.*)$/;

export function qemuArgs(image: string, files: BootFiles, forwards: Forward[] = [], tap?: Tap, rtcBase?: string): string[] {
  const hostfwd = forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-${f.guestAddress}:${f.guestPort}`).join('');
  // After the user network's NIC, so that one stays eth0 (the kernel names them in PCI order).
  const tapNic = tap
    ? ['-netdev', `tap,id=tap,ifname=${tap.ifname},script=no,downscript=no`, '-device', `virtio-net-pci,netdev=tap,mac=${tap.mac},romfile=`]
    : [];
  return [
    '-M',
    'virt',
    '-cpu',
    'cortex-a53',
    '-smp',
    '2',
    '-m',
    '2048',
    '-display',
    'none',
    '-monitor',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    files.kernel,
    '-initrd',
    files.initrd,
    '-append',
    files.append,
    '-drive',
    `file=${image},format=raw,if=none,id=disk`,
    '-device',
    'virtio-blk-pci,drive=disk',
    // Guest 10.0.2.15, host 10.0.2.2 (its 127.0.0.1: the NFS server). No option ROM: the kernel
    // is loaded directly, nothing boots from the network (and ipxe-qemu need not be installed).
    '-netdev',
    `user,id=net${hostfwd}`,
    '-device',
    'virtio-net-pci,netdev=net,romfile=',
    ...tapNic,
    ...(rtcBase ? ['-rtc', `base=${rtcBase}`] : []),
    '-device',
    'virtio-rng-pci',
  ];
}

/** One boot, until the guest powers off, the power cut, or the timeout. */
export function bootImage(options: BootOptions): Promise<BootResult> {
  const start = performance.now();
  const elapsed = () => (performance.now() - start) / 1000;
  const checks = new Map<string, string[]>();
  const log = createWriteStream(options.log);
  const child = spawn('qemu-system-aarch64', qemuArgs(options.image, options.files, options.forwards, options.tap, options.rtcBase), {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let end: BootResult['end'] = 'poweroff';
  let userspaceSeconds: number | undefined;
  const timer = setTimeout(() => {
    end = 'timeout';
    child.kill('SIGKILL');
  }, options.timeoutMs);

  child.stderr.pipe(log, { end: false });
  createInterface({ input: child.stdout }).on('line', (raw) => {
    const line = raw.replace(/\r$/, '');
    log.write(`${line}\n`);
    const match = CHECK_LINE.exec(line);
    if (!match) return;
    const [, name, value] = match;
    userspaceSeconds ??= elapsed();
    log.write(`# +${elapsed().toFixed(1)} s\n`);
    checks.set(name, [...(checks.get(name) ?? []), value.trim()]);
    options.onCheck?.(name, value.trim());
    if (options.powerCut && name === options.powerCut.marker) {
      setTimeout(() => {
        end = 'powercut';
        child.kill('SIGKILL');
      }, options.powerCut.afterMs);
    }
  });

  return new Promise((resolve, reject) => {
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    // 'close', not 'exit': the console's last lines (the poweroff) may still be in the pipe at exit.
    child.once('close', (exitCode) => {
      clearTimeout(timer);
      log.end(() => resolve({ checks, end, exitCode, userspaceSeconds, seconds: elapsed(), log: options.log }));
    });
  });
}

/** The last value a CHECK name was given, or undefined. */
export const lastCheck = (result: BootResult, name: string) => result.checks.get(name)?.at(-1);
