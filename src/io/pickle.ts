// A restricted unpickler: it rebuilds data (numbers, strings, bytes, lists, tuples, dicts, sets) and calls only the
// JavaScript functions the caller registers for specific Python globals. It never executes code from the file.
//
// Two modes for the globals nobody registered:
// - strict (default): any such global (a class to instantiate, a function to call) is an error that names it;
// - inert: they become `InertGlobal` names, and "calling" one (REDUCE / NEWOBJ) records a `PickledObject` — the
//   class name, the arguments and the state BUILD gives it — so the data of unknown classes (e.g. the omegaconf
//   hyper-parameters of a Lightning checkpoint) can be read. Nothing is constructed or executed in either mode.
// Globals that run code or touch the system (os.system, builtins.eval, subprocess.Popen, ...) are refused in both
// modes: a file that names one is hostile, and reading the rest of it as data would hide that.
//
// Python values map to: int -> number (bigint beyond 2^53), float -> number, str -> string, bytes -> Buffer,
// None -> null, bool -> boolean, list/tuple -> Array, dict -> Map, set/frozenset -> Set.

/** A registered global: a function (called with the positional arguments of REDUCE / NEWOBJ) or a plain value. */
export type PickleGlobal = ((...args: any[]) => unknown) | object;

/** Bounds on what a pickle may make us build (a small file must not cost minutes or gigabytes). */
export const PICKLE_LIMITS = {
  /** Bytes of one LONG1/LONG4 integer (torch files hold small ones; 64 KiB is ~158,000 decimal digits). */
  maxLongBytes: 64 * 1024,
  /** Characters of one text INT/LONG argument (protocol 0). */
  maxLongDigits: 10_000,
};

export interface UnpickleOptions {
  /** Allowed globals, keyed "module.name" (e.g. "collections.OrderedDict"). */
  globals: Record<string, PickleGlobal>;
  /** Resolves persistent ids (BINPERSID), e.g. torch storages. Without it, persistent ids are errors. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Names the source in error messages. */
  source?: string;
  /** Unregistered globals become inert records instead of errors (see the header). */
  inert?: boolean;
}

export class UnpicklingError extends Error {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'UnpicklingError';
  }
}

/** A reference to an allowed global, as pushed by GLOBAL / STACK_GLOBAL (and seen by persistentLoad). */
export class GlobalRef {
  constructor(
    readonly name: string,
    readonly value: PickleGlobal,
  ) {}
}

/** A global nobody registered, read in inert mode: only its name is kept; it is never imported or called. */
export class InertGlobal {
  constructor(readonly name: string) {}
}

/**
 * An object of an unregistered class, read in inert mode: what the pickle says about it, as data. `args` are the
 * constructor arguments (REDUCE / NEWOBJ / NEWOBJ_EX), `state` what BUILD sets (usually the `__dict__`), `items` /
 * `list` what a dict or list subclass receives through SETITEMS / APPENDS.
 */
export class PickledObject {
  state: unknown = null;
  readonly items = new Map<unknown, unknown>();
  readonly list: unknown[] = [];
  constructor(
    readonly className: string,
    readonly args: unknown[],
    readonly kwargs: Map<unknown, unknown> = new Map(),
  ) {}
}

// ---------------------------------------------------------------------------------------------------------------
// Globals refused in every mode
// ---------------------------------------------------------------------------------------------------------------

/** Modules whose every global runs code, starts processes, or touches files, the network or the interpreter. */
const CODE_RUNNING_MODULES = new Set(
  (
    'os posix nt posixpath ntpath subprocess sys shutil importlib imp runpy code codeop pty ctypes socket ssl ' +
    'select signal multiprocessing threading _thread asyncio pickle _pickle cPickle dill cloudpickle marshal ' +
    'types operator _operator functools inspect pdb bdb timeit trace webbrowser io _io pathlib tempfile glob ' +
    'zipimport commands popen2 platform urllib urllib2 http ftplib smtplib telnetlib yaml torch.hub torch.jit ' +
    'torch.ops torch._ops torch.utils.cpp_extension torch.load ' +
    'torch.storage._load_from_bytes'
  ).split(' '),
);

/** The only builtins a pickle may name: data types (anything else there, e.g. eval, getattr or open, runs code). */
const DATA_BUILTINS = new Set(
  (
    'dict list tuple set frozenset int long float complex str unicode bytes bytearray bool object slice range ' +
    'xrange NoneType Ellipsis NotImplemented'
  ).split(' '),
);

/** Whether `module.name` is a global that runs code when a pickle is loaded by Python. */
export function isCodeRunningGlobal(module: string, name: string): boolean {
  if (module === 'builtins' || module === '__builtin__') return !DATA_BUILTINS.has(name);
  const parts = module.split('.');
  for (let i = 1; i <= parts.length; i++) if (CODE_RUNNING_MODULES.has(parts.slice(0, i).join('.'))) return true;
  return CODE_RUNNING_MODULES.has(`${module}.${name}`);
}

// ---------------------------------------------------------------------------------------------------------------
// The unpickler
// ---------------------------------------------------------------------------------------------------------------

export function unpickle(data: Buffer, o: UnpickleOptions): unknown {
  const source = o.source ?? 'pickle';
  const fail = (problem: string): never => {
    throw new UnpicklingError(source, problem);
  };
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  let p = 0;

  const need = (n: number): void => {
    if (p + n > data.length) fail(`truncated pickle (needs ${n} more bytes at offset ${p})`);
  };
  const u8 = (): number => (need(1), data[p++]!);
  const u16 = (): number => (need(2), (p += 2), data.readUInt16LE(p - 2));
  const u32 = (): number => (need(4), (p += 4), data.readUInt32LE(p - 4));
  const i32 = (): number => (need(4), (p += 4), data.readInt32LE(p - 4));
  const u64 = (): number => (need(8), (p += 8), Number(data.readBigUInt64LE(p - 8)));
  const bytes = (n: number): Buffer => (need(n), (p += n), data.subarray(p - n, p));
  const line = (): string => {
    const end = data.indexOf(0x0a, p);
    if (end < 0) fail('truncated pickle (unterminated text argument)');
    const s = data.toString('latin1', p, end);
    p = end + 1;
    return s;
  };
  const pop = (): unknown => {
    if (stack.length === 0) fail('stack underflow (corrupt pickle)');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) fail('stack underflow (corrupt pickle)');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const m = marks.pop();
    if (m === undefined) fail('MARK missing (corrupt pickle)');
    return stack.splice(m!);
  };
  // LONG1/LONG4: a little-endian two's-complement integer. Built through one hex string (linear time); a byte-wise
  // BigInt build is quadratic (1 MiB took minutes), and the length is bounded first.
  const signedLE = (b: Buffer): number | bigint => {
    if (b.length === 0) return 0;
    if (b.length > PICKLE_LIMITS.maxLongBytes)
      fail(`an integer of ${b.length} bytes (limit ${PICKLE_LIMITS.maxLongBytes}); the file is corrupt or hostile`);
    let v = BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return smallest(v);
  };
  const textInteger = (s: string): bigint => {
    if (s.length > PICKLE_LIMITS.maxLongDigits)
      fail(`an integer of ${s.length} digits (limit ${PICKLE_LIMITS.maxLongDigits}); the file is corrupt or hostile`);
    if (!/^[+-]?\d+$/.test(s)) fail(`malformed integer '${s.slice(0, 40)}'`);
    return BigInt(s);
  };
  const resolve = (module: string, name: string): GlobalRef | InertGlobal => {
    const key = `${module}.${name}`;
    if (isCodeRunningGlobal(module, name))
      fail(`refusing global '${key}': it can run code when Python loads this file (refused in every mode)`);
    const value = Object.hasOwn(o.globals, key) ? o.globals[key] : undefined;
    if (value !== undefined) return new GlobalRef(key, value);
    if (o.inert) return new InertGlobal(key);
    return fail(
      `refusing to load global '${key}': only plain data and known tensor-rebuilding functions are allowed ` +
        '(this file may try to run code)',
    );
  };
  const call = (f: unknown, args: unknown, what: string, kwargs?: Map<unknown, unknown>): unknown => {
    if (!Array.isArray(args)) fail(`${what} arguments are not a tuple`);
    if (f instanceof InertGlobal) return new PickledObject(f.name, args as unknown[], kwargs);
    if (!(f instanceof GlobalRef) || typeof f.value !== 'function')
      fail(`${what} applied to something that is not an allowed function`);
    const g = f as GlobalRef;
    return guarded(`${g.name}(...)`, () => (g.value as (...a: unknown[]) => unknown)(...(args as unknown[])));
  };
  // Errors of registered functions are reported against the file; JavaScript's own (a TypeError from arguments of
  // the wrong kind) say only that the arguments were malformed, never the engine's internals.
  const guarded = <T>(what: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof UnpicklingError) throw e;
      const internal = e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError;
      return fail(`${what} failed: ${internal ? 'malformed arguments (corrupt pickle)' : (e as Error).message}`);
    }
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    const map = target instanceof PickledObject ? target.items : target;
    if (!(map instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) (map as Map<unknown, unknown>).set(items[i], items[i + 1]);
  };
  const listOf = (target: unknown, what: string): unknown[] => {
    const list = target instanceof PickledObject ? target.list : target;
    if (!Array.isArray(list)) fail(`${what} to a non-list`);
    return list as unknown[];
  };

  for (;;) {
    const op = u8();
    switch (op) {
      case 0x80:
        u8();
        break; // PROTO
      case 0x95:
        u64();
        break; // FRAME
      case 0x2e: {
        // STOP
        if (stack.length !== 1) fail(`pickle ended with ${stack.length} values on the stack`);
        return stack[0];
      }
      case 0x28:
        marks.push(stack.length);
        break; // MARK
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        stack.push(top());
        break; // DUP
      // ---- constants and numbers
      case 0x4e:
        stack.push(null);
        break; // NONE
      case 0x88:
        stack.push(true);
        break; // NEWTRUE
      case 0x89:
        stack.push(false);
        break; // NEWFALSE
      case 0x4a:
        stack.push(i32());
        break; // BININT
      case 0x4b:
        stack.push(u8());
        break; // BININT1
      case 0x4d:
        stack.push(u16());
        break; // BININT2
      case 0x8a:
        stack.push(signedLE(bytes(u8())));
        break; // LONG1
      case 0x8b:
        stack.push(signedLE(bytes(u32())));
        break; // LONG4
      case 0x47:
        need(8);
        stack.push(data.readDoubleBE(p));
        p += 8;
        break; // BINFLOAT
      case 0x49: {
        // INT (text; "01"/"00" are True/False)
        const s = line();
        stack.push(s === '01' ? true : s === '00' ? false : smallest(textInteger(s)));
        break;
      }
      case 0x4c:
        stack.push(smallest(textInteger(line().replace(/L$/, ''))));
        break; // LONG (text)
      case 0x46:
        stack.push(Number(line()));
        break; // FLOAT (text)
      // ---- strings and bytes
      case 0x8c:
        stack.push(bytes(u8()).toString('utf8'));
        break; // SHORT_BINUNICODE
      case 0x58:
        stack.push(bytes(u32()).toString('utf8'));
        break; // BINUNICODE
      case 0x8d:
        stack.push(bytes(u64()).toString('utf8'));
        break; // BINUNICODE8
      case 0x55:
        stack.push(bytes(u8()).toString('latin1'));
        break; // SHORT_BINSTRING (Python 2 str)
      case 0x54:
        stack.push(bytes(u32()).toString('latin1'));
        break; // BINSTRING
      case 0x43:
        stack.push(Buffer.from(bytes(u8())));
        break; // SHORT_BINBYTES
      case 0x42:
        stack.push(Buffer.from(bytes(u32())));
        break; // BINBYTES
      case 0x8e:
        stack.push(Buffer.from(bytes(u64())));
        break; // BINBYTES8
      case 0x96:
        stack.push(Buffer.from(bytes(u64())));
        break; // BYTEARRAY8
      // ---- containers
      case 0x7d:
        stack.push(new Map());
        break; // EMPTY_DICT
      case 0x5d:
        stack.push([]);
        break; // EMPTY_LIST
      case 0x29:
        stack.push([]);
        break; // EMPTY_TUPLE
      case 0x8f:
        stack.push(new Set());
        break; // EMPTY_SET
      case 0x74:
        stack.push(popMark());
        break; // TUPLE
      case 0x85:
        stack.push([pop()]);
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        stack.push([a, b]);
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        stack.push([a, b, c]);
        break;
      } // TUPLE3
      case 0x6c:
        stack.push(popMark());
        break; // LIST
      case 0x64: {
        const m = new Map();
        setItems(m, popMark());
        stack.push(m);
        break;
      } // DICT
      case 0x91:
        stack.push(new Set(popMark()));
        break; // FROZENSET
      case 0x61: {
        const v = pop();
        listOf(top(), 'APPEND').push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        const l = listOf(top(), 'APPENDS');
        for (const x of items) l.push(x); // (a spread of 100k+ items overflows the stack)
        break;
      } // APPENDS
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const items = popMark();
        setItems(top(), items);
        break;
      } // SETITEMS
      case 0x90: {
        const items = popMark();
        const s = top();
        if (!(s instanceof Set)) fail('ADDITEMS to a non-set');
        for (const x of items) (s as Set<unknown>).add(x);
        break;
      } // ADDITEMS
      // ---- memo
      case 0x71:
        memo.set(u8(), top());
        break; // BINPUT
      case 0x72:
        memo.set(u32(), top());
        break; // LONG_BINPUT
      case 0x94:
        memo.set(memo.size, top());
        break; // MEMOIZE
      case 0x70:
        memo.set(Number(line()), top());
        break; // PUT
      case 0x68:
      case 0x6a:
      case 0x67: {
        // BINGET, LONG_BINGET, GET
        const k = op === 0x68 ? u8() : op === 0x6a ? u32() : Number(line());
        if (!memo.has(k)) fail(`memo key ${k} missing (corrupt pickle)`);
        stack.push(memo.get(k));
        break;
      }
      // ---- globals and calls: only registered globals are ever resolved
      case 0x63: {
        const module = line();
        const name = line();
        stack.push(resolve(module, name));
        break;
      } // GLOBAL
      case 0x93: {
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings');
        stack.push(resolve(module as string, name as string));
        break;
      } // STACK_GLOBAL
      case 0x52: {
        const args = pop();
        const f = pop();
        stack.push(call(f, args, 'REDUCE'));
        break;
      } // REDUCE
      case 0x81: {
        const args = pop();
        const cls = pop();
        stack.push(call(cls, args, 'NEWOBJ'));
        break;
      } // NEWOBJ
      case 0x92: {
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (kwargs instanceof Map && kwargs.size && !(cls instanceof InertGlobal))
          fail('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(call(cls, args, 'NEWOBJ_EX', kwargs instanceof Map ? kwargs : undefined));
        break;
      } // NEWOBJ_EX
      case 0x62: {
        // BUILD: an inert object records its state; on values rebuilt by registered globals only a no-op is allowed
        const state = pop();
        const obj = top();
        if (obj instanceof PickledObject) obj.state = state;
        else if (
          state !== null &&
          !(state instanceof Map && state.size === 0) &&
          !(Array.isArray(state) && state.length === 0)
        ) {
          if (obj instanceof Map && state instanceof Map) for (const [k, v] of state) obj.set(k, v);
          else fail(`BUILD (object state) on ${describe(obj)} is not supported`);
        }
        break;
      }
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!o.persistentLoad) fail('persistent ids are not allowed in this pickle');
        stack.push(guarded('persistent id', () => o.persistentLoad!(pid)));
        break;
      }
      case 0x50: {
        // PERSID
        const pid = line();
        if (!o.persistentLoad) fail('persistent ids are not allowed in this pickle');
        stack.push(guarded('persistent id', () => o.persistentLoad!(pid)));
        break;
      }
      case 0x69: {
        const module = line();
        const name = line();
        popMark();
        fail(`refusing to instantiate '${module}.${name}' (INST runs code)`);
        break;
      } // INST
      case 0x6f:
        fail('refusing OBJ (instantiates an arbitrary class)');
        break;
      case 0x82:
      case 0x83:
      case 0x84:
        fail('refusing EXT1/EXT2/EXT4 (copyreg extension registry)');
        break;
      default:
        fail(`unknown or unsupported pickle opcode 0x${op.toString(16)} at offset ${p - 1}`);
    }
  }
}

/** A Python int as a number when it is exact as one, else a bigint. */
function smallest(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Map) return 'a dict';
  return typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v;
}
