// Types of scripts/weights-recipes.mjs for the TypeScript that imports it (the test).
export interface Recipe {
  model: string;
  stage: string;
  preset: string;
  steps: number;
  sets: string[];
}
export declare const FAMILIES: Record<string, Recipe[]>;
