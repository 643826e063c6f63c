// Output folders: created on demand, but never on a pseudo file system (/proc, /sys, ...), where files cannot be
// written and Node's recursive mkdir can loop forever on the kernel's answers.
import { existsSync, mkdirSync, statSync, statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

/** statfs magic numbers of Linux pseudo file systems (linux/magic.h). */
const PSEUDO_FILE_SYSTEMS = new Map<number, string>([
  [0x9fa0, 'proc'],
  [0x62656572, 'sysfs'],
  [0x1cd1, 'devpts'],
  [0x27e0eb, 'cgroup'],
  [0x63677270, 'cgroup2'],
  [0x64626720, 'debugfs'],
  [0x74726163, 'tracefs'],
  [0x73636673, 'securityfs'],
  [0xcafe4a11, 'bpf'],
  [0x62656570, 'configfs'],
  [0x6165676c, 'pstore'],
  [0xde5e81e4, 'efivarfs'],
  [0xf97cff8c, 'selinuxfs'],
  [0x65735543, 'fusectl'],
  [0x42494e4d, 'binfmt_misc'],
]);

/** Creates `path` (and its parents) as an output folder; refuses a file's name and a pseudo file system. */
export function makeOutputDir(path: string, what = 'output folder'): void {
  if (path === '') throw new Error(`no folder named for the ${what} (an empty path)`);
  if (existsSync(path) && !statSync(path).isDirectory())
    throw new Error(`${path} is a file, not a folder (the ${what})`);
  let existing = resolve(path);
  for (;;) {
    let type: number | undefined;
    try {
      type = statfsSync(existing).type;
    } catch {
      // not there (yet): look at its parent
    }
    if (type !== undefined) {
      const fs = PSEUDO_FILE_SYSTEMS.get(type);
      if (fs) throw new Error(`${path}: cannot use a folder on the ${fs} pseudo file system as the ${what}`);
      break;
    }
    if (dirname(existing) === existing) break;
    existing = dirname(existing);
  }
  mkdirSync(path, { recursive: true });
}
