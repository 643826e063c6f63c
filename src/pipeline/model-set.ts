// A model set: the models of one model folder (a tokenizer, and a class-conditional generator and/or a
// text-to-image model), named by the folder. `weights/` holds one model set per data set (weights/fashion-mnist,
// weights/emoji); the web demo and the demo page offer each by its name.
import type { RepTokSources } from './reptok.ts';

export interface ModelSet {
  /** The name it is offered by (the folder's name). */
  name: string;
  sources: RepTokSources;
  /** The model folder, where its samples/ (and prompts.txt) may be. */
  dir?: string;
}
