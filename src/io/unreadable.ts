// Why a file could not be opened, in words ("no such file") instead of an errno code, for the errors of every reader.

const WORDS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'a folder, not a file',
  ENOTDIR: 'a part of its path is not a folder',
  ELOOP: 'too many symbolic links',
};

/** "no such file" for an error thrown while opening or reading a file (its code in words, else the code). */
export function whyUnreadable(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  return (code && WORDS[code]) ?? code ?? (e as Error).message;
}

/** "cannot read it (no such file)", for messages that begin with the file's name. */
export const cannotRead = (e: unknown): string => `cannot read it (${whyUnreadable(e)})`;
