/**
 * Reads a flattened device tree (.dtb), the format U-Boot's `fdt` commands edit: its nodes with
 * their properties, enough to find a node by what it is (compatible, alias) and check that a node
 * boot.ini removes exists in the tree the image ships.
 */
import { UserError } from '../errors.js';

const FDT_MAGIC = 0xd00dfeed;
const FDT_BEGIN_NODE = 1;
const FDT_END_NODE = 2;
const FDT_PROP = 3;
const FDT_NOP = 4;
const FDT_END = 9;

const align4 = (offset: number) => (offset + 3) & ~3;

export interface DeviceTreeNode {
  /** The full path: `/`, `/cpus`, `/cpus/cpu@0`, ... */
  path: string;
  properties: Map<string, Buffer>;
}

/** Every node with its properties, in the blob's order. */
export function deviceTree(blob: Buffer, name = 'the device tree'): DeviceTreeNode[] {
  const invalid = (why: string) => new UserError(`${name} is not a valid device tree blob (${why})`);
  if (blob.length < 40 || blob.readUInt32BE(0) !== FDT_MAGIC) throw invalid('no FDT header');
  const totalSize = blob.readUInt32BE(4);
  const structStart = blob.readUInt32BE(8);
  const stringsStart = blob.readUInt32BE(12);
  const stringsSize = blob.readUInt32BE(32);
  const structSize = blob.readUInt32BE(36);
  const structEnd = structStart + structSize;
  if (totalSize > blob.length || structEnd > totalSize || stringsStart + stringsSize > totalSize) throw invalid('truncated');
  const propertyName = (offset: number) => {
    const start = stringsStart + offset;
    const end = blob.indexOf(0, start);
    if (offset >= stringsSize || end < 0 || end >= stringsStart + stringsSize) throw invalid('property name outside the strings block');
    return blob.toString('latin1', start, end);
  };

  const nodes: DeviceTreeNode[] = [];
  const stack: DeviceTreeNode[] = [];
  let offset = structStart;
  while (offset + 4 <= structEnd) {
    const token = blob.readUInt32BE(offset);
    offset += 4;
    if (token === FDT_BEGIN_NODE) {
      const end = blob.indexOf(0, offset);
      if (end < 0 || end >= structEnd) throw invalid('unterminated node name');
      const nodeName = blob.toString('latin1', offset, end);
      offset = align4(end + 1);
      // The root node's name is empty; its children hang off "/".
      const parent = stack.length === 0 ? '' : stack[stack.length - 1].path;
      const node = {
        path: stack.length === 0 ? '/' : `${parent === '/' ? '' : parent}/${nodeName}`,
        properties: new Map<string, Buffer>(),
      };
      stack.push(node);
      nodes.push(node);
    } else if (token === FDT_END_NODE) {
      if (stack.pop() === undefined) throw invalid('unbalanced nodes');
    } else if (token === FDT_PROP) {
      if (offset + 8 > structEnd || stack.length === 0) throw invalid('truncated property');
      const length = blob.readUInt32BE(offset);
      const value = offset + 8;
      if (value + length > structEnd) throw invalid('truncated property');
      stack[stack.length - 1].properties.set(propertyName(blob.readUInt32BE(offset + 4)), blob.subarray(value, value + length));
      offset = align4(value + length);
    } else if (token === FDT_END) {
      if (stack.length !== 0) throw invalid('unbalanced nodes');
      return nodes;
    } else if (token !== FDT_NOP) {
      throw invalid(`unknown token ${token}`);
    }
  }
  throw invalid('no end token');
}

/** Every node's full path (`/`, `/cpus`, `/cpus/cpu@0`, ...), in the blob's order. */
export function deviceTreeNodes(blob: Buffer, name = 'the device tree'): string[] {
  return deviceTree(blob, name).map((node) => node.path);
}

/** A string-list property (`compatible = "a", "b"`) as its strings. */
export function stringList(value: Buffer | undefined): string[] {
  if (!value) return [];
  return value.toString('latin1').split('\0').filter(Boolean);
}

/**
 * The path of the first node compatible with one of `compatibles`, else the node `alias` names in
 * /aliases (an alias may point at a node that is not there: only a node of the tree counts).
 */
export function findNode(nodes: DeviceTreeNode[], compatibles: readonly string[], alias: string): string | undefined {
  const byCompatible = nodes.find((node) => stringList(node.properties.get('compatible')).some((c) => compatibles.includes(c)));
  if (byCompatible) return byCompatible.path;
  const aliased = stringList(nodes.find((node) => node.path === '/aliases')?.properties.get(alias))[0];
  return aliased !== undefined && nodes.some((node) => node.path === aliased) ? aliased : undefined;
}
