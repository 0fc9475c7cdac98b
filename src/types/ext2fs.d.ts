// The ext2fs package ships no types; this declares only what src/disk/ext4.ts uses.
declare module 'ext2fs' {
  import type { Disk } from 'file-disk';

  export interface Ext2Stats {
    ino: number;
    mode: number;
    uid: number;
    gid: number;
    size: number;
    isFile(): boolean;
    isDirectory(): boolean;
    isSymbolicLink(): boolean;
  }
  export interface Ext2FileHandle {
    read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
    write(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
    stat(): Promise<Ext2Stats>;
    close(): Promise<void>;
  }
  export interface Ext2Promises {
    open(path: string, flags: string | number, mode?: number): Promise<Ext2FileHandle>;
    lstat(path: string): Promise<Ext2Stats>;
    readdir(path: string): Promise<string[]>;
    readlink(path: string): Promise<string>;
    mkdir(path: string, mode?: number): Promise<void>;
    symlink(target: string, path: string): Promise<void>;
    unlink(path: string): Promise<void>;
    rmdir(path: string): Promise<void>;
    chmod(path: string, mode: number): Promise<void>;
    lchown(path: string, uid: number, gid: number): Promise<void>;
    constants: Record<string, number>;
  }
  export interface Ext2Fs {
    promises: Ext2Promises;
  }
  export function mount(disk: Disk, offset?: number): Promise<Ext2Fs>;
  export function umount(fs: Ext2Fs): Promise<void>;
}
