// A small declarative command-line parser: each command declares its options (type, default, help), and gets
// typed values back, a generated --help, and errors that say what was wrong.

export interface OptionSpec {
  type: 'string' | 'number' | 'boolean' | 'list';
  help: string;
  default?: string | number | boolean | string[];
  /** Single-letter alias (-o). */
  short?: string;
  /** Placeholder in help, e.g. DIR. */
  arg?: string;
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Positional arguments in order; a trailing '...' makes the last one variadic. */
  positionals?: { name: string; help: string; optional?: boolean; variadic?: boolean }[];
  options: Record<string, OptionSpec>;
  /** Longer text shown under the usage line. */
  details?: string;
  examples?: string[];
}

export class UsageError extends Error {
  constructor(
    message: string,
    readonly command?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * Runs a check the library shares with the commands (it names the flag it is given); its RangeError becomes a
 * UsageError, so the command exits 2 with the usage hint, as for its own option checks.
 */
export function asUsage(check: () => void): void {
  try {
    check();
  } catch (e) {
    throw e instanceof RangeError ? new UsageError(e.message) : e;
  }
}

/** What a command gets: its positionals, its typed options, and the raw arguments (recorded in model files). */
export type Parsed = { positionals: string[]; options: Record<string, any>; argv: string[] };

/** The command line as a person would type it: `reptok <command> <args>`, arguments quoted where a shell needs it. */
export function commandLine(command: string, argv: string[]): string {
  const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", "'\\''")}'`);
  return ['reptok', command, ...argv].map(quote).join(' ');
}

export function parseArgs(spec: CommandSpec, argv: string[]): Parsed {
  const options: Record<string, any> = {};
  const positionals: string[] = [];
  const byShort = new Map(
    Object.entries(spec.options)
      .filter(([, o]) => o.short)
      .map(([k, o]) => [o.short!, k]),
  );
  for (const [k, o] of Object.entries(spec.options))
    if (o.default !== undefined) options[k] = Array.isArray(o.default) ? [...o.default] : o.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positionals.push(a);
      continue;
    }
    let [name, inline] = a.startsWith('--')
      ? [a.slice(2).split('=')[0]!, a.includes('=') ? a.slice(a.indexOf('=') + 1) : undefined]
      : [byShort.get(a.slice(1)) ?? a.slice(1), undefined];
    let negated = false;
    const has = (n: string): boolean => Object.hasOwn(spec.options, n);
    if (!has(name) && name.startsWith('no-') && has(name.slice(3)) && spec.options[name.slice(3)]!.type === 'boolean') {
      name = name.slice(3);
      negated = true;
    }
    const o = has(name) ? spec.options[name] : undefined;
    if (!o) throw new UsageError(`unknown option ${a}${suggest(name, Object.keys(spec.options))}`, spec.name);
    if (o.type === 'boolean') {
      options[name] = negated ? false : inline === undefined ? true : inline !== 'false';
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`option --${name} needs a value (${o.arg ?? o.type})`, spec.name);
    if (o.type === 'number') {
      const n = Number(value);
      if (!Number.isFinite(n)) throw new UsageError(`option --${name} expects a number, got '${value}'`, spec.name);
      options[name] = n;
    } else if (o.type === 'list') {
      options[name] = [...(options[name] === o.default ? [] : (options[name] ?? [])), value];
    } else {
      options[name] = value;
    }
  }
  const required = (spec.positionals ?? []).filter((p) => !p.optional && !p.variadic).length;
  if (positionals.length < required)
    throw new UsageError(`missing ${spec.positionals![positionals.length]!.name}`, spec.name);
  const variadic = spec.positionals?.some((p) => p.variadic);
  if (!variadic && positionals.length > (spec.positionals?.length ?? 0))
    throw new UsageError(`unexpected argument '${positionals[spec.positionals?.length ?? 0]}'`, spec.name);
  return { positionals, options, argv };
}

function suggest(name: string, names: string[]): string {
  const near = names.find((n) => n.startsWith(name.slice(0, 3)));
  return near ? ` (did you mean --${near}?)` : '';
}

export function formatHelp(spec: CommandSpec, program = 'reptok'): string {
  const pos = (spec.positionals ?? [])
    .map((p) => (p.variadic ? `<${p.name}...>` : p.optional ? `[${p.name}]` : `<${p.name}>`))
    .join(' ');
  const lines = [`Usage: ${program} ${spec.name}${pos ? ` ${pos}` : ''} [options]`, '', spec.summary];
  if (spec.details) lines.push('', spec.details);
  if (spec.positionals?.length) {
    lines.push('', 'Arguments:');
    for (const p of spec.positionals) lines.push(`  ${p.name.padEnd(24)} ${p.help}`);
  }
  const opts = Object.entries(spec.options);
  if (opts.length) {
    lines.push('', 'Options:');
    for (const [k, o] of opts) {
      const arg = o.type === 'boolean' ? '' : ` ${o.arg ?? o.type.toUpperCase()}`;
      const on = o.type === 'boolean' && o.default === true; // a switch that is on unless --no-<name> is given
      const flag = `${o.short ? `-${o.short}, ` : ''}--${on ? '[no-]' : ''}${k}${arg}`;
      const def = on
        ? ' (default: on)'
        : o.default !== undefined && o.default !== false && !(Array.isArray(o.default) && o.default.length === 0)
          ? ` (default: ${Array.isArray(o.default) ? o.default.join(',') : o.default})`
          : '';
      lines.push(`  ${flag.padEnd(24)} ${o.help}${def}`);
    }
  }
  if (spec.examples?.length) lines.push('', 'Examples:', ...spec.examples.map((e) => `  ${e}`));
  return lines.join('\n');
}
