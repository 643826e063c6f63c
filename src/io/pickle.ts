// A restricted unpickler: it rebuilds data (numbers, strings, bytes, lists, tuples, dicts, sets) and calls only the
// JavaScript functions the caller registers for specific Python globals. It never executes code from the file:
// any other global (os.system, builtins.eval, a class to instantiate, ...) is an error that names it.
//
// Python values map to: int -> number (bigint beyond 2^53), float -> number, str -> string, bytes -> Buffer,
// None -> null, bool -> boolean, list/tuple -> Array, dict -> Map, set/frozenset -> Set.

/** A registered global: a function (called with the positional arguments of REDUCE / NEWOBJ) or a plain value. */
export type PickleGlobal = ((...args: any[]) => unknown) | object;

export interface UnpickleOptions {
  /** Allowed globals, keyed "module.name" (e.g. "collections.OrderedDict"). */
  globals: Record<string, PickleGlobal>;
  /** Resolves persistent ids (BINPERSID), e.g. torch storages. Without it, persistent ids are errors. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Names the source in error messages. */
  source?: string;
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
  const signedLE = (b: Buffer): number | bigint => {
    if (b.length === 0) return 0;
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
    if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const resolve = (module: string, name: string): GlobalRef => {
    const key = `${module}.${name}`;
    const value = Object.hasOwn(o.globals, key) ? o.globals[key] : undefined;
    if (value === undefined)
      fail(
        `refusing to load global '${key}': only plain data and known tensor-rebuilding functions are allowed ` +
          '(this file may try to run code)',
      );
    return new GlobalRef(key, value!);
  };
  const call = (f: unknown, args: unknown, what: string): unknown => {
    if (!(f instanceof GlobalRef) || typeof f.value !== 'function')
      fail(`${what} applied to something that is not an allowed function`);
    if (!Array.isArray(args)) fail(`${what} arguments are not a tuple`);
    return ((f as GlobalRef).value as (...a: unknown[]) => unknown)(...(args as unknown[]));
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) fail('SETITEM(S) on something that is not a dict');
    for (let i = 0; i + 1 < items.length; i += 2) (target as Map<unknown, unknown>).set(items[i], items[i + 1]);
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
        stack.push(s === '01' ? true : s === '00' ? false : Number(s));
        break;
      }
      case 0x4c: {
        // LONG (text)
        const v = BigInt(line().replace(/L$/, ''));
        stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
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
        const l = top();
        if (!Array.isArray(l)) fail('APPEND to a non-list');
        (l as unknown[]).push(v);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        const l = top();
        if (!Array.isArray(l)) fail('APPENDS to a non-list');
        (l as unknown[]).push(...items);
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
        if (kwargs instanceof Map && kwargs.size) fail('NEWOBJ_EX with keyword arguments is not supported');
        stack.push(call(cls, args, 'NEWOBJ_EX'));
        break;
      } // NEWOBJ_EX
      case 0x62: {
        // BUILD: setting state is only allowed as a no-op on values rebuilt by registered globals
        const state = pop();
        const obj = top();
        if (
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
        stack.push(o.persistentLoad!(pid));
        break;
      }
      case 0x50: {
        // PERSID
        const pid = line();
        if (!o.persistentLoad) fail('persistent ids are not allowed in this pickle');
        stack.push(o.persistentLoad!(pid));
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

function describe(v: unknown): string {
  if (v === null) return 'None';
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Map) return 'a dict';
  return typeof v === 'object' ? (v.constructor?.name ?? 'an object') : typeof v;
}
