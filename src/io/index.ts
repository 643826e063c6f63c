export { atomicWrite, atomicWriteText } from './atomic.ts';
export {
  SafetensorsFile,
  SafetensorsError,
  loadSafetensors,
  readSafetensorsMetadata,
  saveSafetensors,
  type SafetensorsSource,
  type TensorInfo,
} from './safetensors.ts';
