// Image preprocessing for the encoder.
// - RepTok's path (reference: CompVis/RepTok better_resize + DINOFeatureEncoder.forward): images in [-1, 1] ->
//   center crop to a square -> integer average pooling when the side is at least twice the model size ->
//   bilinear resize (no antialias) -> [0, 1] -> ImageNet normalisation.
// - DINOv2's evaluation path for plain images: shorter side to 256 (bicubic), center crop 224, normalisation.
import { F, Tensor, tensor, tidy } from '../engine/index.ts';
import { readImage } from '../io/image.ts';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

// Python's round(): halves go to the even neighbour (torchvision's center_crop offsets use it).
const pyRound = (x: number): number => {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

/** torchvision's center_crop of the last two dims to size h×w. */
export function centerCrop(imgs: Tensor, h: number, w: number): Tensor {
  const [H, W] = imgs.shape.slice(-2) as [number, number];
  if (h > H || w > W) throw new RangeError(`centerCrop: crop ${h}×${w} is larger than the image ${H}×${W}`);
  const top = pyRound((H - h) / 2);
  const left = pyRound((W - w) / 2);
  return imgs.narrow(-2, top, h).narrow(-1, left, w);
}

/** RepTok's better_resize: (B, 3, H, W) -> (B, 3, size, size). */
export function betterResize(imgs: Tensor, size: number): Tensor {
  return tidy(() => {
    const [H, W] = imgs.shape.slice(-2) as [number, number];
    const side = Math.min(H, W);
    const factor = Math.floor(side / size);
    let x = centerCrop(imgs, side, side);
    if (factor > 1) x = F.avgPool2d(x, factor); // anti-aliasing for large downscales, as the reference does
    return F.interpolate(x, { size: [size, size], mode: 'bilinear', alignCorners: false });
  });
}

/** (x − mean) / std per channel for images in [0, 1] (B, 3, H, W). */
export function normalizeImagenet(x: Tensor): Tensor {
  return tidy(() => {
    const mean = tensor([...IMAGENET_MEAN], { dtype: x.dtype, device: x.device }).reshape(1, 3, 1, 1);
    const std = tensor([...IMAGENET_STD], { dtype: x.dtype, device: x.device }).reshape(1, 3, 1, 1);
    return x.sub(mean).div(std);
  });
}

/** The full RepTok encoder input path: images (B, 3, H, W) in [-1, 1] -> normalised (B, 3, size, size). */
export function reptokPreprocess(imgs: Tensor, size: number): Tensor {
  if (imgs.ndim !== 4 || imgs.shape[1] !== 3)
    throw new RangeError(`expected RGB images (B, 3, H, W), got shape [${imgs.shape.join(', ')}]`);
  const [lo, hi] = tidy(() => {
    const r = imgs.aminmax();
    return [r.min.item(), r.max.item()];
  });
  if (lo < -1.001 || hi > 1.001)
    throw new RangeError(
      `images must be in [-1, 1], got values in [${lo.toFixed(3)}, ${hi.toFixed(3)}]; ` +
        'map uint8 pixels with x / 127.5 - 1',
    );
  return tidy(() => encoderInput(betterResize(imgs, size)));
}

/** Images in [-1, 1] (gray images get three channels) -> the ViT's input: [0, 1], ImageNet-normalised. No resizing. */
export function encoderInput(imgs: Tensor): Tensor {
  return tidy(() => normalizeImagenet((imgs.shape[1] === 1 ? imgs.expand(-1, 3, -1, -1) : imgs).add(1).div(2)));
}

/** DINOv2's evaluation transform for an image file: (3, crop, crop), normalised. */
export async function dinov2ImageTransform(path: string, o: { resize?: number; crop?: number } = {}): Promise<Tensor> {
  const img = await readImage(path, { channels: 3 });
  const resize = o.resize ?? 256;
  const crop = o.crop ?? 224;
  return tidy(() => {
    const [H, W] = img.shape.slice(1) as [number, number];
    const scale = resize / Math.min(H, W);
    const size: [number, number] = H <= W ? [resize, Math.floor(W * scale)] : [Math.floor(H * scale), resize];
    const resized = F.interpolate(img.unsqueeze(0), {
      size,
      mode: 'bicubic',
      alignCorners: false,
      antialias: true,
    }).clamp(-1, 1);
    const out = normalizeImagenet(centerCrop(resized, crop, crop).add(1).div(2)).squeeze(0);
    img.dispose();
    return out;
  });
}
