// Types of scripts/build-addon.mjs for the TypeScript that imports it (the test).
// What native/libtorch-config.cjs gives binding.gyp, and the LIBTORCH it was asked with (null: Debian's libtorch-dev).
export interface BuildConfig {
  libtorch: string | null;
  include: string[];
  libdirs: string[];
  libs: string[];
  defines: string[];
}
export declare function currentConfig(env?: NodeJS.ProcessEnv): BuildConfig | null;
export declare function buildEnv(options?: {
  root?: string;
  env?: NodeJS.ProcessEnv;
  force?: boolean;
}): NodeJS.ProcessEnv;
export declare function whyAddonIsStale(options: { root?: string; config: BuildConfig | null }): string | null;
export declare function buildAddon(options?: { force?: boolean }): void;
