// The storage contract and its backends, under one import: `Storage` is what the API and the
// workers program against; which backend stands behind it is a configuration choice (openStorage).
export * from './storage.js';
/** Where a blob lives under the storage root (what a proxy serving the directory is pointed at). */
export { blobLocation } from './layout.js';
export * from './filesystem.js';
export * from './memory.js';
export * from './s3.js';
export * from './open-storage.js';
