export { atomicWrite, atomicWriteText } from './atomic.ts';
export { SafetensorsFile, SafetensorsError, loadSafetensors, saveSafetensors, type TensorInfo } from './safetensors.ts';
