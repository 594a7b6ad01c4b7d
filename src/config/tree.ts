/** A parsed fence_virt.conf node (docs/protocol.md §15): values and child blocks in file order. */
export interface ConfigValue {
  kind: 'value';
  name: string;
  value: string;
  line: number;
}

export interface ConfigBlock {
  kind: 'block';
  name: string;
  /** A block may carry its own value: `name = "v" { … }`. */
  value: string | undefined;
  children: ConfigNode[];
  line: number;
}

export type ConfigNode = ConfigValue | ConfigBlock;
