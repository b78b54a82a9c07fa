/**
 * The two resources every scenario asks for, kept apart from the upstream's process code so that the
 * Node reference servers, which answer them themselves, load nothing else of the benchmark.
 */
export const SMALL_PATH = '/';
export const SMALL_BYTES = 100;
export const LARGE_PATH = '/64k.bin';
export const LARGE_BYTES = 64 * 1024;
