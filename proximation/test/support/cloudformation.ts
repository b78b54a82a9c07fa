/**
 * CloudFormation templates as the tests read them, with no AWS account: parsing, static checks, and
 * evaluation of intrinsic functions.
 *
 * - `parseTemplate` reads YAML as CloudFormation does (YAML 1.1, so an unquoted `OFF` is the boolean it
 *   would be there), with the short forms of the intrinsic functions (`!Ref X`, `!GetAtt R.Attr`,
 *   `!Sub`, `!If`...) turned into their long JSON forms. It throws on any YAML error or warning, an
 *   unknown `!tag` included.
 * - `templateProblems` lists, one line each, what CloudFormation would refuse or what is dead: a
 *   reference (`Ref`, `Fn::GetAtt`, `${...}` in `Fn::Sub`) to no parameter, resource or pseudo parameter;
 *   an attribute its resource type does not have; a condition or DependsOn naming nothing; a resource
 *   type outside the given list; a parameter or condition nothing uses. An empty list: well formed.
 * - `evaluate` resolves the intrinsic functions of a fragment with given parameter and resource values
 *   (parameters fall back to their Default; a CommaDelimitedList is a list, a Number a number), dropping `AWS::NoValue`. It throws, naming the reference,
 *   when a value is missing or a function is not one it knows.
 */
import { parseDocument, Pair, Scalar, YAMLMap, type CollectionTag, type ScalarTag } from 'yaml';

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface Template {
  Parameters: Record<string, JsonObject>;
  Conditions: Record<string, Json>;
  Resources: Record<string, Resource>;
  Outputs: Record<string, JsonObject>;
  [section: string]: Json | undefined;
}

export interface Resource extends JsonObject {
  Type: string;
}

const SECTIONS = ['AWSTemplateFormatVersion', 'Description', 'Metadata', 'Parameters', 'Rules', 'Mappings', 'Conditions', 'Transform', 'Resources', 'Outputs'];
const RESOURCE_KEYS = ['Type', 'Properties', 'Condition', 'DependsOn', 'DeletionPolicy', 'UpdateReplacePolicy', 'Metadata', 'CreationPolicy', 'UpdatePolicy'];
const PSEUDO_PARAMETERS = ['AWS::AccountId', 'AWS::NotificationARNs', 'AWS::NoValue', 'AWS::Partition', 'AWS::Region', 'AWS::StackId', 'AWS::StackName', 'AWS::URLSuffix'];

const FUNCTIONS = ['Ref', 'Condition', 'Base64', 'Cidr', 'FindInMap', 'GetAtt', 'GetAZs', 'ImportValue', 'Join', 'Select', 'Split', 'Sub', 'Transform', 'And', 'Equals', 'If', 'Not', 'Or'];
const longName = (fn: string): string => (fn === 'Ref' || fn === 'Condition' ? fn : `Fn::${fn}`);

/** `!Fn x` in all three node kinds; a collection becomes the one-entry map { "Fn::X": collection }. */
const TAGS: (ScalarTag | CollectionTag)[] = FUNCTIONS.flatMap((fn) => [
  { tag: `!${fn}`, resolve: (text: string) => ({ [longName(fn)]: fn === 'GetAtt' ? text.split('.') : text }) },
  ...(['seq', 'map'] as const).map((collection) => ({
    tag: `!${fn}`,
    collection,
    resolve: (node: unknown) => {
      const map = new YAMLMap();
      map.items.push(new Pair(new Scalar(longName(fn)), node));
      return map;
    },
  })),
]);

export function parseTemplate(text: string, file: string): Template {
  const doc = parseDocument(text, { version: '1.1', customTags: TAGS, uniqueKeys: true, prettyErrors: true });
  const issues = [...doc.errors, ...doc.warnings];
  if (issues.length > 0) throw new Error(`${file}: ${issues.map((e) => e.message).join('\n')}`);
  const template = doc.toJS({ maxAliasCount: 0 }) as Partial<Template>;
  return { Parameters: {}, Conditions: {}, Outputs: {}, Resources: {}, ...template };
}

function isObject(node: Json | undefined): node is JsonObject {
  return typeof node === 'object' && node !== null && !Array.isArray(node);
}

/** The single `Fn::*`/`Ref`/`Condition` key of an intrinsic function call, or undefined. */
function functionOf(node: Json): [string, Json] | undefined {
  if (!isObject(node)) return undefined;
  const entries = Object.entries(node);
  const [entry] = entries;
  if (entries.length !== 1 || entry === undefined) return undefined;
  return entry[0] === 'Ref' || entry[0] === 'Condition' || entry[0].startsWith('Fn::') ? entry : undefined;
}

interface Use {
  kind: 'ref' | 'attribute' | 'condition';
  name: string;
  attribute?: string;
  where: string;
}

/** `${Name}` and `${Resource.Attribute}` in a Fn::Sub string; `${!Literal}` is no reference. */
function subUses(text: string, where: string, locals: ReadonlySet<string>): Use[] {
  return [...text.matchAll(/\$\{([^}!][^}]*)\}/g)].flatMap(([, inner = '']): Use[] => {
    if (locals.has(inner)) return [];
    const dot = inner.indexOf('.');
    return dot < 0 || inner.startsWith('AWS::')
      ? [{ kind: 'ref', name: inner, where }]
      : [{ kind: 'attribute', name: inner.slice(0, dot), attribute: inner.slice(dot + 1), where }];
  });
}

function uses(node: Json | undefined, where: string): Use[] {
  if (node === undefined || node === null || typeof node !== 'object') return [];
  if (Array.isArray(node)) return node.flatMap((item, i) => uses(item, `${where}[${i}]`));
  const call = functionOf(node);
  if (call !== undefined) {
    const [fn, arg] = call;
    if (fn === 'Ref' || fn === 'Condition') return [{ kind: fn === 'Ref' ? 'ref' : 'condition', name: String(arg), where }];
    if (fn === 'Fn::GetAtt') {
      const [name = '', attribute = ''] = Array.isArray(arg) ? arg.map(String) : String(arg).split('.');
      return [{ kind: 'attribute', name, attribute, where }];
    }
    if (fn === 'Fn::Sub') {
      const [text, variables] = Array.isArray(arg) ? arg : [arg, {}];
      const locals = new Set(isObject(variables) ? Object.keys(variables) : []);
      return [...subUses(String(text), where, locals), ...uses(variables, `${where}.${fn}`)];
    }
    if (fn === 'Fn::If' && Array.isArray(arg)) {
      return [{ kind: 'condition', name: String(arg[0]), where }, ...uses(arg.slice(1), `${where}.${fn}`)];
    }
  }
  return Object.entries(node).flatMap(([key, value]) => uses(value, `${where}.${key}`));
}

/** @param resourceTypes each allowed resource type with the attributes Fn::GetAtt may read from it */
export function templateProblems(template: Template, resourceTypes: Readonly<Record<string, readonly string[]>>): string[] {
  const problems: string[] = [];
  const { Parameters: parameters, Conditions: conditions, Resources: resources, Outputs: outputs } = template;
  for (const section of Object.keys(template)) {
    if (!SECTIONS.includes(section)) problems.push(`unknown top-level section ${section}`);
  }
  const all: Use[] = [...uses(template.Rules, 'Rules'), ...uses(conditions, 'Conditions'), ...uses(outputs, 'Outputs')];
  for (const [name, resource] of Object.entries(resources)) {
    const where = `Resources.${name}`;
    for (const key of Object.keys(resource)) if (!RESOURCE_KEYS.includes(key)) problems.push(`${where}: unknown key ${key}`);
    if (!(resource.Type in resourceTypes)) problems.push(`${where}: type ${resource.Type} is not one of ${Object.keys(resourceTypes).join(', ')}`);
    const dependsOn = resource.DependsOn === undefined ? [] : [resource.DependsOn].flat();
    for (const other of dependsOn) if (!(String(other) in resources)) problems.push(`${where}.DependsOn: ${String(other)} is no resource`);
    if (resource.Condition !== undefined) all.push({ kind: 'condition', name: String(resource.Condition), where: `${where}.Condition` });
    all.push(...uses(resource.Properties, `${where}.Properties`));
  }
  for (const [name, output] of Object.entries(outputs)) {
    if (output.Condition !== undefined) all.push({ kind: 'condition', name: String(output.Condition), where: `Outputs.${name}.Condition` });
  }
  for (const use of all) {
    if (use.kind === 'ref' && !(use.name in parameters) && !(use.name in resources) && !PSEUDO_PARAMETERS.includes(use.name)) {
      problems.push(`${use.where}: ${use.name} is no parameter, resource or pseudo parameter`);
    }
    if (use.kind === 'attribute') {
      const type = resources[use.name]?.Type;
      if (type === undefined) problems.push(`${use.where}: Fn::GetAtt of ${use.name}, which is no resource`);
      else if (!(resourceTypes[type] ?? []).includes(use.attribute ?? '')) problems.push(`${use.where}: ${type} has no attribute ${use.attribute}`);
    }
    if (use.kind === 'condition' && !(use.name in conditions)) problems.push(`${use.where}: condition ${use.name} is not defined`);
  }
  const used = new Set(all.map((use) => `${use.kind === 'condition' ? 'condition' : 'name'}:${use.name}`));
  for (const name of Object.keys(parameters)) if (!used.has(`name:${name}`)) problems.push(`Parameters.${name} is never used`);
  for (const name of Object.keys(conditions)) if (!used.has(`condition:${name}`)) problems.push(`Conditions.${name} is never used`);
  return problems;
}

export interface Values {
  /** Parameter values; a parameter not listed takes its Default. */
  parameters: Readonly<Record<string, string>>;
  /** What `Ref Resource` (key `Resource`) and `Fn::GetAtt Resource.Attribute` (key `Resource.Attribute`) give. */
  resources: Readonly<Record<string, string>>;
  pseudo: Readonly<Record<string, string>>;
}

const NO_VALUE = Symbol('AWS::NoValue');
type Evaluated = Json | typeof NO_VALUE;

/** `node` with every intrinsic function resolved. */
export function evaluate(template: Template, node: Json, values: Values): Json {
  const result = evaluateNode(template, node, values);
  if (result === NO_VALUE) throw new Error('the fragment evaluates to AWS::NoValue');
  return result;
}

function lookup(template: Template, name: string, values: Values): string {
  if (name === 'AWS::NoValue') throw new Error('AWS::NoValue inside Fn::Sub');
  const found = name in template.Parameters ? (values.parameters[name] ?? template.Parameters[name]?.Default) : name.startsWith('AWS::') ? values.pseudo[name] : values.resources[name];
  if (found === undefined || found === null) throw new Error(`no value for ${name}: give it to evaluate()`);
  return String(found);
}

function evaluateNode(template: Template, node: Json, values: Values): Evaluated {
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node)) return node.map((item) => evaluateNode(template, item, values)).filter((item): item is Json => item !== NO_VALUE);
  const call = functionOf(node);
  if (call === undefined) {
    const entries = Object.entries(node).map(([key, value]) => [key, evaluateNode(template, value, values)] as const);
    return Object.fromEntries(entries.filter((entry): entry is readonly [string, Json] => entry[1] !== NO_VALUE));
  }
  const [fn, arg] = call;
  const args = Array.isArray(arg) ? arg : [arg];
  switch (fn) {
    case 'Ref': {
      if (arg === 'AWS::NoValue') return NO_VALUE;
      const value = lookup(template, String(arg), values);
      // As a property receives them: a list parameter as a list, a Number one as a number.
      const type = template.Parameters[String(arg)]?.Type;
      return type === 'CommaDelimitedList' ? value.split(',') : type === 'Number' ? Number(value) : value;
    }
    case 'Fn::GetAtt':
      return lookup(template, (Array.isArray(arg) ? arg : String(arg).split('.')).join('.'), values);
    case 'Fn::Sub': {
      const [text, variables] = args;
      const locals = isObject(variables) ? variables : {};
      return String(text).replace(/\$\{([^}]+)\}/g, (whole, inner: string) => {
        if (inner.startsWith('!')) return `\${${inner.slice(1)}}`;
        const local = locals[inner];
        return local !== undefined ? String(evaluate(template, local, values)) : lookup(template, inner, values);
      });
    }
    case 'Fn::Join': {
      const [separator, list] = args;
      return (evaluate(template, list ?? [], values) as Json[]).map(String).join(String(separator));
    }
    case 'Fn::Select': {
      const [index, list] = args;
      return (evaluate(template, list ?? [], values) as Json[])[Number(index)] ?? null;
    }
    case 'Fn::If': {
      const [condition, whenTrue = null, whenFalse = null] = args;
      return evaluateNode(template, conditionHolds(template, String(condition), values) ? whenTrue : whenFalse, values);
    }
    default:
      throw new Error(`evaluate() does not know ${fn}`);
  }
}

function conditionHolds(template: Template, name: string, values: Values): boolean {
  const definition = template.Conditions[name];
  if (definition === undefined) throw new Error(`condition ${name} is not defined`);
  return truth(template, definition, values);
}

function truth(template: Template, node: Json, values: Values): boolean {
  const call = functionOf(node);
  if (call === undefined) throw new Error(`not a condition function: ${JSON.stringify(node)}`);
  const [fn, arg] = call;
  const args = Array.isArray(arg) ? arg : [arg];
  switch (fn) {
    case 'Condition':
      return conditionHolds(template, String(arg), values);
    case 'Fn::Equals':
      return JSON.stringify(evaluate(template, args[0] ?? null, values)) === JSON.stringify(evaluate(template, args[1] ?? null, values));
    case 'Fn::Not':
      return !truth(template, args[0] ?? null, values);
    case 'Fn::And':
      return args.every((a) => truth(template, a, values));
    case 'Fn::Or':
      return args.some((a) => truth(template, a, values));
    default:
      throw new Error(`evaluate() does not know the condition function ${fn}`);
  }
}
