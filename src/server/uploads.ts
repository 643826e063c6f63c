// Uploaded images: what the web demo accepts before any pixel is decoded. The bytes must be a PNG, JPEG or WebP
// by their signature (not by a name or a Content-Type, which the sender chooses), and the image header must declare
// at most `maxPixels` pixels — a few hundred bytes can declare 16000×16000 pixels (a decompression bomb), so the
// count is read from the header (sharp's metadata(), which decodes no pixels) and checked first.
import sharp from 'sharp';

export type UploadFormat = 'png' | 'jpeg' | 'webp';

export interface UploadLimits {
  /** Largest upload in bytes. */
  maxBytes: number;
  /** Largest width × height the header may declare. */
  maxPixels: number;
}

/** An upload refused, with the HTTP status to answer and a message for the person who sent it. */
export class UploadError extends Error {
  constructor(
    readonly status: 400 | 413 | 415 | 422,
    message: string,
  ) {
    super(message);
    this.name = 'UploadError';
  }
}

const startsWith = (b: Uint8Array, bytes: number[], at = 0) => bytes.every((x, i) => b[at + i] === x);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** The image format the bytes start with, or null when they are none of the accepted ones. */
export function sniffImageFormat(b: Uint8Array): UploadFormat | null {
  if (startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])) return 'png';
  if (startsWith(b, [0xff, 0xd8, 0xff])) return 'jpeg';
  if (startsWith(b, ascii('RIFF')) && startsWith(b, ascii('WEBP'), 8)) return 'webp';
  return null;
}

/** Checks an upload and returns its format and declared size; throws UploadError when it must be refused. */
export async function checkUpload(
  bytes: Buffer,
  limits: UploadLimits,
): Promise<{ format: UploadFormat; width: number; height: number }> {
  if (bytes.length === 0)
    throw new UploadError(400, 'the upload is empty: send the bytes of a PNG, JPEG or WebP image');
  if (bytes.length > limits.maxBytes)
    throw new UploadError(413, `the image is ${mib(bytes.length)}; the limit is ${mib(limits.maxBytes)}`);
  const format = sniffImageFormat(bytes);
  if (!format)
    throw new UploadError(415, 'this file is not a PNG, JPEG or WebP image (judged by its bytes, not its name)');
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes).metadata());
  } catch {
    throw new UploadError(422, `this ${format.toUpperCase()} file is damaged: its header cannot be read`);
  }
  if (!width || !height) throw new UploadError(422, `this ${format.toUpperCase()} file declares no image size`);
  if (width * height > limits.maxPixels)
    throw new UploadError(
      413,
      `the image declares ${width}×${height} pixels (${megapixels(width * height)}); ` +
        `the limit is ${megapixels(limits.maxPixels)}`,
    );
  return { format, width, height };
}

export const mib = (n: number) => `${(n / 2 ** 20).toFixed(n < 2 ** 20 ? 2 : 1)} MiB`;
const megapixels = (n: number) => `${(n / 1e6).toFixed(1)} megapixels`;
