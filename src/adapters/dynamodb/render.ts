/**
 * The owner's public JSON shapes: `_schema.json` (DescribeTable-like projection
 * of DynamoTableSchema) and the GetItem wire JSON of one item, plus the
 * filename segment of a primary-key attribute.
 */
import { GoB64, GoMap, goJsonString, indentLine, marshal, sortBytewise, type GoValue } from '../../format/gojson.js';
import { encodeBinarySegment, encodeSegment } from '../../format/filename.js';
import { canonicalNumber } from './keys.js';
import type { AttrValue, Item, TableSchema } from './proto.js';

const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

function keyAttr(name: string, defs: Map<string, string>): GoValue {
  return { name: name || undefined, type: defs.get(name) || undefined };
}

export function schemaValue(s: TableSchema): GoValue {
  const defs = s.attributeDefinitions;
  const hashName = s.primaryKey?.hashKey ?? '';
  const rangeName = s.primaryKey?.rangeKey ?? '';
  const gsis: GoValue[] = [...s.globalSecondaryIndexes.keys()].sort(byBytes).map((name) => {
    const g = s.globalSecondaryIndexes.get(name)!;
    const gh = g.keySchema?.hashKey ?? '';
    const gr = g.keySchema?.rangeKey ?? '';
    const nonKey = g.projection?.nonKeyAttributes ?? [];
    return {
      name,
      key_schema: { hash_key: keyAttr(gh, defs), range_key: gr ? keyAttr(gr, defs) : {} },
      projection: { type: g.projection?.projectionType ?? '', non_key_attributes: nonKey.length ? nonKey : undefined },
    };
  });
  return {
    format_version: 1,
    table_name: s.tableName,
    primary_key: { hash_key: keyAttr(hashName, defs), range_key: rangeName ? keyAttr(rangeName, defs) : {} },
    attribute_definitions: [...defs.keys()].sort(byBytes).map((name) => ({ name, type: defs.get(name)! })),
    global_secondary_indexes: gsis.length ? gsis : undefined,
  };
}

export function renderSchema(s: TableSchema): Buffer {
  return Buffer.from(marshal(schemaValue(s), { indent: '  ' }), 'utf8');
}

export function attrValue(av: AttrValue): GoValue {
  switch (av.t) {
    case 'S':
    case 'N':
    case 'BOOL':
    case 'NULL':
      return new GoMap([[av.t, av.v]]);
    case 'B':
      return new GoMap([['B', new GoB64(av.v)]]);
    case 'SS':
    case 'NS':
      return new GoMap([[av.t, [...av.v]]]);
    case 'BS':
      return new GoMap([['BS', av.v.map((b) => new GoB64(b))]]);
    case 'L':
      return new GoMap([['L', av.v.map(attrValue)]]);
    case 'M':
      return new GoMap([['M', new GoMap([...av.v].map(([k, v]) => [k, attrValue(v)]))]]);
    case 'none':
      return new GoMap([['NULL', true]]);
  }
}

export function itemValue(item: Item): GoValue {
  return new GoMap([...item].map(([k, v]) => [k, attrValue(v)]));
}

/** MarshalIndent's line break before a value at `depth` (two spaces a level). */
const nl = (depth: number): string => indentLine('  ', depth);

/** A JSON array of already-encoded elements at `depth` (MarshalIndent's layout; [] when empty). */
function indentedArray(elems: string[], depth: number): string {
  if (elems.length === 0) return '[]';
  const inner = nl(depth + 1);
  return '[' + inner + elems.join(',' + inner) + nl(depth) + ']';
}

/** An attribute map (an item, or an M) at `depth`, keys in Go's order. */
function indentedAttrs(m: Map<string, AttrValue>, depth: number): string {
  if (m.size === 0) return '{}';
  const inner = nl(depth + 1);
  let s = '{';
  let first = true;
  for (const k of sortBytewise([...m.keys()], (x) => x)) {
    s += (first ? inner : ',' + inner) + goJsonString(k) + ': ' + indentedAttr(m.get(k)!, depth + 1);
    first = false;
  }
  return s + nl(depth) + '}';
}

/** One AttributeValue at `depth`: a one-key object, as attrValue() marshals. */
function indentedAttr(av: AttrValue, depth: number): string {
  let tag: string;
  let v: string;
  switch (av.t) {
    case 'S':
    case 'N':
      tag = av.t;
      v = goJsonString(av.v);
      break;
    case 'BOOL':
    case 'NULL':
      tag = av.t;
      v = av.v ? 'true' : 'false';
      break;
    case 'none':
      tag = 'NULL';
      v = 'true';
      break;
    case 'B':
      tag = 'B';
      v = '"' + av.v.toString('base64') + '"';
      break;
    case 'SS':
    case 'NS':
      tag = av.t;
      v = indentedArray(av.v.map((x) => goJsonString(x)), depth + 1);
      break;
    case 'BS':
      tag = 'BS';
      v = indentedArray(av.v.map((b) => '"' + b.toString('base64') + '"'), depth + 1);
      break;
    case 'L':
      tag = 'L';
      v = indentedArray(av.v.map((x) => indentedAttr(x, depth + 2)), depth + 1);
      break;
    case 'M':
      tag = 'M';
      v = indentedAttrs(av.v, depth + 1);
      break;
  }
  return '{' + nl(depth + 1) + '"' + tag + '": ' + v + nl(depth) + '}';
}

/**
 * Per-item file body: json.MarshalIndent(item, "", "  "), no trailing newline. Written
 * straight from the item (the bytes marshal(itemValue(item), { indent: '  ' }) gives, checked
 * against it by test), without the intermediate Go values: a copy renders every item.
 */
export function renderItem(item: Item): Buffer {
  return Buffer.from(indentedAttrs(item, 0), 'utf8');
}

/** One JSONL bundle line: json.Marshal(item) + "\n". */
export function renderItemLine(item: Item): Buffer {
  return Buffer.from(marshal(itemValue(item)) + '\n', 'utf8');
}

/** ddbKeyAttrToSegment: S/N through the plain segment encoding (N canonicalised), B as b64.; anything else is not a key. */
export function keyAttrSegment(av: AttrValue): string | null {
  switch (av.t) {
    case 'S':
      return encodeSegment(Buffer.from(av.v, 'utf8'));
    case 'N':
      return encodeSegment(Buffer.from(canonicalNumber(av.v), 'utf8'));
    case 'B':
      return encodeBinarySegment(av.v);
    default:
      return null;
  }
}
