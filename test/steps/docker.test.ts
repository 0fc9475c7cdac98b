import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { BUNDLE_URL_PATTERN } from '../../src/artifacts/docker-bundle.js';
import { describeOperation } from '../../src/engine/operations.js';
import { UserError } from '../../src/errors.js';
import { docker } from '../../src/steps/docker.js';
import { bundleFiles, HOSTILE_ENTRIES, makeBundle } from '../docker-bundle-fixture.js';
import { debugfsBatch, debugfsCat, debugfsDumpDir, debugfsStat } from '../support/debugfs.js';
import { e2fsckClean } from '../support/fsck.js';
import { copyOfStockImage, tempDir } from '../support/images.js';
import { type PatchedFixture, patchFixture } from './patch-fixture.js';
import { appliedOn } from './probe.js';

/** Runs debugfs requests on the rootfs in one process (each spawn costs more than the request). */
async function debugfsRequests(img: string, requests: string[]): Promise<string> {
  return (await debugfsBatch(img, requests)).stdout;
}

/** The names in a rootfs directory, as debugfs lists them. */
async function debugfsLs(img: string, dir: string): Promise<string[]> {
  const out = await debugfsRequests(img, [`ls -p "${dir}"`]);
  // `ls -p` prints /inode/mode/uid/gid/name/size/ per entry.
  const names = out.split('\n').flatMap((line) => /^\/\d+\/\d+\/\d+\/\d+\/([^/]+)\//.exec(line)?.[1] ?? []);
  return names.filter((name) => name !== '.' && name !== '..');
}

const operationsOf = (fixture: PatchedFixture) =>
  fixture.result.planned.find((p) => p.step === 'docker')!.operations.map(describeOperation);
const quiet = () => vi.spyOn(process.stderr, 'write').mockImplementation(() => true);

const CONFIG = { name: 'c2-test', nfs: { server: '10.0.0.1', export: '/srv/c2-test' } };
let work: string;
let files: Record<string, Buffer>;
let bundle: string;
let patched: PatchedFixture;
beforeAll(async () => {
  work = await tempDir();
  files = bundleFiles();
  bundle = path.join(work, 'docker-28.0.0.tgz');
  const { sha256 } = await makeBundle(bundle, files, HOSTILE_ENTRIES);
  quiet();
  patched = await patchFixture([docker], { ...CONFIG, docker: { bundle, sha256 } });
  vi.restoreAllMocks();
});
afterAll(() => vi.restoreAllMocks());

describe('docker step: the binaries', () => {
  it('streams the bundle into /usr/local/bin byte for byte, root:root 0755, and nothing else', async () => {
    const { img } = patched;
    expect((await debugfsLs(img, '/usr/local/bin')).sort()).toEqual(Object.keys(files).sort());
    for (const name of Object.keys(files)) {
      expect(await debugfsStat(img, `/usr/local/bin/${name}`)).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    }
    const dumped = await debugfsDumpDir(img, '/usr/local/bin');
    for (const [name, content] of Object.entries(files)) {
      expect((await readFile(path.join(dumped, name))).equals(content), name).toBe(true);
    }
    // docker/../../etc/evil with and without the docker/ prefix stripped, and as written.
    for (const absent of ['/etc/evil', '/usr/etc/evil', '/usr/local/etc/evil']) {
      expect(await debugfsStat(img, absent), absent).toBeUndefined();
    }
    expect(operationsOf(patched).filter((line) => line.startsWith('stream  rootfs:/usr/local/bin'))).toEqual([
      `stream  rootfs:/usr/local/bin: ${Object.keys(files).join(', ')} from ${bundle}`,
    ]);
    expect(await e2fsckClean(img)).toMatchObject({ ok: true });
  });

  it('reports itself applied on the patched image and not on the stock one', async () => {
    expect(await appliedOn(docker, patched.img)).toBe(true);
    const stock = await copyOfStockImage('stock', await tempDir());
    expect(await appliedOn(docker, stock)).toBe(false);
  });

  it('is idempotent: building again with the same bundle rewrites no binary and changes no file', async () => {
    const first = await patchFixture([docker], { docker: { bundle } });
    const configFiles = ['/etc/docker/daemon.json', '/etc/systemd/system/docker.service', '/etc/systemd/system/builder-storage.service'];
    const before = {
      local: await debugfsDumpDir(first.img, '/usr/local'),
      config: await Promise.all(
        configFiles.map((file) => debugfsStat(first.img, file).then(async (s) => [s, await debugfsCat(first.img, file)])),
      ),
    };
    const again = await patchFixture([docker], { docker: { bundle } }, { img: first.img, dir: first.dir });
    // Only the binaries' stream counts: the TLS files are streamed from the secrets at every build.
    expect(operationsOf(again).filter((line) => line.startsWith('stream  rootfs:/usr/local/bin') || line.startsWith('remove'))).toEqual([]);
    const after = {
      local: await debugfsDumpDir(first.img, '/usr/local'),
      config: await Promise.all(
        configFiles.map((file) => debugfsStat(first.img, file).then(async (s) => [s, await debugfsCat(first.img, file)])),
      ),
    };
    const diff = spawnSync('diff', ['-r', before.local, after.local], { encoding: 'utf8' });
    expect(diff.stdout + diff.stderr).toBe('');
    expect(diff.status).toBe(0);
    expect(after.config).toEqual(before.config);
    expect(await e2fsckClean(first.img)).toMatchObject({ ok: true });
  });

  it('replaces an earlier bundle and drops the binaries the new one no longer has', async () => {
    const first = await patchFixture([docker], { docker: { bundle } });
    const { ctr: _dropped, ...newer } = bundleFiles();
    const update = path.join(work, 'docker-28.0.1.tgz');
    await makeBundle(update, newer);
    const second = await patchFixture([docker], { docker: { bundle: update } }, { img: first.img, dir: first.dir });
    expect(operationsOf(second)).toContain('remove  rootfs:/usr/local/bin/ctr');
    expect((await debugfsLs(first.img, '/usr/local/bin')).sort()).toEqual(Object.keys(newer).sort());
    const dumped = await debugfsDumpDir(first.img, '/usr/local/bin');
    expect((await readFile(path.join(dumped, 'dockerd'))).equals(newer.dockerd)).toBe(true);
    expect(await e2fsckClean(first.img)).toMatchObject({ ok: true });
  });

  it('refuses a sha256 mismatch before writing anything', async () => {
    const dir = await tempDir();
    const img = await copyOfStockImage('stock', dir);
    const before = await stat(img);
    const wrong = 'ab'.repeat(32);
    const attempt = patchFixture([docker], { docker: { bundle, sha256: wrong } }, { img, dir });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(`but docker.sha256 is ${wrong}`);
    const after = await stat(img);
    expect([after.mtimeMs, after.size]).toEqual([before.mtimeMs, before.size]);
  });

  it('without docker.bundle and without a default manifest, says what to set', async () => {
    const attempt = patchFixture([docker], {});
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(
      /^docker\.bundle is not set and the default bundle manifest \S+docker\.json is missing; set docker\.bundle/,
    );
    await expect(attempt).rejects.toThrow(BUNDLE_URL_PATTERN);
  });
});

describe('docker step: units, daemon.json and the storage script', () => {
  it('enables containerd and docker, which require builder-storage and start after it', async () => {
    const { img } = patched;
    for (const unit of ['builder-storage.service', 'containerd.service', 'docker.service']) {
      expect(await debugfsStat(img, `/etc/systemd/system/${unit}`)).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
    }
    for (const unit of ['containerd.service', 'docker.service']) {
      expect(await debugfsStat(img, `/etc/systemd/system/multi-user.target.wants/${unit}`)).toMatchObject({
        type: 'symlink',
        target: `/etc/systemd/system/${unit}`,
      });
    }
    const unit = await debugfsCat(img, '/etc/systemd/system/docker.service');
    expect(unit).toMatch(/^Requires=builder-storage\.service containerd\.service$/m);
    expect(unit).toMatch(/^After=.*\bbuilder-storage\.service\b/m);
    expect(unit).toMatch(/^ExecStartPre=\/usr\/local\/sbin\/builder-storage check$/m);
    expect(unit).toMatch(/^EnvironmentFile=-\/run\/builder-storage\/dockerd\.env$/m);
    // dockerd refuses -H together with daemon.json "hosts" (where the TLS API adds its socket).
    expect(/^ExecStart=(.*)$/m.exec(unit)![1]).toBe('/usr/local/bin/dockerd $DOCKERD_STORAGE_OPTS');
    expect(unit).not.toMatch(/docker\.socket|fd:\/\//);

    const containerd = await debugfsCat(img, '/etc/systemd/system/containerd.service');
    expect(containerd).toMatch(/^Requires=builder-storage\.service$/m);
    expect(containerd).toMatch(/^After=.*\bbuilder-storage\.service\b/m);
    expect(containerd).toMatch(/^ExecStart=\/usr\/local\/bin\/containerd --root \/var\/lib\/docker\/containerd\/daemon$/m);

    const storage = await debugfsCat(img, '/etc/systemd/system/builder-storage.service');
    expect(storage).toMatch(/^Type=oneshot$/m);
    expect(storage).toMatch(/^RemainAfterExit=yes$/m);
    expect(storage).toMatch(/^After=network-online\.target$/m);
    expect(storage).toMatch(/^ExecStart=\/usr\/local\/sbin\/builder-storage start$/m);
    expect(storage).toMatch(/^ExecStop=\/usr\/local\/sbin\/builder-storage stop$/m);
    // Stopped before systemd unmounts what the script mounted (else the two race at shutdown),
    // with the unit names systemd-escape gives those paths.
    expect(storage).toMatch(/^After=var-lib-docker\.mount run-builder\\x2dstorage-share\.mount$/m);
  });

  it('writes daemon.json with hosts and data-root, bounded logs and no storage-driver', async () => {
    const { img } = patched;
    expect(await debugfsStat(img, '/etc/docker/daemon.json')).toMatchObject({ type: 'regular', mode: 0o644, uid: 0, gid: 0 });
    const daemon = JSON.parse(await debugfsCat(img, '/etc/docker/daemon.json'));
    // The TLS API on the device's address only, and only with client certificates (docs/host-kit.md).
    expect(daemon.hosts).toEqual(['unix:///var/run/docker.sock', 'tcp://10.0.0.2:2376']);
    expect(daemon).toMatchObject({
      tlsverify: true,
      tlscacert: '/etc/docker/tls/ca.pem',
      tlscert: '/etc/docker/tls/server-cert.pem',
      tlskey: '/etc/docker/tls/server-key.pem',
    });
    for (const [file, mode] of [
      ['ca.pem', 0o644],
      ['server-cert.pem', 0o644],
      ['server-key.pem', 0o600],
    ] as const) {
      expect(await debugfsStat(img, `/etc/docker/tls/${file}`), file).toMatchObject({ type: 'regular', mode, uid: 0, gid: 0 });
    }
    expect(daemon['data-root']).toBe('/var/lib/docker');
    expect(daemon['log-opts']).toEqual({ 'max-size': '10m', 'max-file': '3' });
    expect(daemon.features).toEqual({ 'containerd-snapshotter': false });
    // Chosen at boot and passed as a flag: the same key in daemon.json would make dockerd refuse to start.
    expect(daemon).not.toHaveProperty('storage-driver');
  });

  it('installs a shellcheck-clean builder-storage that mounts the share hard, with addr=, and checks before mounting', async () => {
    const { img } = patched;
    expect(await debugfsStat(img, '/usr/local/sbin/builder-storage')).toMatchObject({ type: 'regular', mode: 0o755, uid: 0, gid: 0 });
    const file = path.join(work, 'builder-storage');
    await writeFile(file, await debugfsCat(img, '/usr/local/sbin/builder-storage'));
    const check = spawnSync('shellcheck', ['-s', 'sh', file], { encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);

    const run = spawnSync('sh', [file, '--dry-run', 'start'], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    const mount = /^\+ timeout -s KILL \d+ mount -i -t nfs -o (\S+) 10\.0\.0\.1:\/srv\/c2-test \/run\/builder-storage\/share$/m.exec(
      run.stdout,
    );
    expect(mount, run.stdout).not.toBeNull();
    const options = mount![1].split(',');
    expect(options).toEqual(expect.arrayContaining(['hard', 'addr=10.0.0.1', 'vers=4', 'minorversion=1']));
    expect(options).not.toContain('soft');
    // The data image is checked before it is mounted, and dockerd learns the driver last.
    const commands = run.stdout
      .split('\n')
      .filter((line) => line.startsWith('+ '))
      .map((line) => line.split(' ')[1]);
    // This machine has no usb0 with the device's address: the plan waits for it (dockerd listens there).
    expect(run.stdout).toContain('+ wait up to 60s for usb0 to have 10.0.0.2\n');
    // The API limited to the link before anything else may start dockerd (iptables: .ci/run installs it).
    expect(commands).toEqual([
      'wait',
      'iptables',
      'iptables',
      'iptables',
      'iptables',
      'iptables',
      'mkdir',
      'timeout',
      'set',
      'modprobe',
      'rm',
      'truncate',
      'mkfs.ext4',
      'mv',
      'e2fsck',
      'mkdir',
      'mount',
      'modprobe',
      'mkdir',
      'write',
    ]);
    expect(run.stdout).toContain('+ iptables -w -A builder-api -i usb0 -j RETURN\n+ iptables -w -A builder-api -j DROP\n');
    expect(run.stdout).toContain('+ iptables -w -I INPUT -p tcp --dport 2376 -j builder-api\n');
    const image = '/run/builder-storage/share/c2-test.ext4';
    expect(run.stdout).toContain(`+ truncate -s 32G ${image}.new\n`);
    expect(run.stdout).toContain(`+ e2fsck -p ${image}\n`);
    expect(run.stdout).toContain(`+ mount -t ext4 -o loop,noatime,noinit_itable ${image} /var/lib/docker\n`);
    expect(run.stdout).toMatch(/^\+ write \/run\/builder-storage\/dockerd\.env: DOCKERD_STORAGE_OPTS=--storage-driver=(overlay2|vfs)$/m);
  });
});
