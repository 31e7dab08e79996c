/**
 * The owner's public JSON shapes: `_schema.json` (DescribeTable-like projection
 * of DynamoTableSchema) and the GetItem wire JSON of one item, plus the
 * filename segment of a primary-key attribute.
 */
import { GoB64, GoMap, marshal, type GoValue } from '../../format/gojson.js';
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

/** Per-item file body: json.MarshalIndent(item, "", "  "), no trailing newline. */
export function renderItem(item: Item): Buffer {
  return Buffer.from(marshal(itemValue(item), { indent: '  ' }), 'utf8');
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
