// Free functions over several tensors (torch.cat, torch.stack, torch.where, torch.einsum, ...).
import { Tensor, aten, type TensorLike } from './tensor.ts';

export const cat = (tensors: Tensor[], dim = 0): Tensor => aten('aten::cat', tensors, dim);
export const stack = (tensors: Tensor[], dim = 0): Tensor => aten('aten::stack', tensors, dim);
/** Elementwise `cond ? a : b` with broadcasting. */
export const where = (cond: Tensor, a: TensorLike, b: TensorLike): Tensor => aten('aten::where.self', cond, a, b);
/** Einstein summation, e.g. einsum('bij,bjk->bik', a, b). */
export const einsum = (equation: string, ...operands: Tensor[]): Tensor => aten('aten::einsum', equation, operands);
export const broadcastTensors = (...tensors: Tensor[]): Tensor[] => aten('aten::broadcast_tensors', tensors);
export const outer = (a: Tensor, b: Tensor): Tensor => aten('aten::outer', a, b);
